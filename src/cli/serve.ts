import { randomBytes, randomUUID } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { createEngine, createLogger, defaultDataDir, type Environment } from "../composition.ts";
import {
  type RunnerConfig,
  readRunnerConfig,
  resolveSecrets,
  type ServeSecrets,
} from "../config/runner-config.ts";
import type { Forge } from "../forge/forge.ts";
import { githubForge } from "../forge/github.ts";
import { gitlabForge } from "../forge/gitlab.ts";
import { buildHttpApp } from "../http/app.ts";
import { createNotifier, slackTarget, webhookTarget } from "../notify/notifier.ts";
import { EMBEDDED_APP_DIR, embeddedRepository } from "../service/embedded-default.ts";
import { PullRequestFlow } from "../service/pull-requests.ts";
import { RunnerService } from "../service/service.ts";
import { normalizeRepoAddress } from "../state/local-state.ts";

/**
 * `gitops-runner serve`: the long-running runner. Resolves when a SIGTERM or
 * SIGINT has drained it; the returned code is the process's exit code.
 */
export async function serve(
  configFile: string | undefined,
  env: Environment,
  terminal: boolean,
): Promise<number> {
  const logger = createLogger(env, { terminal });
  const config = await readRunnerConfig(configFile);
  const secrets = resolveSecrets(configFile ?? "(defaults)", config, env);
  const dataDir = path.resolve(config.dataDir ?? defaultDataDir(env));
  const repo = config.repository?.url ?? (await embeddedRepository(dataDir));
  const appDir = config.repository ? config.repository.appDir : EMBEDDED_APP_DIR;
  const tokens =
    secrets.apiTokens.write.length > 0
      ? secrets.apiTokens
      : { ...secrets.apiTokens, write: [await generatedToken(dataDir, logger)] };

  const engine = await createEngine(
    { repo, dataDir, appDir, trigger: "serve", ...(configFile ? { configFile } : {}) },
    config,
    env,
    logger,
  );
  const notifier = createNotifier({
    logger,
    targets: secrets.notifications.map((target) =>
      target.type === "slack"
        ? slackTarget({ name: target.name, url: target.url })
        : webhookTarget({ name: target.name, url: target.url, secret: target.secret }),
    ),
  });
  const forge = buildForge(config, secrets);
  const runUrl = config.publicUrl
    ? (runId: string) => new URL(`runs/${runId}`, config.publicUrl).toString()
    : undefined;
  const pullRequests = forge
    ? new PullRequestFlow(
        {
          forge,
          store: engine.store,
          allowForks: config.forge?.allowForks ?? false,
          ...(runUrl ? { runUrl } : {}),
        },
        logger,
      )
    : undefined;
  const service = new RunnerService({
    context: engine.context,
    store: engine.store,
    notifier,
    logger,
    repository: normalizeRepoAddress(repo),
    ...(config.repository?.branch ? { branch: config.repository.branch } : {}),
    pollIntervalMs: config.pollIntervalSeconds * 1000,
    driftTickMs: config.drift.tickSeconds * 1000,
    driftJitterPercent: config.drift.jitterPercent,
    shutdownGraceMs: config.shutdownGraceSeconds * 1000,
    ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
    newId: randomUUID,
    ...(pullRequests ? { pullRequests, pollPullRequests: !secrets.forge?.webhookSecret } : {}),
  });
  const http = buildHttpApp({
    service,
    logger,
    tokens,
    ...(secrets.webhookSecret ? { webhookSecret: secrets.webhookSecret } : {}),
    ...(config.forge && secrets.forge?.webhookSecret
      ? { forgeWebhook: { kind: config.forge.type, secret: secrets.forge.webhookSecret } }
      : {}),
    ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
  });

  // Handled from before "listening" is logged: whoever waits for that line may signal at once.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  await service.start();
  // A container listens on every interface; the image sets this.
  const host = env.GITOPS_RUNNER_LISTEN_HOST || config.listen.host;
  const url = await http.listen({ host, port: config.listen.port });
  logger.info({ url, repository: normalizeRepoAddress(repo), appDir, dataDir }, "listening");

  const signal = await stopSignal;
  logger.info({ signal }, "stopping: no new work; running steps finish or are cancelled");
  await http.close();
  await service.stop();
  await notifier.close();
  await engine.close();
  logger.info("stopped");
  return 0;
}

/** The write token of a runner started without one: generated once, kept private in the data directory. */
async function generatedToken(dataDir: string, logger: ReturnType<typeof createLogger>): Promise<string> {
  const file = path.join(dataDir, "api-token");
  try {
    const existing = (await readFile(file, "utf8")).trim();
    if (existing) {
      logger.info({ file }, "API token read from the data directory");
      return existing;
    }
  } catch {
    // None yet.
  }
  await mkdir(dataDir, { recursive: true });
  const token = randomBytes(32).toString("base64url");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  logger.info({ file }, "API token generated; it is stored in this file (mode 0600)");
  return token;
}

/** The forge client the configuration names; its token reaches only the forge, never synth or terraform. */
function buildForge(config: RunnerConfig, secrets: ServeSecrets): Forge | undefined {
  const forge = config.forge;
  const token = secrets.forge?.token;
  if (!forge || !token) return undefined;
  return forge.type === "github"
    ? githubForge({
        owner: forge.owner,
        repo: forge.repo,
        token,
        ...(forge.baseUrl ? { baseUrl: forge.baseUrl } : {}),
      })
    : gitlabForge({ project: forge.project, token, ...(forge.baseUrl ? { baseUrl: forge.baseUrl } : {}) });
}
