import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import { type CorrectMode, correctsDrift, decideDrift } from "../domain/decisions.ts";
import { dependentsOf, inParallel } from "../domain/graph.ts";
import { policyInForce, suspensionReason } from "../domain/stack-policy.ts";
import { isRunnerError, RunnerError } from "../errors.ts";
import { parsePolicy, type StackPolicy } from "../policy/policy.ts";
import type { RecordedResource, Snapshot, StackOverride, StackRecord } from "../store/records.ts";
import { type DriftedResource, driftedResources, isDrifted } from "../terraform/drift.ts";
import { recordAudit } from "./audit.ts";
import { checkStackNames, commitSnapshot, resolveCommit } from "./commit.ts";
import { appKey, type EngineContext, stackKey, stackLockKey, workRoot } from "./context.ts";
import { withStackLock } from "./lock.ts";
import { skipped } from "./plan.ts";
import type { CommandReport, ResourceReport, StackReport } from "./report.ts";
import { type RunResult, type RunScope, recordedRun } from "./stack-run.ts";
import { applyPlanned, discardPlan, type PlannedStack, planRecord, planStack } from "./stack-steps.ts";

export interface DriftOptions {
  readonly stacks: readonly string[];
  /** all: every drifted stack whose mode is not off (the CLI's --correct); policy: those whose mode is correct. */
  readonly correct: CorrectMode;
  /** The default branch head, when the caller knows it; else the branch is fetched. */
  readonly head?: string;
}

const DEFAULT_POLICY = parsePolicy("gitops-runner.policy.json", "{}");

/**
 * Re-plans each applied stack from the folder kept at its last apply (never a
 * fresh synth), with refresh, several at a time, and judges drift from the
 * plan JSON. With `correct`, applies the correcting plan where the policy
 * allows it. The default branch head is read from its stored snapshot (only a
 * commit never synthesized is synthesized) to tell pending and orphaned stacks.
 */
export async function driftCommand(context: EngineContext, options: DriftOptions): Promise<CommandReport> {
  const head = options.head ?? (await resolveCommit(context, undefined));
  const snapshot = await headSnapshot(context, head);
  const records = (await context.store.listStacks(appKey(context))).filter(
    (record) => record.lastAppliedCommit !== undefined,
  );
  const appNames = snapshot?.stacks.map((stack) => stack.name) ?? [];
  checkStackNames(new Set([...appNames, ...records.map((record) => record.stack)]), options.stacks);
  const selected = new Set(options.stacks);
  const wanted = (name: string) => selected.size === 0 || selected.has(name);
  const pending = pendingStacks(snapshot, records);
  const overrides = await context.store.stackOverrides(appKey(context));

  const checked = await inParallel(
    records.filter((record) => wanted(record.stack)),
    context.parallelism,
    (record) =>
      driftOne(context, snapshot, record, {
        pending: pending.has(record.stack),
        mode: options.correct,
        override: overrides.get(record.stack),
      }),
  );
  const neverApplied = appNames
    .filter((name) => wanted(name) && !records.some((record) => record.stack === name))
    .map((name) => skipped(name, head, "never applied"));
  return { commit: head, stacks: [...checked, ...neverApplied] };
}

/** The default branch head's snapshot; undefined when it does not synthesize. */
async function headSnapshot(context: EngineContext, head: string): Promise<Snapshot | undefined> {
  try {
    return await commitSnapshot(context, head);
  } catch (error) {
    if (!isRunnerError(error)) throw error;
    context.logger.warn({ commit: head, code: error.code }, "default branch head does not synthesize");
    return undefined;
  }
}

/**
 * Pending: the head's synthesized folder differs from the one last applied,
 * or a stack it depends on is pending. Without a synthesized head, every stack
 * counts as pending, so that nothing is corrected on a guess.
 */
function pendingStacks(snapshot: Snapshot | undefined, records: readonly StackRecord[]): Set<string> {
  if (!snapshot) return new Set(records.map((record) => record.stack));
  const applied = new Map(records.map((record) => [record.stack, record.lastAppliedHash]));
  const direct = new Set(
    snapshot.stacks.filter((stack) => applied.get(stack.name) !== stack.hash).map((stack) => stack.name),
  );
  return new Set([...direct, ...dependentsOf(snapshot.stacks, direct)]);
}

