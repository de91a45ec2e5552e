import { randomBytes, randomUUID } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { flushCompileCache } from "node:module";
import path from "node:path";
import type { Logger } from "pino";
import {
  createLogger,
  defaultDataDir,
  type Environment,
  openForge,
  openRunner,
  redactorFor,
} from "../composition.ts";
import {
  type RunnerConfig,
  readRunnerConfig,
  resolveSecrets,
  type ServeSecrets,
  secretValues,
} from "../config/runner-config.ts";
import { buildHttpApp } from "../http/app.ts";
import { emailTarget } from "../notify/email.ts";
import { createNotifier, type NotificationTarget } from "../notify/notifier.ts";
import { slackTarget } from "../notify/slack.ts";
import { webhookTarget } from "../notify/webhook.ts";
import { commentMarkers } from "../service/comments/markers.ts";
import { EMBEDDED_APP_DIR, embeddedRepository } from "../service/embedded-default.ts";
import { PullRequestFlow } from "../service/pull-requests.ts";
import { RunnerService } from "../service/service.ts";
import { normalizeRepoAddress } from "../state/local-state.ts";

/**
 * `gitops-runner serve`: the long-running runner. It claims the data
 * directory, opens the store, binds its port (health answers from then on),
 * recovers from a crash, then works until SIGTERM or SIGINT has drained it.
 * The returned code is the process's exit code.
 */
export async function serve(
  configFile: string | undefined,
  env: Environment,
  terminal: boolean,
): Promise<number> {
  const config = await readRunnerConfig(configFile);
  const secrets = resolveSecrets(configFile ?? "(defaults)", config, env);
  const dataDir = path.resolve(config.dataDir ?? defaultDataDir(env));
  const repo = config.repository?.url ?? (await embeddedRepository(dataDir));
  const appDir = config.repository ? config.repository.appDir : EMBEDDED_APP_DIR;
  const provisional = createLogger(env, {
    terminal,
    redact: redactorFor(config, env, secretValues(secrets)),
  });
  const token =
    secrets.apiTokens.write.length > 0 ? undefined : await storedSecret(dataDir, "api-token", provisional);
  const tokens = token
    ? { ...secrets.apiTokens, write: [{ name: "generated", value: token }] }
    : secrets.apiTokens;
  // Signs the dashboard's cookies; replicas behind one address share it through the environment.
  const sessionSecret =
    env.GITOPS_RUNNER_SESSION_SECRET || (await storedSecret(dataDir, "session-secret", provisional));
  const redact = redactorFor(config, env, [
    ...secretValues(secrets),
    ...(token ? [token] : []),
    sessionSecret,
  ]);
  const logger = createLogger(env, { terminal, redact });

  const runner = await openRunner(
    { repo, dataDir, appDir, trigger: "serve", purpose: "serve", ...(configFile ? { configFile } : {}) },
    config,
    env,
    logger,
    redact,
  );
  try {
    // The sandbox is chosen now, so that a warning about it comes at start, not at the first synth.
    await runner.context.sandbox();
    const notifier = createNotifier({
      logger,
      targets: secrets.notifications.map(notificationTarget),
    });
    const forge = await openForge(config, secrets.forge?.token);
    const runUrl = config.publicUrl
      ? (runId: string) => new URL(`runs/${runId}`, config.publicUrl).toString()
      : undefined;
    const pullRequests =
      forge && config.forge
        ? new PullRequestFlow(
            {
              forge,
              allowForks: config.forge.allowForks,
              identity: {
                markers: commentMarkers(config.forge.commentMarker),
                planStatus: config.forge.planStatus,
                applyStatus: config.forge.applyStatus,
              },
              ...(runUrl ? { runUrl } : {}),
            },
            logger,
          )
        : undefined;
    const service = new RunnerService({
      context: runner.context,
      records: runner.store,
      notifier,
      logger,
      repository: normalizeRepoAddress(repo),
      ...(config.repository?.branch ? { branch: config.repository.branch } : {}),
      workers: config.workers,
      pollIntervalMs: config.pollIntervalSeconds * 1000,
      driftTickMs: config.drift.tickSeconds * 1000,
      driftJitterPercent: config.drift.jitterPercent,
      shutdownGraceMs: config.shutdownGraceSeconds * 1000,
      leaseMs: config.leaseSeconds * 1000,
      minFreeBytes: config.minFreeMegabytes * 1024 * 1024,
      ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
      newId: randomUUID,
      ...(pullRequests ? { pullRequests, pollPullRequests: !secrets.forge?.webhookSecret } : {}),
      ...(forge ? { pullRequestDirectory: forge.pullRequests } : {}),
      maintenanceWindows: config.maintenanceWindows,
      retentionDays: config.retention.days,
      cacheMaxBytes: config.cache.maxBytes,
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
      sessionSecret,
      ...(config.forge ? { pullRequestUrl: pullRequestUrl(config.forge) } : {}),
    });

    // Handled from before "listening" is logged: whoever waits for that line may signal at once.
    const stopped = new Promise<NodeJS.Signals>((resolve) => {
      process.once("SIGTERM", () => resolve("SIGTERM"));
      process.once("SIGINT", () => resolve("SIGINT"));
    });
    // The port is bound before recovery: a second runner fails here, and health answers meanwhile.
    // A container listens on every interface; the image sets GITOPS_RUNNER_LISTEN_HOST.
    const host = env.GITOPS_RUNNER_LISTEN_HOST || config.listen.host;
    const url = await http.listen({ host, port: config.listen.port });
    logger.info(
      { url, repository: normalizeRepoAddress(repo), appDir, dataDir, store: runner.store.location },
      "listening",
    );
    await service.start();
    logger.info("recovered; working");
    // What start-up loaded goes to Node's compile cache now, not only at exit (bin/compile-cache.js).
    flushCompileCache();

    const signal = await stopped;
    logger.info({ signal }, "stopping: no new work; running steps finish or are cancelled");
    await http.close();
    await service.stop();
    await notifier.close();
    logger.info("stopped");
    return 0;
  } finally {
    await runner.close();
  }
}

