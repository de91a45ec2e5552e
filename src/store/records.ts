import type { ReviewComparison } from "../domain/review.ts";
import type { StackPolicy } from "../policy/policy.ts";
import type { PlanSummary, ResourceChange } from "../terraform/plan-json.ts";

/**
 * What the runner keeps, as plain records. The ports that read and write them
 * are declared by the code that uses them (the engine, the workers, the
 * views); the SQL store implements them all, on SQLite and on PostgreSQL.
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

/** The app a runner watches: a repository and the app's folder in it. */
export interface AppKey {
  readonly repoId: string;
  /** The app's folder in the repository, "" for the root. */
  readonly appDir: string;
}

export interface StackKey extends AppKey {
  readonly stack: string;
}

export interface NewRun extends StackKey {
  readonly id: string;
  readonly kind: RunKind;
  readonly commit: string;
  readonly trigger: string;
  readonly pr?: number;
  /** Who and what asked for the run, beyond the trigger word. */
  readonly origin?: RunOrigin;
}

/**
 * What triggered a run, as far as the runner knows it: the webhook delivery,
 * the API token's name, the user at the command line, and the pull request
 * (with its people, as the forge reports them) whose merge made the commit.
 */
export interface RunOrigin {
  readonly deliveryId?: string;
  readonly tokenName?: string;
  /** The operating-system user who ran the command line. */
  readonly user?: string;
  readonly pullRequest?: PullRequestOrigin;
}

export interface PullRequestOrigin {
  readonly number: number;
  readonly url?: string;
  readonly author?: string;
  readonly mergedBy?: string;
  readonly approvers?: readonly string[];
}

/** A violation a policy check found in a plan. */
export interface Violation {
  /** The check: a JSON rule's id, or a TypeScript check's file. */
  readonly check: string;
  /** The resource it concerns, if one. */
  readonly address?: string;
  readonly message: string;
  /** A person's approval of this very plan lets it through; otherwise it blocks for good. */
  readonly approvable?: boolean;
}

/** A resource a run changes (or found drifted: the attribute paths that differ). */
export interface RecordedResource extends ResourceChange {
  readonly drift?: readonly string[];
}

export interface RunOutcome {
  readonly status: RunStatus;
  /** The stack result word shown to people: changes, applied, drifted, blocked... */
  readonly result: string;
  readonly summary?: PlanSummary;
  readonly resources?: readonly RecordedResource[];
  /** The redacted plan JSON. */
  readonly plan?: unknown;
  readonly engine?: string;
  readonly engineVersion?: string;
  readonly providers?: Readonly<Record<string, string>>;
  readonly error?: { readonly code: string; readonly message: string };
  /** What the policy checks found in the plan. */
  readonly violations?: readonly Violation[];
  /** An apply of a merged pull request: its plan against the plan reviewed on the pull request. */
  readonly review?: RunReview;
}

export interface RunReview {
  readonly pr: number;
  readonly comparison: ReviewComparison;
}

/** A pull request's plan of one stack at one commit: the newest such run. */
export interface PullRequestPlan {
  readonly stack: string;
  readonly runId: string;
  readonly status: RunStatus;
  readonly resources: readonly ResourceChange[];
}

/** One step of a run (init, plan, apply...), as it started and ended. */
export interface RunStep {
  readonly name: string;
  readonly startedAt: string;
  readonly endedAt?: string;
  readonly status: "running" | "succeeded" | "failed";
}

/** A cancel asked of a running run; `force` interrupts even its apply step. */
export interface RunCancel {
  readonly requestedAt: string;
  readonly force: boolean;
  /** The step the run was in when the cancel was asked. */
  readonly step?: string;
}

export interface RunRecord extends NewRun, Partial<Omit<RunOutcome, "status">> {
  readonly status: RunStatus;
  readonly startedAt: string;
  readonly endedAt?: string;
  /** Each step's output under a header, as far as the run got. */
  readonly log?: string;
  /** The steps so far, with their timings. */
  readonly steps?: readonly RunStep[];
  readonly cancel?: RunCancel;
  /** The service's event the run belongs to; none for a run of the CLI. */
  readonly eventId?: string;
}

/** A run's log from an offset on (in characters as the database counts them), for following it. */
export interface RunLogChunk {
  readonly text: string;
  /** Where the log ends now: the offset to ask from next. */
  readonly offset: number;
  readonly status: RunStatus;
}

