import type { RollbackResult } from "../engine/rollback.ts";
import type { ForgeEvent } from "../forge/events.ts";
import type {
  AuditEntry,
  DriftStatus,
  EventKind,
  Freeze,
  RecordedResource,
  RunKind,
  RunLogChunk,
  RunRecord,
  RunStatus,
  RunSummary,
  StackOverride,
} from "../store/records.ts";

/**
 * What the HTTP layer may ask of the running service. Declared here, where the
 * service implements it; the fastify app (src/http/) depends only on this.
 */
export type StackState =
  | "in-sync"
  | "pending"
  | "drifted"
  | "applying"
  | "blocked"
  | "failed"
  | "suspended"
  | "orphaned";

export interface StackView {
  readonly name: string;
  readonly state: StackState;
  readonly dependencies: readonly string[];
  readonly lastAppliedCommit?: string;
  readonly lastAppliedAt?: string;
  readonly driftCheckedAt?: string;
  readonly driftStatus?: DriftStatus;
  /** The newest run of this stack, if any. */
  readonly lastRunId?: string;
  /**
   * Its synthesized folder at the followed branch's head differs from the one
   * last applied (or a producer's does), or it was never applied.
   */
  readonly pending: boolean;
  /** When its next scheduled drift check is due (applied stacks whose drift checks are on). */
  readonly nextDriftCheckAt?: string;
}

/** A stack's policy as it governs now, schedules as the file writes them. */
export interface PolicyView {
  readonly allowDestroy: boolean;
  readonly drift: "correct" | "notify" | "off";
  readonly driftSchedule: string;
  readonly autoApply: boolean;
  readonly suspended: boolean;
  readonly renamedFrom?: string;
}

/** One stack with what its page shows. */
export interface StackDetail extends StackView {
  /** The stacks that depend on this one. */
  readonly dependents: readonly string[];
  /** The policy in force; none for a stack gone from the app or before the head was synthesized. */
  readonly policy?: PolicyView;
  /** Where the policy comes from: the policy file at a commit (else defaults), and a stored suspension or resumption. */
  readonly policySource: {
    readonly file?: string;
    readonly commit?: string;
    readonly override?: StackOverride;
  };
  /** Who holds the stack's lock (an apply or correction), if anyone. */
  readonly lockHolder?: string;
  /** The current drift: the drift check that found it and what drifted. */
  readonly drift?: {
    readonly runId: string;
    readonly checkedAt: string;
    readonly resources: readonly RecordedResource[];
  };
}

/** A queued or running event: the work of one trigger, and the runs it started so far. */
export interface QueueEntry {
  readonly id: string;
  readonly kind: EventKind;
  readonly status: "queued" | "running";
  readonly stack?: string;
  readonly commit?: string;
  readonly pr?: number;
  readonly source: string;
  readonly createdAt: string;
  readonly claimedBy?: string;
  readonly runs: readonly RunSummary[];
  /** Why a queued event waits. */
  readonly waitsFor?: string;
}

/** Whether applies and drift corrections may start now. */
export interface ApplyGateView {
  readonly open: boolean;
  /** Why they wait, when they do. */
  readonly reason?: string;
  readonly frozen?: Freeze;
  /** When the next maintenance window opens, while outside all of them. */
  readonly opensAt?: string;
  /** The configured maintenance windows; none: applies may start at any time. */
  readonly windows: readonly string[];
}

export interface CancelResult {
  /** queued: the event was dropped before it ran; running: its process group was signalled. */
  readonly cancelled: "queued" | "running";
  readonly eventId: string;
  readonly runId?: string;
  readonly force: boolean;
}

export interface RunFilter {
  readonly stack?: string;
  readonly kind?: RunKind;
  readonly status?: RunStatus;
  /** Newest first; at most this many (default 100, at most 1000). */
  readonly limit?: number;
}

export interface AuditQuery {
  readonly stack?: string;
  /** ISO times, inclusive. */
  readonly since?: string;
  readonly until?: string;
  /** At most this many (default 100, at most 1000). */
  readonly limit?: number;
}

