import { violationsReason, wouldBlock } from "../domain/decisions.ts";
import { ancestorsOf, runInDependencyOrder } from "../domain/graph.ts";
import { isRunnerError } from "../errors.ts";
import { type Affected, decideAffected, type StackBaseline } from "./affected.ts";
import { commitSnapshot, withSynthesizedCommit } from "./commit.ts";
import { appKey, type EngineContext } from "./context.ts";
import { checked, checkPolicy } from "./policy-checks.ts";
import { promotionOf } from "./promotion.ts";
import { type CommandReport, EMPTY_SUMMARY, type StackReport } from "./report.ts";
import { recordedRun } from "./stack-run.ts";
import { discardPlan, planRecord, planStack } from "./stack-steps.ts";
import type { AppStack, SynthesizedApp } from "./synthesized-app.ts";

export interface PlanOptions {
  readonly ref?: string;
  readonly base?: string;
  readonly stacks: readonly string[];
}

/** Plans the affected stacks of a commit, in dependency order, and applies nothing. */
export async function planCommand(context: EngineContext, options: PlanOptions): Promise<CommandReport> {
  return withSynthesizedCommit(context, options.ref, options.stacks, async (app) => {
    const baselines = await planBaselines(context, app, options.base);
    const decisions = decideAffected(app.stacks, baselines, options.stacks);
    return { commit: app.commit, stacks: await planAffected(context, app, decisions) };
  });
}

async function planAffected(
  context: EngineContext,
  app: SynthesizedApp,
  decisions: ReadonlyMap<string, Affected>,
): Promise<StackReport[]> {
  const affected = app.stacks.filter((stack) => decisions.get(stack.name)?.affected);
  const affectedNames = new Set(affected.map((stack) => stack.name));
  // A producer affected here, or never applied, has no outputs yet that match this change.
  const applied = new Set(
    (await context.store.listStacks(appKey(context)))
      .filter((record) => record.lastAppliedCommit)
      .map((record) => record.stack),
  );
  const unsettled = (name: string) => affectedNames.has(name) || !applied.has(name);
  // On merge, a later environment's stack applies after its affected counterpart of the one before.
  const inChange = new Map(affected.map((stack) => [stack.name, stack]));
  const results = await runInDependencyOrder(
    affected,
    context.parallelism,
    (stack) => {
      const producers = [...ancestorsOf(app.stacks, stack.name)].filter(unsettled);
      return planOne(context, app, stack, producers, inChange);
    },
    (report) => report.status !== "failed",
    (stack, dependency) => skippedForFailure(stack, app.commit, dependency),
  );
  return app.stacks.map(
    (stack) =>
      results.get(stack.name) ?? skipped(stack.name, app.commit, decisions.get(stack.name)?.reason ?? ""),
  );
}

async function planOne(
  context: EngineContext,
  app: SynthesizedApp,
  stack: AppStack,
  producers: readonly string[],
  inChange: ReadonlyMap<string, AppStack>,
): Promise<StackReport> {
  const policy = app.policy.forStack(stack.name);
  const provisional = producers.length > 0;
  const report = await recordedRun(context, "plan", stack.name, app.commit, async (scope) => {
    const planned = await planStack(context, scope, stack.name, stack.dir, {
      purpose: context.review ? "review" : "plan",
      requireState: false,
    });
    await discardPlan(planned);
    const blocks = wouldBlock(planned.destroys, policy);
    const recorded = planRecord(planned, context.redact);
    const violations = await checkPolicy(context, scope, app, stack.name, recorded.plan);
    const promotion = await promotionOf(context, stack, inChange);
    const blockedBy = [
      ...(violations.length > 0 ? [violationsReason(violations)] : []),
      ...(promotion.kind === "blocked" && planned.hasChanges ? [promotion.reason] : []),
    ];
    return {
      report: {
        status: planned.hasChanges ? "changes" : "no-changes",
        summary: planned.summary,
        resources: planned.resources,
        planText: planned.text,
        ...(blocks ? { wouldBlock: blocks } : {}),
        ...(provisional ? { provisional } : {}),
        ...(violations.length > 0 ? { violations } : {}),
        ...(blockedBy.length > 0 ? { reason: blockedBy.join("; ") } : {}),
        ...(stack.environment
          ? { environment: { name: stack.environment, promotion, autoApply: policy.autoApply } }
          : {}),
      },
      outcome: {
        status: "succeeded",
        result: planned.hasChanges ? "changes" : "no-changes",
        ...recorded,
        ...checked(violations),
      },
    };
  });
  // A dependent reads its producers' applied outputs: until they are applied,
  // its plan may fail, and that does not fail the check.
  if (report.status === "failed" && provisional) {
    return {
      ...report,
      status: "pending",
      provisional: true,
      reason: `waits for the producer's apply (${producers.join(", ")})`,
    };
  }
  return report;
}

/**
 * The baseline of each stack: with --base, that commit; for a commit on the
 * default branch, the commit last applied to the stack; otherwise the merge
 * base with the default branch.
 */
async function planBaselines(
  context: EngineContext,
  app: SynthesizedApp,
  base: string | undefined,
): Promise<Map<string, StackBaseline>> {
  const { repository } = context;
  if (base !== undefined) return synthesizedBaselines(context, await repository.resolve(base));
  const head = await repository.resolve(await repository.defaultBranch());
  if (await repository.isAncestor(app.commit, head)) return appliedBaselines(context);
  const mergeBase = await repository.mergeBase(app.commit, head);
  return mergeBase ? synthesizedBaselines(context, mergeBase) : new Map();
}

export async function appliedBaselines(context: EngineContext): Promise<Map<string, StackBaseline>> {
  const baselines = new Map<string, StackBaseline>();
  for (const record of await context.store.listStacks(appKey(context))) {
    if (record.lastAppliedCommit && record.lastAppliedHash) {
      const problem = record.lastApplyStatus === "succeeded" ? undefined : record.lastApplyStatus;
      baselines.set(record.stack, {
        commit: record.lastAppliedCommit,
        hash: record.lastAppliedHash,
        ...(problem ? { lastApplyProblem: problem } : {}),
      });
    }
  }
  return baselines;
}

async function synthesizedBaselines(
  context: EngineContext,
  commit: string,
): Promise<Map<string, StackBaseline>> {
  try {
    const snapshot = await commitSnapshot(context, commit);
    return new Map(snapshot.stacks.map((stack) => [stack.name, { commit, hash: stack.hash }]));
  } catch (error) {
    // A baseline that does not synthesize compares with nothing: every stack is affected.
    if (!isRunnerError(error)) throw error;
    context.logger.warn({ commit, code: error.code }, "baseline does not synthesize");
    return new Map();
  }
}

export function skipped(name: string, commit: string, reason: string): StackReport {
  return { name, commit, status: "skipped", reason, summary: EMPTY_SUMMARY, resources: [], runId: null };
}

export function skippedForFailure(stack: { name: string }, commit: string, dependency: string): StackReport {
  return { ...skipped(stack.name, commit, `dependency ${dependency} failed`), skippedForFailure: true };
}
