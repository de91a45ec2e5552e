import type { ResourceChange } from "../terraform/plan-json.ts";
import type {
  AppKey,
  ApplyStatus,
  AuditEntry,
  AuditFilter,
  DriftStatus,
  EventKind,
  EventRecord,
  EventStatus,
  Freeze,
  NewEvent,
  NewRun,
  PullRequestPlan,
  PullRequestRecord,
  RunCancel,
  RunFilter,
  RunLogChunk,
  RunOutcome,
  RunRecord,
  RunStatus,
  RunStep,
  RunSummary,
  Snapshot,
  SnapshotStack,
  StackKey,
  StackOverride,
  StackRecord,
  WatchedBranch,
} from "./records.ts";
import { DIALECTS, type Row, type SqlDriver, type SqlValue } from "./sql.ts";

/** Columns of `runs` a list shows: everything but the log and the plan. */
const RUN_SUMMARY_COLUMNS =
  "id, kind, repo_id, app_dir, stack, commit_sha, trigger, pr, origin, status, result, started_at, ended_at, summary, resources, violations, engine, engine_version, providers, error_code, error_message, review, steps, cancel, event_id";

/**
 * Every record the runner keeps, in one SQL database: the embedded SQLite
 * file or a shared PostgreSQL. The same statements serve both; the clock of
 * leases is the database's own.
 */
export class SqlStore {
  readonly #db: SqlDriver;
  readonly #now: string;
  readonly #skipLocked: string;

  constructor(driver: SqlDriver) {
    this.#db = driver;
    this.#now = DIALECTS[driver.dialect].nowMs;
    this.#skipLocked = DIALECTS[driver.dialect].skipLocked;
  }

  get dialect(): SqlDriver["dialect"] {
    return this.#db.dialect;
  }

  get location(): string {
    return this.#db.location;
  }

  /** A cheap round trip, for readiness. */
  async ping(): Promise<void> {
    await this.#db.get("SELECT 1 AS ok");
  }

  close(): Promise<void> {
    return this.#db.close();
  }

  // --- runs ---------------------------------------------------------------------