/** A run without its log and plan, which can be large: what lists show. */
export type RunSummary = Omit<RunRecord, "log" | "plan">;

export interface RunFilter extends Partial<StackKey> {
  readonly kind?: RunKind;
  readonly status?: RunStatus;
  /** Newest first; at most this many. */
  readonly limit: number;
}

/** A suspension (or resumption) of a stack stored by the runner; it wins over the policy file's `suspended`. */
export interface StackOverride {
  readonly suspended: boolean;
  readonly reason?: string;
  readonly updatedAt: string;
}

/** All applies and corrections of an app wait while it is frozen, until `until` if set. */
export interface Freeze {
  readonly reason: string;
  readonly since: string;
  readonly until?: string;
}

export type ApplyStatus = "succeeded" | "failed" | "blocked";
export type DriftStatus = "in-sync" | "drifted" | "corrected";

export interface StackRecord extends StackKey {
  readonly lastAppliedCommit?: string;
  readonly lastAppliedHash?: string;
  readonly lastAppliedAt?: string;
  readonly lastApplyStatus?: ApplyStatus;
  readonly driftStatus?: DriftStatus;
  readonly driftFingerprint?: string;
  readonly driftCheckedAt?: string;
  /** Drift checks that failed in a row, for backing off. */
  readonly driftFailures: number;
}

/** What a synthesized commit holds: its stacks, their dependencies, hashes and policies. */
export interface SnapshotStack {
  readonly name: string;
  readonly dependencies: readonly string[];
  readonly hash: string;
  readonly policy: StackPolicy;
  /** The environment the stack belongs to, and its configuration's hash without that environment's own names and values. */
  readonly environment?: string;
  readonly promotionHash?: string;
}

export interface Snapshot extends AppKey {
  readonly commit: string;
  readonly stacks: readonly SnapshotStack[];
  /** The policy file's path relative to the app folder, when there is one. */
  readonly policyFile?: string;
  readonly synthesizedAt: string;
}

export type EventKind = "poll" | "apply" | "plan" | "drift" | "approve" | "recheck" | "pr-plan";
export type EventStatus =
  | "queued"
  | "running"
  | "done"
  | "superseded"
  | "failed"
  | "interrupted"
  | "cancelled";

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
  /**
   * Events of one lane run one at a time, across every replica (e.g. all
   * applies of the app, or the plans of one pull request).
   */
  readonly lane: string;
}

export interface EventRecord extends NewEvent {
  readonly status: EventStatus;
  readonly createdAt: string;
  readonly claimedBy?: string;
  readonly error?: string;
}

export interface PullRequestRecord {
  readonly number: number;
  readonly state: "open" | "closed" | "merged";
  readonly headSha: string;
  readonly baseRef?: string;
  readonly fromFork: boolean;
  readonly url?: string;
  readonly mergeCommitSha?: string;
  /** The head whose plan was last posted. */
  readonly plannedHead?: string;
  readonly updatedAt: string;
}

/**
 * One entry of the audit trail: a run that applied (or tried to apply) a plan
 * to a stack, or accepted a commit with nothing to change. Kept in a table of
 * its own, past the retention of runs.
 */
export interface AuditEntry extends StackKey {
  readonly runId: string;
  readonly kind: "apply" | "drift";
  readonly commit: string;
  /** applied, no-changes (the commit holds nothing to apply), corrected (drift), failed (the apply step failed). */
  readonly result: "applied" | "no-changes" | "corrected" | "failed";
  /** When the apply ended. */
  readonly at: string;
  readonly trigger: string;
  readonly origin: RunOrigin;
  /** The commit's author, as git records it: "Name <email>". */
  readonly commitAuthor?: string;
  readonly summary: PlanSummary;
  readonly resources: readonly ResourceChange[];
  /** The environment the stack belongs to, and its configuration's hash without the environment's own names and values. */
  readonly environment?: string;
  readonly promotionHash?: string;
  readonly error?: string;
}

export interface AuditFilter extends AppKey {
  readonly stack?: string;
  /** ISO times, inclusive. */
  readonly since?: string;
  readonly until?: string;
  /** Newest first; at most this many. */
  readonly limit: number;
}

export interface WatchedBranch {
  readonly branch: string;
  /** The newest head the runner has acted on (queued an apply for). */
  readonly headSha?: string;
  readonly polledAt?: string;
}
