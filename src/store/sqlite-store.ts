import { mkdir } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import type {
  ApplyStatus,
  EventKind,
  EventRecord,
  EventStatus,
  NewEvent,
  NewRun,
  RunKind,
  RunOutcome,
  RunRecord,
  RunStatus,
  StackKey,
  StackRecord,
  Store,
} from "./store.ts";

/** Bumped with each change to SCHEMA, which then gains the statements that migrate older files. */
const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  repo_id TEXT NOT NULL,
  app_dir TEXT NOT NULL,
  stack TEXT NOT NULL,
  commit_sha TEXT NOT NULL,
  trigger TEXT NOT NULL,
  pr INTEGER,
  status TEXT NOT NULL,
  result TEXT,
  started_at TEXT NOT NULL,
  ended_at TEXT,
  summary TEXT,
  resources TEXT,
  plan TEXT,
  log TEXT,
  engine TEXT,
  engine_version TEXT,
  providers TEXT,
  error_code TEXT,
  error_message TEXT,
  pgid INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_stack ON runs (repo_id, app_dir, stack, started_at);
CREATE TABLE IF NOT EXISTS stacks (
  repo_id TEXT NOT NULL,
  app_dir TEXT NOT NULL,
  name TEXT NOT NULL,
  last_applied_commit TEXT,
  last_applied_hash TEXT,
  last_applied_at TEXT,
  last_apply_status TEXT,
  drift_status TEXT,
  drift_fingerprint TEXT,
  drift_checked_at TEXT,
  PRIMARY KEY (repo_id, app_dir, name)
);
CREATE TABLE IF NOT EXISTS commit_hashes (
  repo_id TEXT NOT NULL,
  app_dir TEXT NOT NULL,
  commit_sha TEXT NOT NULL,
  hashes TEXT NOT NULL,
  PRIMARY KEY (repo_id, app_dir, commit_sha)
);
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  stack TEXT,
  commit_sha TEXT,
  payload TEXT,
  source TEXT NOT NULL,
  delivery_id TEXT UNIQUE,
  pr INTEGER,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  claimed_by TEXT,
  finished_at TEXT,
  error TEXT
);
CREATE INDEX IF NOT EXISTS events_queued ON events (status, kind);
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS locks (
  key TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
`;

type Row = Record<string, SQLInputValue>;

/** The embedded store: one SQLite file in the data directory (node:sqlite, WAL). */
export class SqliteStore implements Store {
  readonly #db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  static async open(file: string): Promise<SqliteStore> {
    await mkdir(path.dirname(file), { recursive: true });
    const db = new DatabaseSync(file, { timeout: 10_000 });
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
    const { user_version: version } = db.prepare("PRAGMA user_version").get() as { user_version: number };
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new Error(
        `${file}: written by a newer gitops-runner (schema ${version}, this one knows ${SCHEMA_VERSION})`,
      );
    }
    db.exec(SCHEMA);
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    return new SqliteStore(db);
  }

  async startRun(run: NewRun): Promise<void> {
    this.#db
      .prepare(
        `INSERT INTO runs (id, kind, repo_id, app_dir, stack, commit_sha, trigger, pr, status, started_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)`,
      )
      .run(
        run.id,
        run.kind,
        run.repoId,
        run.appDir,
        run.stack,
        run.commit,
        run.trigger,
        run.pr ?? null,
        now(),
      );
  }

  async finishRun(id: string, outcome: RunOutcome): Promise<void> {
    this.#db
      .prepare(
        `UPDATE runs SET status = ?, result = ?, ended_at = ?, summary = ?, resources = ?, plan = ?, log = ?,
           engine = ?, engine_version = ?, providers = ?, error_code = ?, error_message = ?
         WHERE id = ?`,
      )
      .run(
        outcome.status,
        outcome.result,
        now(),
        json(outcome.summary),
        json(outcome.resources),
        json(outcome.plan),
        outcome.log,
        outcome.engine ?? null,
        outcome.engineVersion ?? null,
        json(outcome.providers),
        outcome.error?.code ?? null,
        outcome.error?.message ?? null,
        id,
      );
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const row = this.#db.prepare("SELECT * FROM runs WHERE id = ?").get(id) as Row | undefined;
    return row ? toRun(row) : undefined;
  }

  async listRuns(filter: Partial<StackKey> & { kind?: RunKind }): Promise<RunRecord[]> {
    const clauses: string[] = [];
    const values: SQLInputValue[] = [];
    const add = (column: string, value: string | undefined) => {
      if (value === undefined) return;
      clauses.push(`${column} = ?`);
      values.push(value);
    };
    add("repo_id", filter.repoId);
    add("app_dir", filter.appDir);
    add("stack", filter.stack);
    add("kind", filter.kind);
    const where = clauses.length > 0 ? `WHERE ${clauses.join(" AND ")}` : "";
    const rows = this.#db
      .prepare(`SELECT * FROM runs ${where} ORDER BY started_at, rowid`)
      .all(...values) as Row[];
    return rows.map(toRun);
  }

  async getStack(key: StackKey): Promise<StackRecord | undefined> {
    const row = this.#db
      .prepare("SELECT * FROM stacks WHERE repo_id = ? AND app_dir = ? AND name = ?")
      .get(key.repoId, key.appDir, key.stack) as Row | undefined;
    return row ? toStack(row) : undefined;
  }

  async listStacks(repoId: string, appDir: string): Promise<StackRecord[]> {
    const rows = this.#db
      .prepare("SELECT * FROM stacks WHERE repo_id = ? AND app_dir = ? ORDER BY name")
      .all(repoId, appDir) as Row[];
    return rows.map(toStack);
  }

  async recordApplied(key: StackKey, commit: string, hash: string): Promise<void> {
    this.#upsertStack(key, {
      last_applied_commit: commit,
      last_applied_hash: hash,
      last_applied_at: now(),
      last_apply_status: "succeeded",
    });
  }

  async recordApplyProblem(key: StackKey, status: Exclude<ApplyStatus, "succeeded">): Promise<void> {
    this.#upsertStack(key, { last_apply_status: status });
  }

  async recordDrift(key: StackKey, status: string, fingerprint: string | undefined): Promise<void> {
    this.#upsertStack(key, {
      drift_status: status,
      drift_fingerprint: fingerprint ?? null,
      drift_checked_at: now(),
    });
  }

  async getCommitHashes(
    repoId: string,
    appDir: string,
    commit: string,
  ): Promise<Record<string, string> | undefined> {
    const row = this.#db
      .prepare("SELECT hashes FROM commit_hashes WHERE repo_id = ? AND app_dir = ? AND commit_sha = ?")
      .get(repoId, appDir, commit) as { hashes: string } | undefined;
    return row ? (JSON.parse(row.hashes) as Record<string, string>) : undefined;
  }

  async saveCommitHashes(
    repoId: string,
    appDir: string,
    commit: string,
    hashes: Record<string, string>,
  ): Promise<void> {
    this.#db
      .prepare(
        `INSERT INTO commit_hashes (repo_id, app_dir, commit_sha, hashes) VALUES (?, ?, ?, ?)
         ON CONFLICT (repo_id, app_dir, commit_sha) DO UPDATE SET hashes = excluded.hashes`,
      )
      .run(repoId, appDir, commit, JSON.stringify(hashes));
  }

  async enqueue(event: NewEvent): Promise<{ readonly id: string; readonly duplicate: boolean }> {
    const result = this.#db
      .prepare(
        `INSERT INTO events (id, kind, stack, commit_sha, payload, source, delivery_id, pr, status, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?) ON CONFLICT (delivery_id) DO NOTHING`,
      )
      .run(
        event.id,
        event.kind,
        event.stack ?? null,
        event.commit ?? null,
        json(event.payload),
        event.source,
        event.deliveryId ?? null,
        event.pr ?? null,
        now(),
      );
    if (result.changes === 1) return { id: event.id, duplicate: false };
    const earlier = this.#db
      .prepare("SELECT id FROM events WHERE delivery_id = ?")
      .get(event.deliveryId ?? null) as { id: string } | undefined;
    return { id: earlier?.id ?? event.id, duplicate: true };
  }

  async claimEvent(holder: string): Promise<EventRecord | undefined> {
    const row = this.#db
      .prepare(
        `UPDATE events SET status = 'running', claimed_by = ?
         WHERE rowid = (SELECT rowid FROM events WHERE status = 'queued' ORDER BY rowid LIMIT 1) AND status = 'queued'
         RETURNING *`,
      )
      .get(holder) as Row | undefined;
    return row ? toEvent(row) : undefined;
  }

  async finishEvent(
    id: string,
    status: Exclude<EventStatus, "queued" | "running">,
    error?: string,
  ): Promise<void> {
    this.#db
      .prepare("UPDATE events SET status = ?, finished_at = ?, error = ? WHERE id = ?")
      .run(status, now(), error ?? null, id);
  }

  async newerQueued(kind: EventKind, afterId: string): Promise<EventRecord[]> {
    const rows = this.#db
      .prepare(
        `SELECT * FROM events WHERE kind = ? AND status = 'queued'
         AND rowid > (SELECT rowid FROM events WHERE id = ?) ORDER BY rowid`,
      )
      .all(kind, afterId) as Row[];
    return rows.map(toEvent);
  }

  async supersedeQueued(kind: EventKind, pr: number): Promise<number> {
    const result = this.#db
      .prepare(
        "UPDATE events SET status = 'superseded', finished_at = ? WHERE kind = ? AND pr = ? AND status = 'queued'",
      )
      .run(now(), kind, pr);
    return Number(result.changes);
  }

  async countQueued(): Promise<number> {
    const row = this.#db.prepare("SELECT count(*) AS n FROM events WHERE status = 'queued'").get() as {
      n: number;
    };
    return row.n;
  }

  async hasOpenEvent(kind: EventKind, stack: string | undefined): Promise<boolean> {
    const row = this.#db
      .prepare(
        `SELECT 1 FROM events WHERE kind = ? AND stack IS ? AND status IN ('queued', 'running') LIMIT 1`,
      )
      .get(kind, stack ?? null);
    return row !== undefined;
  }

  async queuedEventId(kind: EventKind): Promise<string | undefined> {
    const row = this.#db
      .prepare("SELECT id FROM events WHERE kind = ? AND status = 'queued' ORDER BY rowid LIMIT 1")
      .get(kind) as { id: string } | undefined;
    return row?.id;
  }

  async interruptRunning(): Promise<RunRecord[]> {
    const rows = this.#db
      .prepare("SELECT * FROM runs WHERE status = 'running' ORDER BY rowid")
      .all() as Row[];
    this.#db
      .prepare(
        "UPDATE runs SET status = 'interrupted', result = 'failed', ended_at = ? WHERE status = 'running'",
      )
      .run(now());
    this.#db
      .prepare("UPDATE events SET status = 'interrupted', finished_at = ? WHERE status = 'running'")
      .run(now());
    return rows.map((row) => ({ ...toRun(row), status: "interrupted" }));
  }

  async recordProcess(runId: string, pgid: number | undefined): Promise<void> {
    this.#db.prepare("UPDATE runs SET pgid = ? WHERE id = ?").run(pgid ?? null, runId);
  }

  async runProcess(runId: string): Promise<number | undefined> {
    const row = this.#db.prepare("SELECT pgid FROM runs WHERE id = ?").get(runId) as
      | { pgid: number | null }
      | undefined;
    return row?.pgid ?? undefined;
  }

  async releaseAllLocks(): Promise<void> {
    this.#db.exec("DELETE FROM locks");
  }

  async getValue(key: string): Promise<string | undefined> {
    const row = this.#db.prepare("SELECT value FROM kv WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  async setValue(key: string, value: string): Promise<void> {
    this.#db
      .prepare(
        "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      )
      .run(key, value);
  }

  async acquireLock(key: string, holder: string, leaseMs: number): Promise<boolean> {
    const at = Date.now();
    const result = this.#db
      .prepare(
        `INSERT INTO locks (key, holder, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE locks.expires_at < ? OR locks.holder = excluded.holder`,
      )
      .run(key, holder, at + leaseMs, at);
    return result.changes === 1;
  }

  async renewLock(key: string, holder: string, leaseMs: number): Promise<boolean> {
    const result = this.#db
      .prepare("UPDATE locks SET expires_at = ? WHERE key = ? AND holder = ?")
      .run(Date.now() + leaseMs, key, holder);
    return result.changes === 1;
  }

  async releaseLock(key: string, holder: string): Promise<void> {
    this.#db.prepare("DELETE FROM locks WHERE key = ? AND holder = ?").run(key, holder);
  }

  async lockHolder(key: string): Promise<string | undefined> {
    const row = this.#db
      .prepare("SELECT holder FROM locks WHERE key = ? AND expires_at >= ?")
      .get(key, Date.now()) as { holder: string } | undefined;
    return row?.holder;
  }

  async close(): Promise<void> {
    this.#db.close();
  }

  #upsertStack(key: StackKey, fields: Row): void {
    const columns = Object.keys(fields);
    this.#db
      .prepare(
        `INSERT INTO stacks (repo_id, app_dir, name, ${columns.join(", ")})
         VALUES (?, ?, ?, ${columns.map(() => "?").join(", ")})
         ON CONFLICT (repo_id, app_dir, name) DO UPDATE SET ${columns.map((column) => `${column} = excluded.${column}`).join(", ")}`,
      )
      .run(key.repoId, key.appDir, key.stack, ...Object.values(fields));
  }
}

function now(): string {
  return new Date().toISOString();
}

function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function parsed(value: SQLInputValue | undefined): unknown {
  return typeof value === "string" ? JSON.parse(value) : undefined;
}

function text(value: SQLInputValue | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function toRun(row: Row): RunRecord {
  const errorCode = text(row.error_code);
  const record: Record<string, unknown> = {
    id: row.id,
    kind: row.kind as RunKind,
    repoId: row.repo_id,
    appDir: row.app_dir,
    stack: row.stack,
    commit: row.commit_sha,
    trigger: row.trigger,
    pr: typeof row.pr === "number" ? row.pr : undefined,
    status: row.status as RunStatus,
    result: text(row.result),
    startedAt: row.started_at,
    endedAt: text(row.ended_at),
    summary: parsed(row.summary),
    resources: parsed(row.resources),
    plan: parsed(row.plan),
    log: text(row.log),
    engine: text(row.engine),
    engineVersion: text(row.engine_version),
    providers: parsed(row.providers),
    error: errorCode ? { code: errorCode, message: text(row.error_message) ?? "" } : undefined,
  };
  return withoutUndefined(record) as unknown as RunRecord;
}

function toEvent(row: Row): EventRecord {
  return withoutUndefined({
    id: row.id,
    kind: row.kind,
    stack: text(row.stack),
    commit: text(row.commit_sha),
    payload: parsed(row.payload),
    source: row.source,
    deliveryId: text(row.delivery_id),
    pr: typeof row.pr === "number" ? row.pr : undefined,
    status: row.status,
    createdAt: row.created_at,
    error: text(row.error),
  }) as unknown as EventRecord;
}

function toStack(row: Row): StackRecord {
  return withoutUndefined({
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
  }) as unknown as StackRecord;
}

function withoutUndefined(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(record).filter(([, value]) => value !== undefined && value !== null),
  );
}