  async startRun(run: NewRun & { readonly eventId?: string; readonly host?: string }): Promise<void> {
    await this.#db.run(
      `INSERT INTO runs (id, kind, repo_id, app_dir, stack, commit_sha, trigger, pr, origin, status, started_at, event_id, host, log)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, '')`,
      [
        run.id,
        run.kind,
        run.repoId,
        run.appDir,
        run.stack,
        run.commit,
        run.trigger,
        run.pr ?? run.origin?.pullRequest?.number ?? null,
        json(run.origin),
        now(),
        run.eventId ?? null,
        run.host ?? null,
      ],
    );
  }

  /** Adds to a run's log as it goes, so that what a run logged survives a crash. */
  async appendRunLog(id: string, text: string): Promise<void> {
    await this.#db.run("UPDATE runs SET log = coalesce(log, '') || ? WHERE id = ?", [text, id]);
  }

  async finishRun(id: string, outcome: RunOutcome, log?: string): Promise<void> {
    await this.#db.run(
      `UPDATE runs SET status = ?, result = ?, ended_at = ?, summary = ?, resources = ?, plan = ?, violations = ?,
         engine = ?, engine_version = ?, providers = ?, error_code = ?, error_message = ?, pgid = NULL,
         review = ?, log = coalesce(?, log)
       WHERE id = ?`,
      [
        outcome.status,
        outcome.result,
        now(),
        json(outcome.summary),
        json(outcome.resources),
        json(outcome.plan),
        json(outcome.violations),
        outcome.engine ?? null,
        outcome.engineVersion ?? null,
        json(outcome.providers),
        outcome.error?.code ?? null,
        outcome.error?.message ?? null,
        json(outcome.review),
        log ?? null,
        id,
      ],
    );
  }

  /** The run's steps so far, with their timings. */
  async recordSteps(runId: string, steps: readonly RunStep[]): Promise<void> {
    await this.#db.run("UPDATE runs SET steps = ? WHERE id = ?", [JSON.stringify(steps), runId]);
  }

  /** Records that a cancel was asked of a running run (and whether it was forced). */
  async recordRunCancel(runId: string, cancel: RunCancel): Promise<void> {
    await this.#db.run("UPDATE runs SET cancel = ? WHERE id = ?", [JSON.stringify(cancel), runId]);
  }

  /** The run's log from `offset` on, where it ends now, and the run's status; for following a log. */
  async runLogSince(id: string, offset: number): Promise<RunLogChunk | undefined> {
    const row = await this.#db.get<{ more: string | null; total: number | null; status: RunStatus }>(
      "SELECT substr(coalesce(log, ''), ? + 1) AS more, length(coalesce(log, '')) AS total, status FROM runs WHERE id = ?",
      [offset, id],
    );
    if (!row) return undefined;
    const total = Number(row.total ?? 0);
    return {
      text: offset >= total ? "" : (row.more ?? ""),
      offset: Math.max(total, offset),
      status: row.status,
    };
  }

  /** The runs of the given events, e.g. what the queue's running events are doing. */
  async runsOfEvents(eventIds: readonly string[]): Promise<RunSummary[]> {
    if (eventIds.length === 0) return [];
    const rows = await this.#db.all(
      `SELECT ${RUN_SUMMARY_COLUMNS} FROM runs WHERE event_id IN (${eventIds.map(() => "?").join(", ")})
       ORDER BY started_at, id`,
      eventIds,
    );
    return rows.map(toRun);
  }

  /**
   * Deletes the app's runs (and so their logs and plans) that started before
   * `before` and have ended, except each stack's last successful apply and its
   * last drift check. Returns how many went.
   */
  async pruneRuns(app: AppKey, before: string): Promise<number> {
    return this.#db.run(
      `DELETE FROM runs WHERE repo_id = ? AND app_dir = ? AND started_at < ? AND status NOT IN ('queued', 'running')
       AND id NOT IN (
         SELECT id FROM (
           SELECT id, ROW_NUMBER() OVER (PARTITION BY stack, kind ORDER BY started_at DESC, id DESC) AS newest
           FROM runs WHERE repo_id = ? AND app_dir = ? AND ((kind = 'apply' AND status = 'succeeded') OR kind = 'drift')
         ) ranked WHERE newest = 1)`,
      [app.repoId, app.appDir, before, app.repoId, app.appDir],
    );
  }

  async recordProcess(runId: string, pgid: number | undefined): Promise<void> {
    await this.#db.run("UPDATE runs SET pgid = ? WHERE id = ?", [pgid ?? null, runId]);
  }

  /** The process group a run's current step started, and the host it runs on. */
  async runProcess(runId: string): Promise<{ pgid: number; host?: string } | undefined> {
    const row = await this.#db.get<{ pgid: number | null; host: string | null }>(
      "SELECT pgid, host FROM runs WHERE id = ?",
      [runId],
    );
    if (row?.pgid === null || row?.pgid === undefined) return undefined;
    return { pgid: Number(row.pgid), ...(row.host ? { host: row.host } : {}) };
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const row = await this.#db.get("SELECT * FROM runs WHERE id = ?", [id]);
    return row ? toRun(row) : undefined;
  }

  /** Runs newest first, reading only the rows and columns a list shows. */
  async listRuns(filter: RunFilter): Promise<RunSummary[]> {
    const { where, values } = conditions({
      repo_id: filter.repoId,
      app_dir: filter.appDir,
      stack: filter.stack,
      kind: filter.kind,
      status: filter.status,
    });
    const rows = await this.#db.all(
      `SELECT ${RUN_SUMMARY_COLUMNS} FROM runs ${where} ORDER BY started_at DESC, id DESC LIMIT ?`,
      [...values, filter.limit],
    );
    return rows.map(toRun);
  }

  /** The newest run of each stack of an app (one indexed lookup per stack). */
  async latestRunIds(app: AppKey, stacks: readonly string[]): Promise<Map<string, string>> {
    const latest = new Map<string, string>();
    for (const stack of stacks) {
      const row = await this.#db.get<{ id: string }>(
        "SELECT id FROM runs WHERE repo_id = ? AND app_dir = ? AND stack = ? ORDER BY started_at DESC, id DESC LIMIT 1",
        [app.repoId, app.appDir, stack],
      );
      if (row) latest.set(stack, row.id);
    }
    return latest;
  }

  /**
   * A pull request's plan at a commit, per stack: the newest plan run of each
   * stack recorded for that pull request and commit.
   */
  async pullRequestPlans(app: AppKey, pr: number, commit: string): Promise<PullRequestPlan[]> {
    const rows = await this.#db.all<{ id: string; stack: string; status: string; resources: string | null }>(
      `SELECT id, stack, status, resources FROM runs r
       WHERE repo_id = ? AND app_dir = ? AND pr = ? AND commit_sha = ? AND kind = 'plan'
         AND NOT EXISTS (SELECT 1 FROM runs n WHERE n.repo_id = r.repo_id AND n.app_dir = r.app_dir
           AND n.pr = r.pr AND n.commit_sha = r.commit_sha AND n.kind = 'plan' AND n.stack = r.stack
           AND (n.started_at > r.started_at OR (n.started_at = r.started_at AND n.id > r.id)))
       ORDER BY stack`,
      [app.repoId, app.appDir, pr, commit],
    );
    return rows.map((row) => ({
      stack: row.stack,
      runId: row.id,
      status: row.status as RunStatus,
      resources: (parsed(row.resources) as ResourceChange[] | undefined) ?? [],
    }));
  }

  // --- the audit trail ---------------------------------------------------------------

  /** Adds a run's entry to the audit trail (once per run). */
  async recordAudit(entry: Omit<AuditEntry, "at">): Promise<void> {
    await this.#db.run(
      `INSERT INTO audit (run_id, repo_id, app_dir, stack, kind, commit_sha, result, at, trigger, origin,
         commit_author, summary, resources, environment, promotion_hash, error)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING`,
      [
        entry.runId,
        entry.repoId,
        entry.appDir,
        entry.stack,
        entry.kind,
        entry.commit,
        entry.result,
        now(),
        entry.trigger,
        JSON.stringify(entry.origin),
        entry.commitAuthor ?? null,
        JSON.stringify(entry.summary),
        JSON.stringify(entry.resources),
        entry.environment ?? null,
        entry.promotionHash ?? null,
        entry.error ?? null,
      ],
    );
  }

  /** The audit trail of an app, newest first. */
  async listAudit(filter: AuditFilter): Promise<AuditEntry[]> {
    const clauses = ["repo_id = ?", "app_dir = ?"];
    const values: SqlValue[] = [filter.repoId, filter.appDir];
    if (filter.stack !== undefined) {
      clauses.push("stack = ?");
      values.push(filter.stack);
    }
    if (filter.since !== undefined) {
      clauses.push("at >= ?");
      values.push(filter.since);
    }
    if (filter.until !== undefined) {
      clauses.push("at <= ?");
      values.push(filter.until);
    }
    const rows = await this.#db.all(
      `SELECT * FROM audit WHERE ${clauses.join(" AND ")} ORDER BY at DESC, run_id DESC LIMIT ?`,
      [...values, filter.limit],
    );
    return rows.map(toAuditEntry);
  }

  /**
   * The newest successful entry of a stack that matches: applied at this
   * commit, or (for promotion) with this hash of its configuration.
   */
  async lastSuccessfulApply(
    key: StackKey,
    match: { readonly commit: string } | { readonly promotionHash: string },
  ): Promise<AuditEntry | undefined> {
    const [column, value] =
      "commit" in match ? ["commit_sha", match.commit] : ["promotion_hash", match.promotionHash];
    const row = await this.#db.get(
      `SELECT * FROM audit WHERE repo_id = ? AND app_dir = ? AND stack = ? AND ${column} = ?
         AND result IN ('applied', 'no-changes', 'corrected') ORDER BY at DESC, run_id DESC LIMIT 1`,
      [key.repoId, key.appDir, key.stack, value],
    );
    return row ? toAuditEntry(row) : undefined;
  }

  // --- stacks ---------------------------------------------------------------------

  async getStack(key: StackKey): Promise<StackRecord | undefined> {
    const row = await this.#db.get("SELECT * FROM stacks WHERE repo_id = ? AND app_dir = ? AND name = ?", [
      key.repoId,
      key.appDir,
      key.stack,
    ]);
    return row ? toStack(row) : undefined;
  }

  async listStacks(app: AppKey): Promise<StackRecord[]> {
    const rows = await this.#db.all("SELECT * FROM stacks WHERE repo_id = ? AND app_dir = ? ORDER BY name", [
      app.repoId,
      app.appDir,
    ]);
    return rows.map(toStack);
  }

  async recordApplied(key: StackKey, commit: string, hash: string): Promise<void> {
    await this.#upsertStack(key, {
      last_applied_commit: commit,
      last_applied_hash: hash,
      last_applied_at: now(),
      last_apply_status: "succeeded",
    });
  }

  async recordApplyProblem(key: StackKey, status: Exclude<ApplyStatus, "succeeded">): Promise<void> {
    await this.#upsertStack(key, { last_apply_status: status });
  }

  /** A drift check's outcome; a failed check keeps the last status and counts towards backing off. */
  async recordDrift(
    key: StackKey,
    outcome: { status: DriftStatus; fingerprint?: string } | { status: "failed" },
  ): Promise<void> {
    if (outcome.status === "failed") {
      await this.#upsertStack(key, { drift_checked_at: now() }, "drift_failures = stacks.drift_failures + 1");
      return;
    }
    await this.#upsertStack(key, {
      drift_status: outcome.status,
      drift_fingerprint: outcome.fingerprint ?? null,
      drift_checked_at: now(),
      drift_failures: 0,
    });
  }

  async #upsertStack(key: StackKey, fields: Record<string, SqlValue>, extraUpdate?: string): Promise<void> {
    const columns = Object.keys(fields);
    const updates = [
      ...columns.map((column) => `${column} = excluded.${column}`),
      ...(extraUpdate ? [extraUpdate] : []),
    ];
    await this.#db.run(
      `INSERT INTO stacks (repo_id, app_dir, name${columns.map((column) => `, ${column}`).join("")})
       VALUES (?, ?, ?${columns.map(() => ", ?").join("")})
       ON CONFLICT (repo_id, app_dir, name) DO UPDATE SET ${updates.join(", ")}`,
      [key.repoId, key.appDir, key.stack, ...Object.values(fields)],
    );
  }

  // --- suspensions and freezes set by operators ---------------------------------------

  async stackOverrides(app: AppKey): Promise<Map<string, StackOverride>> {
    const rows = await this.#db.all(
      "SELECT * FROM stack_overrides WHERE repo_id = ? AND app_dir = ? ORDER BY stack",
      [app.repoId, app.appDir],
    );
    return new Map(
      rows.map((row) => [
        String(row.stack),
        withoutEmpty({
          suspended: Number(row.suspended) === 1,
          reason: text(row.reason),
          updatedAt: row.updated_at,
        }) as unknown as StackOverride,
      ]),
    );
  }

  async setStackOverride(key: StackKey, override: { suspended: boolean; reason?: string }): Promise<void> {
    await this.#db.run(
      `INSERT INTO stack_overrides (repo_id, app_dir, stack, suspended, reason, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (repo_id, app_dir, stack) DO UPDATE SET suspended = excluded.suspended,
         reason = excluded.reason, updated_at = excluded.updated_at`,
      [key.repoId, key.appDir, key.stack, override.suspended ? 1 : 0, override.reason ?? null, now()],
    );
  }

  /** Forgets a stack's override: the policy file governs it again. */
  async clearStackOverride(key: StackKey): Promise<void> {
    await this.#db.run("DELETE FROM stack_overrides WHERE repo_id = ? AND app_dir = ? AND stack = ?", [
      key.repoId,
      key.appDir,
      key.stack,
    ]);
  }

  async getFreeze(app: AppKey): Promise<Freeze | undefined> {
    const row = await this.#db.get("SELECT * FROM freezes WHERE repo_id = ? AND app_dir = ?", [
      app.repoId,
      app.appDir,
    ]);
    if (!row) return undefined;
    return withoutEmpty({
      reason: row.reason,
      since: row.since,
      until: text(row.until),
    }) as unknown as Freeze;
  }

  /** Freezes the app's applies (a second freeze replaces the first's reason and end). */
  async setFreeze(app: AppKey, freeze: { reason: string; until?: string }): Promise<Freeze> {
    await this.#db.run(
      `INSERT INTO freezes (repo_id, app_dir, reason, since, until) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (repo_id, app_dir) DO UPDATE SET reason = excluded.reason, since = excluded.since,
         until = excluded.until`,
      [app.repoId, app.appDir, freeze.reason, now(), freeze.until ?? null],
    );
    return (await this.getFreeze(app)) as Freeze;
  }

  /** Lifts the freeze; false when there was none. */
  async clearFreeze(app: AppKey): Promise<boolean> {
    const deleted = await this.#db.run("DELETE FROM freezes WHERE repo_id = ? AND app_dir = ?", [
      app.repoId,
      app.appDir,
    ]);
    return deleted > 0;
  }

  // --- snapshots of synthesized commits ---------------------------------------------

  async getSnapshot(app: AppKey, commit: string): Promise<Snapshot | undefined> {
    const row = await this.#db.get(
      "SELECT * FROM snapshots WHERE repo_id = ? AND app_dir = ? AND commit_sha = ?",
      [app.repoId, app.appDir, commit],
    );
    return row ? toSnapshot(row) : undefined;
  }

  async saveSnapshot(snapshot: Omit<Snapshot, "synthesizedAt">): Promise<void> {
    await this.#db.run(
      `INSERT INTO snapshots (repo_id, app_dir, commit_sha, stacks, policy_file, synthesized_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (repo_id, app_dir, commit_sha) DO UPDATE SET stacks = excluded.stacks,
         policy_file = excluded.policy_file, synthesized_at = excluded.synthesized_at`,
      [
        snapshot.repoId,
        snapshot.appDir,
        snapshot.commit,
        JSON.stringify(snapshot.stacks),
        snapshot.policyFile ?? null,
        now(),
      ],
    );
  }

  // --- the watched branch and pull requests ---------------------------------------------

  async getWatchedBranch(app: AppKey, branch: string): Promise<WatchedBranch | undefined> {
    const row = await this.#db.get(
      "SELECT * FROM watched_branches WHERE repo_id = ? AND app_dir = ? AND branch = ?",
      [app.repoId, app.appDir, branch],
    );
    return row ? toWatchedBranch(row) : undefined;
  }

  /** The branch as last seen by anyone polling it (the newest poll wins). */
  async latestWatchedBranch(app: AppKey): Promise<WatchedBranch | undefined> {
    const row = await this.#db.get(
      "SELECT * FROM watched_branches WHERE repo_id = ? AND app_dir = ? ORDER BY polled_at DESC LIMIT 1",
      [app.repoId, app.appDir],
    );
    return row ? toWatchedBranch(row) : undefined;
  }

  async recordPoll(app: AppKey, branch: string): Promise<void> {
    await this.#db.run(
      `INSERT INTO watched_branches (repo_id, app_dir, branch, polled_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (repo_id, app_dir, branch) DO UPDATE SET polled_at = excluded.polled_at`,
      [app.repoId, app.appDir, branch, now()],
    );
  }

  /**
   * Moves the branch's acted-on head to `head` unless it is there already
   * (compare-and-set); true when it moved, so exactly one caller queues its apply.
   */
  async advanceHead(app: AppKey, branch: string, head: string): Promise<boolean> {
    await this.recordPoll(app, branch);
    const changed = await this.#db.run(
      `UPDATE watched_branches SET head_sha = ? WHERE repo_id = ? AND app_dir = ? AND branch = ?
       AND (head_sha IS NULL OR head_sha <> ?)`,
      [head, app.repoId, app.appDir, branch, head],
    );
    return changed === 1;
  }

  /** Forgets the acted-on head, so that the next poll applies the head again (after a crash). */
  async resetHead(app: AppKey): Promise<void> {
    await this.#db.run("UPDATE watched_branches SET head_sha = NULL WHERE repo_id = ? AND app_dir = ?", [
      app.repoId,
      app.appDir,
    ]);
  }

  async savePullRequest(
    repoId: string,
    pr: Omit<PullRequestRecord, "updatedAt" | "plannedHead">,
  ): Promise<void> {
    await this.#db.run(
      `INSERT INTO pull_requests (repo_id, number, state, head_sha, base_ref, from_fork, url, merge_commit_sha, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (repo_id, number) DO UPDATE SET state = excluded.state, head_sha = excluded.head_sha,
         base_ref = coalesce(excluded.base_ref, pull_requests.base_ref), from_fork = excluded.from_fork,
         url = coalesce(excluded.url, pull_requests.url),
         merge_commit_sha = coalesce(excluded.merge_commit_sha, pull_requests.merge_commit_sha),
         updated_at = excluded.updated_at`,
      [
        repoId,
        pr.number,
        pr.state,
        pr.headSha,
        pr.baseRef ?? null,
        pr.fromFork ? 1 : 0,
        pr.url ?? null,
        pr.mergeCommitSha ?? null,
        now(),
      ],
    );
  }

  async getPullRequest(repoId: string, number: number): Promise<PullRequestRecord | undefined> {
    const row = await this.#db.get("SELECT * FROM pull_requests WHERE repo_id = ? AND number = ?", [
      repoId,
      number,
    ]);
    return row ? toPullRequest(row) : undefined;
  }

  async pullRequestForMergeCommit(repoId: string, sha: string): Promise<PullRequestRecord | undefined> {
    const row = await this.#db.get(
      "SELECT * FROM pull_requests WHERE repo_id = ? AND merge_commit_sha = ? ORDER BY updated_at DESC LIMIT 1",
      [repoId, sha],
    );
    return row ? toPullRequest(row) : undefined;
  }

  async recordPlannedHead(repoId: string, number: number, head: string): Promise<void> {
    await this.#db.run("UPDATE pull_requests SET planned_head = ? WHERE repo_id = ? AND number = ?", [
      head,
      repoId,
      number,
    ]);
  }

  // --- events -----------------------------------------------------------------------

  /** Persists an event; for a delivery id seen before, returns the earlier event and duplicate: true. */
  async enqueue(
    scope: string,
    event: NewEvent,
  ): Promise<{ readonly id: string; readonly duplicate: boolean }> {
    const inserted = await this.#db.run(
      `INSERT INTO events (id, scope, kind, lane, stack, commit_sha, payload, source, delivery_id, pr, status, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?) ON CONFLICT (delivery_id) DO NOTHING`,
      [
        event.id,
        scope,
        event.kind,
        event.lane,
        event.stack ?? null,
        event.commit ?? null,
        json(event.payload),
        event.source,
        event.deliveryId ?? null,
        event.pr ?? null,
        now(),
      ],
    );
    if (inserted === 1) return { id: event.id, duplicate: false };
    const earlier = await this.#db.get<{ id: string }>("SELECT id FROM events WHERE delivery_id = ?", [
      event.deliveryId ?? null,
    ]);
    return { id: earlier?.id ?? event.id, duplicate: true };
  }

  /**
   * Claims the oldest queued event whose lane has nothing running, for a
   * lease that the holder renews. A concurrent claim of the same lane by
   * another replica loses on the unique index and gets nothing this time.
   */
  async claimEvent(
    scope: string,
    holder: string,
    leaseMs: number,
    heldLanes: readonly string[] = [],
  ): Promise<EventRecord | undefined> {
    const held = heldLanes.length > 0 ? ` AND q.lane NOT IN (${heldLanes.map(() => "?").join(", ")})` : "";
    try {
      const row = await this.#db.get(
        `UPDATE events SET status = 'running', claimed_by = ?, lease_expires_at = ${this.#now} + ?
         WHERE seq = (
           SELECT q.seq FROM events q
           WHERE q.scope = ? AND q.status = 'queued'${held}
             AND NOT EXISTS (SELECT 1 FROM events r WHERE r.scope = q.scope AND r.lane = q.lane AND r.status = 'running')
           ORDER BY q.seq LIMIT 1${this.#skipLocked})
         AND status = 'queued'
         RETURNING *`,
        [holder, leaseMs, scope, ...heldLanes],
      );
      return row ? toEvent(row) : undefined;
    } catch (error) {
      if (isUniqueViolation(error)) return undefined;
      throw error;
    }
  }

  /**
   * Renews a running event's lease; undefined when the holder lost it (it
   * expired and another replica took over), else whether cancelling it was asked.
   */
  async renewEvent(
    id: string,
    holder: string,
    leaseMs: number,
  ): Promise<{ readonly cancelReason?: string; readonly cancelForce?: boolean } | undefined> {
    const row = await this.#db.get<{ cancel_reason: string | null; cancel_force: number | null }>(
      `UPDATE events SET lease_expires_at = ${this.#now} + ? WHERE id = ? AND claimed_by = ? AND status = 'running'
       RETURNING cancel_reason, cancel_force`,
      [leaseMs, id, holder],
    );
    if (!row) return undefined;
    if (!row.cancel_reason) return {};
    return Number(row.cancel_force) === 1
      ? { cancelReason: row.cancel_reason, cancelForce: true }
      : { cancelReason: row.cancel_reason };
  }

  /** Drops a queued event (it never runs); false when it is not queued (any more). */
  async cancelQueuedEvent(scope: string, id: string, reason: string): Promise<boolean> {
    const changed = await this.#db.run(
      `UPDATE events SET status = 'cancelled', finished_at = ?, error = ?
       WHERE scope = ? AND id = ? AND status = 'queued'`,
      [now(), reason, scope, id],
    );
    return changed === 1;
  }

  /**
   * Asks the holder of a running event, on whichever replica, to cancel it
   * (seen at its next lease renewal); false when it is not running.
   */
  async requestEventCancel(scope: string, id: string, reason: string, force: boolean): Promise<boolean> {
    const changed = await this.#db.run(
      `UPDATE events SET cancel_reason = ?, cancel_force = ? WHERE scope = ? AND id = ? AND status = 'running'`,
      [reason, force ? 1 : 0, scope, id],
    );
    return changed === 1;
  }

  /** Deletes events that ended before `before`; returns how many went. */
  async pruneEvents(scope: string, before: string): Promise<number> {
    return this.#db.run(
      "DELETE FROM events WHERE scope = ? AND status NOT IN ('queued', 'running') AND created_at < ?",
      [scope, before],
    );
  }

  async finishEvent(
    id: string,
    status: Exclude<EventStatus, "queued" | "running">,
    error?: string,
  ): Promise<void> {
    await this.#db.run("UPDATE events SET status = ?, finished_at = ?, error = ? WHERE id = ?", [
      status,
      now(),
      error ?? null,
      id,
    ]);
  }

  async getEvent(id: string): Promise<EventRecord | undefined> {
    const row = await this.#db.get("SELECT * FROM events WHERE id = ?", [id]);
    return row ? toEvent(row) : undefined;
  }

  /** Queued events of a kind created after the given one (for coalescing applies). */
  async newerQueued(scope: string, kind: EventKind, afterId: string): Promise<EventRecord[]> {
    const rows = await this.#db.all(
      `SELECT * FROM events WHERE scope = ? AND kind = ? AND status = 'queued'
       AND seq > (SELECT seq FROM events WHERE id = ?) ORDER BY seq`,
      [scope, kind, afterId],
    );
    return rows.map(toEvent);
  }

  /** Marks queued events of a kind for a pull request superseded, except `keep`. */
  async supersedeQueued(scope: string, kind: EventKind, pr: number, keep?: string): Promise<number> {
    return this.#db.run(
      `UPDATE events SET status = 'superseded', finished_at = ?
       WHERE scope = ? AND kind = ? AND pr = ? AND status = 'queued' AND id <> ?`,
      [now(), scope, kind, pr, keep ?? ""],
    );
  }

  /** Asks the holders of running events of a kind for a pull request to cancel them, except `keep`. */
  async requestCancel(
    scope: string,
    kind: EventKind,
    pr: number,
    reason: string,
    keep?: string,
  ): Promise<string[]> {
    const rows = await this.#db.all<{ id: string }>(
      `UPDATE events SET cancel_reason = ? WHERE scope = ? AND kind = ? AND pr = ? AND status = 'running' AND id <> ?
       RETURNING id`,
      [reason, scope, kind, pr, keep ?? ""],
    );
    return rows.map((row) => row.id);
  }

  /** The queued (or running) event of a kind and stack, if any: for coalescing triggers. */
  async openEvent(
    scope: string,
    kind: EventKind,
    stack: string | undefined,
    statuses: readonly ("queued" | "running")[] = ["queued", "running"],
  ): Promise<EventRecord | undefined> {
    const row = await this.#db.get(
      `SELECT * FROM events WHERE scope = ? AND kind = ? AND coalesce(stack, '') = ?
       AND status IN (${statuses.map(() => "?").join(", ")}) ORDER BY seq LIMIT 1`,
      [scope, kind, stack ?? "", ...statuses],
    );
    return row ? toEvent(row) : undefined;
  }

  /** The newest queued or running event of a kind for a pull request, if any. */
  async openPullRequestEvent(scope: string, kind: EventKind, pr: number): Promise<EventRecord | undefined> {
    const row = await this.#db.get(
      `SELECT * FROM events WHERE scope = ? AND kind = ? AND pr = ? AND status IN ('queued', 'running')
       ORDER BY seq DESC LIMIT 1`,
      [scope, kind, pr],
    );
    return row ? toEvent(row) : undefined;
  }

  async countQueued(scope: string): Promise<number> {
    const row = await this.#db.get<{ n: number }>(
      "SELECT count(*) AS n FROM events WHERE scope = ? AND status = 'queued'",
      [scope],
    );
    return Number(row?.n ?? 0);
  }

  /** The queue: running events, then queued ones, oldest first. */
  async listOpenEvents(scope: string, limit: number): Promise<EventRecord[]> {
    const rows = await this.#db.all(
      `SELECT * FROM events WHERE scope = ? AND status IN ('queued', 'running')
       ORDER BY CASE status WHEN 'running' THEN 0 ELSE 1 END, seq LIMIT ?`,
      [scope, limit],
    );
    return rows.map(toEvent);
  }

  /**
   * After a crash: running events whose holder is gone (every one, with
   * `all`; else those whose lease expired) become interrupted, and so do
   * their running runs. Returns what was interrupted.
   */
  async interruptAbandoned(
    scope: string,
    app: AppKey,
    options: { readonly all: boolean },
  ): Promise<{ events: EventRecord[]; runs: RunRecord[] }> {
    return this.#db.transaction(async (tx) => {
      const expired = options.all ? "" : ` AND lease_expires_at < ${this.#now}`;
      const events = (
        await tx.all(`SELECT * FROM events WHERE scope = ? AND status = 'running'${expired}`, [scope])
      ).map(toEvent);
      const ids = events.map((event) => event.id);
      const runRows = options.all
        ? await tx.all("SELECT * FROM runs WHERE status = 'running' AND repo_id = ? AND app_dir = ?", [
            app.repoId,
            app.appDir,
          ])
        : ids.length === 0
          ? []
          : await tx.all(
              `SELECT * FROM runs WHERE status = 'running' AND event_id IN (${ids.map(() => "?").join(", ")})`,
              ids,
            );
      const ended = now();
      for (const row of runRows) {
        await tx.run("UPDATE runs SET status = 'interrupted', result = 'failed', ended_at = ? WHERE id = ?", [
          ended,
          String(row.id),
        ]);
      }
      for (const id of ids) {
        await tx.run("UPDATE events SET status = 'interrupted', finished_at = ? WHERE id = ?", [ended, id]);
      }
      return { events, runs: runRows.map((row) => ({ ...toRun(row), status: "interrupted" as const })) };
    });
  }

  // --- locks and leases (database clock) -------------------------------------------------

  /** Takes the lock if it is free or its lease expired; false when someone else holds it. */
  async acquireLock(key: string, holder: string, leaseMs: number): Promise<boolean> {
    const changed = await this.#db.run(
      `INSERT INTO locks (key, holder, expires_at) VALUES (?, ?, ${this.#now} + ?)
       ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE locks.expires_at < ${this.#now} OR locks.holder = excluded.holder`,
      [key, holder, leaseMs],
    );
    return changed === 1;
  }

  async renewLock(key: string, holder: string, leaseMs: number): Promise<boolean> {
    const changed = await this.#db.run(
      `UPDATE locks SET expires_at = ${this.#now} + ? WHERE key = ? AND holder = ?`,
      [leaseMs, key, holder],
    );
    return changed === 1;
  }

  async releaseLock(key: string, holder: string): Promise<void> {
    await this.#db.run("DELETE FROM locks WHERE key = ? AND holder = ?", [key, holder]);
  }

  async lockHolder(key: string): Promise<string | undefined> {
    const row = await this.#db.get<{ holder: string }>(
      `SELECT holder FROM locks WHERE key = ? AND expires_at >= ${this.#now}`,
      [key],
    );
    return row?.holder;
  }

  /** Live locks whose key starts with a prefix, e.g. every stack lock of an app. */
  async locksWithPrefix(prefix: string): Promise<Map<string, string>> {
    const rows = await this.#db.all<{ key: string; holder: string }>(
      `SELECT key, holder FROM locks WHERE substr(key, 1, ?) = ? AND expires_at >= ${this.#now}`,
      [prefix.length, prefix],
    );
    return new Map(rows.map((row) => [row.key, row.holder]));
  }

  /** Releases every lock whose holder name starts with a prefix (a dead process's own). */
  async releaseLocksHeldBy(holderPrefix: string): Promise<number> {
    return this.#db.run("DELETE FROM locks WHERE substr(holder, 1, ?) = ?", [
      holderPrefix.length,
      holderPrefix,
    ]);
  }

  // --- Terraform's pg backend, on the same database -----------------------------------------------

  /** Whether Terraform's pg backend keeps a state in the schema (PostgreSQL only). */
  async hasTerraformState(schema: string): Promise<boolean> {
    if (!/^[a-z0-9_]+$/.test(schema)) throw new Error(`not a schema name the runner makes: ${schema}`);
    const table = await this.#db.get<{ name: string | null }>("SELECT to_regclass(?) AS name", [
      `${schema}.states`,
    ]);
    if (!table?.name) return false;
    const row = await this.#db.get(
      `SELECT 1 AS present FROM ${schema}.states WHERE name = 'default' LIMIT 1`,
    );
    return row !== undefined;
  }

  // --- applied folders kept in the database (replicas) -------------------------------------------

  async saveAppliedConfig(key: StackKey, commit: string, archive: Uint8Array): Promise<void> {
    await this.#db.run(
      `INSERT INTO applied_configs (repo_id, app_dir, stack, commit_sha, archive, saved_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (repo_id, app_dir, stack) DO UPDATE SET commit_sha = excluded.commit_sha,
         archive = excluded.archive, saved_at = excluded.saved_at`,
      [key.repoId, key.appDir, key.stack, commit, archive, now()],
    );
  }

  async loadAppliedConfig(key: StackKey): Promise<{ commit: string; archive: Uint8Array } | undefined> {
    const row = await this.#db.get<{ commit_sha: string; archive: Uint8Array }>(
      "SELECT commit_sha, archive FROM applied_configs WHERE repo_id = ? AND app_dir = ? AND stack = ?",
      [key.repoId, key.appDir, key.stack],
    );
    return row ? { commit: row.commit_sha, archive: new Uint8Array(row.archive) } : undefined;
  }
}

