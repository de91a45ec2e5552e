import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { RunnerError } from "../errors.ts";
import type { ServiceApi } from "../service/api.ts";
import { accessChecker, type Tokens } from "./auth.ts";
import { answerClientError, installErrorHandling, sendError } from "./errors.ts";
import { jsonBodyParser } from "./json-body.ts";
import { serializeRequest } from "./logging.ts";
import { registerOpenApi } from "./openapi.ts";
import { dashboardRoutes } from "./pages/dashboard.ts";
import { auditRoutes } from "./routes/audit.ts";
import { healthRoutes } from "./routes/health.ts";
import { operationRoutes } from "./routes/operations.ts";
import { rollbackRoutes } from "./routes/rollback.ts";
import { runRoutes } from "./routes/runs.ts";
import { stackRoutes } from "./routes/stacks.ts";
import { triggerRoutes } from "./routes/triggers.ts";
import { runLinker } from "./run-views.ts";
import { MAX_NAME_LENGTH, zodSerializerCompiler, zodValidatorCompiler } from "./validation.ts";
import { type ForgeWebhook, webhookRoutes } from "./webhooks.ts";

/**
 * The HTTP edge of `serve`: health, metrics, webhooks, the JSON API, its
 * OpenAPI document, and the dashboard. It validates, authenticates and translates; the service decides
 * and persists. This file only wires the parts together.
 */
export interface HttpOptions {
  readonly service: ServiceApi;
  readonly logger: Logger;
  /** Bearer tokens: write tokens may also read. Compared in constant time. */
  readonly tokens: Tokens;
  /** Secret for the generic webhook's HMAC-SHA256 signature; undefined: webhook routes answer 404. */
  readonly webhookSecret?: string;
  /** Base URL of the dashboard, for links (optional). */
  readonly publicUrl?: string;
  /** The forge's webhook: GitHub (HMAC secret) or GitLab (token); undefined: its route answers 404. */
  readonly forgeWebhook?: ForgeWebhook;
  /** Signs the dashboard's session and CSRF cookies. */
  readonly sessionSecret: string;
  /** A pull request's page on its forge, for links from run pages. */
  readonly pullRequestUrl?: (number: number) => string;
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
  const app = Fastify({
    loggerInstance,
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { maxParamLength: MAX_NAME_LENGTH },
    // What the router and Node's HTTP parser refuse gets the same error body as everything else.
    frameworkErrors: sendError,
    clientErrorHandler: answerClientError,
  });
  installErrorHandling(app);
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, jsonBodyParser);
  app.setValidatorCompiler(zodValidatorCompiler);
  app.setSerializerCompiler(zodSerializerCompiler);

  const { service } = options;
  const access = accessChecker(options.tokens);
  const runUrl = runLinker(options.publicUrl);
  registerOpenApi(app);
  // In a plugin, so that the OpenAPI document (registered first) sees every route.
  app.register(async (routes) => {
    healthRoutes(routes, service);
    webhookRoutes(routes, { service, secret: options.webhookSecret, forge: options.forgeWebhook });
    stackRoutes(routes, { service, access });
    runRoutes(routes, { service, access, runUrl });
    triggerRoutes(routes, { service, access });
    auditRoutes(routes, { service, access });
    rollbackRoutes(routes, { service, access });
    operationRoutes(routes, { service, access });
    dashboardRoutes(routes, {
      service,
      tokens: options.tokens,
      sessionSecret: options.sessionSecret,
      secureCookies: options.publicUrl?.startsWith("https:") === true,
      runUrl,
      ...(options.pullRequestUrl ? { pullRequestUrl: options.pullRequestUrl } : {}),
    });
  });
  return app;
}
