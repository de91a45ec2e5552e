import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { z } from "zod";
import { RunnerError } from "../errors.ts";
import { githubDelivery, gitlabDelivery } from "../forge/webhooks.ts";
import type { RunFilter, ServiceApi, TriggerKind } from "../service/api.ts";
import type { RunKind, RunRecord, RunStatus, RunSummary } from "../store/records.ts";

/**
 * The HTTP edge of `serve`: health, metrics, the generic webhook, the JSON API
 * and the run page. It validates, authenticates and translates; the service
 * decides and persists.
 */
export interface HttpOptions {
  readonly service: ServiceApi;
  readonly logger: Logger;
  /** Bearer tokens: write tokens may also read. Compared in constant time. */
  readonly tokens: { readonly read: readonly string[]; readonly write: readonly string[] };
  /** Secret for the generic webhook's HMAC-SHA256 signature; undefined: webhook routes answer 404. */
  readonly webhookSecret?: string;
  /** Base URL of the dashboard, for links (optional). */
  readonly publicUrl?: string;
  /** The forge's webhook: GitHub (HMAC secret) or GitLab (token); undefined: its route answers 404. */
  readonly forgeWebhook?: { readonly kind: "github" | "gitlab"; readonly secret: string };
}

const BODY_LIMIT_BYTES = 1024 * 1024;

export function buildHttpApp(options: HttpOptions): FastifyInstance {
  if (options.webhookSecret === "") {
    throw new RunnerError("CONFIG_INVALID", "the generic webhook's secret is empty");
  }
  const loggerInstance: FastifyBaseLogger = options.logger.child(
    { component: "http" },
    { serializers: { req: serializeRequest } },
  );
  const app = Fastify({ loggerInstance, bodyLimit: BODY_LIMIT_BYTES });
  const { service } = options;
  const access = accessChecker(options.tokens);
  const runUrl = runLinker(options.publicUrl);

  app.setErrorHandler((error, request, reply) => {
    const { code, message } = describeError(error);
    const status = STATUS_OF[code];
    if (status >= 500) {
      request.log.error({ err: error }, "request failed");
    } else {
      request.log.info({ code }, "request refused");
    }
    if (code === "UNAUTHORIZED") reply.header("www-authenticate", 'Bearer realm="gitops-runner"');
    return reply.code(status).send(errorBody(code, message));
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(STATUS_OF.NOT_FOUND)
      .send(errorBody("NOT_FOUND", `no route for ${request.method} ${pathOf(request.url)}`)),
  );

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_request, reply) => {
    const readiness = await service.readiness();
    return reply.code(readiness.ready ? 200 : 503).send(readiness);
  });
  app.get("/metrics", async (_request, reply) => {
    const metrics = await service.metrics();
    return reply.type(metrics.contentType).send(metrics.body);
  });

  if (options.webhookSecret !== undefined || options.forgeWebhook !== undefined) {
    const { webhookSecret, forgeWebhook } = options;
    app.register(async (scope) => webhookRoutes(scope, service, webhookSecret, forgeWebhook));
  }

  const read = { onRequest: access("read") };
  const write = { onRequest: access("write") };

  app.get("/api/stacks", read, async () => ({ stacks: await service.listStacks() }));

  app.get("/api/runs", read, async (request) => {
    const query = parse(runsQuerySchema, request.query, "query");
    const runs = await service.listRuns(query satisfies RunFilter);
    return { runs: runs.map((run) => ({ ...listView(run), ...runUrl(run.id) })) };
  });

  const findRun = async (request: FastifyRequest): Promise<RunRecord> => {
    const { id } = parse(runParamsSchema, request.params, "params");
    const run = await service.getRun(id);
    if (run === undefined) throw new RunnerError("RUN_NOT_FOUND", `no run with id ${id}`);
    return run;
  };

  app.get("/api/runs/:id", read, async (request) => {
    parse(emptyQuerySchema, request.query, "query");
    const run = await findRun(request);
    return { ...run, ...runUrl(run.id) };
  });

  // Also takes the token as `?token=`: a link to this page (in a PR comment or
  // a chat message) must open in a browser, which sends no Authorization header.
  app.get("/runs/:id", { onRequest: access("read", { allowQueryToken: true }) }, async (request, reply) => {
    parse(runPageQuerySchema, request.query, "query");
    const run = await findRun(request);
    reply.header("vary", "Accept").header("cache-control", "no-store");
    if (!prefersHtml(request.headers.accept)) return { ...run, ...runUrl(run.id) };
    return reply
      .type("text/html; charset=utf-8")
      .header("content-security-policy", RUN_PAGE_POLICY)
      .header("referrer-policy", "no-referrer")
      .header("x-content-type-options", "nosniff")
      .send(runPage(run).text);
  });

  for (const kind of TRIGGER_KINDS) {
    app.post(`/api/stacks/:name/${kind}`, write, async (request, reply) => {
      const { name } = parse(stackParamsSchema, request.params, "params");
      parse(emptyBodySchema, request.body, "body");
      return reply.code(202).send(await service.trigger({ kind, stack: name }));
    });
    app.post(`/api/${kind}`, write, async (request, reply) => {
      parse(emptyBodySchema, request.body, "body");
      return reply.code(202).send(await service.trigger({ kind }));
    });
  }

  app.post("/api/runs/:id/approve", write, async (request, reply) => {
    const { id } = parse(runParamsSchema, request.params, "params");
    parse(emptyBodySchema, request.body, "body");
    return reply.code(202).send(await service.approve(id));
  });

  app.delete("/api/stacks/:name/lock", write, async (request) => {
    const { name } = parse(stackParamsSchema, request.params, "params");
    parse(emptyBodySchema, request.body, "body");
    const { released } = await service.releaseLock(name);
    return { released };
  });

  return app;
}