function now(): string {
  return new Date().toISOString();
}

function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function parsed(value: unknown): unknown {
  return typeof value === "string" ? JSON.parse(value) : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function optionalNumber(value: unknown): number | undefined {
  return value === null || value === undefined ? undefined : Number(value);
}

function conditions(columns: Record<string, string | undefined>): { where: string; values: SqlValue[] } {
  const clauses: string[] = [];
  const values: SqlValue[] = [];
  for (const [column, value] of Object.entries(columns)) {
    if (value === undefined) continue;
    clauses.push(`${column} = ?`);
    values.push(value);
  }
  return { where: clauses.length > 0 ? `WHERE ${clauses.join(" AND ")}` : "", values };
}

function isUniqueViolation(error: unknown): boolean {
  return typeof error === "object" && error !== null && "code" in error && error.code === "23505";
}

function toRun(row: Row): RunRecord {
  const errorCode = text(row.error_code);
  return withoutEmpty({
    id: row.id,
    kind: row.kind,
    repoId: row.repo_id,
    appDir: row.app_dir,
    stack: row.stack,
    commit: row.commit_sha,
    trigger: row.trigger,
    pr: optionalNumber(row.pr),
    origin: parsed(row.origin),
    status: row.status,
    result: text(row.result),
    startedAt: row.started_at,
    endedAt: text(row.ended_at),
    summary: parsed(row.summary),
    resources: parsed(row.resources),
    violations: parsed(row.violations),
    plan: parsed(row.plan),
    log: text(row.log),
    engine: text(row.engine),
    engineVersion: text(row.engine_version),
    providers: parsed(row.providers),
    error: errorCode ? { code: errorCode, message: text(row.error_message) ?? "" } : undefined,
    review: parsed(row.review),
    steps: parsed(row.steps),
    cancel: parsed(row.cancel),
    eventId: text(row.event_id),
  }) as unknown as RunRecord;
}

function toAuditEntry(row: Row): AuditEntry {
  return withoutEmpty({
    runId: row.run_id,
    repoId: row.repo_id,
    appDir: row.app_dir,
    stack: row.stack,
    kind: row.kind,
    commit: row.commit_sha,
    result: row.result,
    at: row.at,
    trigger: row.trigger,
    origin: parsed(row.origin),
    commitAuthor: text(row.commit_author),
    summary: parsed(row.summary),
    resources: parsed(row.resources),
    environment: text(row.environment),
    promotionHash: text(row.promotion_hash),
    error: text(row.error),
  }) as unknown as AuditEntry;
}

function toEvent(row: Row): EventRecord {
  return withoutEmpty({
    id: row.id,
    kind: row.kind,
    lane: row.lane,
    stack: text(row.stack),
    commit: text(row.commit_sha),
    payload: parsed(row.payload),
    source: row.source,
    deliveryId: text(row.delivery_id),
    pr: optionalNumber(row.pr),
    status: row.status,
    createdAt: row.created_at,
    claimedBy: text(row.claimed_by),
    error: text(row.error),
  }) as unknown as EventRecord;
}

function toStack(row: Row): StackRecord {
  return withoutEmpty({
    repoId: row.repo_id,
    appDir: row.app_dir,
    stack: row.name,
    lastAppliedCommit: text(row.last_applied_commit),
    lastAppliedHash: text(row.last_applied_hash),
    lastAppliedAt: text(row.last_applied_at),
    lastApplyStatus: text(row.last_apply_status),
    driftStatus: text(row.drift_status),
    driftFingerprint: text(row.drift_fingerprint),
    driftCheckedAt: text(row.drift_checked_at),
    driftFailures: Number(row.drift_failures ?? 0),
  }) as unknown as StackRecord;
}

function toSnapshot(row: Row): Snapshot {
  return withoutEmpty({
    repoId: row.repo_id,
    appDir: row.app_dir,
    commit: row.commit_sha,
    stacks: JSON.parse(String(row.stacks)) as SnapshotStack[],
    policyFile: text(row.policy_file),
    synthesizedAt: row.synthesized_at,
  }) as unknown as Snapshot;
}

function toWatchedBranch(row: Row): WatchedBranch {
  return withoutEmpty({
    branch: row.branch,
    headSha: row.head_sha,
    polledAt: row.polled_at,
  }) as unknown as WatchedBranch;
}

function toPullRequest(row: Row): PullRequestRecord {
  return withoutEmpty({
    number: Number(row.number),
    state: row.state,
    headSha: row.head_sha,
    baseRef: text(row.base_ref),
    fromFork: Number(row.from_fork) === 1,
    url: text(row.url),
    mergeCommitSha: text(row.merge_commit_sha),
    plannedHead: text(row.planned_head),
    updatedAt: row.updated_at,
  }) as unknown as PullRequestRecord;
}

function withoutEmpty(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(record).filter(([, value]) => value !== undefined && value !== null),
  );
}
