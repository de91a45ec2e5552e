import path from "node:path";
import type { Logger } from "pino";
import type { Environment } from "../domain/environments.ts";
import type { Repository } from "../git/repository.ts";
import type { Sandbox } from "../process/sandbox.ts";
import type {
  AppKey,
  ApplyStatus,
  AuditEntry,
  DriftStatus,
  NewRun,
  RunOrigin,
  RunOutcome,
  RunStep,
  Snapshot,
  StackKey,
  StackOverride,
  StackRecord,
} from "../store/records.ts";
import type { TerraformCli } from "../terraform/cli.ts";

/**
 * What the engine's workflows read and write of the runner's records: runs
 * (with their log as it grows), each stack's applied commit and drift, the
 * snapshot of each synthesized commit, and the per-stack locks.
 */
export interface EngineRecords {
  startRun(run: NewRun & { readonly eventId?: string; readonly host?: string }): Promise<void>;
  appendRunLog(id: string, text: string): Promise<void>;
  /** Ends a run with its outcome; `log`, when given, replaces the log written so far. */
  finishRun(id: string, outcome: RunOutcome, log?: string): Promise<void>;
  /** The process group a run's current step started, so that a restart can wait for or end it. */
  recordProcess(runId: string, pgid: number | undefined): Promise<void>;
  /** The run's steps so far, with their timings. */
  recordSteps(runId: string, steps: readonly RunStep[]): Promise<void>;

  getStack(key: StackKey): Promise<StackRecord | undefined>;
  listStacks(app: AppKey): Promise<StackRecord[]>;
  recordApplied(key: StackKey, commit: string, hash: string): Promise<void>;
  recordApplyProblem(key: StackKey, status: Exclude<ApplyStatus, "succeeded">): Promise<void>;
  recordDrift(
    key: StackKey,
    outcome: { status: DriftStatus; fingerprint?: string } | { status: "failed" },
  ): Promise<void>;
  /** Suspensions and resumptions operators stored; they win over the policy file's `suspended`. */
  stackOverrides(app: AppKey): Promise<Map<string, StackOverride>>;

  /** The audit trail: one entry per run that applied (or tried to) or accepted a commit. */
  recordAudit(entry: Omit<AuditEntry, "at">): Promise<void>;
  lastSuccessfulApply(
    key: StackKey,
    match: { readonly commit: string } | { readonly promotionHash: string },
  ): Promise<AuditEntry | undefined>;

  getSnapshot(app: AppKey, commit: string): Promise<Snapshot | undefined>;
  saveSnapshot(snapshot: Omit<Snapshot, "synthesizedAt">): Promise<void>;

  /** Takes the lock if it is free or its lease expired; false when someone else holds it. */
  acquireLock(key: string, holder: string, leaseMs: number): Promise<boolean>;
  renewLock(key: string, holder: string, leaseMs: number): Promise<boolean>;
  releaseLock(key: string, holder: string): Promise<void>;
  lockHolder(key: string): Promise<string | undefined>;
}

/**
 * Where a stack's state lives and how Terraform reaches it: a file in the data
 * directory, or (with replicas) PostgreSQL through Terraform's own pg backend.
 */
export interface StateBackend {
  /**
   * Points a synthesized stack folder at the stack's state (an override file)
   * and at its producers' states for `terraform_remote_state`. Returns where
   * the state is, for the log, and variables Terraform needs to reach it;
   * undefined for a stack with a remote backend of its own.
   */
  prepare(
    stackDir: string,
    stack: string,
  ): Promise<{ readonly where: string; readonly env: Readonly<Record<string, string>> } | undefined>;
  /** Whether the stack has any state yet; refused from empty when the records say it was applied. */
  hasState(stack: string): Promise<boolean>;
}

/**
 * The folder last applied to each stack (cdk.tf.json, assets, the provider
 * lock file), kept so that drift checks plan exactly what was applied: in the
 * data directory, or (with replicas) in the database.
 */
