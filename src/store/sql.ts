/**
 * The small SQL surface both embedded SQLite and PostgreSQL provide to the
 * store. Statements use `?` placeholders; a driver rewrites them for its
 * engine. Dialect differences that matter to the store (the clock, claiming
 * with SKIP LOCKED, column types) are named here, not scattered.
 */
export type SqlValue = string | number | bigint | null | Uint8Array;

export type Row = Record<string, unknown>;

export interface SqlExecutor {
  all<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  get<T extends Row = Row>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** Runs a statement; returns the number of rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
}

export interface SqlDriver extends SqlExecutor {
  readonly dialect: "sqlite" | "postgres";
  /** Where the database is, for messages: a file, or host:port/database (never a password). */
  readonly location: string;
  /** Several statements, no parameters (migrations). */
  exec(sql: string): Promise<void>;
  /** Runs `work` in one transaction; nothing else runs on the same connection meanwhile. */
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Per-dialect fragments of SQL. */
export interface Dialect {
  /** The database's clock, in epoch milliseconds, as an integer expression. */
  readonly nowMs: string;
  /** An auto-incrementing integer primary key column type. */
  readonly serial: string;
  readonly blob: string;
  readonly bigint: string;
  /** Row locking for a claim: " FOR UPDATE SKIP LOCKED" or "". */
  readonly skipLocked: string;
}

export const DIALECTS: Readonly<Record<SqlDriver["dialect"], Dialect>> = {
  sqlite: {
    nowMs: "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
    serial: "INTEGER PRIMARY KEY AUTOINCREMENT",
    blob: "BLOB",
    bigint: "INTEGER",
    skipLocked: "",
  },
  postgres: {
    nowMs: "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)",
    serial: "BIGSERIAL PRIMARY KEY",
    blob: "BYTEA",
    bigint: "BIGINT",
    skipLocked: " FOR UPDATE SKIP LOCKED",
  },
};