/**
 * A secret the runner makes for itself when none is configured (the write
 * token of the embedded default, the dashboard's session key): generated
 * once, kept private in the data directory; its path is logged, never its value.
 */
async function storedSecret(
  dataDir: string,
  name: "api-token" | "session-secret",
  logger: Logger,
): Promise<string> {
  const file = path.join(dataDir, name);
  try {
    const existing = (await readFile(file, "utf8")).trim();
    if (existing) {
      logger.info({ file }, `${name} read from the data directory`);
      return existing;
    }
  } catch {
    // None yet.
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(32).toString("base64url");
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  logger.info({ file }, `${name} generated; it is stored in this file (mode 0600)`);
  return secret;
}

/** A pull request's page on the configured forge. */
function pullRequestUrl(forge: NonNullable<RunnerConfig["forge"]>): (number: number) => string {
  const trimmed = (url: string) => url.replace(/\/+$/, "");
  switch (forge.type) {
    case "gitlab": {
      const base = trimmed(forge.baseUrl ?? "https://gitlab.com");
      return (number) => `${base}/${forge.project}/-/merge_requests/${number}`;
    }
    case "gitea":
      return (number) => `${trimmed(forge.baseUrl)}/${forge.owner}/${forge.repo}/pulls/${number}`;
    case "bitbucket":
      return (number) => `https://bitbucket.org/${forge.workspace}/${forge.repo}/pull-requests/${number}`;
    case "github": {
      // GitHub Enterprise's API lives under /api/v3 of its web address.
      const web = forge.baseUrl ? trimmed(forge.baseUrl).replace(/\/api\/v3$/, "") : "https://github.com";
      return (number) => `${web}/${forge.owner}/${forge.repo}/pull/${number}`;
    }
  }
}

function notificationTarget(target: ServeSecrets["notifications"][number]): NotificationTarget {
  switch (target.type) {
    case "slack":
      return slackTarget({ name: target.name, url: target.url });
    case "webhook":
      return webhookTarget({ name: target.name, url: target.url, secret: target.secret });
    case "email":
      return emailTarget(target);
  }
}
