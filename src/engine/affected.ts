import { dependentsOf, type StackNode } from "../domain/graph.ts";

export interface HashedStack extends StackNode {
  readonly hash: string;
}

/** What a stack is compared with: a commit's synthesized hash, and whether its last apply went wrong. */
export interface StackBaseline {
  readonly commit: string;
  readonly hash: string;
  readonly lastApplyProblem?: "failed" | "blocked";
}

export type Affected =
  | { readonly affected: true; readonly reason: string }
  | { readonly affected: false; readonly reason: string };

/**
 * Decides which stacks a command handles. A stack is affected when it has no
 * baseline, its hash differs from the baseline's, its last apply failed or was
 * blocked, or a stack it depends on is affected. Naming stacks with --stack
 * selects exactly those, without their dependencies.
 */
export function decideAffected(
  stacks: readonly HashedStack[],
  baselines: ReadonlyMap<string, StackBaseline>,
  selected: readonly string[] = [],
): Map<string, Affected> {
  const decisions = new Map<string, Affected>();
  if (selected.length > 0) {
    const names = new Set(selected);
    for (const stack of stacks) {
      decisions.set(
        stack.name,
        names.has(stack.name)
          ? { affected: true, reason: "named with --stack" }
          : { affected: false, reason: "not named with --stack" },
      );
    }
    return decisions;
  }

  const direct = new Map<string, string>();
  for (const stack of stacks) {
    const baseline = baselines.get(stack.name);
    if (baseline === undefined) direct.set(stack.name, "no baseline (never applied)");
    else if (baseline.lastApplyProblem) direct.set(stack.name, `last apply ${baseline.lastApplyProblem}`);
    else if (baseline.hash !== stack.hash) direct.set(stack.name, `changed since ${short(baseline.commit)}`);
  }
  const dependents = dependentsOf(stacks, new Set(direct.keys()));
  for (const stack of stacks) {
    const reason = direct.get(stack.name);
    if (reason !== undefined) {
      decisions.set(stack.name, { affected: true, reason });
    } else if (dependents.has(stack.name)) {
      const producer = stack.dependencies.find(
        (dependency) => direct.has(dependency) || dependents.has(dependency),
      );
      decisions.set(stack.name, { affected: true, reason: `depends on ${producer}, which is affected` });
    } else {
      const baseline = baselines.get(stack.name);
      decisions.set(stack.name, { affected: false, reason: `unchanged since ${baseline?.commit ?? "?"}` });
    }
  }
  return decisions;
}

export function short(commit: string): string {
  return commit.slice(0, 7);
}
