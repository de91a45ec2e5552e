import { decideApply } from "../domain/decisions.ts";
import { runInDependencyOrder } from "../domain/graph.ts";
import { compareWithReviewed, type PlannedChange } from "../domain/review.ts";
import { type PolicyInForce, policyInForce, suspensionReason } from "../domain/stack-policy.ts";
import { isRunnerError, RunnerError } from "../errors.ts";
import type { ResourceChange } from "../terraform/plan-json.ts";
import { decideAffected } from "./affected.ts";
import { recordAudit } from "./audit.ts";
import { withSynthesizedCommit } from "./commit.ts";
import { appKey, type EngineContext, stackKey, stackLockKey } from "./context.ts";
import { withStackLock } from "./lock.ts";
import { appliedBaselines, skipped, skippedForFailure } from "./plan.ts";
import { checked, checkPolicy } from "./policy-checks.ts";
import { promotionDependencies, promotionOf } from "./promotion.ts";
import type { CommandReport, StackReport } from "./report.ts";
import { recordedRun } from "./stack-run.ts";
import { acceptUnchanged, applyPlanned, discardPlan, planRecord, planStack } from "./stack-steps.ts";
import type { AppStack, SynthesizedApp } from "./synthesized-app.ts";

export interface ApplyOptions {
  readonly ref?: string;
  readonly stacks: readonly string[];
  readonly allowDestroy: boolean;
  /** The service sets this: a stack whose policy turns autoApply off waits as blocked for approval. */
  readonly honourAutoApply?: boolean;
  /** A person approved this blocked plan: it is applied only if the new plan makes the same changes. */
  readonly approval?: { readonly runId: string; readonly resources: readonly ResourceChange[] };
  /**
   * The plan reviewed on the merged pull request, per stack: each stack's plan
   * is compared with it, and the comparison reported (and, with the policy's
   * requireReviewedPlan, enforced). A stack absent here was not planned there.
   */
  readonly reviewed?: { readonly pr: number; readonly plans: ReadonlyMap<string, readonly PlannedChange[]> };
}

/**
 * Applies the affected stacks of a commit in dependency order: for each, init,
 * plan to a saved file, decide (apply, accept, block), apply exactly that file.
 */
export async function applyCommand(context: EngineContext, options: ApplyOptions): Promise<CommandReport> {
  return withSynthesizedCommit(context, options.ref, options.stacks, async (app) => {
    const { commit } = app;
    const decisions = decideAffected(app.stacks, await appliedBaselines(context), options.stacks);
    // A later environment's stack applies after its counterpart in the one before.
    const waits = promotionDependencies(
      context,
      app.stacks.filter((stack) => decisions.get(stack.name)?.affected),
    );
    const affected = app.stacks
      .filter((stack) => decisions.get(stack.name)?.affected)
      .map((stack) => {
        const counterpart = waits.get(stack.name);
        return counterpart ? { ...stack, dependencies: [...stack.dependencies, counterpart] } : stack;
      });
    const overrides = await context.store.stackOverrides(appKey(context));
    const results = await runInDependencyOrder(
      affected,
      context.parallelism,
      (stack) =>
        applyOne(
          context,
          app,
          stack,
          policyInForce(app.policy.forStack(stack.name), overrides.get(stack.name)),
          options,
        ),
      (report) => report.status === "applied" || report.status === "no-changes",
      (stack, dependency, dependencyReport) => {
        if (waits.get(stack.name) === dependency) {
          return skipped(
            stack.name,
            commit,
            `promotion: waits for ${dependency}, which is ${dependencyReport.status}`,
          );
        }
        return dependencyReport.status === "blocked"
          ? skipped(stack.name, commit, `dependency ${dependency} is blocked`)
          : skippedForFailure(stack, commit, dependency);
      },
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
  inForce: PolicyInForce,
  options: ApplyOptions,
): Promise<StackReport> {
  const { policy } = inForce;
  if (policy.suspended) return skipped(stack.name, app.commit, suspensionReason(inForce));
  const key = stackKey(context, stack.name);

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
        const review = options.reviewed && {
          pr: options.reviewed.pr,
          comparison: compareWithReviewed(options.reviewed.plans.get(stack.name), planned.resources),
        };
        const recorded = { ...planRecord(planned, context.redact), ...(review ? { review } : {}) };
        const violations = await checkPolicy(context, scope, app, stack.name, recorded.plan);
        // A counterpart applied earlier in this command is in the audit trail by now.
        const promotion = await promotionOf(context, stack, new Map());
        const decision = decideApply(planned, {
          policy,
          violations,
          promotion,
          allowDestroy: options.allowDestroy,
          honourAutoApply: options.honourAutoApply === true,
          ...(options.approval ? { approval: options.approval } : {}),
          ...(review ? { review } : {}),
        });
        const shown = {
          summary: planned.summary,
          resources: planned.resources,
          planText: planned.text,
          ...(violations.length > 0 ? { violations } : {}),
          ...(review ? { review: review.comparison } : {}),
          ...(stack.environment
            ? { environment: { name: stack.environment, promotion, autoApply: policy.autoApply } }
            : {}),
        };
        const audited = {
          stack: stack.name,
          kind: "apply" as const,
          commit: app.commit,
          summary: planned.summary,
          resources: planned.resources,
          ...(stack.environment ? { environment: stack.environment } : {}),
          ...(stack.promotionHash ? { promotionHash: stack.promotionHash } : {}),
        };
        switch (decision.kind) {
          case "block":
            await discardPlan(planned);
            await context.store.recordApplyProblem(key, "blocked");
            return {
              report: { status: "blocked", reason: decision.reason, ...shown },
              outcome: { status: "blocked", result: "blocked", ...recorded, ...checked(violations) },
            };
          case "apply":
            try {
              await applyPlanned(context, scope, stack.name, planned, app.commit);
            } catch (error) {
              await recordAudit(context, scope, { ...audited, result: "failed", error });
              throw error;
            }
            break;
          case "accept-unchanged":
            await acceptUnchanged(context, scope, stack.name, planned, app.commit);
            break;
        }
        await context.store.recordApplied(key, app.commit, stack.hash);
        const status = decision.kind === "apply" ? "applied" : "no-changes";
        await recordAudit(context, scope, { ...audited, result: status });
        return {
          report: { status, ...shown },
          outcome: { status: "succeeded", result: status, ...recorded, ...checked(violations) },
        };
      } catch (error) {
        // A cancel before the apply step changed nothing: the stack stays as it was (pending).
        const changedNothing =
          isRunnerError(error, "EXEC_CANCELLED") && !scope.steps().some((step) => step.name === "apply");
        if (!changedNothing) await context.store.recordApplyProblem(key, "failed");
        throw error;
      }
    }),
  );
}
