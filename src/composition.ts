import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";
import pino, { type Logger } from "pino";
import type PinoPretty from "pino-pretty";
import type { RunnerConfig } from "./config/runner-config.ts";
import { type Environment as AppEnvironment, environmentOf } from "./domain/environments.ts";
import type { EngineContext, EnvPurpose } from "./engine/context.ts";
import { RunnerError } from "./errors.ts";
import type { Forge } from "./forge/port.ts";
import { findExecutable } from "./fs.ts";
import { openRepository } from "./git/repository.ts";
import { SETUP_PROVIDER_MIRROR } from "./install-root.ts";
import { createSandbox, type Sandbox } from "./process/sandbox.ts";
import { DbAppliedConfigs } from "./state/applied-db.ts";
import { DiskAppliedConfigs } from "./state/applied-dir.ts";
import { claimDataDir, outputDir, removeLeftovers } from "./state/data-dir.ts";
import { LocalStateBackend, repoId } from "./state/local-state.ts";
import { PgStateBackend } from "./state/pg-state.ts";
import { openStore } from "./store/open.ts";
import type { AppKey, RunOrigin } from "./store/records.ts";
import type { SqlStore } from "./store/sql-store.ts";
import { synthEnvironment } from "./synth/synthesize.ts";
import { TerraformCli } from "./terraform/cli.ts";
import { prepareCliConfig } from "./terraform/cli-config-disk.ts";
import { secretRedactor } from "./terraform/redact.ts";

/**
 * The composition root: the one place that reads the process environment and
 * builds the adapters (data directory, git, store, terraform, logger) from
 * configuration.
 */
export type Environment = Readonly<Record<string, string | undefined>>;

export interface EngineRequest {
  readonly repo: string;
  readonly dataDir: string;
  readonly appDir: string;
  readonly trigger: string;
  /** Who asked, for the records (the command line's user). */
  readonly origin?: RunOrigin;
  /** What holds the data directory, for the message a second process gets: "serve", "cli plan". */
  readonly purpose: string;
  /** The runner's configuration file, hidden from synthesis. */
  readonly configFile?: string;
}

const GIT_ENV = ["PATH", "HOME", "SSH_AUTH_SOCK", "GIT_SSH_COMMAND"];
/**
 * Git settings given through the environment: GIT_CONFIG_COUNT with its numbered
 * GIT_CONFIG_KEY_<n>/GIT_CONFIG_VALUE_<n>, and other global or system files. For
 * a repository on a local path, `safe.directory` must come from such a file: git
 * does not hand GIT_CONFIG_COUNT to the upload-pack it starts there.
 */