// --- Validation ----------------------------------------------------------------

const TRIGGER_KINDS = ["plan", "apply", "drift"] as const satisfies readonly TriggerKind[];
const RUN_KINDS = ["synth", "plan", "apply", "drift"] as const satisfies readonly RunKind[];
const RUN_STATUSES = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "errored",
  "blocked",
  "cancelled",
  "interrupted",
] as const satisfies readonly RunStatus[];

const nameSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._-]+$/, "only letters, digits, '.', '_' and '-'");
const stackParamsSchema = z.strictObject({ name: nameSchema });
const runParamsSchema = z.strictObject({ id: nameSchema });
const runsQuerySchema = z.strictObject({
  stack: nameSchema.exactOptional(),
  kind: z.enum(RUN_KINDS).exactOptional(),
  status: z.enum(RUN_STATUSES).exactOptional(),
  limit: z.coerce.number().int().min(1).max(1000).exactOptional(),
});
const emptyQuerySchema = z.strictObject({});
const runPageQuerySchema = z.strictObject({ token: z.string().exactOptional() });
/** The trigger routes take no options yet: no body, or an empty object. */
const emptyBodySchema = z.strictObject({}).optional();

/** Parses `value` or throws BAD_REQUEST naming each offending field as `where.path`. */
function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (issue) => `${[where, ...issue.path.map(String)].join(".")}: ${issue.message}`,
  );
  throw new RunnerError("BAD_REQUEST", problems.join("; "), { cause: result.error });
}

// --- Errors ----------------------------------------------------------------------

/** The one table from error code to HTTP status; every error body carries one of these codes. */
const STATUS_OF = {
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

type HttpErrorCode = keyof typeof STATUS_OF;

function isHttpErrorCode(code: string): code is HttpErrorCode {
  return Object.hasOwn(STATUS_OF, code) && code !== "INTERNAL";
}

function errorBody(
  code: HttpErrorCode,
  message: string,
): { error: { code: HttpErrorCode; message: string } } {
  return { error: { code, message } };
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

// --- Authentication ----------------------------------------------------------------

type Access = "read" | "write";

/**
 * Builds `onRequest` hooks that admit a bearer token with the needed access.
 * Tokens are compared as SHA-256 digests with `timingSafeEqual`, against every
 * configured token, so neither a token's content nor its length shows in timing.
 */
function accessChecker(tokens: HttpOptions["tokens"]) {
  const digest = (token: string): Buffer => createHash("sha256").update(token).digest();
  const configured = (list: readonly string[]) => list.filter((token) => token.length > 0).map(digest);
  const readTokens = configured(tokens.read);
  const writeTokens = configured(tokens.write);
  const matchesAny = (presented: Buffer, list: readonly Buffer[]): boolean =>
    list.reduce((found, token) => timingSafeEqual(token, presented) || found, false);

  const grantOf = (token: string): Access | undefined => {
    const presented = digest(token);
    const write = matchesAny(presented, writeTokens);
    const read = matchesAny(presented, readTokens);
    return write ? "write" : read ? "read" : undefined;
  };

  return (need: Access, { allowQueryToken = false } = {}) =>
    async (request: FastifyRequest): Promise<void> => {
      const token =
        bearerToken(request.headers.authorization) ?? (allowQueryToken ? queryToken(request) : undefined);
      if (token === undefined) throw new RunnerError("UNAUTHORIZED", "a bearer token is required");
      const grant = grantOf(token);
      if (grant === undefined) throw new RunnerError("UNAUTHORIZED", "the token is not valid");
      if (need === "write" && grant !== "write") {
        throw new RunnerError("FORBIDDEN", "this token may read but not change anything");
      }
    };
}

function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? "");
  return match?.[1];
}

