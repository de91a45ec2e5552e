import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { createTransport } from "nodemailer";
import type { Logger } from "pino";
import { sha256Header } from "../crypto/hmac.ts";
import { RunnerError } from "../errors.ts";

export type NotificationKind =
  | "apply-failed"
  | "run-blocked"
  | "drift-found"
  | "drift-changed"
  | "drift-corrected";

export interface NotifiedResource {
  readonly address: string;
  readonly actions: readonly string[];
  /** Drifted attribute paths. */
  readonly drift?: readonly string[];
}

export interface Notification {
  readonly kind: NotificationKind;
  /** The repository address, credentials already stripped by the caller. */
  readonly repository: string;
  readonly stack: string;
  readonly commit: string;
  readonly runId: string;
  /** One line, e.g. "aws_s3_bucket.artifacts: tags.purpose drifted". */
  readonly summary: string;
  readonly resources?: readonly NotifiedResource[];
  /** Link to the run in the dashboard. */
  readonly url?: string;
  /** ISO time. */
  readonly at: string;
}

export interface NotificationTarget {
  /** The only thing about a target that is logged: its URL may hold a secret. */
  readonly name: string;
  send(notification: Notification, signal: AbortSignal): Promise<void>;
}

export interface Notifier {
  notify(notification: Notification): void;
  /** Resolves when every queued delivery finished or gave up. */
  drain(): Promise<void>;
}

/**
 * A delivery attempt that did not succeed. `retryable` is false when the
 * receiver refused the notification itself (a 4xx other than 408/429), so
 * sending it again would be refused again. `reason` is safe to log: a status
 * or an error code, never a URL or a response body.
 */
export class DeliveryError extends Error {
  readonly retryable: boolean;
  readonly reason: string;
  readonly status: number | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    details: { retryable: boolean; reason: string; status?: number; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, { cause: details.cause });
    this.name = "DeliveryError";
    this.retryable = details.retryable;
    this.reason = details.reason;
    this.status = details.status;
    this.retryAfterMs = details.retryAfterMs;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------
// HTTP delivery shared by the targets

interface HttpTargetOptions {
  readonly name: string;
  readonly url: string;
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
}

function checkTargetUrl(name: string, url: string): void {
  // The message never repeats the address: a webhook URL is a credential.
  const parsed = URL.parse(url);
  if (parsed === null || (parsed.protocol !== "https:" && parsed.protocol !== "http:")) {
    throw new RunnerError(
      "CONFIG_INVALID",
      `notification target ${name}: url must be an http or https address`,
    );
  }
}

function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/** Retry-After in seconds or as an HTTP date (RFC 9110 §10.2.3). */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function networkReason(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  const code = typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined;
  return typeof code === "string" ? code : "network error";
}

async function postJson(
  options: HttpTargetOptions,
  body: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal,
): Promise<void> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const attemptSignal = AbortSignal.any([signal, timeout]);
  let response: Response;
  try {
    response = await (options.fetch ?? fetch)(options.url, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body,
      // A redirect would turn the POST into a GET; a webhook that moved is a configuration error.
      redirect: "manual",
      signal: attemptSignal,
    });
  } catch (error) {
    if (signal.aborted) {
      throw new DeliveryError(`${options.name}: cancelled`, {
        retryable: false,
        reason: "cancelled",
        cause: error,
      });
    }
    const reason = timeout.aborted ? "timeout" : networkReason(error);
    throw new DeliveryError(`${options.name}: request failed (${reason})`, {
      retryable: true,
      reason,
      cause: error,
    });
  }
  // The answer's body is not needed (Slack says "ok"); release the connection.
  await response.body?.cancel().catch(() => undefined);
  if (response.ok) return;
  const status = response.status;
  const after =
    status === 429 || status === 503 ? retryAfterMs(response.headers.get("retry-after")) : undefined;
  throw new DeliveryError(`${options.name}: answered HTTP ${status}`, {
    retryable: isRetryableStatus(status),
    reason: `HTTP ${status}`,
    status,
    ...(after === undefined ? {} : { retryAfterMs: after }),
  });
}

// ---------------------------------------------------------------------------
// Slack incoming webhook

const HEADLINES: Readonly<Record<NotificationKind, { readonly emoji: string; readonly words: string }>> = {
  "apply-failed": { emoji: ":x:", words: "apply failed" },
  "run-blocked": { emoji: ":no_entry:", words: "run blocked" },
  "drift-found": { emoji: ":warning:", words: "drift found" },
  "drift-changed": { emoji: ":warning:", words: "drift changed" },
  "drift-corrected": { emoji: ":white_check_mark:", words: "drift corrected" },
};

