import {
  type StackAtCommit,
  staleStacks,
  type WidenedPermission,
  widenedPermissions,
} from "../domain/review.ts";
import { commitSnapshot } from "../engine/commit.ts";
import { appKey, type EngineContext } from "../engine/context.ts";
import type { CommandReport } from "../engine/report.ts";
import { isRunnerError } from "../errors.ts";
import { DEFAULT_POLICY } from "../policy/policy.ts";
import type { Snapshot } from "../store/records.ts";

export interface ReviewFacts {
  /** Affected stacks the followed branch changed since the pull request's branch left it. */
  readonly stale: readonly string[];
  /** Permissions the pull request's policy grants over the policy in force. */
  readonly widened: readonly WidenedPermission[];
}

const NONE: ReviewFacts = { stale: [], widened: [] };

/**
 * What a reviewer must know besides the plan, from stored snapshots: the
 * stacks for which the branch is behind the followed branch, and the
 * permissions its policy change widens. A commit that does not synthesize
 * tells nothing.
 */
export async function reviewFacts(
  context: EngineContext,
  report: CommandReport,
  branch: string,
): Promise<ReviewFacts> {
  const head = await context.store.getSnapshot(appKey(context), report.commit);
  if (!head) return NONE;
  try {
    const branchHead = await context.repository.resolve(branch);
    const inForce = await commitSnapshot(context, branchHead);
    const mergeBase = await context.repository.mergeBase(report.commit, branchHead);
    const affected = report.stacks.filter((stack) => stack.status !== "skipped").map((stack) => stack.name);
    const stale =
      mergeBase === undefined || mergeBase === branchHead
        ? []
        : staleStacks(affected, nodes(await commitSnapshot(context, mergeBase)), nodes(inForce));
    const widened = widenedPermissions(policies(inForce), policies(head), DEFAULT_POLICY);
    return { stale, widened };
  } catch (error) {
    if (!isRunnerError(error)) throw error;
    context.logger.warn(
      { code: error.code },
      "the followed branch could not be compared with the pull request",
    );
    return NONE;
  }
}

function nodes(snapshot: Snapshot): StackAtCommit[] {
  return snapshot.stacks.map(({ name, hash, dependencies }) => ({ name, hash, dependencies }));
}

function policies(snapshot: Snapshot) {
  return new Map(snapshot.stacks.map((stack) => [stack.name, stack.policy]));
}
