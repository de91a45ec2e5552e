import path from "node:path";
import type { RunnerConfig } from "../config/runner-config.ts";
import { RunnerError } from "../errors.ts";
import { migrate } from "./migrations.ts";
import type { SqlDriver } from "./sql.ts";
import { SqlStore } from "./sql-store.ts";
import { SqliteDriver } from "./sqlite-driver.ts";

/**
 * Opens the store the configuration names (the embedded SQLite file in the
 * data directory by default) and brings its schema up to date.
 */
export async function openStore(
  config: RunnerConfig,
  env: Readonly<Record<string, string | undefined>>,
  dataDir: string,
): Promise<SqlStore> {
  return new SqlStore(await openDriver(config, env, dataDir));
}

/** The configured database, migrated to the newest schema. */
export async function openDriver(
  config: RunnerConfig,
  env: Readonly<Record<string, string | undefined>>,
  dataDir: string,
): Promise<SqlDriver> {
  let driver: SqlDriver;
  if (config.store.type === "postgres") {
    const url = env[config.store.urlEnv];
    if (!url) {
      throw new RunnerError(
        "CONFIG_INVALID",
        `store.urlEnv: the environment variable ${config.store.urlEnv} is not set`,
      );
    }
    const { PostgresDriver } = await import("./postgres-driver.ts");
    driver = await PostgresDriver.connect(url);
  } else {
    driver = new SqliteDriver(path.join(dataDir, "runner.db"));
  }
  try {
    await migrate(driver);
  } catch (error) {
    await driver.close();
    throw error;
  }
  return driver;
}
