import pg from "pg";
import { RunnerError } from "../errors.ts";
import type { Row, SqlDriver, SqlExecutor, SqlValue } from "./sql.ts";

const INT8 = 20;

/**
 * PostgreSQL, shared by replicas: a small connection pool. Statements written
 * with `?` placeholders are numbered for it. A connection that drops is
 * replaced by the pool; the caller sees the failing statement's error.
 */
export class PostgresDriver implements SqlDriver {
  readonly dialect = "postgres";
  readonly location: string;
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool, location: string) {
    this.#pool = pool;
    this.location = location;
  }

  /** Connects and checks the connection; an unreachable database names its host, never the password. */
  static async connect(url: string): Promise<PostgresDriver> {
    const location = describe(url);
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 30_000,
      application_name: "gitops-runner",
      types: {
        getTypeParser: ((oid: number, format?: "text" | "binary") =>
          oid === INT8 ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // An idle connection that breaks (the server restarted) must not end the process.
    pool.on("error", () => undefined);
    try {
      await pool.query("SELECT 1");
    } catch (error) {
      await pool.end().catch(() => undefined);
      const reason = error instanceof Error ? error.message.replaceAll(url, location) : String(error);
      throw new RunnerError("STORE_UNREACHABLE", `database ${location}: cannot connect: ${reason}`, {
        cause: error,
      });
    }
    return new PostgresDriver(pool, location);
  }

  all<T extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return query<T>(this.#pool, sql, params).then((result) => result.rows);
  }

  async get<T extends Row = Row>(sql: string, params: readonly SqlValue[] = []): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return (await query(this.#pool, sql, params)).rowCount ?? 0;
  }

  async exec(sql: string): Promise<void> {
    await this.#pool.query(sql);
  }

  async transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      const tx: SqlExecutor = {
        all: async <R extends Row>(sql: string, params: readonly SqlValue[] = []) =>
          (await query<R>(client, sql, params)).rows,
        get: async <R extends Row>(sql: string, params: readonly SqlValue[] = []) =>
          (await query<R>(client, sql, params)).rows[0],
        run: async (sql: string, params: readonly SqlValue[] = []) =>
          (await query(client, sql, params)).rowCount ?? 0,
      };
      const result = await work(tx);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

function query<T extends Row>(
  on: pg.Pool | pg.PoolClient,
  sql: string,
  params: readonly SqlValue[],
): Promise<pg.QueryResult<T>> {
  let index = 0;
  const numbered = sql.replace(/\?/g, () => `$${++index}`);
  return on.query<T>(numbered, params as unknown[]);
}

/** host:port/database of a connection URL, for messages: never the user's password. */
export function describe(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || "localhost"}:${parsed.port || "5432"}${parsed.pathname || "/"}`;
  } catch {
    return "(an unparsable connection URL)";
  }
}