export interface AppliedConfigs {
  keep(stack: string, dir: string, commit: string): Promise<void>;
  /** Copies the kept folder into `dir`; false when there is none. */
  restore(stack: string, dir: string): Promise<boolean>;
  /** The kept provider lock file's content, if any. */
  lockFile(stack: string): Promise<Buffer | undefined>;
}

/** Everything the engine's workflows need, built once by the composition root. */
export interface EngineContext {
  readonly dataDir: string;
  readonly repository: Repository;
  readonly repoId: string;
  /** The app's folder in the repository ("" for the root). */
  readonly appDir: string;
  readonly store: EngineRecords;
  readonly state: StateBackend;
  readonly applied: AppliedConfigs;
  readonly terraform: TerraformCli;
  /**
   * Credentials and TF_VAR_* for a stack, from the runner's configuration.
   * `apply`: the apply credentials; `plan`: plans and drift reports of
   * reviewed code; `review`: plans of pull requests, which run code nobody has
   * reviewed yet, get the plan credentials only.
   */
  readonly stackEnv: (stack: string, purpose: EnvPurpose) => Readonly<Record<string, string>>;
  /** Environments in promotion order, from the runner's configuration (none: no promotion rule). */
  readonly environments: readonly Environment[];
  /** The allow-listed environment for synthesis and dependency installs. */
  readonly toolEnv: Readonly<Record<string, string>>;
  /** Replaces every value the runner injects from its configuration by "(redacted)". */
  readonly redact: (text: string) => string;
  /** Where synthesis and dependency installs run, chosen once, when first needed. */
  readonly sandbox: () => Promise<Sandbox>;
  readonly allowInstallScripts: boolean;
  readonly parallelism: number;
  readonly synthTimeoutMs: number;
  readonly synthMaxOldSpaceMb: number;
  readonly installTimeoutMs: number;
  /** How long an apply waits for a stack another run holds, and a plan for an apply to end. */
  readonly lockWaitMs: number;
  /** Dependencies installed ahead of time (an image's), consulted before npm runs. */
  readonly dependencySeedDir?: string;
  readonly trigger: string;
  /** Who and what asked, beyond the trigger word: recorded with each run and in the audit trail. */
  readonly origin?: RunOrigin;
  readonly logger: Logger;
  readonly newRunId: () => string;
  readonly signal?: AbortSignal;
  /**
   * What may interrupt a running apply step (a forced cancel, the runner
   * stopping); `signal` when unset. Any cancel still keeps an apply step from starting.
   */
  readonly applySignal?: AbortSignal;
  /** The event a service worker runs, recorded with each run so a replica can recover it. */
  readonly eventId?: string;
  /** Plans of pull requests: untrusted code, plan credentials only. */
  readonly review?: boolean;
  /** The pull request the runs are for, recorded with each run. */
  readonly pullRequest?: number;
  /** Told of every run as it starts, e.g. to show progress. */
  readonly onRunStarted?: (run: StartedRun) => void;
  /** Told of every finished run, e.g. to count it in metrics or show progress. */
  readonly onRunFinished?: (run: FinishedRun) => void;
}

export type EnvPurpose = "plan" | "apply" | "review";

export interface StartedRun {
  readonly id: string;
  readonly kind: string;
  readonly stack: string;
  readonly commit: string;
}

export interface FinishedRun extends StartedRun, Pick<RunOutcome, "status" | "result" | "summary" | "error"> {
  readonly durationMs: number;
}

export function appKey(context: EngineContext): AppKey {
  return { repoId: context.repoId, appDir: context.appDir };
}

export function stackKey(context: EngineContext, stack: string): StackKey {
  return { repoId: context.repoId, appDir: context.appDir, stack };
}

export function workRoot(dataDir: string): string {
  return path.join(dataDir, "work");
}

export function dependencyCacheDir(dataDir: string): string {
  return path.join(dataDir, "cache", "npm");
}

export function stackLockKey(app: AppKey, stack: string): string {
  return `${stackLockPrefix(app)}${stack}`;
}

export function stackLockPrefix(app: AppKey): string {
  return `stack:${app.repoId}/${app.appDir || "_"}/`;
}
