import { RunnerError } from "../errors.ts";
import type { SqlDriver, SqlValue } from "./sql.ts";

/**
 * The tables that hold what a runner knows, in an order that copies safely.
 * Locks are not copied: they belong to processes of the old installation.
 */
const TABLES = [
  "runs",
  "stacks",
  "snapshots",
  "watched_branches",
  "pull_requests",
  "applied_configs",
  "events",
  "audit",
  "stack_overrides",
  "freezes",
] as const;

/**
 * Copies every record of one store into another of the same schema version
 * (the embedded file into PostgreSQL). The target must be empty. Events that
 * were running are copied as interrupted; their order is kept.
 */
export async function copyRecords(source: SqlDriver, target: SqlDriver): Promise<Record<string, number>> {
  for (const table of TABLES) {
    const row = await target.get<{ n: number }>(`SELECT count(*) AS n FROM ${table}`);
    if (Number(row?.n ?? 0) > 0) {
      throw new RunnerError(
        "CONFIG_INVALID",
        `${target.location}: table ${table} already holds records; copy into an empty database`,
      );
    }
  }
  const counts: Record<string, number> = {};
  await target.transaction(async (tx) => {
    for (const table of TABLES) {
      const rows = await source.all(`SELECT * FROM ${table}${table === "events" ? " ORDER BY seq" : ""}`);
      for (const row of rows) {
        const columns = Object.keys(row).filter((column) => !(table === "events" && column === "seq"));
        const values = columns.map((column) => {
          const value = row[column] as SqlValue;
          return table === "events" && column === "status" && value === "running" ? "interrupted" : value;
        });
        await tx.run(
          `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
          values,
        );
      }
      counts[table] = rows.length;
    }
  });
  return counts;
}
