import { RunnerError } from "../errors.ts";
import { DIALECTS, type Dialect, type SqlDriver, type SqlExecutor } from "./sql.ts";

/**
 * The store's schema, as numbered migrations applied in order at start. Each
 * is written once for both engines; `d` fills in what differs between them.
 * A database whose schema is newer than the newest migration here was written
 * by a newer runner, which this one refuses to touch.
 */
interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: (d: Dialect) => string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "runs, stacks, commit hashes, events, values and locks",
    sql: (d) => `
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
  expires_at ${d.bigint} NOT NULL
);`,
  },
  {
    version: 2,
    description:
      "events in lanes with leases and cancel requests; snapshots of synthesized commits; watched branches and pull requests as tables; applied folders; drift failures",
    sql: (d) => `
DROP TABLE events;
CREATE TABLE events (
  seq ${d.serial},
  id TEXT NOT NULL UNIQUE,
  scope TEXT NOT NULL,
  kind TEXT NOT NULL,
  lane TEXT NOT NULL,
  stack TEXT,
  commit_sha TEXT,
  payload TEXT,
  source TEXT NOT NULL,
  delivery_id TEXT UNIQUE,
  pr INTEGER,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  claimed_by TEXT,
  lease_expires_at ${d.bigint},
  cancel_reason TEXT,
  finished_at TEXT,
  error TEXT
);
CREATE INDEX events_queued ON events (scope, status, seq);
CREATE UNIQUE INDEX events_one_running_per_lane ON events (scope, lane) WHERE status = 'running';
ALTER TABLE runs ADD COLUMN event_id TEXT;
ALTER TABLE runs ADD COLUMN host TEXT;
CREATE INDEX runs_by_start ON runs (repo_id, app_dir, started_at);
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
ALTER TABLE stacks ADD COLUMN drift_failures INTEGER NOT NULL DEFAULT 0;
DROP TABLE commit_hashes;
DROP TABLE kv;
CREATE TABLE snapshots (
  repo_id TEXT NOT NULL,
  app_dir TEXT NOT NULL,
  commit_sha TEXT NOT NULL,
  stacks TEXT NOT NULL,
  policy_file TEXT,
  synthesized_at TEXT NOT NULL,
  PRIMARY KEY (repo_id, app_dir, commit_sha)
);
CREATE TABLE watched_branches (
  repo_id TEXT NOT NULL,
  app_dir TEXT NOT NULL,
  branch TEXT NOT NULL,
  head_sha TEXT,
  polled_at TEXT,
  PRIMARY KEY (repo_id, app_dir, branch)
);
CREATE TABLE pull_requests (
  repo_id TEXT NOT NULL,
  number INTEGER NOT NULL,
  state TEXT NOT NULL,
  head_sha TEXT NOT NULL,
  base_ref TEXT,
  from_fork INTEGER NOT NULL,
  url TEXT,
  merge_commit_sha TEXT,
  planned_head TEXT,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (repo_id, number)
);
CREATE INDEX pull_requests_by_merge ON pull_requests (repo_id, merge_commit_sha);
CREATE TABLE applied_configs (
  repo_id TEXT NOT NULL,
  app_dir TEXT NOT NULL,
  stack TEXT NOT NULL,
  commit_sha TEXT NOT NULL,
  archive ${d.blob} NOT NULL,
  saved_at TEXT NOT NULL,
  PRIMARY KEY (repo_id, app_dir, stack)
);`,
  },
  {
    version: 3,
    description:
      "who and what triggered each run, the policy checks' violations, and the audit trail of applies (kept past run retention)",
    sql: () => `
ALTER TABLE runs ADD COLUMN origin TEXT;
ALTER TABLE runs ADD COLUMN violations TEXT;
CREATE TABLE audit (
  run_id TEXT PRIMARY KEY,
  repo_id TEXT NOT NULL,
  app_dir TEXT NOT NULL,
  stack TEXT NOT NULL,
  kind TEXT NOT NULL,
  commit_sha TEXT NOT NULL,
  result TEXT NOT NULL,
  at TEXT NOT NULL,
  trigger TEXT NOT NULL,
  origin TEXT NOT NULL,
  commit_author TEXT,
  summary TEXT NOT NULL,
  resources TEXT NOT NULL,
  environment TEXT,
  promotion_hash TEXT,
  error TEXT
);
CREATE INDEX audit_by_time ON audit (repo_id, app_dir, at);
CREATE INDEX audit_by_stack ON audit (repo_id, app_dir, stack, at);
CREATE INDEX audit_by_promotion ON audit (repo_id, app_dir, stack, promotion_hash);`,
  },
  {
    version: 4,
    description:
      "a run's comparison with the plan reviewed on its pull request; runs found by pull request and commit",
    sql: () => `
ALTER TABLE runs ADD COLUMN review TEXT;
CREATE INDEX runs_by_pull_request ON runs (repo_id, app_dir, pr, commit_sha);`,
  },
  {
    version: 5,
    description:
      "the steps of runs and cancels asked of them; forced cancels of events; suspensions and resumptions stored per stack; freezes of applies",
    sql: () => `
ALTER TABLE runs ADD COLUMN steps TEXT;
ALTER TABLE runs ADD COLUMN cancel TEXT;
CREATE INDEX runs_by_event ON runs (event_id);
ALTER TABLE events ADD COLUMN cancel_force INTEGER NOT NULL DEFAULT 0;
CREATE TABLE stack_overrides (
  repo_id TEXT NOT NULL,
  app_dir TEXT NOT NULL,
  stack TEXT NOT NULL,
  suspended INTEGER NOT NULL,
  reason TEXT,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (repo_id, app_dir, stack)
);
CREATE TABLE freezes (
  repo_id TEXT NOT NULL,
  app_dir TEXT NOT NULL,
  reason TEXT NOT NULL,
  since TEXT NOT NULL,
  until TEXT,
  PRIMARY KEY (repo_id, app_dir)
);`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.at(-1)?.version ?? 0;

/**
 * Brings the database to the newest schema, each migration in its own
 * transaction with its version recorded; refuses a database that is newer.
 * On PostgreSQL, replicas that start together take turns under an advisory lock.
 */
export async function migrate(driver: SqlDriver): Promise<{ from: number; to: number }> {
  // Replicas that start together take turns: a transaction-scoped advisory lock on PostgreSQL,
  // the write lock of BEGIN IMMEDIATE on SQLite.
  const serialize = async (tx: SqlExecutor) => {
    if (driver.dialect === "postgres") await tx.get("SELECT pg_advisory_xact_lock(7212026) AS locked");
  };
  await driver.transaction(async (tx) => {
    await serialize(tx);
    await tx.run(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)",
    );
  });
  const from = await currentVersion(driver);
  if (from > SCHEMA_VERSION) {
    throw new RunnerError(
      "STORE_SCHEMA_NEWER",
      `${driver.location}: the database schema is version ${from}, written by a newer gitops-runner; this one knows up to ${SCHEMA_VERSION} and will not change it`,
    );
  }
  for (const migration of MIGRATIONS.filter((candidate) => candidate.version > from)) {
    await driver.transaction(async (tx) => {
      await serialize(tx);
      const applied = await tx.get("SELECT version FROM schema_migrations WHERE version = ?", [
        migration.version,
      ]);
      if (applied) return;
      for (const statement of splitStatements(migration.sql(DIALECTS[driver.dialect])))
        await tx.run(statement);
      await tx.run("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)", [
        migration.version,
        migration.description,
        new Date().toISOString(),
      ]);
    });
  }
  return { from, to: SCHEMA_VERSION };
}

async function currentVersion(driver: SqlDriver): Promise<number> {
  const row = await driver.get<{ version: number | null }>(
    "SELECT max(version) AS version FROM schema_migrations",
  );
  const recorded = Number(row?.version ?? 0);
  if (recorded > 0 || driver.dialect !== "sqlite") return recorded;
  // Files written before schema_migrations existed carry their version in user_version.
  const legacy = await driver.get<{ user_version: number }>("PRAGMA user_version");
  return Number(legacy?.user_version ?? 0);
}

function splitStatements(sql: string): string[] {
  return sql
    .split(/;\s*\n/)
    .map((statement) => statement.trim().replace(/;$/, ""))
    .filter((statement) => statement.length > 0);
}
