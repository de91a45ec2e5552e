import { RunnerError } from "../errors.ts";
import { DEFAULT_ATTEMPT_TIMEOUT_MS, DeliveryError } from "./notifier.ts";

/** What the targets that POST JSON (Slack, the signed webhook) share. */
export interface HttpTargetOptions {
  readonly name: string;
  readonly url: string;
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
}

export function checkTargetUrl(name: string, url: string): void {
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

export async function postJson(
  options: HttpTargetOptions,
  body: string,
  headers: Readonly<Record<string, string>>,
  signal: AbortSignal,
): Promise<void> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS);
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
