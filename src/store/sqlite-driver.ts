import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import type { Row, SqlDriver, SqlExecutor, SqlValue } from "./sql.ts";

/**
 * The embedded database: one SQLite file (node:sqlite, WAL). Statements run
 * synchronously; a transaction holds every other caller back until it ends,
 * so that no statement of theirs lands inside it.
 */
export class SqliteDriver implements SqlDriver {
  readonly dialect = "sqlite";
  readonly location: string;
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  #idle: Promise<void> = Promise.resolve();

  constructor(file: string) {
    this.location = file;
    this.#db = new DatabaseSync(file, { timeout: 10_000 });
    this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
  }

  async all<T extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    await this.#idle;
    return this.#direct.all<T>(sql, params);
  }

  async get<T extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    await this.#idle;
    return this.#direct.get<T>(sql, params);
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    await this.#idle;
    return this.#direct.run(sql, params);
  }

  async exec(sql: string): Promise<void> {
    await this.#idle;
    this.#db.exec(sql);
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    let release = () => {};
    const previous = this.#idle;
    this.#idle = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = await work(this.#direct);
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw error;
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    await this.#idle;
    this.#db.close();
  }

  /** Statements without waiting for a transaction: for the transaction's own work. */
  readonly #direct: SqlExecutor = {
    all: async <T extends Row>(sql: string, params: readonly SqlValue[] = []) =>
      this.#statement(sql).all(...(params as SQLInputValue[])) as T[],
    get: async <T extends Row>(sql: string, params: readonly SqlValue[] = []) =>
      this.#statement(sql).get(...(params as SQLInputValue[])) as T | undefined,
    run: async (sql: string, params: readonly SqlValue[] = []) =>
      Number(this.#statement(sql).run(...(params as SQLInputValue[])).changes),
  };

  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }
}
