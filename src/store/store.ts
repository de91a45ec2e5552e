import type { PlanSummary, ResourceChange } from "../terraform/plan-json.ts";

/**
 * The records the runner keeps: runs, each stack's applied commit and drift
 * status, and the per-stack locks. Declared here, implemented by the embedded
 * SQLite store (and later PostgreSQL).
 */
export type RunKind = "synth" | "plan" | "apply" | "drift";
export type RunStatus =
  | "queued"
  | "running"
  | "succeeded"
  | "failed"
  | "errored"
  | "blocked"
  | "cancelled"
  | "interrupted";

export interface StackKey {
  readonly repoId: string;
  /** The app's folder in the repository, "" for the root. */
  readonly appDir: string;
  readonly stack: string;
}

export interface NewRun extends StackKey {
  readonly id: string;
  readonly kind: RunKind;
  readonly commit: string;
  readonly trigger: string;
  readonly pr?: number;
}

export interface RunOutcome {
  readonly status: RunStatus;
  /** The stack result word shown to people: changes, applied, drifted, blocked... */
  readonly result: string;
  readonly summary?: PlanSummary;
  readonly resources?: readonly ResourceChange[];
  /** The redacted plan JSON. */
  readonly plan?: unknown;
  readonly log: string;
  readonly engine?: string;
  readonly engineVersion?: string;
  readonly providers?: Readonly<Record<string, string>>;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface RunRecord extends NewRun, Partial<Omit<RunOutcome, "status">> {
  readonly status: RunStatus;
  readonly startedAt: string;
  readonly endedAt?: string;
}

export type ApplyStatus = "succeeded" | "failed" | "blocked";

export interface StackRecord extends StackKey {
  readonly lastAppliedCommit?: string;
  readonly lastAppliedHash?: string;
  readonly lastAppliedAt?: string;
  readonly lastApplyStatus?: ApplyStatus;
  readonly driftStatus?: string;
  readonly driftFingerprint?: string;
  readonly driftCheckedAt?: string;
}

export type EventKind = "poll" | "apply" | "plan" | "drift" | "approve" | "recheck" | "pr-plan";
export type EventStatus = "queued" | "running" | "done" | "superseded" | "failed" | "interrupted";

/** A trigger, persisted before anything acts on it; workers claim queued events. */
export interface NewEvent {
  readonly id: string;
  readonly kind: EventKind;
  readonly stack?: string;
  readonly commit?: string;
  /** Extra data of the trigger, e.g. the run an approval is for. */
  readonly payload?: Readonly<Record<string, unknown>>;
  /** Who asked: "poll", "webhook:generic", "api", "schedule", "recovery". */
  readonly source: string;
  /** A webhook delivery id: a repeated one is not queued again. */
  readonly deliveryId?: string;
  /** The pull request the event is about. */
  readonly pr?: number;
}

export interface EventRecord extends NewEvent {
  readonly status: EventStatus;
  readonly createdAt: string;
  readonly error?: string;
}

export interface Store {
  startRun(run: NewRun): Promise<void>;
  finishRun(id: string, outcome: RunOutcome): Promise<void>;
  getRun(id: string): Promise<RunRecord | undefined>;
  listRuns(filter: Partial<StackKey> & { kind?: RunKind }): Promise<RunRecord[]>;

  getStack(key: StackKey): Promise<StackRecord | undefined>;
  listStacks(repoId: string, appDir: string): Promise<StackRecord[]>;
  recordApplied(key: StackKey, commit: string, hash: string): Promise<void>;
  recordApplyProblem(key: StackKey, status: Exclude<ApplyStatus, "succeeded">): Promise<void>;
  recordDrift(key: StackKey, status: string, fingerprint: string | undefined): Promise<void>;

  /** Stack hashes of a synthesized commit, kept so that a commit is synthesized once for comparisons. */
  getCommitHashes(
    repoId: string,
    appDir: string,
    commit: string,
  ): Promise<Record<string, string> | undefined>;
  saveCommitHashes(
    repoId: string,
    appDir: string,
    commit: string,
    hashes: Record<string, string>,
  ): Promise<void>;

  /** Persists an event; for a delivery id seen before, returns the earlier event and duplicate: true. */
  enqueue(event: NewEvent): Promise<{ readonly id: string; readonly duplicate: boolean }>;
  /** Claims the oldest queued event (compare-and-set), or undefined when none is queued. */
  claimEvent(holder: string): Promise<EventRecord | undefined>;
  finishEvent(id: string, status: Exclude<EventStatus, "queued" | "running">, error?: string): Promise<void>;
  /** Queued events of a kind created after the given one (for coalescing applies). */
  newerQueued(kind: EventKind, afterId: string): Promise<EventRecord[]>;
  countQueued(): Promise<number>;
  /** Marks queued events of a kind for a pull request superseded (a newer head, or it closed). */
  supersedeQueued(kind: EventKind, pr: number): Promise<number>;
  /** Whether an event of this kind and stack is queued or running. */
  hasOpenEvent(kind: EventKind, stack: string | undefined): Promise<boolean>;
  /** The oldest queued (not yet running) event of this kind, for a trigger to join instead of queueing another. */
  queuedEventId(kind: EventKind): Promise<string | undefined>;

  /** After a crash: running runs become interrupted, running events too; returns the runs. */
  interruptRunning(): Promise<RunRecord[]>;
  /** The process group a run's current step started, so that a restart can wait for or end it. */
  recordProcess(runId: string, pgid: number | undefined): Promise<void>;
  runProcess(runId: string): Promise<number | undefined>;
  releaseAllLocks(): Promise<void>;

  getValue(key: string): Promise<string | undefined>;
  setValue(key: string, value: string): Promise<void>;

  /** Takes the lock if it is free or its lease expired; false when someone else holds it. */
  acquireLock(key: string, holder: string, leaseMs: number): Promise<boolean>;
  renewLock(key: string, holder: string, leaseMs: number): Promise<boolean>;
  releaseLock(key: string, holder: string): Promise<void>;
  lockHolder(key: string): Promise<string | undefined>;

  close(): Promise<void>;
}
