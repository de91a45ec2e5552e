import { createHash } from "node:crypto";
import { cp, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { dependentsOf } from "../domain/graph.ts";
import { isRunnerError } from "../errors.ts";
import { parsePolicy, type StackPolicy } from "../policy/policy.ts";
import type { StackRecord } from "../store/store.ts";
import { type DriftedResource, driftedResources, isDrifted } from "../terraform/drift.ts";
import { checkStackNames, resolveCommit } from "./commit.ts";
import { appliedDir, type EngineContext, stackLockKey, workRoot } from "./context.ts";
import { withStackLock } from "./lock.ts";
import { skipped } from "./plan.ts";
import type { CommandReport, ResourceReport, StackReport } from "./report.ts";
import { type RunResult, recordedRun } from "./stack-run.ts";
import {
  applyPlanned,
  destroyGuard,
  discardPlan,
  type PlannedStack,
  planRecord,
  planStack,
} from "./stack-steps.ts";
import { type SynthesizedApp, synthesizeCommit } from "./synthesized-app.ts";

export interface DriftOptions {
  readonly stacks: readonly string[];
  /** all: every drifted stack whose mode is not off (the CLI's --correct); policy: those whose mode is correct. */
  readonly correct: "all" | "policy" | "none";
}

const DEFAULT_POLICY = parsePolicy("gitops-runner.policy.json", "{}");

/**
 * Re-plans each applied stack from the folder kept at its last apply (never a
 * fresh synth), with refresh, and judges drift from the plan JSON. With
 * `correct`, applies the correcting plan where the policy allows it.
 */
export async function driftCommand(context: EngineContext, options: DriftOptions): Promise<CommandReport> {
  const head = await resolveCommit(context, undefined);
  const app = await synthesizeHead(context, head);
  try {
    const records = (await context.store.listStacks(context.repoId, context.appDir)).filter(
      (record) => record.lastAppliedCommit !== undefined,
    );
    const appNames = app?.stacks.map((stack) => stack.name) ?? [];
    checkStackNames(new Set([...appNames, ...records.map((record) => record.stack)]), options.stacks);
    const selected = new Set(options.stacks);
    const wanted = (name: string) => selected.size === 0 || selected.has(name);
    const pending = pendingStacks(app, records);

    const reports: StackReport[] = [];
    for (const record of records.filter((candidate) => wanted(candidate.stack))) {
      reports.push(await driftOne(context, app, record, pending.has(record.stack), options.correct));
    }
    for (const name of appNames.filter(
      (candidate) => wanted(candidate) && !records.some((r) => r.stack === candidate),
    )) {
      reports.push(skipped(name, head, "never applied"));
    }
    return { commit: head, stacks: reports };
  } finally {
    await app?.dispose();
  }
}

/** The default branch head, synthesized to tell which stacks are pending; undefined when it fails. */
async function synthesizeHead(context: EngineContext, head: string): Promise<SynthesizedApp | undefined> {
  try {
    return await synthesizeCommit(context, head);
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
function pendingStacks(app: SynthesizedApp | undefined, records: readonly StackRecord[]): Set<string> {
  if (!app) return new Set(records.map((record) => record.stack));
  const applied = new Map(records.map((record) => [record.stack, record.lastAppliedHash]));
  const direct = new Set(
    app.stacks.filter((stack) => applied.get(stack.name) !== stack.hash).map((s) => s.name),
  );
  return new Set([...direct, ...dependentsOf(app.stacks, direct)]);
}

async function driftOne(
  context: EngineContext,
  app: SynthesizedApp | undefined,
  record: StackRecord,
  pending: boolean,
  correct: DriftOptions["correct"],
): Promise<StackReport> {
  const name = record.stack;
  const commit = record.lastAppliedCommit as string;
  if (app && !app.stacks.some((stack) => stack.name === name)) {
    return skipped(name, commit, "orphaned: gone from the app; its state and resources are kept");
  }
  const policy: StackPolicy = (app?.policy ?? DEFAULT_POLICY).forStack(name);
  if (policy.suspended) return skipped(name, commit, "suspended by policy");
  if (policy.drift === "off") return skipped(name, commit, "drift checks are off by policy");
  const key = { repoId: context.repoId, appDir: context.appDir, stack: name };
  const corrects = !pending && (correct === "all" || (correct === "policy" && policy.drift === "correct"));

  return recordedRun(context, "drift", name, commit, (scope) => {
    const check = async (): Promise<RunResult> => {
      const dir = path.join(workRoot(context), `drift-${scope.id}`, name);
      await mkdir(dir, { recursive: true });
      await cp(appliedDir(context, name), dir, { recursive: true });
      try {
        // A correction applies this very plan, so it is made with the apply credentials.
        const purpose = corrects ? "apply" : "plan";
        const planned = await planStack(context, scope, name, dir, { purpose, requireState: true });
        const recorded = planRecord(planned);
        if (!isDrifted(planned.plan)) {
          await discardPlan(planned);
          await context.store.recordDrift(key, "in-sync", undefined);
          return {
            report: {
              status: "no-changes",
              summary: planned.summary,
              resources: [],
              ...(pending ? { pending } : {}),
            },
            outcome: { status: "succeeded", result: "no-changes", ...recorded },
          };
        }
        const resources = driftReport(planned, driftedResources(planned.plan));
        if (!corrects) {
          await discardPlan(planned);
          const print = fingerprint(resources);
          await context.store.recordDrift(key, "drifted", print);
          // Told once: when first found, and again only when what drifted changes.
          const driftEvent =
            record.driftStatus !== "drifted"
              ? "found"
              : record.driftFingerprint !== print
                ? "changed"
                : undefined;
          return {
            report: {
              ...(driftEvent ? { driftEvent } : {}),
              status: "drifted",
              summary: planned.summary,
              resources,
              ...(pending ? { pending } : {}),
            },
            outcome: { status: "succeeded", result: "drifted", ...recorded },
          };
        }
        const blocked = destroyGuard(planned, policy, false);
        if (blocked) {
          await discardPlan(planned);
          await context.store.recordDrift(key, "drifted", fingerprint(resources));
          return {
            report: { status: "blocked", reason: blocked, summary: planned.summary, resources },
            outcome: { status: "blocked", result: "blocked", ...recorded },
          };
        }
        await applyPlanned(context, scope, name, planned, commit);
        await context.store.recordDrift(key, "corrected", undefined);
        return {
          report: { status: "corrected", summary: planned.summary, resources, driftEvent: "corrected" },
          outcome: { status: "succeeded", result: "corrected", ...recorded },
        };
      } finally {
        await rm(path.dirname(dir), { recursive: true, force: true });
      }
    };
    // Corrections take the stack's lock like applies do; reports do not need it.
    return corrects ? withStackLock(context, stackLockKey(context, name), scope.id, check) : check();
  });
}

/** Planned changes, each with the attributes that drifted out of band. */
function driftReport(planned: PlannedStack, drifted: readonly DriftedResource[]): ResourceReport[] {
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
