import type { z } from "zod";
import type { ForgeKind } from "./port.ts";

/**
 * A forge API call that failed. Local to the forge adapters until these codes
 * join RunnerError's; match on `code`, never on the message.
 */
export type ForgeErrorCode = "FORGE_UNAUTHORIZED" | "FORGE_NOT_FOUND" | "FORGE_FAILED";

export class ForgeError extends Error {
  readonly code: ForgeErrorCode;
  /** The HTTP status the forge answered with; undefined when no usable answer came. */
  readonly status: number | undefined;

  constructor(code: ForgeErrorCode, message: string, options?: { status?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ForgeError";
    this.code = code;
    this.status = options?.status;
  }
}

export function isForgeError(error: unknown, code?: ForgeErrorCode): error is ForgeError {
  return error instanceof ForgeError && (code === undefined || error.code === code);
}

export function forgeErrorCode(status: number): ForgeErrorCode {
  if (status === 401 || status === 403) return "FORGE_UNAUTHORIZED";
  if (status === 404) return "FORGE_NOT_FOUND";
  return "FORGE_FAILED";
}

/** What the adapters know of a failed call; `secret` (the token) is cut out of every text. */
export interface FailedCall {
  readonly forge: ForgeKind;
  /** What was being done, e.g. "get pull request #4". */
  readonly action: string;
  readonly secret: string;
  readonly status?: number;
  /** The forge's own explanation (its `message` field) or the transport's. */
  readonly detail?: string;
  readonly cause?: unknown;
}

const DETAIL_LIMIT = 300;

export function forgeError(call: FailedCall): ForgeError {
  const code = call.status === undefined ? "FORGE_FAILED" : forgeErrorCode(call.status);
  const answered = call.status === undefined ? "no answer" : `HTTP ${call.status}`;
  const detail = call.detail ? `: ${call.detail.slice(0, DETAIL_LIMIT)}` : "";
  const message = redact(`${call.forge}: ${call.action}: ${answered}${detail}`, call.secret);
  return new ForgeError(code, message, {
    ...(call.status === undefined ? {} : { status: call.status }),
    ...(call.cause === undefined ? {} : { cause: call.cause }),
  });
}

/** A 2xx answer whose body is not what the forge documents. */
export function unexpectedAnswer(
  forge: FailedCall["forge"],
  action: string,
  status: number,
  error: z.ZodError,
): ForgeError {
  const issue = error.issues[0];
  const where = issue ? `${issue.path.join(".") || "(root)"}: ${issue.message}` : "invalid";
  return new ForgeError("FORGE_FAILED", `${forge}: ${action}: unexpected answer: ${where}`, {
    status,
    cause: error,
  });
}

/**
 * The forge's own explanation in an error body: its `message` (or GitLab's
 * `error`, or Bitbucket's `error.message`) field.
 */
export function messageOf(body: unknown): string | undefined {
  if (typeof body === "string") return body || undefined;
  if (typeof body !== "object" || body === null) return undefined;
  const explanation = "message" in body ? body.message : "error" in body ? body.error : undefined;
  if (typeof explanation === "string") return explanation;
  if (typeof explanation === "object" && explanation !== null && "message" in explanation) {
    return typeof explanation.message === "string" ? explanation.message : undefined;
  }
  // GitLab answers some validation failures with { message: { field: ["problem"] } }.
  return explanation === undefined ? undefined : JSON.stringify(explanation);
}

function redact(text: string, secret: string): string {
  return secret ? text.split(secret).join("[REDACTED]") : text;
}
