import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";
import type { Notification } from "./notification.ts";

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

/** How long one delivery attempt may take unless the target is told otherwise. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;

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
