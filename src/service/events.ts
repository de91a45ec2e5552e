import type { AppKey, EventKind, EventRecord, EventStatus, NewEvent, RunRecord } from "../store/records.ts";

/**
 * The queue of persisted triggers, as the service uses it. Declared here;
 * the SQL store implements it on SQLite and on PostgreSQL (where replicas
 * claim with SKIP LOCKED and lanes are guarded by a unique index).
 */
export interface EventQueue {
  enqueue(scope: string, event: NewEvent): Promise<{ readonly id: string; readonly duplicate: boolean }>;
  /** The oldest queued event whose lane has nothing running and is not held (e.g. applies while frozen). */
  claimEvent(
    scope: string,
    holder: string,
    leaseMs: number,
    heldLanes?: readonly string[],
  ): Promise<EventRecord | undefined>;
  renewEvent(
    id: string,
    holder: string,
    leaseMs: number,
  ): Promise<{ readonly cancelReason?: string; readonly cancelForce?: boolean } | undefined>;
  finishEvent(id: string, status: Exclude<EventStatus, "queued" | "running">, error?: string): Promise<void>;
  newerQueued(scope: string, kind: EventKind, afterId: string): Promise<EventRecord[]>;
  supersedeQueued(scope: string, kind: EventKind, pr: number, keep?: string): Promise<number>;
  requestCancel(scope: string, kind: EventKind, pr: number, reason: string, keep?: string): Promise<string[]>;
  /** Drops a queued event; false when it is not queued (any more). */
  cancelQueuedEvent(scope: string, id: string, reason: string): Promise<boolean>;
  /** Asks whichever replica runs the event to cancel it; false when it is not running. */
  requestEventCancel(scope: string, id: string, reason: string, force: boolean): Promise<boolean>;
  getEvent(id: string): Promise<EventRecord | undefined>;
  openEvent(
    scope: string,
    kind: EventKind,
    stack: string | undefined,
    statuses?: readonly ("queued" | "running")[],
  ): Promise<EventRecord | undefined>;
  openPullRequestEvent(scope: string, kind: EventKind, pr: number): Promise<EventRecord | undefined>;
  countQueued(scope: string): Promise<number>;
  listOpenEvents(scope: string, limit: number): Promise<EventRecord[]>;
  interruptAbandoned(
    scope: string,
    app: AppKey,
    options: { readonly all: boolean },
  ): Promise<{ events: EventRecord[]; runs: RunRecord[] }>;
}

/** The queue of one watched app: runners of other apps may share the database. */
export function scopeOf(app: AppKey): string {
  return `${app.repoId}/${app.appDir || "_"}`;
}

/**
 * Which events run one at a time. Applies (and approvals) of the app are
 * serial, so that commits apply in order and queued ones coalesce; each
 * stack's drift checks and plans, each pull request's plans, and polls have
 * lanes of their own, so different stacks and pull requests run side by side.
 * A pull request's plans have a lane per head (and one for comment commands):
 * a newer head's plan starts without waiting for an older one, which it
 * cancels once the forge confirms it is the newer.
 */
export function laneOf(
  kind: EventKind,
  stack: string | undefined,
  pr: number | undefined,
  commit?: string,
): string {
  switch (kind) {
    case "poll":
      return "poll";
    case "apply":
    case "approve":
      return "apply";
    case "drift":
      return `drift:${stack ?? "*"}`;
    case "plan":
    case "recheck":
      return `plan:${stack ?? "*"}`;
    case "pr-plan":
      return `pr:${pr ?? "?"}:${commit ?? "command"}`;
  }
}
