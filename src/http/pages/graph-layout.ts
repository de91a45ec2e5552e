/**
 * Places an app's stacks for the dependency graph: in columns by depth (a
 * stack stands one column right of the deepest stack it depends on), each
 * column ordered to keep a stack near what it depends on, and edges from a
 * producer's right side to its consumer's left. Pure: stacks in, geometry out.
 */
export interface GraphNode {
  readonly name: string;
  readonly dependencies: readonly string[];
}

export interface PlacedNode {
  readonly name: string;
  readonly x: number;
  readonly y: number;
}

export interface PlacedEdge {
  readonly from: string;
  readonly to: string;
  /** An SVG path from the producer to the consumer. */
  readonly path: string;
}

export interface GraphLayout {
  readonly width: number;
  readonly height: number;
  readonly nodes: readonly PlacedNode[];
  readonly edges: readonly PlacedEdge[];
}

export const NODE_WIDTH = 190;
export const NODE_HEIGHT = 34;
const COLUMN_GAP = 70;
const ROW_GAP = 14;
const MARGIN = 12;

export function layoutGraph(stacks: readonly GraphNode[]): GraphLayout {
  const known = new Map(stacks.map((stack) => [stack.name, stack]));
  const depths = new Map<string, number>();
  const depthOf = (name: string, seen: ReadonlySet<string>): number => {
    const cached = depths.get(name);
    if (cached !== undefined) return cached;
    const producers = (known.get(name)?.dependencies ?? []).filter(
      (dependency) => known.has(dependency) && !seen.has(dependency),
    );
    const depth =
      producers.length === 0
        ? 0
        : 1 + Math.max(...producers.map((producer) => depthOf(producer, new Set([...seen, name]))));
    depths.set(name, depth);
    return depth;
  };
  for (const stack of stacks) depthOf(stack.name, new Set());

  const columns: string[][] = [];
  for (const stack of [...stacks].sort((a, b) => a.name.localeCompare(b.name))) {
    const depth = depths.get(stack.name) ?? 0;
    const column = columns[depth] ?? [];
    column.push(stack.name);
    columns[depth] = column;
  }
  // Each column after the first is ordered by where its producers stand.
  const rowOf = new Map<string, number>();
  columns.forEach((column, index) => {
    if (index > 0) {
      const weight = (name: string) => {
        const rows = (known.get(name)?.dependencies ?? [])
          .map((dependency) => rowOf.get(dependency))
          .filter((row): row is number => row !== undefined);
        return rows.length === 0
          ? Number.MAX_SAFE_INTEGER
          : rows.reduce((sum, row) => sum + row, 0) / rows.length;
      };
      column.sort((a, b) => weight(a) - weight(b) || a.localeCompare(b));
    }
    column.forEach((name, row) => {
      rowOf.set(name, row);
    });
  });

  const nodes: PlacedNode[] = columns.flatMap((column, index) =>
    column.map((name, row) => ({
      name,
      x: MARGIN + index * (NODE_WIDTH + COLUMN_GAP),
      y: MARGIN + row * (NODE_HEIGHT + ROW_GAP),
    })),
  );
  const placed = new Map(nodes.map((node) => [node.name, node]));
  const edges: PlacedEdge[] = [];
  for (const stack of stacks) {
    const to = placed.get(stack.name);
    for (const dependency of stack.dependencies) {
      const from = placed.get(dependency);
      if (!from || !to) continue;
      const [x1, y1] = [from.x + NODE_WIDTH, from.y + NODE_HEIGHT / 2];
      const [x2, y2] = [to.x, to.y + NODE_HEIGHT / 2];
      const bend = (x2 - x1) / 2;
      edges.push({
        from: dependency,
        to: stack.name,
        path: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`,
      });
    }
  }
  const tallest = Math.max(0, ...columns.map((column) => column.length));
  return {
    width:
      MARGIN * 2 + Math.max(1, columns.length) * NODE_WIDTH + Math.max(0, columns.length - 1) * COLUMN_GAP,
    height: MARGIN * 2 + Math.max(1, tallest) * NODE_HEIGHT + Math.max(0, tallest - 1) * ROW_GAP,
    nodes,
    edges,
  };
}
