import type { StackPolicy } from "../policy/policy.ts";
import { dependentsOf } from "./graph.ts";

/**
 * What was reviewed on a pull request, against what happens after it: the
 * merge commit's plan compared with the pull request's last plan, the stacks
 * a branch is behind on, and the permissions a policy change widens. Pure.
 */

/** A resource change as plans record it: Terraform's address and `change.actions`. */
export interface PlannedChange {
  readonly address: string;
  readonly actions: readonly string[];
}

export type ChangeDifference =
  /** Planned at the merge commit, not in the reviewed plan. */
  | { readonly kind: "added"; readonly address: string; readonly actions: readonly string[] }
  /** In the reviewed plan, not planned at the merge commit. */
  | { readonly kind: "removed"; readonly address: string; readonly actions: readonly string[] }
  /** In both, with other actions. */
  | {
      readonly kind: "changed";
      readonly address: string;
      readonly reviewed: readonly string[];
      readonly planned: readonly string[];
    };

export type ReviewComparison =
  | { readonly kind: "same" }
  | {
      readonly kind: "differs";
      /** The pull request's plan did not plan this stack at all. */
      readonly notReviewed: boolean;
      readonly differences: readonly ChangeDifference[];
    };

/**
 * The merge commit's plan of a stack against the pull request's last plan of
 * it, resource by resource and action by action. `reviewed` undefined: the
 * pull request's plan did not plan the stack, so any change now is unreviewed.
 */
export function compareWithReviewed(
  reviewed: readonly PlannedChange[] | undefined,
  planned: readonly PlannedChange[],
): ReviewComparison {
  const before = new Map((reviewed ?? []).map((change) => [change.address, change.actions]));
  const now = new Map(planned.map((change) => [change.address, change.actions]));
  const differences: ChangeDifference[] = [];
  for (const [address, actions] of now) {
    const earlier = before.get(address);
    if (earlier === undefined) differences.push({ kind: "added", address, actions });
    else if (earlier.join(",") !== actions.join(","))
      differences.push({ kind: "changed", address, reviewed: earlier, planned: actions });
  }
  for (const [address, actions] of before) {
    if (!now.has(address)) differences.push({ kind: "removed", address, actions });
  }
  if (differences.length === 0) return { kind: "same" };
  differences.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return { kind: "differs", notReviewed: reviewed === undefined, differences };
}

/** What the snapshots of two commits say of a stack. */
export interface StackAtCommit {
  readonly name: string;
  readonly hash: string;
  readonly dependencies: readonly string[];
}

/**
 * The stacks a pull request affects that changed on the followed branch since
 * the branch left it (or read a stack that did): the merge will plan them
 * differently from the pull request, so its plan is stale for them.
 */
export function staleStacks(
  affected: readonly string[],
  atMergeBase: readonly StackAtCommit[],
  atBranchHead: readonly StackAtCommit[],
): string[] {
  const base = new Map(atMergeBase.map((stack) => [stack.name, stack.hash]));
  const changed = new Set(
    atBranchHead.filter((stack) => base.get(stack.name) !== stack.hash).map((stack) => stack.name),
  );
  const moved = new Set([...changed, ...dependentsOf(atBranchHead, changed)]);
  return affected.filter((name) => moved.has(name));
}

/** A permission a policy change grants that the policy in force did not. */
export interface WidenedPermission {
  readonly stack: string;
  readonly field: "allowDestroy" | "drift" | "autoApply" | "requireReviewedPlan";
  readonly from: string;
  readonly to: string;
}

type Permissions = Pick<StackPolicy, "allowDestroy" | "drift" | "autoApply"> & {
  readonly requireReviewedPlan?: boolean;
};

/**
 * The permissions each stack's policy at a pull request's head widens over the
 * policy in force (the followed branch's head): destroying allowed, drift
 * corrected, applying without approval, applying what was not reviewed. A
 * stack new in the pull request is compared with `defaults`.
 */
export function widenedPermissions(
  inForce: ReadonlyMap<string, Permissions>,
  proposed: ReadonlyMap<string, Permissions>,
  defaults: Permissions,
): WidenedPermission[] {
  const widened: WidenedPermission[] = [];
  for (const [stack, next] of proposed) {
    const now = inForce.get(stack) ?? defaults;
    const widen = (field: WidenedPermission["field"], from: unknown, to: unknown) =>
      widened.push({ stack, field, from: String(from), to: String(to) });
    if (!now.allowDestroy && next.allowDestroy) widen("allowDestroy", false, true);
    if (now.drift !== "correct" && next.drift === "correct") widen("drift", now.drift, next.drift);
    if (!now.autoApply && next.autoApply) widen("autoApply", false, true);
    if (now.requireReviewedPlan === true && next.requireReviewedPlan !== true)
      widen("requireReviewedPlan", true, false);
  }
  return widened;
}
