import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { RunnerError } from "../errors.ts";

/** The one table from error code to HTTP status; every error body carries one of these codes. */
export const STATUS_OF = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  SIGNATURE_INVALID: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  STACK_UNKNOWN: 404,
  RUN_NOT_FOUND: 404,
  RUN_NOT_BLOCKED: 409,
  STACK_LOCKED: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL: 500,
} as const satisfies Record<string, number>;

export type HttpErrorCode = keyof typeof STATUS_OF;

function isHttpErrorCode(code: string): code is HttpErrorCode {
  return Object.hasOwn(STATUS_OF, code) && code !== "INTERNAL";
}

export function errorBody(
  code: HttpErrorCode,
  message: string,
): { error: { code: HttpErrorCode; message: string } } {
  return { error: { code, message } };
}

/** Installs the one error handler and the 404 answer, both in the `{ error: { code, message } }` shape. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(sendError);
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(STATUS_OF.NOT_FOUND)
      .send(errorBody("NOT_FOUND", `no route for ${request.method} ${pathOf(request.url)}`)),
  );
}

function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { code, message } = describeError(error);
  const status = STATUS_OF[code];
  if (status >= 500) {
    request.log.error({ err: error }, "request failed");
  } else {
    request.log.info({ code }, "request refused");
  }
  if (code === "UNAUTHORIZED") reply.header("www-authenticate", 'Bearer realm="gitops-runner"');
  return reply.code(status).send(errorBody(code, message));
}

/** What the client may learn about an error: our codes with their messages, fastify's 4xx, else nothing. */
function describeError(error: unknown): { code: HttpErrorCode; message: string } {
  if (error instanceof RunnerError && isHttpErrorCode(error.code)) {
    return { code: error.code, message: error.message };
  }
  const client = fastifyClientError(error);
  if (client !== undefined) {
    if (client.code === "FST_ERR_CTP_INVALID_JSON_BODY")
      return { code: "BAD_REQUEST", message: "body: not valid JSON" };
    if (client.statusCode === 413) return { code: "PAYLOAD_TOO_LARGE", message: client.message };
    if (client.statusCode === 415) return { code: "UNSUPPORTED_MEDIA_TYPE", message: client.message };
    return { code: "BAD_REQUEST", message: client.message };
  }
  return { code: "INTERNAL", message: "internal error" };
}

/** Fastify's own request errors (`FST_*` with a 4xx status) describe the request, never the runner. */
function fastifyClientError(
  error: unknown,
): { code: string; statusCode: number; message: string } | undefined {
  if (!(error instanceof Error) || !("code" in error) || !("statusCode" in error)) return undefined;
  const { code, statusCode } = error;
  if (typeof code !== "string" || !code.startsWith("FST_") || typeof statusCode !== "number")
    return undefined;
  return statusCode >= 400 && statusCode < 500 ? { code, statusCode, message: error.message } : undefined;
}

function pathOf(url: string): string {
  const queryStart = url.indexOf("?");
  return queryStart === -1 ? url : url.slice(0, queryStart);
}
