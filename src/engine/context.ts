import path from "node:path";
import type { Logger } from "pino";
import type { Repository } from "../git/repository.ts";
import type { Policy } from "../policy/policy.ts";
import type { Sandbox } from "../process/sandbox.ts";
import type { StateLocation } from "../state/local-state.ts";
import type { RunOutcome, Store } from "../store/store.ts";
import type { TerraformCli } from "../terraform/cli.ts";

/** Everything the engine's workflows need, built once by the composition root. */
export interface EngineContext {
  readonly dataDir: string;
  readonly repository: Repository;
  readonly repoId: string;
  /** The app's folder in the repository ("" for the root). */
  readonly appDir: string;
  readonly store: Store;
  readonly terraform: TerraformCli;
  /** Credentials and TF_VAR_* for a stack, from the runner's configuration; plans may get other ones. */
  readonly stackEnv: (stack: string, purpose: "plan" | "apply") => Readonly<Record<string, string>>;
  /** The allow-listed environment for synthesis and dependency installs. */
  readonly toolEnv: Readonly<Record<string, string>>;
  /** Where synthesis and dependency installs run, chosen once at start. */
  readonly sandbox: Sandbox;
  readonly allowInstallScripts: boolean;
  readonly parallelism: number;
  readonly synthTimeoutMs: number;
  readonly synthMaxOldSpaceMb: number;
  readonly installTimeoutMs: number;
  readonly trigger: string;
  readonly logger: Logger;
  readonly newRunId: () => string;
  readonly signal?: AbortSignal;
  /** Told of every run as it starts, e.g. to show progress. */
  readonly onRunStarted?: (run: StartedRun) => void;
  /** Told of every finished run, e.g. to count it in metrics or show progress. */
  readonly onRunFinished?: (run: FinishedRun) => void;
  /** Told of every synthesized commit: its stacks (name to dependencies) and policy. */
  readonly onSynthesized?: (
    commit: string,
    stacks: ReadonlyMap<string, readonly string[]>,
    policy: Policy,
  ) => Promise<void>;
}

export interface StartedRun {
  readonly id: string;
  readonly kind: string;
  readonly stack: string;
  readonly commit: string;
}

export interface FinishedRun extends StartedRun, Pick<RunOutcome, "status" | "result" | "summary" | "error"> {
  readonly durationMs: number;
}

export function stateLocation(context: EngineContext): StateLocation {
  return { dataDir: context.dataDir, repoId: context.repoId, appDir: context.appDir };
}

/** Where a stack's applied folder (cdk.tf.json, assets, lock file) is kept for drift checks. */
export function appliedDir(context: EngineContext, stack: string): string {
  return path.join(context.dataDir, "applied", context.repoId, context.appDir || "_", stack);
}

export function workRoot(context: EngineContext): string {
  return path.join(context.dataDir, "work");
}

export function dependencyCacheDir(dataDir: string): string {
  return path.join(dataDir, "cache", "npm");
}

export function stackLockKey(context: EngineContext, stack: string): string {
  return `stack:${context.repoId}/${context.appDir || "_"}/${stack}`;
}
