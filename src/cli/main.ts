import { userInfo } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { Logger } from "pino";
import {
  createLogger,
  defaultDataDir,
  type Environment,
  openForge,
  openRecords,
  openRunner,
  redactorFor,
} from "../composition.ts";
import { type RunnerConfig, readRunnerConfig } from "../config/runner-config.ts";
import { applyCommand } from "../engine/apply.ts";
import type { EngineContext } from "../engine/context.ts";
import { driftCommand } from "../engine/drift.ts";
import { planCommand } from "../engine/plan.ts";
import { promoteCommand } from "../engine/promote.ts";
import { type CommandReport, exitCode, toJson } from "../engine/report.ts";
import { type RollbackResult, rollbackCommand } from "../engine/rollback.ts";
import { type SynthReport, synthCommand } from "../engine/synth.ts";
import { isRunnerError, RunnerError } from "../errors.ts";
import { auditBound } from "../service/audit-time.ts";
import { renderAudit, renderRollback } from "./audit.ts";
import { progressCallbacks } from "./progress.ts";
import { renderReport, renderSynth } from "./render.ts";

const USAGE = `Usage:
  gitops-runner serve  [--config FILE]
  gitops-runner synth  --repo URL|PATH [--ref REF] [--json]
  gitops-runner plan   --repo URL|PATH [--ref REF] [--base REF] [--stack NAME]... [--json]
  gitops-runner apply  --repo URL|PATH [--ref REF] [--stack NAME]... [--allow-destroy] [--json]
  gitops-runner drift  --repo URL|PATH [--stack NAME]... [--correct] [--json]
  gitops-runner audit  --repo URL|PATH [--stack NAME]... [--since TIME] [--until TIME] [--json]
  gitops-runner promote --repo URL|PATH --from ENV --to ENV [--json]
  gitops-runner rollback --repo URL|PATH --stack NAME --to COMMIT [--json]
common: [--data-dir DIR] [--app-dir PATH-IN-REPO] [--config FILE]
  gitops-runner migrate-store --config FILE [--data-dir DIR] [--json]   (the embedded store into PostgreSQL)`;

const COMMANDS = ["synth", "plan", "apply", "drift", "audit", "promote", "rollback"] as const;
type Command = (typeof COMMANDS)[number];

const ALLOWED_FLAGS: Record<Command, readonly string[]> = {
  synth: ["ref"],
  plan: ["ref", "base", "stack"],
  apply: ["ref", "stack", "allow-destroy"],
  drift: ["stack", "correct"],
  audit: ["stack", "since", "until"],
  promote: ["from", "to"],
  rollback: ["stack", "to"],
};

export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Whether stderr is a terminal, where a person reads progress and log lines. */
  readonly terminal: boolean;
}

/** Runs one CLI invocation; returns the exit code. */
export async function main(argv: readonly string[], env: Environment, output: Output): Promise<number> {
  // Everything the runner and its children write (state, records, plans) is private to its user.
  process.umask(0o077);
  if (argv.length === 1 && ["--help", "-h", "help"].includes(argv[0] as string)) {
    output.stdout(`${USAGE}\n`);
    return 0;
  }
  if (argv[0] === "serve") return serveCommand(argv.slice(1), env, output);
  // serve and migrate-store load what they need (fastify, forges, PostgreSQL) only when asked for.
  if (argv[0] === "migrate-store") {
    const { migrateStoreCommand } = await import("./migrate-store.ts");
    return migrateStoreCommand(argv.slice(1), env, output);
  }
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    output.stderr(`gitops-runner: ${(error as Error).message}\n${USAGE}\n`);
    return 1;
  }
  const { command, values } = parsed;
  const json = values.json === true;
  const { terminal } = output;
  let logger: Logger | undefined;
  try {
    // On a terminal, progress lines stand in for the info-level log lines.
    const level = terminal ? { level: "warn" } : {};
    logger = createLogger(env, { terminal, ...level });
    const config = await readRunnerConfig(values.config);
    const redact = redactorFor(config, env);
    logger = createLogger(env, { terminal, ...level, redact });
    const where = {
      repo: values.repo as string,
      dataDir: values["data-dir"] ? path.resolve(values["data-dir"]) : defaultDataDir(env),
      appDir: values["app-dir"] ?? "",
      purpose: `cli ${command}`,
    };
    if (command === "audit") return await auditCommand(where, config, env, values, output);
    const engine = await openRunner(
      {
        ...where,
        trigger: "cli",
        origin: { user: userInfo().username },
        ...(values.config ? { configFile: values.config } : {}),
      },
      config,
      env,
      logger,
      redact,
    );
    const context = terminal
      ? { ...engine.context, ...progressCallbacks((text) => output.stderr(text)) }
      : engine.context;
    try {
      const stacks = values.stack ?? [];
      let report: CommandReport | SynthReport;
      switch (command) {
        case "synth":
          report = await synthCommand(context, optional({ ref: values.ref }));
          output.stdout(json ? `${JSON.stringify(report, null, 2)}\n` : renderSynth(report));
          return 0;
        case "plan":
          report = await planCommand(context, {
            ...optional({ ref: values.ref, base: values.base }),
            stacks,
          });
          break;
        case "apply":
          report = await applyCommand(context, {
            ...optional({ ref: values.ref }),
            stacks,
            allowDestroy: values["allow-destroy"] === true,
          });
          break;
        case "drift":
          report = await driftCommand(context, { stacks, correct: values.correct ? "all" : "none" });
          break;
        case "rollback": {
          const result = await rollbackCli(context, config, env, values);
          output.stdout(json ? `${JSON.stringify(result, null, 2)}\n` : renderRollback(result));
          return 0;
        }
        case "promote":
          if (!values.from || !values.to)
            throw new RunnerError("USAGE", "promote needs --from ENV and --to ENV");
          report = await promoteCommand(context, { from: values.from, to: values.to });
          break;
      }
      // The table follows the progress lines, apart from them.
      if (terminal) output.stderr("\n");
      if (!json) output.stdout(renderReport(command, report));
      else {
        output.stdout(`${JSON.stringify(toJson(report), null, 2)}\n`);
        // The JSON is for scripts; the person at the terminal still gets the table.
        if (terminal) output.stderr(renderReport(command, report));
      }
      return exitCode(report);
    } finally {
      await engine.close();
    }
  } catch (error) {
    const code = isRunnerError(error) ? error.code : "INTERNAL";
    const message = error instanceof Error ? error.message : String(error);
    if (!isRunnerError(error)) logger?.error({ err: error }, "unexpected error");
    output.stderr(`gitops-runner ${command}: ${message}\n`);
    if (json)
      output.stdout(`${JSON.stringify({ commit: null, stacks: [], error: { code, message } }, null, 2)}\n`);
    return 1;
  }
}

