import { randomUUID } from "node:crypto";
import path from "node:path";
import pino, { type Logger } from "pino";
import pinoPretty from "pino-pretty";
import type { RunnerConfig } from "./config/runner-config.ts";
import type { EngineContext } from "./engine/context.ts";
import { RunnerError } from "./errors.ts";
import { findExecutable } from "./fs.ts";
import { openRepository } from "./git/repository.ts";
import { SETUP_PROVIDER_MIRROR } from "./install-root.ts";
import { createSandbox } from "./process/sandbox.ts";
import { repoId } from "./state/local-state.ts";
import { SqliteStore } from "./store/sqlite-store.ts";
import type { Store } from "./store/store.ts";
import { synthEnvironment } from "./synth/synthesize.ts";
import { TerraformCli } from "./terraform/cli.ts";
import { prepareCliConfig } from "./terraform/cli-config-disk.ts";

/**
 * The composition root: the one place that reads the process environment and
 * builds the adapters (git, store, terraform, logger) from configuration.
 */
export type Environment = Readonly<Record<string, string | undefined>>;

export interface EngineRequest {
  readonly repo: string;
  readonly dataDir: string;
  readonly appDir: string;
  readonly trigger: string;
  /** The runner's configuration file, hidden from synthesis. */
  readonly configFile?: string;
}

const GIT_ENV = ["PATH", "HOME", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND"];
/** Proxies and trust anchors, so that fetches and installs work behind a TLS-inspecting proxy. */
const NETWORK_ENV = [
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "SSL_CERT_FILE",
  "NODE_EXTRA_CA_CERTS",
  "GIT_SSL_CAINFO",
];

export function defaultDataDir(env: Environment): string {
  return path.resolve(env.GITOPS_RUNNER_DATA_DIR || ".gitops-runner");
}

export interface LoggerOptions {
  /** Whether stderr, where logs go, is a terminal: people read it there. */
  readonly terminal: boolean;
  /** The level unless GITOPS_RUNNER_LOG_LEVEL sets one. */
  readonly level?: string;
}

/**
 * The logger, on stderr: readable lines on a terminal, JSON lines elsewhere;
 * GITOPS_RUNNER_LOG_FORMAT (`json` or `pretty`) forces either. Redaction
 * happens before either format sees a line.
 */
export function createLogger(env: Environment, options: LoggerOptions): Logger {
  const settings = {
    level: env.GITOPS_RUNNER_LOG_LEVEL || options.level || "info",
    base: null,
    redact: { paths: ["*.token", "*.secret", "*.password", "env.*"], censor: "(redacted)" },
  };
  if (logFormat(env, options.terminal) === "json") {
    return pino(settings, pino.destination({ fd: 2, sync: true }));
  }
  const pretty = pinoPretty({
    destination: 2,
    sync: true,
    colorize: options.terminal && !env.NO_COLOR,
    singleLine: true,
    translateTime: "SYS:HH:MM:ss.l",
  });
  return pino(settings, pretty);
}

function logFormat(env: Environment, terminal: boolean): "json" | "pretty" {
  const format = env.GITOPS_RUNNER_LOG_FORMAT;
  if (!format) return terminal ? "pretty" : "json";
  if (format === "json" || format === "pretty") return format;
  throw new RunnerError(
    "CONFIG_INVALID",
    `GITOPS_RUNNER_LOG_FORMAT: expected "json" or "pretty", got "${format}"`,
  );
}

export interface Engine {
  readonly context: EngineContext;
  readonly store: Store;
  close(): Promise<void>;
}

export async function createEngine(
  request: EngineRequest,
  config: RunnerConfig,
  env: Environment,
  logger: Logger,
): Promise<Engine> {
  const address = isLocalPath(request.repo) ? path.resolve(request.repo) : request.repo;
  const id = repoId(address);
  const binary = await findEngine(config.engine ?? env.GITOPS_RUNNER_TERRAFORM, env);
  const cliConfig = await prepareCliConfig({
    configured: config.terraform,
    envFile: env.TF_CLI_CONFIG_FILE,
    setupMirror: SETUP_PROVIDER_MIRROR,
    dataDir: request.dataDir,
    logger,
  });
  const store = await SqliteStore.open(path.join(request.dataDir, "runner.db"));
  try {
    const repository = await openRepository({
      url: address,
      mirrorDir: path.join(request.dataDir, "repos", `${id}.git`),
      timeoutMs: 300_000,
      env: {
        ...pick(env, [...GIT_ENV, ...NETWORK_ENV]),
        GIT_TERMINAL_PROMPT: "0",
      },
    });
    const terraform = new TerraformCli({
      binary,
      env: {
        ...pick(env, ["PATH", "HOME", "TF_PLUGIN_CACHE_DIR", "SSL_CERT_FILE"]),
        ...cliConfig.env,
        ...matching(env, /^(AWS_|TF_VAR_)/),
        ...config.env,
      },
      timeoutMs: config.terraformTimeoutSeconds * 1000,
      lockTimeout: config.lockTimeout,
    });
    const toolEnv = {
      ...synthEnvironment(env),
      ...pick(env, NETWORK_ENV),
      // cdktf validates some resources by running the engine during synth.
      TERRAFORM_BINARY_NAME: binary,
    };
    const sandbox = await createSandbox({
      bwrap: config.bwrap,
      searchPath: env.PATH ?? "",
      readOnly: [binary],
      hidden: [request.dataDir, ...(request.configFile ? [request.configFile] : [])],
      logger,
    });
    const context: EngineContext = {
      dataDir: request.dataDir,
      repository,
      repoId: id,
      appDir: normalizeAppDir(request.appDir),
      store,
      terraform,
      stackEnv: (stack, purpose) => {
        const stackConfig = config.stacks[stack];
        return { ...stackConfig?.env, ...(purpose === "plan" ? stackConfig?.planEnv : {}) };
      },
      toolEnv,
      sandbox,
      allowInstallScripts: config.allowInstallScripts,
      parallelism: config.parallelism,
      synthTimeoutMs: config.synthTimeoutSeconds * 1000,
      synthMaxOldSpaceMb: config.synthMaxOldSpaceMb,
      installTimeoutMs: 900_000,
      trigger: request.trigger,
      logger,
      newRunId: randomUUID,
    };
    return { context, store, close: () => store.close() };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** The engine binary: as configured, else tofu or terraform on PATH. */
async function findEngine(configured: string | undefined, env: Environment): Promise<string> {
  const candidates = configured ? [configured] : ["tofu", "terraform"];
  for (const candidate of candidates) {
    const found = await findExecutable(candidate, env.PATH ?? "");
    if (found) return found;
  }
  throw new RunnerError(
    "ENGINE_NOT_FOUND",
    configured
      ? `engine: ${configured} is not an executable file or on PATH`
      : "engine: neither tofu nor terraform is on PATH; install one or set engine in the configuration",
  );
}

function isLocalPath(repo: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:\/\//i.test(repo) && !/^[^/]+@[^/]+:/.test(repo);
}

function normalizeAppDir(appDir: string): string {
  const normalized = path.posix.normalize(appDir.replaceAll("\\", "/")).replace(/^\.?\/+|\/+$/g, "");
  if (normalized === "." || normalized === "") return "";
  if (normalized.startsWith("..")) {
    throw new RunnerError("USAGE", `--app-dir ${appDir}: must be a folder inside the repository`);
  }
  return normalized;
}

function pick(env: Environment, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = env[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

function matching(env: Environment, pattern: RegExp): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (pattern.test(name) && value !== undefined) picked[name] = value;
  }
  return picked;
}
