import { maxHeaderSize, type ServerResponse, STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import type { ConnectionError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { RunnerError } from "../errors.ts";
import { MAX_NAME_LENGTH } from "./validation.ts";

/** The one table from error code to HTTP status; every error body carries one of these codes. */
export const STATUS_OF = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  SIGNATURE_INVALID: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  STACK_UNKNOWN: 404,
  RUN_NOT_FOUND: 404,
  GIT_REF_UNKNOWN: 404,
  REQUEST_TIMEOUT: 408,
  RUN_NOT_BLOCKED: 409,
  RUN_NOT_CANCELLABLE: 409,
  RUN_APPLYING: 409,
  STACK_LOCKED: 409,
  COMMIT_NOT_APPLIED: 409,
  NOTHING_TO_ROLL_BACK: 409,
  PAYLOAD_TOO_LARGE: 413,
  URI_TOO_LONG: 414,
  UNSUPPORTED_MEDIA_TYPE: 415,
  HEADERS_TOO_LARGE: 431,
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

/** The error handler; also fastify's `frameworkErrors`, which the router raises before any route runs. */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
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
  if (client !== undefined)
    return ROUTER_ERRORS[client.code] ?? { code: codeOfStatus(client.statusCode), message: client.message };
  return { code: "INTERNAL", message: "internal error" };
}

/** The router's own refusals, reworded: fastify's messages repeat the URL, and with it a `?token=`. */
const ROUTER_ERRORS: Readonly<Record<string, { code: HttpErrorCode; message: string }>> = {
  FST_ERR_BAD_URL: { code: "BAD_REQUEST", message: "url: the path is not valid percent-encoding" },
  FST_ERR_MAX_PARAM_LENGTH: {
    code: "URI_TOO_LONG",
    message: `url: a path parameter is longer than ${MAX_NAME_LENGTH} characters`,
  },
};

function codeOfStatus(status: number): HttpErrorCode {
  if (status === 403) return "FORBIDDEN";
  if (status === 413) return "PAYLOAD_TOO_LARGE";
  if (status === 414) return "URI_TOO_LONG";
  if (status === 415) return "UNSUPPORTED_MEDIA_TYPE";
  return "BAD_REQUEST";
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

/** What Node's HTTP parser refused, keyed by its error code; anything else is malformed HTTP. */
const CONNECTION_ERRORS: Readonly<Record<string, { code: HttpErrorCode; message: string }>> = {
  HPE_HEADER_OVERFLOW: {
    code: "HEADERS_TOO_LARGE",
    message: `headers: larger than the limit of ${maxHeaderSize} bytes`,
  },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { code: "PAYLOAD_TOO_LARGE", message: "body: chunk extensions too large" },
  ERR_HTTP_REQUEST_TIMEOUT: { code: "REQUEST_TIMEOUT", message: "the request did not arrive in time" },
};

/**
 * fastify's `clientErrorHandler`: answers what Node's HTTP parser refused before
 * fastify saw a request (headers over the size limit, malformed HTTP, a request
 * that took too long) in the same error shape, then closes the connection. As
 * Node does, it writes nothing once a response on this connection has started.
 */
export function answerClientError(this: FastifyInstance, error: ConnectionError, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const { code, message } = CONNECTION_ERRORS[error.code] ?? {
    code: "BAD_REQUEST",
    message: "not a valid HTTP request",
  };
  const status = STATUS_OF[code];
  // Never the error itself: its rawPacket holds the request's bytes, tokens included.
  this.log.info({ code, status }, "request refused");
  // Node keeps the response in flight on a keep-alive connection here.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const body = JSON.stringify(errorBody(code, message));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
