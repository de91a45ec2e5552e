import { copyFile, cp, mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { RunnerError } from "../errors.ts";
import { exists } from "../fs.ts";
import type { StackPolicy } from "../policy/policy.ts";
import { STATE_OVERRIDE_FILE, writeStateOverride } from "../state/local-state.ts";
import { type EngineVersion, providerVersions } from "../terraform/cli.ts";
import {
  destroys,
  type PlanJson,
  type PlanSummary,
  type ResourceChange,
  resourceChanges,
  summarize,
} from "../terraform/plan-json.ts";
import { redactPlan } from "../terraform/redact.ts";
import { appliedDir, type EngineContext, stateLocation } from "./context.ts";
import type { RunScope } from "./stack-run.ts";

const LOCK_FILE = ".terraform.lock.hcl";

export interface PlannedStack {
  readonly dir: string;
  readonly planFile: string;
  readonly plan: PlanJson;
  readonly hasChanges: boolean;
  readonly summary: PlanSummary;
  readonly resources: readonly ResourceChange[];
  readonly destroys: readonly ResourceChange[];
  readonly version: EngineVersion;
}

export interface PlanStackOptions {
  readonly purpose: "plan" | "apply";
  /** Refuse to plan from an empty state when the records say the stack was applied. */
  readonly requireState: boolean;
}

/** init, plan to a saved file (only the runner can read it), and show -json, in the stack's folder. */
export async function planStack(
  context: EngineContext,
  scope: RunScope,
  stack: string,
  dir: string,
  options: PlanStackOptions,
): Promise<PlannedStack> {
  const env = context.stackEnv(stack, options.purpose);
  const state = await scope.step("prepare", async () => {
    const file = await writeStateOverride(dir, stack, stateLocation(context));
    if (file && options.requireState && !(await exists(file))) {
      throw new RunnerError(
        "STATE_MISSING",
        `the records say this stack was applied, but its state file ${file} is missing; refusing to plan from an empty state`,
      );
    }
    await restoreLockFile(context, stack, dir);
    return file;
  });
  if (state) scope.log.add("state", state);

  scope.log.add(
    "init",
    await scope.step("init", () => context.terraform.init(dir, callOptions(context, scope, env))),
  );
  const engine = await scope.step("version", () =>
    context.terraform.engine(callOptions(context, scope, env)),
  );
  const version = { ...engine, providers: await providerVersions(dir) };
  const planFile = path.join(dir, `${scope.id}.tfplan`);
  const outcome = await scope.step("plan", () =>
    context.terraform.plan(dir, planFile, callOptions(context, scope, env)),
  );
  scope.log.add("plan", outcome.log);
  const { plan, warnings } = await scope.step("show", () =>
    context.terraform.show(dir, planFile, callOptions(context, scope, env)),
  );
  if (warnings) scope.log.add("warnings", warnings);
  return {
    dir,
    planFile,
    plan,
    hasChanges: outcome.hasChanges,
    summary: summarize(plan),
    resources: resourceChanges(plan),
    destroys: destroys(plan),
    version,
  };
}

/** What a run's record keeps of a plan: its summary, resources, the redacted plan JSON and versions. */
export function planRecord(planned: PlannedStack) {
  return {
    summary: planned.summary,
    resources: planned.resources,
    plan: redactPlan(planned.plan),
    engine: planned.version.engine,
    engineVersion: planned.version.version,
    providers: planned.version.providers,
  };
}

/** Why a plan may not be applied as it is, or undefined when it may. */
export function destroyGuard(
  planned: PlannedStack,
  policy: StackPolicy,
  allowDestroy: boolean,
): string | undefined {
  if (planned.destroys.length === 0 || policy.allowDestroy || allowDestroy) return undefined;
  const addresses = planned.destroys.map((resource) => resource.address).join(", ");
  return `the plan destroys or replaces ${planned.destroys.length} resource(s) (${addresses}) and the policy does not allow destroy; approve this plan with --allow-destroy or set allowDestroy in the policy`;
}

/** Applies exactly the saved plan file, then keeps the applied folder for drift checks. */
export async function applyPlanned(
  context: EngineContext,
  scope: RunScope,
  stack: string,
  planned: PlannedStack,
  commit: string,
): Promise<void> {
  const env = context.stackEnv(stack, "apply");
  try {
    const output = await scope.step("apply", () =>
      context.terraform.apply(planned.dir, planned.planFile, callOptions(context, scope, env)),
    );
    scope.log.add("apply", output);
  } finally {
    await rm(planned.planFile, { force: true });
  }
  await scope.step("keep applied folder", () => keepAppliedDir(context, stack, planned.dir, commit));
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
  await scope.step("keep applied folder", () => keepAppliedDir(context, stack, planned.dir, commit));
}

async function keepAppliedDir(
  context: EngineContext,
  stack: string,
  dir: string,
  commit: string,
): Promise<void> {
  const target = appliedDir(context, stack);
  const staging = `${target}.partial`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  await cp(dir, staging, {
    recursive: true,
    filter: (source) => {
      const name = path.basename(source);
      return name !== ".terraform" && name !== STATE_OVERRIDE_FILE && !name.endsWith(".tfplan");
    },
  });
  await writeFile(path.join(staging, "COMMIT"), `${commit}\n`);
  await rm(target, { recursive: true, force: true });
  await rename(staging, target);
}

/** Reuses the provider lock file kept from the stack's last apply, unless the app ships its own. */
async function restoreLockFile(context: EngineContext, stack: string, dir: string): Promise<void> {
  const kept = path.join(appliedDir(context, stack), LOCK_FILE);
  const local = path.join(dir, LOCK_FILE);
  if (!(await exists(local)) && (await exists(kept))) await copyFile(kept, local);
}

/** Call options: the stack's environment, the cancel signal, and recording of the process group. */
function callOptions(context: EngineContext, scope: RunScope, env: Readonly<Record<string, string>>) {
  const onSpawn = (pgid: number) => {
    context.store.recordProcess(scope.id, pgid).catch((error: unknown) => {
      context.logger.error({ err: error, runId: scope.id }, "recording the process group failed");
    });
  };
  return context.signal ? { env, signal: context.signal, onSpawn } : { env, onSpawn };
}
