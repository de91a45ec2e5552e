import type { RollbackResult } from "../engine/rollback.ts";
import type { ForgeEvent } from "../forge/events.ts";
import type { AuditEntry, DriftStatus, RunKind, RunRecord, RunStatus, RunSummary } from "../store/records.ts";

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
}