const GIT_CONFIG_ENV = ["GIT_CONFIG_COUNT", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM"];
const GIT_CONFIG_ENTRY = /^GIT_CONFIG_(KEY|VALUE)_\d+$/;
/** Proxies and trust anchors, so that fetches and installs work behind a TLS-inspecting proxy. */
const NETWORK_ENV = [
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "SSL_CERT_FILE",
  "NODE_EXTRA_CA_CERTS",
  "GIT_SSL_CAINFO",
];
/** The runner's own variables that are credentials wherever they appear. */
const CREDENTIALS = /^(TF_VAR_.+|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|GITOPS_RUNNER_(API|READ)_TOKEN)$/;

export function defaultDataDir(env: Environment): string {
  return path.resolve(env.GITOPS_RUNNER_DATA_DIR || ".gitops-runner");
}

export interface LoggerOptions {
  /** Whether stderr, where logs go, is a terminal: people read it there. */
  readonly terminal: boolean;
  /** The level unless GITOPS_RUNNER_LOG_LEVEL sets one. */
  readonly level?: string;
  /** Hides the values the runner injects (see redactorFor) in every line. */
  readonly redact?: (text: string) => string;
}

/**
 * The logger, on stderr: readable lines on a terminal, JSON lines elsewhere;
 * GITOPS_RUNNER_LOG_FORMAT (`json` or `pretty`) forces either. Every line is
 * redacted of the values the runner injects before either format sees it.
 */
export function createLogger(env: Environment, options: LoggerOptions): Logger {
  const settings = {
    level: env.GITOPS_RUNNER_LOG_LEVEL || options.level || "info",
    base: null,
    redact: { paths: ["*.token", "*.secret", "*.password", "env.*"], censor: "(redacted)" },
  };
  const redact = options.redact ?? ((text: string) => text);
  const output =
    logFormat(env, options.terminal) === "json"
      ? pino.destination({ fd: 2, sync: true })
      : (requireModule("pino-pretty") as typeof PinoPretty)({
          destination: 2,
          sync: true,
          colorize: options.terminal && !env.NO_COLOR,
          singleLine: true,
          translateTime: "SYS:HH:MM:ss.l",
        });
  return pino(settings, { write: (line: string) => output.write(redact(line)) });
}

/** Loads what only some runs need (pino-pretty on a terminal) when they need it. */
const requireModule = createRequire(import.meta.url);

function logFormat(env: Environment, terminal: boolean): "json" | "pretty" {
  const format = env.GITOPS_RUNNER_LOG_FORMAT;
  if (!format) return terminal ? "pretty" : "json";
  if (format === "json" || format === "pretty") return format;
  throw new RunnerError(
    "CONFIG_INVALID",
    `GITOPS_RUNNER_LOG_FORMAT: expected "json" or "pretty", got "${format}"`,
  );
}

/**
 * The values the runner injects from its configuration and environment, to
 * be hidden wherever text leaves it: every configured variable's value, and
 * the credentials it passes on. `extra` adds secrets only `serve` knows.
 */
export function runnerSecrets(
  config: RunnerConfig,
  env: Environment,
  extra: readonly string[] = [],
): string[] {
  const database = config.store.type === "postgres" ? env[config.store.urlEnv] : undefined;
  const values = [
    ...(database ? [database, ...passwordOf(database)] : []),
    ...Object.values(config.env),
    ...Object.values(config.planEnv),
    ...config.environments.flatMap((environment) => [
      ...Object.values(environment.env ?? {}),
      ...Object.values(environment.planEnv ?? {}),
    ]),
    ...Object.values(config.stacks).flatMap((stack) => [
      ...Object.values(stack.env ?? {}),
      ...Object.values(stack.planEnv ?? {}),
    ]),
    ...Object.entries(env)
      .filter(([name, value]) => CREDENTIALS.test(name) && value !== undefined)
      .map(([, value]) => value as string),
    ...extra,
  ];
  return [...new Set(values)];
}

export function redactorFor(config: RunnerConfig, env: Environment, extra: readonly string[] = []) {
  return secretRedactor(runnerSecrets(config, env, extra));
}

export interface Runner {
  readonly context: EngineContext;
  readonly store: SqlStore;
  close(): Promise<void>;
}

/**
 * Claims the data directory (one process at a time), removes what a dead
 * process left there, opens the store (migrating it) and builds the engine's
 * context for one repository.
 */
export async function openRunner(
  request: EngineRequest,
  config: RunnerConfig,
  env: Environment,
  logger: Logger,
  redact: (text: string) => string,
): Promise<Runner> {
  const address = isLocalPath(request.repo) ? path.resolve(request.repo) : request.repo;
  const id = repoId(address);
  const binary = await findEngine(config.engine ?? env.GITOPS_RUNNER_TERRAFORM, env);
  const claim = await claimDataDir(request.dataDir, request.purpose);
  let store: SqlStore | undefined;
  try {
    const leftovers = await removeLeftovers(request.dataDir);
    if (leftovers.length > 0)
      logger.warn({ removed: leftovers }, "removed what an earlier process left behind");
    const cliConfig = await prepareCliConfig({
      configured: config.terraform,
      envFile: env.TF_CLI_CONFIG_FILE,
      setupMirror: SETUP_PROVIDER_MIRROR,
      dataDir: request.dataDir,
      logger,
    });
    store = await openStore(config, env, request.dataDir);
    const repository = await openRepository({
      url: address,
      mirrorDir: path.join(request.dataDir, "repos", `${id}.git`),
      timeoutMs: 300_000,
      env: {
        ...pick(env, [...GIT_ENV, ...GIT_CONFIG_ENV, ...NETWORK_ENV]),
        ...matching(env, GIT_CONFIG_ENTRY),
        GIT_TERMINAL_PROMPT: "0",
      },
    });
    await repository.pruneCheckouts();
    const terraform = new TerraformCli({
      binary,
      env: { ...pick(env, ["PATH", "HOME", "TF_PLUGIN_CACHE_DIR", "SSL_CERT_FILE"]), ...cliConfig.env },
      timeoutMs: config.terraformTimeoutSeconds * 1000,
      tempDir: outputDir(request.dataDir),
      lockTimeout: config.lockTimeout,
    });
    const appDir = normalizeAppDir(request.appDir);
    const location = { dataDir: request.dataDir, repoId: id, appDir };
    // With PostgreSQL (replicas), state and applied folders live in the database, so any replica can
    // plan, apply and check any stack; the embedded default keeps them in the data directory.
    const databaseUrl = config.store.type === "postgres" ? env[config.store.urlEnv] : undefined;
    // Chosen at the first synthesis (a trial start costs a fraction of a second): a drift sweep of
    // stored snapshots never needs it.
    let sandbox: Promise<Sandbox> | undefined;
    const chooseSandbox = () => {
      sandbox ??= createSandbox({
        bwrap: config.bwrap,
        searchPath: env.PATH ?? "",
        readOnly: [binary],
        hidden: [request.dataDir, ...(request.configFile ? [request.configFile] : [])],
        logger,
      });
      return sandbox;
    };
    const context: EngineContext = {
      dataDir: request.dataDir,
      repository,
      repoId: id,
      appDir,
      store,
      state: databaseUrl ? new PgStateBackend(location, databaseUrl, store) : new LocalStateBackend(location),
      applied: databaseUrl
        ? new DbAppliedConfigs(store, { repoId: id, appDir })
        : new DiskAppliedConfigs(request.dataDir, id, appDir),
      terraform,
      stackEnv: stackEnvironment(config, env, appDir),
      environments: environmentsOf(config),
      toolEnv: {
        ...synthEnvironment(env),
        ...pick(env, NETWORK_ENV),
        // cdktf validates some resources by running the engine during synth.
        TERRAFORM_BINARY_NAME: binary,
      },
      redact,
      sandbox: chooseSandbox,
      allowInstallScripts: config.allowInstallScripts,
      parallelism: config.parallelism,
      synthTimeoutMs: config.synthTimeoutSeconds * 1000,
      synthMaxOldSpaceMb: config.synthMaxOldSpaceMb,
      installTimeoutMs: 900_000,
      lockWaitMs: config.lockWaitSeconds * 1000,
      ...(env.GITOPS_RUNNER_DEPENDENCY_SEED ? { dependencySeedDir: env.GITOPS_RUNNER_DEPENDENCY_SEED } : {}),
      trigger: request.trigger,
      ...(request.origin ? { origin: request.origin } : {}),
      logger,
      newRunId: randomUUID,
    };
    const opened = store;
    return {
      context,
      store: opened,
      close: async () => {
        await opened.close();
        claim.release();
      },
    };
  } catch (error) {
    await store?.close();
    claim.release();
    throw error;
  }
}

/**
 * Only the records of one app, for commands that read them (the audit trail):
 * the data directory claimed and the store opened, no repository fetched.
 */
export async function openRecords(
  request: Pick<EngineRequest, "repo" | "dataDir" | "appDir" | "purpose">,
  config: RunnerConfig,
  env: Environment,
): Promise<{ readonly store: SqlStore; readonly app: AppKey; close(): Promise<void> }> {
  const address = isLocalPath(request.repo) ? path.resolve(request.repo) : request.repo;
  const claim = await claimDataDir(request.dataDir, request.purpose);
  try {
    const store = await openStore(config, env, request.dataDir);
    return {
      store,
      app: { repoId: repoId(address), appDir: normalizeAppDir(request.appDir) },
      close: async () => {
        await store.close();
        claim.release();
      },
    };
  } catch (error) {
    claim.release();
    throw error;
  }
}

/**
 * What Terraform gets per stack and purpose. Applies: the runner's own AWS_*
 * and TF_VAR_* variables, `env`, the stack's `env`. Plans and drift reports of
 * reviewed code: the same, with `planEnv` on top. Plans of pull requests run
 * code nobody reviewed yet: `planEnv` only, never an apply credential.
 */
function stackEnvironment(config: RunnerConfig, env: Environment, appDir: string) {
  const inherited = matching(env, /^(AWS_|TF_VAR_)/);
  const environments = environmentsOf(config);
  return (stack: string, purpose: EnvPurpose): Readonly<Record<string, string>> => {
    const own = config.stacks[stack];
    // A stack's environment (dev, prod) sits between the runner's variables and the stack's own.
    const member = environmentOf(environments, appDir, stack);
    const environment = member ? config.environments[member.index] : undefined;
    const plan = { ...config.planEnv, ...environment?.planEnv, ...own?.planEnv };
    if (purpose === "review") return plan;
    const apply = { ...inherited, ...config.env, ...environment?.env, ...own?.env };
    return purpose === "apply" ? apply : { ...apply, ...plan };
  };
}

/**
 * The forge client the configuration names, when its token is known; its
 * token reaches only the forge, never synth or terraform. Loaded on demand:
 * commands without a forge do not pay for its client.
 */
export async function openForge(config: RunnerConfig, token: string | undefined): Promise<Forge | undefined> {
  const forge = config.forge;
  if (!forge || !token) return undefined;
  const common = {
    token,
    ...(forge.login ? { login: forge.login } : {}),
    ...(forge.baseUrl ? { baseUrl: forge.baseUrl } : {}),
  };
  switch (forge.type) {
    case "github": {
      const { githubForge } = await import("./forge/github/client.ts");
      return githubForge({ ...common, owner: forge.owner, repo: forge.repo });
    }
    case "gitlab": {
      const { gitlabForge } = await import("./forge/gitlab/client.ts");
      return gitlabForge({ ...common, project: forge.project });
    }
    case "gitea": {
      const { giteaForge } = await import("./forge/gitea/client.ts");
      return giteaForge({ ...common, baseUrl: forge.baseUrl, owner: forge.owner, repo: forge.repo });
    }
    case "bitbucket": {
      const { bitbucketForge } = await import("./forge/bitbucket/client.ts");
      return bitbucketForge({
        ...common,
        workspace: forge.workspace,
        repo: forge.repo,
        ...(forge.username ? { username: forge.username } : {}),
      });
    }
  }
}

/** The configured environments, in promotion order, as the engine reads them (credentials left out). */
export function environmentsOf(config: RunnerConfig): AppEnvironment[] {
  return config.environments.map(({ env: _env, planEnv: _planEnv, appDir, ...environment }) => ({
    ...environment,
    ...(appDir === undefined ? {} : { appDir: normalizeAppDir(appDir) }),
  }));
}

/** The engine binary: as configured, else tofu or terraform on PATH. */
export async function findEngine(configured: string | undefined, env: Environment): Promise<string> {
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

/** The password in a connection URL, if any, as it appears decoded and encoded. */
function passwordOf(url: string): string[] {
  try {
    const password = new URL(url).password;
    return password ? [password, decodeURIComponent(password)] : [];
  } catch {
    return [];
  }
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
