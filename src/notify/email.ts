import { randomUUID } from "node:crypto";
import type { Transporter } from "nodemailer";
import { RunnerError } from "../errors.ts";
import { KIND_WORDS, type Notification, type NotifiedResource } from "./notification.ts";
import { DEFAULT_ATTEMPT_TIMEOUT_MS, DeliveryError, type NotificationTarget } from "./notifier.ts";

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
  const words = KIND_WORDS[notification.kind];
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
  const timeout = options.timeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  // nodemailer loads on the first mail: a runner without an email target never pays for it.
  let transport: Promise<Transporter> | undefined;
  const settings = {
    host: options.host,
    port: options.port,
    secure: options.security === "tls",
    requireTLS: options.security === "starttls",
    ...(options.user ? { auth: { user: options.user, pass: options.password ?? "" } } : {}),
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    ...(options.ca ? { tls: { ca: options.ca } } : {}),
  };
  const transporter = () =>
    (transport ??= import("nodemailer").then((nodemailer) => nodemailer.createTransport(settings)));
  // One Message-ID per notification, kept across retries, so that a mail client shows repeats as one.
  const messageIds = new WeakMap<Notification, string>();
  return {
    name: options.name,
    async send(notification, signal) {
      const messageId = messageIds.get(notification) ?? `<${randomUUID()}@gitops-runner>`;
      messageIds.set(notification, messageId);
      const message = emailMessage(notification);
      const sent = transporter().then((mailer) =>
        mailer.sendMail({
          from: options.from,
          to: [...options.to],
          subject: message.subject,
          text: message.text,
          html: message.html,
          messageId,
          headers: { "X-Gitops-Runner-Event": notification.kind },
        }),
      );
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