function queryToken(request: FastifyRequest): string | undefined {
  const query = request.query;
  if (typeof query !== "object" || query === null || !("token" in query)) return undefined;
  return typeof query.token === "string" && query.token.length > 0 ? query.token : undefined;
}

// --- Logging -------------------------------------------------------------------------

/** Logs a request as method and URL with any token value redacted; never headers. */
function serializeRequest(request: { method: string; url: string; ip?: string }) {
  return { method: request.method, url: redactUrl(request.url), remoteAddress: request.ip };
}

function redactUrl(url: string): string {
  const queryStart = url.indexOf("?");
  if (queryStart === -1) return url;
  const params = new URLSearchParams(url.slice(queryStart + 1));
  if (!params.has("token")) return url;
  params.set("token", "[redacted]");
  return `${url.slice(0, queryStart)}?${params.toString()}`;
}

function pathOf(url: string): string {
  const queryStart = url.indexOf("?");
  return queryStart === -1 ? url : url.slice(0, queryStart);
}

// --- Generic webhook --------------------------------------------------------------------

const SIGNATURE_HEADER = "x-gitops-runner-signature";
const DELIVERY_HEADER = "x-gitops-runner-delivery";
const deliverySchema = z.string().min(1).max(200);
/** Permissive: a sender may add fields; only these are read. */
const genericPayloadSchema = z.object({ repository: z.string().exactOptional() });

/**
 * In its own scope so that only this route keeps JSON bodies as the raw bytes:
 * the signature covers those bytes, and the JSON is parsed only once they are verified.
 */
async function webhookRoutes(
  scope: FastifyInstance,
  service: ServiceApi,
  secret: string | undefined,
  forge: HttpOptions["forgeWebhook"],
): Promise<void> {
  scope.removeContentTypeParser("application/json");
  scope.addContentTypeParser("application/json", { parseAs: "buffer" }, (_request, body, done) => {
    done(null, body);
  });

  if (forge !== undefined) {
    // Verified first (signature or token), persisted, answered 202; a delivery the runner
    // does not act on is answered 202 too, and nothing is queued.
    scope.post(`/webhooks/${forge.kind}`, async (request, reply) => {
      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const delivery =
        forge.kind === "github"
          ? githubDelivery(forge.secret, request.headers, raw)
          : gitlabDelivery(forge.secret, request.headers, raw);
      if (delivery.event === undefined) return reply.code(202).send({ ignored: true });
      const accepted = await service.forgeEvent(delivery.event, delivery.id);
      request.log.info(
        { deliveryId: delivery.id, event: delivery.event.kind, ...accepted },
        "webhook accepted",
      );
      return reply.code(202).send(accepted);
    });
  }
  if (secret === undefined) return;

  scope.post("/webhooks/generic", async (request, reply) => {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    verifySignature(secret, raw, request.headers[SIGNATURE_HEADER]);
    const deliveryId = parse(deliverySchema, request.headers[DELIVERY_HEADER], DELIVERY_HEADER);
    const payload = parse(genericPayloadSchema, parseJson(raw), "body");
    const accepted = await service.requestPoll("generic", deliveryId);
    request.log.info({ deliveryId, repository: payload.repository, ...accepted }, "webhook accepted");
    return reply.code(202).send(accepted);
  });
}

function verifySignature(secret: string, body: Buffer, header: string | string[] | undefined): void {
  const match = typeof header === "string" ? /^sha256=([0-9a-f]+)$/i.exec(header.trim()) : null;
  if (match?.[1] === undefined) {
    throw new RunnerError("SIGNATURE_INVALID", `${SIGNATURE_HEADER}: missing or not "sha256=<hex>"`);
  }
  const presented = Buffer.from(match[1], "hex");
  const expected = createHmac("sha256", secret).update(body).digest();
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    throw new RunnerError("SIGNATURE_INVALID", `${SIGNATURE_HEADER}: does not match the body`);
  }
}

function parseJson(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch (error) {
    throw new RunnerError("BAD_REQUEST", "body: not valid JSON", { cause: error });
  }
}

// --- Run views ------------------------------------------------------------------------

/** A run in a list: everything but the log and the plan, which can be large. */
function listView(run: RunSummary & { log?: unknown; plan?: unknown }): RunSummary {
  const { log: _log, plan: _plan, ...view } = run;
  return view;
}