export type TriggerKind = "plan" | "apply" | "drift";

export interface TriggerRequest {
  readonly kind: TriggerKind;
  /** One stack, or every stack the command handles when absent. */
  readonly stack?: string;
  /** The name of the API token that asked, for the audit trail. */
  readonly tokenName?: string;
}

export interface Accepted {
  /** The persisted event that will do the work. */
  readonly eventId: string;
  /** True when the same delivery was accepted before; nothing new was queued. */
  readonly duplicate: boolean;
}

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, boolean>>;
}

export interface ServiceApi {
  readiness(): Promise<Readiness>;
  listStacks(): Promise<StackView[]>;
  /** Runs newest first, without their logs and plans. */
  listRuns(filter: RunFilter): Promise<RunSummary[]>;
  getRun(id: string): Promise<RunRecord | undefined>;
  /** Persists a trigger; throws RunnerError STACK_UNKNOWN for a stack the app does not have. */
  trigger(request: TriggerRequest): Promise<Accepted>;
  /** Approves a blocked run's plan; throws RUN_NOT_FOUND or RUN_NOT_BLOCKED. `tokenName` is recorded. */
  approve(runId: string, tokenName?: string): Promise<Accepted>;
  /** The audit trail: applied changes, newest first. */
  listAudit(filter: AuditQuery): Promise<AuditEntry[]>;
  /**
   * A branch restoring the app's files to what the stack was applied at, and
   * a pull request from it; throws STACK_UNKNOWN, GIT_REF_UNKNOWN,
   * COMMIT_NOT_APPLIED or NOTHING_TO_ROLL_BACK.
   */
  rollback(request: {
    readonly stack: string;
    readonly to: string;
    readonly tokenName?: string;
  }): Promise<RollbackResult>;
  /** Releases the store's lock on a stack; throws STACK_UNKNOWN. Returns whether a lock was held. */
  releaseLock(stack: string): Promise<{ readonly released: boolean }>;
  /**
   * Asks for an immediate poll of the repository, from a verified webhook
   * delivery; a repeated delivery id is accepted once.
   */
  requestPoll(source: string, deliveryId: string): Promise<Accepted>;
  /** Persists a verified forge delivery (pull request or push); a repeated delivery id is accepted once. */
  forgeEvent(event: ForgeEvent, deliveryId: string): Promise<Accepted>;
  /** Prometheus text exposition of the service's metrics. */
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;

  /** One stack with its dependents, policy in force, lock and current drift; undefined when unknown. */
  getStack(name: string): Promise<StackDetail | undefined>;
  /** A run's log from an offset on, to follow it while it runs; undefined when there is no such run. */
  runLog(id: string, offset: number): Promise<RunLogChunk | undefined>;
  /** The queued and running events, running first, and whether applies may start. */
  queue(): Promise<{ readonly events: readonly QueueEntry[]; readonly applies: ApplyGateView }>;
  /**
   * Cancels a run, or a queued event by its id; throws RUN_NOT_FOUND,
   * RUN_NOT_CANCELLABLE, or RUN_APPLYING for an apply step without `force`.
   */
  cancel(id: string, options: { readonly force: boolean }): Promise<CancelResult>;
  /** Suspends a stack (stored; wins over the policy file); throws STACK_UNKNOWN. */
  suspend(stack: string, reason?: string): Promise<StackDetail>;
  /** Resumes a stack and, when it is pending, queues its apply; throws STACK_UNKNOWN. */
  resume(stack: string): Promise<StackDetail>;
  applyGate(): Promise<ApplyGateView>;
  /** Freezes applies and corrections until unfrozen or `until`; throws BAD_REQUEST for an end in the past. */
  freeze(request: { readonly reason: string; readonly until?: string }): Promise<ApplyGateView>;
  /** Lifts the freeze; queued applies then run. */
  unfreeze(): Promise<ApplyGateView>;
}
