import fastifyCookie from "@fastify/cookie";
import fastifyCsrf from "@fastify/csrf-protection";
import fastifyFormbody from "@fastify/formbody";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { RunnerError } from "../../errors.ts";
import type { ServiceApi } from "../../service/api.ts";
import type { Tokens } from "../auth.ts";
import { errorBody } from "../errors.ts";
import { prefersHtml } from "../negotiation.ts";
import { type RunLinker, requireRun } from "../run-views.ts";
import { sessions } from "../session.ts";
import { runParamsSchema, stackParamsSchema, type ZodTypeProvider } from "../validation.ts";
import { actionRoutes, confirmRoutes } from "./actions.ts";
import { type Assets, loadAssets } from "./assets.ts";
import { graphPage } from "./graph-page.ts";
import { followRunLog } from "./log-stream.ts";
import { overviewPage, STATES } from "./overview.ts";
import { noticeOf, PageContext, requireStack } from "./page-context.ts";
import { queuePage } from "./queue-page.ts";
import { runPage } from "./run-view.ts";
import { signInRoutes } from "./sign-in.ts";
import { stackPage } from "./stack-page.ts";

export interface DashboardOptions {
  readonly service: ServiceApi;
  readonly tokens: Tokens;
  /** Signs session and CSRF cookies. */
  readonly sessionSecret: string;
  /** Cookies only over HTTPS: the dashboard's public address is https. */
  readonly secureCookies: boolean;
  readonly runUrl: RunLinker;
  /** The page of a pull request on its forge, when a forge is configured. */
  readonly pullRequestUrl?: (number: number) => string;
}

const pageQuerySchema = z.strictObject({ notice: z.string().max(40).exactOptional() });
/** Links to runs (in pull requests, chat) once carried `?token=`: it is ignored now, and never passed on. */
const runPageQuerySchema = pageQuerySchema.extend({ token: z.string().max(1000).exactOptional() });
const overviewQuerySchema = pageQuerySchema.extend({
  state: z.enum(STATES).or(z.literal("")).exactOptional(),
  q: z.string().max(200).exactOptional(),
});
/**
 * The dashboard: server-rendered pages over the same ServiceApi as the JSON
 * API, behind a session (a token pasted once), every form that changes
 * anything CSRF-protected, actions only for write access, assets served by
 * the runner itself. In its own scope: form bodies and cookies are parsed
 * here only, and errors answer as pages.
 */
export function dashboardRoutes(app: FastifyInstance, options: DashboardOptions): void {
  app.register(async (scope) => {
    await scope.register(fastifyCookie, { secret: options.sessionSecret });
    const cookieOptions = {
      path: "/",
      httpOnly: true,
      sameSite: "strict" as const,
      secure: options.secureCookies,
    };
    await scope.register(fastifyCsrf, {
      sessionPlugin: "@fastify/cookie",
      cookieOpts: { ...cookieOptions, signed: true },
      getToken: (request) => (request.body as { _csrf?: string } | undefined)?._csrf,
    });
    await scope.register(fastifyFormbody, { bodyLimit: 64 * 1024 });
    const assets = await loadAssets();
    const session = sessions({
      secret: options.sessionSecret,
      tokens: options.tokens,
      secure: options.secureCookies,
    });
    const context = new PageContext(options, session, assets);
    scope.setErrorHandler((error, request, reply) => context.fail(error, request, reply));
    assetRoutes(scope, assets);
    signInRoutes(scope, options.tokens, session, context);
    pageRoutes(scope, options, context);
    confirmRoutes(scope, options.service, context);
    actionRoutes(scope, options.service, context);
  });
}

function assetRoutes(app: FastifyInstance, assets: Assets): void {
  app.get("/assets/:file", { schema: { hide: true } }, async (request, reply) => {
    const file = assets.files.get((request.params as { file: string }).file);
    if (!file) return reply.code(404).send(errorBody("NOT_FOUND", "no such asset"));
    return reply
      .type(file.type)
      .header("cache-control", "public, max-age=31536000, immutable")
      .header("x-content-type-options", "nosniff")
      .send(file.body);
  });
}

