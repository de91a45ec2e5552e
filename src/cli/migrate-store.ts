import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Logger } from "pino";
import { createLogger, defaultDataDir, type Environment, findEngine, redactorFor } from "../composition.ts";
import { type RunnerConfig, readRunnerConfig } from "../config/runner-config.ts";
import { isRunnerError, RunnerError } from "../errors.ts";
import { exists } from "../fs.ts";
import { exec } from "../process/exec.ts";
import { archiveOf } from "../state/applied-db.ts";
import { claimDataDir, outputDir } from "../state/data-dir.ts";
import { stateFile } from "../state/local-state.ts";
import { pgStateSchema } from "../state/pg-state.ts";
import { copyRecords } from "../store/copy.ts";
import { openDriver } from "../store/open.ts";
import { SqlStore } from "../store/sql-store.ts";

export interface MigrateReport {
  readonly records: Record<string, number>;
  readonly states: readonly string[];
  readonly appliedFolders: readonly string[];
}

/**
 * `gitops-runner migrate-store`: moves an embedded-default installation
 * (the data directory's runner.db, local state files and applied folders)
 * into the PostgreSQL database the configuration names, for replicas. The
 * target must be empty; the source is only read. Each state is pushed into
 * its stack's pg backend schema by the engine itself (`init`, `state push`).
 */
export async function migrateStore(
  dataDir: string,
  config: RunnerConfig,
  env: Environment,
  engine: string,
  logger: Logger,
): Promise<MigrateReport> {
  if (config.store.type !== "postgres") {
    throw new RunnerError(
      "CONFIG_INVALID",
      'store: migrate-store copies into PostgreSQL; the configuration must say "store": { "type": "postgres", "urlEnv": ... }',
    );
  }
  const url = env[config.store.urlEnv];
  if (!url)
    throw new RunnerError(
      "CONFIG_INVALID",
      `store.urlEnv: the environment variable ${config.store.urlEnv} is not set`,
    );
  if (!(await exists(path.join(dataDir, "runner.db")))) {
    throw new RunnerError("CONFIG_INVALID", `${dataDir}: no runner.db here; nothing to migrate`);
  }
  const claim = await claimDataDir(dataDir, "migrate-store");
  const source = await openDriver({ ...config, store: { type: "sqlite" } }, env, dataDir);
  const target = await openDriver(config, env, dataDir);
  try {
    const records = await copyRecords(source, target);
    logger.info({ records }, "records copied");
    const store = new SqlStore(target);
    const stacks = await source.all<{ repo_id: string; app_dir: string; name: string }>(
      "SELECT repo_id, app_dir, name FROM stacks WHERE last_applied_commit IS NOT NULL",
    );
    const states: string[] = [];
    const appliedFolders: string[] = [];
    for (const row of stacks) {
      const location = { dataDir, repoId: row.repo_id, appDir: row.app_dir };
      const file = stateFile(location, row.name);
      if (await exists(file)) {
        const schema = pgStateSchema(location, row.name);
        await pushState(engine, file, schema, url, dataDir, env);
        states.push(`${row.name} -> ${schema}`);
        logger.info({ stack: row.name, schema }, "state pushed into the pg backend");
      }
      const applied = path.join(dataDir, "applied", row.repo_id, row.app_dir || "_", row.name);
      if (await exists(applied)) {
        const commit = (await readFile(path.join(applied, "COMMIT"), "utf8").catch(() => "")).trim();
        await store.saveAppliedConfig(
          { repoId: row.repo_id, appDir: row.app_dir, stack: row.name },
          commit,
          await archiveOf(applied),
        );
        appliedFolders.push(row.name);
      }
    }
    return { records, states, appliedFolders };
  } finally {
    await source.close();
    await target.close();
    claim.release();
  }
}

/** Pushes a local state file into a pg backend schema, with the engine, in a folder of its own. */
async function pushState(
  engine: string,
  file: string,
  schema: string,
  url: string,
  dataDir: string,
  env: Environment,
): Promise<void> {
  const dir = await mkdtemp(path.join(outputDir(dataDir), "state-push-"));
  try {
    await writeFile(
      path.join(dir, "backend.tf.json"),
      JSON.stringify({ terraform: { backend: { pg: { schema_name: schema } } } }),
    );
    const childEnv: Record<string, string> = { PG_CONN_STR: url, TF_IN_AUTOMATION: "1" };
    for (const name of ["PATH", "HOME"]) if (env[name]) childEnv[name] = env[name] as string;
    const options = { cwd: dir, env: childEnv, timeoutMs: 300_000, tempDir: outputDir(dataDir) };
    await exec(engine, ["init", "-input=false", "-no-color"], { ...options, step: "state push: init" });
    await exec(engine, ["state", "push", file], { ...options, step: "state push" });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The command line of `migrate-store`: `--config FILE [--data-dir DIR] [--json]`. */
export async function migrateStoreCommand(
  argv: readonly string[],
  env: Environment,
  output: { stdout(text: string): void; stderr(text: string): void; readonly terminal: boolean },
): Promise<number> {
  let values: { config?: string; "data-dir"?: string; json?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: { config: { type: "string" }, "data-dir": { type: "string" }, json: { type: "boolean" } },
    }));
    if (!values.config) throw new Error("migrate-store needs --config FILE naming the PostgreSQL store");
  } catch (error) {
    output.stderr(`gitops-runner migrate-store: ${(error as Error).message}\n`);
    return 1;
  }
  try {
    const config = await readRunnerConfig(values.config);
    const logger = createLogger(env, { terminal: output.terminal, redact: redactorFor(config, env) });
    const dataDir = values["data-dir"] ? path.resolve(values["data-dir"]) : defaultDataDir(env);
    const engine = await findEngine(config.engine ?? env.GITOPS_RUNNER_TERRAFORM, env);
    const report = await migrateStore(dataDir, config, env, engine, logger);
    output.stdout(
      values.json
        ? `${JSON.stringify(report, null, 2)}\n`
        : `copied ${Object.entries(report.records)
            .map(([table, count]) => `${count} ${table}`)
            .join(
              ", ",
            )}; states: ${report.states.join(", ") || "none"}; applied folders: ${report.appliedFolders.join(", ") || "none"}\n`,
    );
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    output.stderr(`gitops-runner migrate-store: ${message}\n`);
    if (!isRunnerError(error)) output.stderr(`${(error as Error).stack ?? ""}\n`);
    return 1;
  }
}