function parse(argv: readonly string[]) {
  const [command, ...rest] = argv;
  if (!COMMANDS.includes(command as Command)) {
    throw new RunnerError("USAGE", command ? `unknown command "${command}"` : "no command given");
  }
  const { values } = parseArgs({
    args: rest,
    strict: true,
    allowPositionals: false,
    options: {
      repo: { type: "string" },
      ref: { type: "string" },
      base: { type: "string" },
      stack: { type: "string", multiple: true },
      "allow-destroy": { type: "boolean" },
      correct: { type: "boolean" },
      since: { type: "string" },
      until: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      json: { type: "boolean" },
      "data-dir": { type: "string" },
      "app-dir": { type: "string" },
      config: { type: "string" },
    },
  });
  const allowed = new Set([
    ...ALLOWED_FLAGS[command as Command],
    "repo",
    "json",
    "data-dir",
    "app-dir",
    "config",
  ]);
  const misplaced = Object.keys(values).filter((flag) => !allowed.has(flag));
  if (misplaced.length > 0) {
    throw new RunnerError(
      "USAGE",
      `${command} does not take ${misplaced.map((flag) => `--${flag}`).join(", ")}`,
    );
  }
  if (!values.repo) throw new RunnerError("USAGE", `${command} needs --repo URL|PATH`);
  return { command: command as Command, values };
}

/** Drops undefined values, for options objects under exactOptionalPropertyTypes. */
function optional<T extends Record<string, string | undefined>>(values: T): { [K in keyof T]?: string } {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: string;
  };
}

/** `rollback`: a branch restoring the app's files, and a pull request from it when a forge is configured. */
async function rollbackCli(
  context: EngineContext,
  config: RunnerConfig,
  env: Environment,
  values: { stack?: string[]; to?: string },
): Promise<RollbackResult> {
  const [stack, ...more] = values.stack ?? [];
  if (!stack || more.length > 0 || !values.to) {
    throw new RunnerError("USAGE", "rollback needs one --stack NAME and --to COMMIT");
  }
  const token = config.forge ? env[config.forge.tokenEnv] : undefined;
  if (config.forge && !token) {
    throw new RunnerError(
      "CONFIG_INVALID",
      `forge.tokenEnv: the environment variable ${config.forge.tokenEnv} is not set`,
    );
  }
  const forge = await openForge(config, token);
  return rollbackCommand(
    context,
    { stack, to: values.to, ...(context.origin?.user ? { requestedBy: context.origin.user } : {}) },
    forge?.pullRequests,
  );
}

/** `audit`: the applied changes the records hold, newest first; reads the store and nothing else. */
async function auditCommand(
  where: Parameters<typeof openRecords>[0],
  config: RunnerConfig,
  env: Environment,
  values: { stack?: string[]; since?: string; until?: string; json?: boolean },
  output: Output,
): Promise<number> {
  const since = values.since === undefined ? undefined : auditBound(values.since, "since");
  const until = values.until === undefined ? undefined : auditBound(values.until, "until");
  const records = await openRecords(where, config, env);
  try {
    const stacks = values.stack ?? [];
    const entries = (
      await records.store.listAudit({
        ...records.app,
        ...(stacks.length === 1 ? { stack: stacks[0] } : {}),
        ...(since ? { since } : {}),
        ...(until ? { until } : {}),
        limit: 10_000,
      })
    ).filter((entry) => stacks.length === 0 || stacks.includes(entry.stack));
    output.stdout(values.json ? `${JSON.stringify({ entries }, null, 2)}\n` : renderAudit(entries));
    return 0;
  } finally {
    await records.close();
  }
}

async function serveCommand(argv: readonly string[], env: Environment, output: Output): Promise<number> {
  let config: string | undefined;
  try {
    ({
      values: { config },
    } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: { config: { type: "string" } },
    }));
  } catch (error) {
    output.stderr(`gitops-runner: ${(error as Error).message}\n${USAGE}\n`);
    return 1;
  }
  try {
    const { serve } = await import("./serve.ts");
    return await serve(config, env, output.terminal);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    output.stderr(`gitops-runner serve: ${message}\n`);
    return 1;
  }
}