/** Slack's section block takes at most 3000 characters of text. */
const SLACK_SECTION_LIMIT = 3000;

/** Slack reads &, < and > as control characters in message text. */
function escapeSlack(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

function resourceLine(resource: NotifiedResource): string {
  const drift = resource.drift?.length ? `: ${resource.drift.join(", ")}` : "";
  return escapeSlack(`• \`${resource.address}\` ${resource.actions.join(", ")}${drift}`);
}

/** The incoming-webhook payload: a `text` line (also the notification fallback) and a section block. */
export function slackMessage(notification: Notification): {
  text: string;
  blocks: { type: "section"; text: { type: "mrkdwn"; text: string } }[];
} {
  const { emoji, words } = HEADLINES[notification.kind];
  const commit = notification.commit.slice(0, 7);
  const text = escapeSlack(
    `${emoji} ${words} in stack ${notification.stack} (${commit}): ${notification.summary}`,
  );

  const head = [
    `${emoji} *${words}* in stack \`${escapeSlack(notification.stack)}\` at \`${escapeSlack(commit)}\` of ${escapeSlack(notification.repository)}`,
    escapeSlack(notification.summary),
  ];
  const link = notification.url
    ? `<${escapeSlack(notification.url).replaceAll("|", "%7C")}|View run ${escapeSlack(notification.runId)}>`
    : `Run ${escapeSlack(notification.runId)}`;
  const resources = notification.resources ?? [];
  const listed: string[] = [];
  // Room for the head, the link, and the "more" line.
  let room = SLACK_SECTION_LIMIT - head.join("\n").length - link.length - 40;
  for (const resource of resources) {
    const line = resourceLine(resource);
    if (line.length + 1 > room) break;
    listed.push(line);
    room -= line.length + 1;
  }
  const more = resources.length > listed.length ? [`…and ${resources.length - listed.length} more`] : [];
  const full = [...head, ...listed, ...more, link].join("\n");
  // Only an overlong summary gets here; a section over the limit would make Slack refuse the message.
  const section = full.length > SLACK_SECTION_LIMIT ? `${full.slice(0, SLACK_SECTION_LIMIT - 1)}…` : full;
  return { text, blocks: [{ type: "section", text: { type: "mrkdwn", text: section } }] };
}

/** Posts to a Slack incoming webhook. Slack answers 200 "ok"; any 2xx counts as delivered. */
export function slackTarget(options: {
  name: string;
  url: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}): NotificationTarget {
  checkTargetUrl(options.name, options.url);
  return {
    name: options.name,
    send: (notification, signal) => postJson(options, JSON.stringify(slackMessage(notification)), {}, signal),
  };
}

// ---------------------------------------------------------------------------
// Generic signed JSON webhook

export function webhookBody(notification: Notification): string {
  const { kind, repository, stack, commit, runId, summary, resources, url, at } = notification;
  return JSON.stringify({
    kind,
    repository,
    stack,
    commit,
    runId,
    summary,
    resources: resources?.map(({ address, actions, drift }) => ({ address, actions, drift })),
    url,
    at,
  });
}

/** Posts the notification as JSON, signed with the secret so the receiver can check where it came from. */
export function webhookTarget(options: {
  name: string;
  url: string;
  secret: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}): NotificationTarget {
  checkTargetUrl(options.name, options.url);
  if (options.secret === "") {
    throw new RunnerError("CONFIG_INVALID", `notification target ${options.name}: secret must not be empty`);
  }
  // One delivery id per notification, kept across retries, so a receiver can drop repeats.
  const deliveries = new WeakMap<Notification, string>();
  return {
    name: options.name,
    send: (notification, signal) => {
      const delivery = deliveries.get(notification) ?? randomUUID();
      deliveries.set(notification, delivery);
      const body = webhookBody(notification);
      return postJson(
        options,
        body,
        {
          "X-Gitops-Runner-Event": notification.kind,
          "X-Gitops-Runner-Delivery": delivery,
          "X-Gitops-Runner-Signature": sha256Header(options.secret, body),
        },
        signal,
      );
    },
  };
}

// ---------------------------------------------------------------------------
// Email over SMTP

export interface EmailTargetOptions {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** starttls: upgrade a plain connection (required); tls: TLS from the first byte (port 465). */
  readonly security: "starttls" | "tls";
  readonly user?: string;
  readonly password?: string;
  readonly from: string;
  readonly to: readonly string[];
  /** Trust anchors (PEM) beside the system's, for a relay whose certificate a private CA signed. */
  readonly ca?: string;
  readonly timeoutMs?: number;
}

/** The subject and both bodies of a notification's email: plain text and HTML, saying the same. */
export function emailMessage(notification: Notification): { subject: string; text: string; html: string } {
  const { words } = HEADLINES[notification.kind];
  const commit = notification.commit.slice(0, 7);
  const headline = `${words} in stack ${notification.stack} at ${commit}`;
  const resources = notification.resources ?? [];
  const resourceText = (resource: NotifiedResource) =>
    `${resource.address}: ${resource.actions.join(", ")}${resource.drift?.length ? ` (drifted: ${resource.drift.join(", ")})` : ""}`;
  const link = notification.url
    ? `View run ${notification.runId}: ${notification.url}`
    : `Run ${notification.runId}`;
  const text = [
    `gitops-runner: ${headline}`,
    "",
    `Repository: ${notification.repository}`,
    `Stack: ${notification.stack}`,
    `Commit: ${notification.commit}`,
    `Summary: ${notification.summary}`,
    ...(resources.length > 0
      ? ["", "Resources:", ...resources.map((resource) => `- ${resourceText(resource)}`)]
      : []),
    "",
    link,
    `At: ${notification.at}`,
    "",
  ].join("\n");
  const html = [
    "<!doctype html>",
    '<html><body style="font-family: sans-serif">',
    `<h2>${escapeHtml(headline)}</h2>`,
    "<table>",
    ...[
      ["Repository", notification.repository],
      ["Stack", notification.stack],
      ["Commit", notification.commit],
      ["Summary", notification.summary],
    ].map(([label, value]) => `<tr><th align="left">${label}</th><td>${escapeHtml(value ?? "")}</td></tr>`),
    "</table>",
    ...(resources.length > 0
      ? [
          "<ul>",
          ...resources.map((resource) => `<li><code>${escapeHtml(resourceText(resource))}</code></li>`),
          "</ul>",
        ]
      : []),
    notification.url
      ? `<p><a href="${escapeHtml(notification.url)}">View run ${escapeHtml(notification.runId)}</a></p>`
      : `<p>Run ${escapeHtml(notification.runId)}</p>`,
    `<p><small>${escapeHtml(notification.at)}</small></p>`,
    "</body></html>",
    "",
  ].join("\n");
  return { subject: `[gitops-runner] ${headline}`, text, html };
}

function escapeHtml(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/**
 * Sends the notification as a multipart email (plain text and HTML) through
 * an SMTP relay, over TLS only (STARTTLS required, or TLS from the start).
 * The relay's 4xx answers and network failures are retried; 5xx answers (an
 * address refused, a wrong password) are not.
 */
export function emailTarget(options: EmailTargetOptions): NotificationTarget {
  if (options.to.length === 0) {
    throw new RunnerError("CONFIG_INVALID", `notification target ${options.name}: to must name an address`);
  }
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const transport = createTransport({
    host: options.host,
    port: options.port,
    secure: options.security === "tls",
    requireTLS: options.security === "starttls",
    ...(options.user ? { auth: { user: options.user, pass: options.password ?? "" } } : {}),
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    ...(options.ca ? { tls: { ca: options.ca } } : {}),
  });
  // One Message-ID per notification, kept across retries, so that a mail client shows repeats as one.
  const messageIds = new WeakMap<Notification, string>();
  return {
    name: options.name,
    async send(notification, signal) {
      const messageId = messageIds.get(notification) ?? `<${randomUUID()}@gitops-runner>`;
      messageIds.set(notification, messageId);
      const message = emailMessage(notification);
      const sent = transport.sendMail({
        from: options.from,
        to: [...options.to],
        subject: message.subject,
        text: message.text,
        html: message.html,
        messageId,
        headers: { "X-Gitops-Runner-Event": notification.kind },
      });
      const cancelled = new Promise<never>((_, reject) => {
        const abort = () =>
          reject(new DeliveryError(`${options.name}: cancelled`, { retryable: false, reason: "cancelled" }));
        if (signal.aborted) abort();
        else signal.addEventListener("abort", abort, { once: true });
      });
      try {
        await Promise.race([sent, cancelled]);
      } catch (error) {
        if (error instanceof DeliveryError) throw error;
        throw smtpFailure(options.name, error);
      }
    },
  };
}

/** nodemailer's error as a delivery error: the SMTP reply code decides, else the kind of failure. */
function smtpFailure(name: string, error: unknown): DeliveryError {
  const details = typeof error === "object" && error !== null ? (error as Record<string, unknown>) : {};
  const status = typeof details.responseCode === "number" ? details.responseCode : undefined;
  const code = typeof details.code === "string" ? details.code : "network error";
  if (status !== undefined) {
    return new DeliveryError(`${name}: the relay answered SMTP ${status}`, {
      retryable: status < 500,
      reason: `SMTP ${status}`,
      cause: error,
    });
  }
  // A refused login without a reply code, or a message nodemailer itself refuses, will not get better.
  const permanent = code === "EAUTH" || code === "EENVELOPE" || code === "EMESSAGE";
  return new DeliveryError(`${name}: sending failed (${code})`, {
    retryable: !permanent,
    reason: code,
    cause: error,
  });
}

// ---------------------------------------------------------------------------
// The notifier: a delivery per target, retried in the background

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal });
}