/** `{ url }` of a run's page when the public URL is known, else nothing. */
function runLinker(publicUrl: string | undefined): (runId: string) => { url?: string } {
  if (publicUrl === undefined) return () => ({});
  const base = publicUrl.endsWith("/") ? publicUrl : `${publicUrl}/`;
  return (runId) => ({ url: new URL(`runs/${encodeURIComponent(runId)}`, base).href });
}

/**
 * Whether the Accept header ranks text/html above application/json. Each
 * type's quality comes from the most specific range that matches it (RFC 9110,
 * 12.5.1); a tie, as with `*\/*` or no header, answers JSON.
 */
function prefersHtml(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  const ranges = accept.split(",").flatMap((part) => {
    const [range = "", ...params] = part.split(";").map((piece) => piece.trim().toLowerCase());
    const [type, subtype] = range.split("/");
    if (!type || !subtype) return [];
    const qParam = params.find((param) => param.startsWith("q="));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    return [{ type, subtype, q: Number.isFinite(q) ? Math.min(Math.max(q, 0), 1) : 0 }];
  });
  const quality = (type: string, subtype: string): number => {
    let best = { specificity: -1, q: 0 };
    for (const range of ranges) {
      const specificity =
        range.type === type && range.subtype === subtype
          ? 2
          : range.type === type && range.subtype === "*"
            ? 1
            : range.type === "*" && range.subtype === "*"
              ? 0
              : -1;
      if (specificity > best.specificity) best = { specificity, q: range.q };
    }
    return best.q;
  };
  return quality("text", "html") > quality("application", "json");
}

// --- Run page ----------------------------------------------------------------------------

/** Inline styles only; no scripts, no external assets, no frames. */
const RUN_PAGE_POLICY =
  "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Markup that is already escaped. Everything else interpolated into `html` is escaped. */
class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let text = strings[0] ?? "";
  values.forEach((value, index) => {
    text += renderValue(value) + (strings[index + 1] ?? "");
  });
  return new Html(text);
}

function renderValue(value: unknown): string {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return value.map(renderValue).join("");
  if (value === undefined || value === null) return "";
  return escapeHtml(String(value));
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char] ?? char);
}

function runPage(run: RunRecord): Html {
  const started = Date.parse(run.startedAt);
  const ended = run.endedAt === undefined ? Number.NaN : Date.parse(run.endedAt);
  const seconds =
    Number.isFinite(started) && Number.isFinite(ended) ? `${Math.round((ended - started) / 1000)} s` : "";
  const engine = [run.engine, run.engineVersion].filter((part) => part !== undefined).join(" ");
  const providers = Object.entries(run.providers ?? {}).map(([name, version]) => `${name} ${version}`);
  const facts: [string, unknown][] = [
    ["Run", run.id],
    ["Kind", run.kind],
    ["Stack", run.stack],
    ["Commit", run.commit],
    ["Trigger", run.trigger],
    ["Pull request", run.pr],
    ["Status", run.status],
    ["Result", run.result],
    ["Started", run.startedAt],
    ["Ended", run.endedAt],
    ["Duration", seconds],
    ["Engine", engine],
    ["Providers", providers.join(", ")],
  ];
  const summary = run.summary;
  const resources = run.resources ?? [];
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${run.kind} ${run.stack}: ${run.status} · gitops-runner</title>
<style>
body { font: 14px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; color: #1f2328; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.5rem; text-align: left; }
pre { background: #f6f8fa; padding: 1rem; overflow: auto; white-space: pre-wrap; }
.status { padding: 0.1rem 0.5rem; border-radius: 1rem; background: #eaeef2; font-size: 0.8em; }
.error { color: #cf222e; }
</style>
</head>
<body>
<h1>${run.kind} of ${run.stack} <span class="status">${run.status}</span></h1>
<dl>
${facts.map(([label, value]) => html`<dt>${label}</dt><dd>${value}</dd>\n`)}</dl>
${
  run.error === undefined
    ? ""
    : html`<h2>Error</h2>\n<p class="error"><code>${run.error.code}</code> ${run.error.message}</p>\n`
}${
  summary === undefined
    ? ""
    : html`<h2>Summary</h2>
<table><tr><th>add</th><th>change</th><th>destroy</th><th>replace</th><th>import</th></tr>
<tr><td>${summary.add}</td><td>${summary.change}</td><td>${summary.destroy}</td><td>${summary.replace}</td><td>${summary.import}</td></tr></table>
`
}${
  resources.length === 0
    ? ""
    : html`<h2>Resources</h2>
<table><tr><th>Address</th><th>Actions</th></tr>
${resources.map((resource) => html`<tr><td>${resource.address}</td><td>${resource.actions.join(", ")}</td></tr>\n`)}</table>
`
}<h2>Log</h2>
<pre>${run.log ?? ""}</pre>
</body>
</html>
`;
}