async function driftOne(
  context: EngineContext,
  snapshot: Snapshot | undefined,
  record: StackRecord,
  facts: {
    readonly pending: boolean;
    readonly mode: CorrectMode;
    readonly override?: StackOverride | undefined;
  },
): Promise<StackReport> {
  const { pending, mode } = facts;
  const name = record.stack;
  const commit = record.lastAppliedCommit as string;
  const inApp = snapshot?.stacks.find((stack) => stack.name === name);
  if (snapshot && !inApp) {
    return skipped(name, commit, "orphaned: gone from the app; its state and resources are kept");
  }
  const inForce = policyInForce(inApp?.policy ?? DEFAULT_POLICY.forStack(name), facts.override);
  const { policy } = inForce;
  if (policy.suspended) return skipped(name, commit, suspensionReason(inForce));
  if (policy.drift === "off") return skipped(name, commit, "drift checks are off by policy");
  const corrects = correctsDrift(policy, pending, mode);

  return recordedRun(context, "drift", name, commit, async (scope) => {
    try {
      return await checkStack(context, scope, record, policy, pending, corrects);
    } catch (error) {
      await context.store.recordDrift(stackKey(context, name), { status: "failed" });
      throw error;
    }
  });
}

async function checkStack(
  context: EngineContext,
  scope: RunScope,
  record: StackRecord,
  policy: StackPolicy,
  pending: boolean,
  corrects: boolean,
): Promise<RunResult> {
  const name = record.stack;
  const commit = record.lastAppliedCommit as string;
  const key = stackKey(context, name);
  const dir = path.join(workRoot(context.dataDir), `drift-${scope.id}`, name);
  try {
    if (!(await context.applied.restore(name, dir))) {
      throw new RunnerError(
        "STATE_MISSING",
        `the folder applied at ${commit} was not kept; apply the stack again to check it for drift`,
      );
    }
    // A correction applies this very plan, so it is made with the apply credentials.
    const planned = await planStack(context, scope, name, dir, {
      purpose: corrects ? "apply" : "plan",
      requireState: true,
    });
    const recorded = planRecord(planned, context.redact);
    const drifted = planned.plan !== undefined && isDrifted(planned.plan);
    const resources = drifted && planned.plan ? driftReport(planned, driftedResources(planned.plan)) : [];
    const decision = decideDrift(
      { drifted, fingerprint: fingerprint(resources), destroys: planned.destroys },
      corrects,
      policy,
      {
        ...(record.driftStatus ? { status: record.driftStatus } : {}),
        ...(record.driftFingerprint ? { fingerprint: record.driftFingerprint } : {}),
      },
    );
    const shown = { summary: planned.summary, resources, ...(pending ? { pending } : {}) };
    switch (decision.kind) {
      case "in-sync":
        await discardPlan(planned);
        await context.store.recordDrift(key, { status: "in-sync" });
        return {
          report: {
            status: "no-changes",
            summary: planned.summary,
            resources: [],
            ...(pending ? { pending } : {}),
          },
          outcome: { status: "succeeded", result: "no-changes", ...recorded },
        };
      case "report":
        await discardPlan(planned);
        await context.store.recordDrift(key, { status: "drifted", fingerprint: decision.fingerprint });
        return {
          report: {
            status: "drifted",
            ...shown,
            ...(decision.notify ? { driftEvent: decision.notify } : {}),
          },
          outcome: { status: "succeeded", result: "drifted", ...recorded, resources },
        };
      case "block":
        await discardPlan(planned);
        await context.store.recordDrift(key, { status: "drifted", fingerprint: decision.fingerprint });
        return {
          report: { status: "blocked", reason: decision.reason, ...shown },
          outcome: { status: "blocked", result: "blocked", ...recorded, resources },
        };
      case "correct":
        // A correction takes the stack's lock like an apply. The plan was made without it:
        // if anything was applied meanwhile, the engine refuses the saved plan as stale.
        {
          const audited = {
            stack: name,
            kind: "drift" as const,
            commit,
            summary: planned.summary,
            resources: planned.resources,
          };
          await withStackLock(context, stackLockKey(context, name), scope.id, () =>
            applyPlanned(context, scope, name, planned, commit).catch(async (error: unknown) => {
              await recordAudit(context, scope, { ...audited, result: "failed", error });
              throw error;
            }),
          );
          await recordAudit(context, scope, { ...audited, result: "corrected" });
        }
        await context.store.recordDrift(key, { status: "corrected" });
        return {
          report: { status: "corrected", summary: planned.summary, resources, driftEvent: "corrected" },
          outcome: { status: "succeeded", result: "corrected", ...recorded, resources },
        };
    }
  } finally {
    await rm(path.dirname(dir), { recursive: true, force: true });
  }
}

/** Planned changes, each with the attributes that drifted out of band. */
function driftReport(planned: PlannedStack, drifted: readonly DriftedResource[]): RecordedResource[] {
  const attributes = new Map(drifted.map((resource) => [resource.address, resource.attributes]));
  return planned.resources.map((resource) => {
    const drift = attributes.get(resource.address);
    return drift ? { ...resource, drift } : resource;
  });
}

/** Identifies a drift by what drifted, so that the same drift is reported once. */
function fingerprint(resources: readonly ResourceReport[]): string {
  const canonical = resources.map((resource) => [resource.address, resource.actions, resource.drift ?? []]);
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex").slice(0, 16);
}