/**
 * Sends every notification to every target without making the caller wait or
 * fail. Call `drain()` to wait for what is queued; `close()` stops retrying,
 * cancels the attempts in flight, and resolves once they have settled.
 */
export function createNotifier(options: {
  targets: readonly NotificationTarget[];
  logger: Logger;
  retries?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}): Notifier & { close(): Promise<void> } {
  const { targets, logger } = options;
  const retries = options.retries ?? 5;
  const baseDelayMs = options.baseDelayMs ?? 1000;
  const maxDelayMs = options.maxDelayMs ?? 60_000;
  const sleep = options.sleep ?? defaultSleep;
  const closing = new AbortController();
  const inFlight = new Set<Promise<void>>();

  /** Full jitter (random between 0 and the exponential cap), but never sooner than the receiver asked. */
  function backoff(failedAttempts: number, error: unknown): number {
    const cap = Math.min(maxDelayMs, baseDelayMs * 2 ** (failedAttempts - 1));
    const jittered = Math.floor(Math.random() * cap);
    const asked = error instanceof DeliveryError ? (error.retryAfterMs ?? 0) : 0;
    return Math.min(maxDelayMs, Math.max(jittered, asked));
  }

  async function deliver(target: NotificationTarget, notification: Notification): Promise<void> {
    const fields = {
      target: target.name,
      kind: notification.kind,
      stack: notification.stack,
      runId: notification.runId,
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await target.send(notification, closing.signal);
        logger.info({ ...fields, attempts: attempt }, "notification delivered");
        return;
      } catch (error) {
        if (closing.signal.aborted) {
          logger.warn({ ...fields, attempts: attempt }, "notification abandoned: notifier closed");
          return;
        }
        const failure =
          error instanceof DeliveryError
            ? { reason: error.reason, ...(error.status === undefined ? {} : { status: error.status }) }
            : { reason: error instanceof Error ? error.name : "unknown" };
        if (error instanceof DeliveryError && !error.retryable) {
          logger.error({ ...fields, attempts: attempt, ...failure }, "notification rejected");
          return;
        }
        if (attempt > retries) {
          logger.error({ ...fields, attempts: attempt, ...failure }, "notification delivery gave up");
          return;
        }
        const delayMs = backoff(attempt, error);
        logger.warn({ ...fields, attempt, delayMs, ...failure }, "notification delivery failed; retrying");
        await sleep(delayMs, closing.signal).catch(() => undefined);
        if (closing.signal.aborted) {
          logger.warn({ ...fields, attempts: attempt }, "notification abandoned: notifier closed");
          return;
        }
      }
    }
  }

  async function drain(): Promise<void> {
    while (inFlight.size > 0) {
      await Promise.all(inFlight);
    }
  }

  return {
    notify(notification) {
      if (closing.signal.aborted) {
        logger.warn(
          { kind: notification.kind, stack: notification.stack },
          "notification dropped: notifier closed",
        );
        return;
      }
      for (const target of targets) {
        // deliver() logs every outcome itself; the catch only guards against a throwing logger.
        const delivery: Promise<void> = deliver(target, notification)
          .catch(() => undefined)
          .finally(() => inFlight.delete(delivery));
        inFlight.add(delivery);
      }
    },
    drain,
    async close() {
      closing.abort();
      await drain();
    },
  };
}