function pageRoutes(app: FastifyInstance, options: DashboardOptions, context: PageContext): void {
  const { service } = options;
  const api = app.withTypeProvider<ZodTypeProvider>();
  const hide = { hide: true };

  api.get("/", { schema: { ...hide, querystring: overviewQuerySchema } }, async (request, reply) => {
    const viewer = context.viewer(request, reply, "read");
    if (!viewer) return reply;
    const { state, q } = request.query;
    const body = overviewPage(await service.listStacks(), {
      ...(state ? { state } : {}),
      ...(q ? { q } : {}),
    });
    return context.page(reply, {
      title: "Stacks",
      viewer,
      section: "stacks",
      ...noticeOf(request.query),
      body,
    });
  });

  api.get(
    "/stacks/:name",
    { schema: { ...hide, params: stackParamsSchema, querystring: pageQuerySchema } },
    async (request, reply) => {
      const viewer = context.viewer(request, reply, "read");
      if (!viewer) return reply;
      const stack = await requireStack(service, request.params.name);
      const runs = await service.listRuns({ stack: stack.name, limit: 50 });
      return context.page(reply, {
        title: stack.name,
        viewer,
        section: "stacks",
        ...noticeOf(request.query),
        body: stackPage(stack, runs, viewer),
      });
    },
  );

  // A run's page for people, its JSON for other clients (links in pull requests and chat point here).
  api.get(
    "/runs/:id",
    { schema: { ...hide, params: runParamsSchema, querystring: runPageQuerySchema } },
    async (request, reply) => {
      reply.header("vary", "Accept").header("cache-control", "no-store");
      if (!prefersHtml(request.headers.accept)) {
        if (context.accessOf(request) === undefined) {
          throw new RunnerError("UNAUTHORIZED", "a bearer token is required");
        }
        const run = await requireRun(service, request.params.id);
        return reply.send({ ...run, ...options.runUrl(run.id) });
      }
      const viewer = context.viewer(request, reply, "read");
      if (!viewer) return reply;
      const run = await requireRun(service, request.params.id);
      return context.page(reply, {
        title: `${run.kind} ${run.stack}: ${run.status}`,
        viewer,
        section: "stacks",
        ...noticeOf(request.query),
        body: runPage(run, viewer, options.pullRequestUrl ? { pullRequest: options.pullRequestUrl } : {}),
      });
    },
  );

  api.get("/runs/:id/log", { schema: { ...hide, params: runParamsSchema } }, async (request, reply) => {
    if (context.accessOf(request) === undefined) throw new RunnerError("UNAUTHORIZED", "sign in first");
    await requireRun(service, request.params.id);
    const lastEventId = Number(request.headers["last-event-id"]);
    const after = Number((request.query as { after?: string }).after);
    followRunLog(request, reply, {
      service,
      id: request.params.id,
      offset: Number.isSafeInteger(lastEventId) ? lastEventId : Number.isSafeInteger(after) ? after : 0,
    });
    return reply;
  });

  api.get("/queue", { schema: { ...hide, querystring: pageQuerySchema } }, async (request, reply) => {
    const viewer = context.viewer(request, reply, "read");
    if (!viewer) return reply;
    const body = queuePage(await service.queue(), viewer);
    return context.page(reply, {
      title: "Queue",
      viewer,
      section: "queue",
      ...noticeOf(request.query),
      body,
    });
  });

  api.get("/graph", { schema: { ...hide, querystring: pageQuerySchema } }, async (request, reply) => {
    const viewer = context.viewer(request, reply, "read");
    if (!viewer) return reply;
    return context.page(reply, {
      title: "Graph",
      viewer,
      section: "graph",
      body: graphPage(await service.listStacks()),
    });
  });
}
