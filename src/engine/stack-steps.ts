import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { RunnerError } from "../errors.ts";
import { exists } from "../fs.ts";
import { LOCK_FILE } from "../state/applied-dir.ts";
import { type CallOptions, type EngineVersion, providerVersions } from "../terraform/cli.ts";
import {
  destroys,
  type PlanJson,
  type PlanSummary,
  type ResourceChange,
  resourceChanges,
  summarize,
} from "../terraform/plan-json.ts";
import { redactPlan } from "../terraform/redact.ts";
import { type EngineContext, type EnvPurpose, stackLockKey } from "./context.ts";
import { waitUntilUnlocked } from "./lock.ts";
import { EMPTY_SUMMARY } from "./report.ts";
import type { RunScope } from "./stack-run.ts";

export interface PlannedStack {
  readonly dir: string;
  readonly planFile: string;
  /** The plan JSON; undefined when the plan has no changes (show -json is not run for those). */
  readonly plan?: PlanJson;
  readonly hasChanges: boolean;
  readonly summary: PlanSummary;
  readonly resources: readonly ResourceChange[];
  readonly destroys: readonly ResourceChange[];
  readonly version: EngineVersion;
  /** Terraform's own text of the plan, for people to read. */
  readonly text: string;
  /** What Terraform needs to reach the stack's state (e.g. the database's address). */
  readonly stateEnv: Readonly<Record<string, string>>;
}

export interface PlanStackOptions {
  readonly purpose: EnvPurpose;
  /** Refuse to plan from an empty state when the records say the stack was applied. */
  readonly requireState: boolean;
}

/**
 * init, plan to a saved file (only the runner can read it), and, when the plan
 * has changes, show -json, in the stack's folder. A plan that is not part of
 * an apply first waits (bounded) for an apply of the stack to end.
 */
export async function planStack(
  context: EngineContext,
  scope: RunScope,
  stack: string,
  dir: string,
  options: PlanStackOptions,
): Promise<PlannedStack> {
  if (options.purpose !== "apply") {
    await scope.step("wait for apply", () => waitUntilUnlocked(context, stackLockKey(context, stack)));
  }
  const state = await scope.step("prepare", async () => {
    const prepared = await context.state.prepare(dir, stack);
    if (prepared && options.requireState && !(await context.state.hasState(stack))) {
      throw new RunnerError(
        "STATE_MISSING",
        `the records say this stack was applied, but its state (${prepared.where}) is empty; refusing to plan from an empty state`,
      );
    }
    await restoreLockFile(context, stack, dir);
    return prepared;
  });
  if (state) scope.log.add("state", state.where);
  const stateEnv = state?.env ?? {};
  const env = { ...context.stackEnv(stack, options.purpose), ...stateEnv };

  await scope.step("init", () =>
    context.terraform.init(dir, callOptions(context, scope, env, { output: scope.log.live("init") })),
  );
  const engine = await scope.step("version", () =>
    context.terraform.engine(callOptions(context, scope, env)),
  );
  const version = { ...engine, providers: await providerVersions(dir) };
  const planFile = path.join(dir, `${scope.id}.tfplan`);
  const outcome = await scope.step("plan", () =>
    context.terraform.plan(
      dir,
      planFile,
      callOptions(context, scope, env, { output: scope.log.live("plan") }),
    ),
  );
  if (!outcome.hasChanges) {
    return {
      dir,
      planFile,
      hasChanges: false,
      summary: EMPTY_SUMMARY,
      resources: [],
      destroys: [],
      version,
      text: outcome.log,
      stateEnv,
    };
  }
  const { plan, warnings } = await scope.step("show", () =>
    context.terraform.show(dir, planFile, callOptions(context, scope, env)),
  );
  if (warnings) scope.log.add("warnings", warnings);
  return {
    dir,
    planFile,
    plan,
    hasChanges: true,
    summary: summarize(plan),
    resources: resourceChanges(plan),
    destroys: destroys(plan),
    version,
    text: outcome.log,
    stateEnv,
  };
}

/**
 * What a run's record keeps of a plan: its summary, resources, the plan JSON
 * (values Terraform marks sensitive, and values the runner injected, hidden)
 * and versions.
 */
export function planRecord(planned: PlannedStack, redact: (text: string) => string) {
  return {
    summary: planned.summary,
    resources: planned.resources,
    ...(planned.plan
      ? { plan: JSON.parse(redact(JSON.stringify(redactPlan(planned.plan)))) as unknown }
      : {}),
    engine: planned.version.engine,
    engineVersion: planned.version.version,
    providers: planned.version.providers,
  };
}

/** Applies exactly the saved plan file, then keeps the applied folder for drift checks. */
export async function applyPlanned(
  context: EngineContext,
  scope: RunScope,
  stack: string,
  planned: PlannedStack,
  commit: string,
): Promise<void> {
  const env = { ...context.stackEnv(stack, "apply"), ...planned.stateEnv };
  try {
    await scope.step("apply", async () => {
      // Any cancel keeps the apply from starting; once it runs, only what may interrupt an apply does.
      if (context.signal?.aborted) {
        throw new RunnerError("EXEC_CANCELLED", "terraform apply: cancelled before it started", {
          cause: context.signal.reason,
        });
      }
      const output = scope.log.live("apply");
      const signal = context.applySignal ?? context.signal;
      return context.terraform.apply(
        planned.dir,
        planned.planFile,
        callOptions(context, scope, env, { output, ...(signal ? { signal } : {}) }),
      );
    });
  } finally {
    await rm(planned.planFile, { force: true });
  }
  await scope.step("keep applied folder", () => context.applied.keep(stack, planned.dir, commit));
}

/** Removes a plan file that will not be applied. */
export async function discardPlan(planned: PlannedStack): Promise<void> {
  await rm(planned.planFile, { force: true });
}

/**
 * Records a plan with nothing to apply as applied at this commit: the folder
 * kept for drift checks (and its lock file) moves to this commit too.
 */
export async function acceptUnchanged(
  context: EngineContext,
  scope: RunScope,
  stack: string,
  planned: PlannedStack,
  commit: string,
): Promise<void> {
  await discardPlan(planned);
  await scope.step("keep applied folder", () => context.applied.keep(stack, planned.dir, commit));
}

/** Reuses the provider lock file kept from the stack's last apply, unless the app ships its own. */
async function restoreLockFile(context: EngineContext, stack: string, dir: string): Promise<void> {
  const local = path.join(dir, LOCK_FILE);
  if (await exists(local)) return;
  const kept = await context.applied.lockFile(stack);
  if (kept) await writeFile(local, kept);
}

/**
 * Call options: the stack's environment, the cancel signal (the context's
 * unless given), recording of the process group, and where output goes as it comes.
 */
function callOptions(
  context: EngineContext,
  scope: RunScope,
  env: Readonly<Record<string, string>>,
  extra: { readonly output?: (text: string) => void; readonly signal?: AbortSignal } = {},
): CallOptions {
  const onSpawn = (pgid: number) => {
    context.store.recordProcess(scope.id, pgid).catch((error: unknown) => {
      context.logger.error({ err: error, runId: scope.id }, "recording the process group failed");
    });
  };
  const signal = extra.signal ?? context.signal;
  return {
    env,
    onSpawn,
    ...(signal ? { signal } : {}),
    ...(extra.output ? { onOutput: extra.output } : {}),
  };
}
