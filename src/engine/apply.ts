import { runInDependencyOrder } from "../domain/graph.ts";
import { RunnerError } from "../errors.ts";
import type { ResourceChange } from "../terraform/plan-json.ts";
import { decideAffected } from "./affected.ts";
import { withSynthesizedCommit } from "./commit.ts";
import { type EngineContext, stackLockKey } from "./context.ts";
import { withStackLock } from "./lock.ts";
import { appliedBaselines, skipped, skippedForFailure } from "./plan.ts";
import type { CommandReport, StackReport } from "./report.ts";
import { recordedRun } from "./stack-run.ts";
import {
  acceptUnchanged,
  applyPlanned,
  destroyGuard,
  discardPlan,
  planRecord,
  planStack,
} from "./stack-steps.ts";
import type { AppStack, SynthesizedApp } from "./synthesized-app.ts";

export interface ApplyOptions {
  readonly ref?: string;
  readonly stacks: readonly string[];
  readonly allowDestroy: boolean;
  /** The service sets this: a stack whose policy turns autoApply off waits as blocked for approval. */
  readonly honourAutoApply?: boolean;
  /** A person approved this blocked plan: it is applied only if the new plan makes the same changes. */
  readonly approval?: { readonly runId: string; readonly resources: readonly ResourceChange[] };
}

/**
 * Applies the affected stacks of a commit in dependency order: for each, init,
 * plan to a saved file, check the destroy guard, apply exactly that file.
 */
export async function applyCommand(context: EngineContext, options: ApplyOptions): Promise<CommandReport> {
  return withSynthesizedCommit(context, options.ref, options.stacks, async (app) => {
    const { commit } = app;
    const decisions = decideAffected(app.stacks, await appliedBaselines(context), options.stacks);
    const affected = app.stacks.filter((stack) => decisions.get(stack.name)?.affected);
    const results = await runInDependencyOrder(
      affected,
      context.parallelism,
      (stack) => applyOne(context, app, stack, options),
      (report) => report.status === "applied" || report.status === "no-changes",
      (stack, dependency, dependencyReport) =>
        dependencyReport.status === "blocked"
          ? skipped(stack.name, commit, `dependency ${dependency} is blocked`)
          : skippedForFailure(stack, commit, dependency),
    );
    return {
      commit,
      stacks: app.stacks.map(
        (stack) =>
          results.get(stack.name) ?? skipped(stack.name, commit, decisions.get(stack.name)?.reason ?? ""),
      ),
    };
  });
}

async function applyOne(
  context: EngineContext,
  app: SynthesizedApp,
  stack: AppStack,
  options: ApplyOptions,
): Promise<StackReport> {
  const policy = app.policy.forStack(stack.name);
  if (policy.suspended) return skipped(stack.name, app.commit, "suspended by policy");
  const key = { repoId: context.repoId, appDir: context.appDir, stack: stack.name };

  return recordedRun(context, "apply", stack.name, app.commit, (scope) =>
    withStackLock(context, stackLockKey(context, stack.name), scope.id, async () => {
      const record = await context.store.getStack(key);
      const last = record?.lastAppliedCommit;
      if (last && last !== app.commit && (await context.repository.isAncestor(app.commit, last))) {
        throw new RunnerError(
          "COMMIT_OLDER_THAN_APPLIED",
          `commit ${app.commit} is an ancestor of ${last}, which is already applied to this stack`,
        );
      }
      try {
        const planned = await planStack(context, scope, stack.name, stack.dir, {
          purpose: "apply",
          requireState: last !== undefined,
        });
        const recorded = planRecord(planned);
        const blocked = options.approval
          ? approvalMismatch(planned.resources, options.approval)
          : (destroyGuard(planned, policy, options.allowDestroy) ??
            (options.honourAutoApply && !policy.autoApply && planned.hasChanges
              ? "autoApply is off for this stack: approve the run to apply this plan"
              : undefined));
        if (blocked) {
          await discardPlan(planned);
          await context.store.recordApplyProblem(key, "blocked");
          return {
            report: {
              status: "blocked",
              reason: blocked,
              summary: planned.summary,
              resources: planned.resources,
            },
            outcome: { status: "blocked", result: "blocked", ...recorded },
          };
        }
        if (planned.hasChanges) await applyPlanned(context, scope, stack.name, planned, app.commit);
        else await acceptUnchanged(context, scope, stack.name, planned, app.commit);
        await context.store.recordApplied(key, app.commit, stack.hash);
        const status = planned.hasChanges ? "applied" : "no-changes";
        return {
          report: { status, summary: planned.summary, resources: planned.resources },
          outcome: { status: "succeeded", result: status, ...recorded },
        };
      } catch (error) {
        await context.store.recordApplyProblem(key, "failed");
        throw error;
      }
    }),
  );
}

/** Why a new plan may not stand in for the approved one: other resources or other actions. */
function approvalMismatch(
  planned: readonly ResourceChange[],
  approval: NonNullable<ApplyOptions["approval"]>,
): string | undefined {
  const key = (resources: readonly ResourceChange[]) =>
    JSON.stringify(resources.map((resource) => [resource.address, resource.actions]).sort());
  return key(planned) === key(approval.resources)
    ? undefined
    : `the plan differs from the one approved in run ${approval.runId}; review the new plan and approve it`;
}
