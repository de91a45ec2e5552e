/**
 * A Markdown table with each column padded to one width, as Biome's Markdown
 * formatter writes it: golden files stay as rendered, and the raw text (an
 * e-mail notification) reads as a table too. Cells must be escaped already.
 */
export function alignedTable(
  head: readonly string[],
  align: readonly ("left" | "right")[],
  rows: readonly (readonly string[])[],
): string[] {
  const widths = head.map((title, column) =>
    rows.reduce((widest, row) => Math.max(widest, width(row[column] ?? "")), Math.max(3, width(title))),
  );
  const line = (cells: readonly string[]) => {
    const padded = widths.map((size, column) => {
      const cell = cells[column] ?? "";
      const padding = " ".repeat(size - width(cell));
      return align[column] === "right" ? `${padding}${cell}` : `${cell}${padding}`;
    });
    return `| ${padded.join(" | ")} |`;
  };
  const delimiter = widths.map((size, column) =>
    align[column] === "right" ? `${"-".repeat(size - 1)}:` : `:${"-".repeat(size - 1)}`,
  );
  return [line(head), `| ${delimiter.join(" | ")} |`, ...rows.map(line)];
}

/** Characters as a reader counts them (code points). */
function width(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}
