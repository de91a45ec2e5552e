import fastifyCookie from "@fastify/cookie";
import fastifyCsrf from "@fastify/csrf-protection";
import fastifyFormbody from "@fastify/formbody";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { isRunnerError, RunnerError } from "../../errors.ts";
import type { ServiceApi } from "../../service/api.ts";
import { type Access, bearerGrant, type Grant, type Tokens, tokenGrants } from "../auth.ts";
import { errorBody, STATUS_OF, sendError } from "../errors.ts";
import { html } from "../html.ts";
import { prefersHtml } from "../negotiation.ts";
import { type RunLinker, requireRun } from "../run-views.ts";
import { type Sessions, sessions } from "../session.ts";
import { nameSchema, runParamsSchema, stackParamsSchema, type ZodTypeProvider } from "../validation.ts";
import { type Assets, loadAssets } from "./assets.ts";
import {
  confirmRunPage,
  confirmStackPage,
  errorPage,
  type RunAction,
  type StackAction,
  signInPage,
} from "./forms.ts";
import { graphPage } from "./graph-page.ts";
import { layout, notice, type PageParts, type Viewer } from "./layout.ts";
import { followRunLog } from "./log-stream.ts";
import { overviewPage, STATES } from "./overview.ts";
import { queuePage } from "./queue-page.ts";
import { runPage } from "./run-view.ts";
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

/** Scripts and styles only from the runner itself; no inline script or style, no frames. */
const PAGE_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const pageQuerySchema = z.strictObject({ notice: z.string().max(40).exactOptional() });
/** Links to runs (in pull requests, chat) once carried `?token=`: it is ignored now, and never passed on. */
const runPageQuerySchema = pageQuerySchema.extend({ token: z.string().max(1000).exactOptional() });
const overviewQuerySchema = pageQuerySchema.extend({
  state: z.enum(STATES).or(z.literal("")).exactOptional(),
  q: z.string().max(200).exactOptional(),
});
const signInQuerySchema = z.strictObject({ next: z.string().max(2000).exactOptional() });
const csrfField = { _csrf: z.string().max(200) };
const signInBodySchema = z.strictObject({
  ...csrfField,
  token: z.string().min(1).max(1000),
  next: z.string().max(2000),
});
const formSchema = z.strictObject(csrfField);
const suspendFormSchema = z.strictObject({ ...csrfField, reason: z.string().max(500).exactOptional() });
const cancelFormSchema = z.strictObject({ ...csrfField, force: z.literal("true").exactOptional() });
const freezeFormSchema = z.strictObject({
  ...csrfField,
  reason: z.string().trim().min(1, "a reason is needed").max(500),
  until: z.string().max(40).exactOptional(),
});
const stackActionSchema = z.strictObject({
  name: nameSchema,
  action: z.enum(["plan", "apply", "drift", "suspend", "resume", "release-lock"]),
});
const runActionSchema = z.strictObject({ id: nameSchema, action: z.enum(["approve", "cancel"]) });
const stackConfirmSchema = z.strictObject({
  name: nameSchema,
  action: z.enum(["apply", "drift", "release-lock"]),
});
const runConfirmSchema = z.strictObject({ id: nameSchema, action: z.enum(["approve", "cancel"]) });

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
    actionRoutes(scope, options.service, context);
  });
}

/** What every page route needs: who is asking, how to answer a page, and how to fail as one. */
class PageContext {
  readonly #options: DashboardOptions;
  readonly #sessions: Sessions;
  readonly #grantOf: (token: string) => Grant | undefined;
  readonly assets: Assets;

  constructor(options: DashboardOptions, sessions: Sessions, assets: Assets) {
    this.#options = options;
    this.#sessions = sessions;
    this.#grantOf = tokenGrants(options.tokens);
    this.assets = assets;
  }

  /** The session's access, or a bearer token's (for clients that send one). */
  accessOf(request: FastifyRequest): Access | undefined {
    return this.#sessions.accessOf(request) ?? bearerGrant(this.#grantOf, request)?.access;
  }

  /**
   * The viewer of a page that needs `need`: without a session, the answer is
   * the sign-in page (a redirect there, remembering where they were going).
   */
  viewer(request: FastifyRequest, reply: FastifyReply, need: Access): Viewer | undefined {
    const access = this.accessOf(request);
    if (
      access === undefined &&
      request.method === "GET" &&
      request.headers["sec-fetch-site"] === "cross-site"
    ) {
      // A link from another site (a pull request, a chat message) arrives without the SameSite=Strict
      // cookie: the page opens itself again from this site, which carries it.
      sendPage(reply, 200, reopenPage(withoutToken(request.url)));
      return undefined;
    }
    if (access === undefined) {
      const next = request.method === "GET" ? withoutToken(request.url) : "/";
      const target = `/sign-in?next=${encodeURIComponent(next)}`;
      if (request.headers["hx-request"]) reply.header("hx-redirect", target).code(401).send();
      else reply.redirect(target, 303);
      return undefined;
    }
    if (need === "write" && access !== "write") {
      throw new RunnerError(
        "FORBIDDEN",
        "this session may read but not change anything: sign in with a write token",
      );
    }
    let token: string | undefined;
    return {
      access,
      csrf: () => {
        token ??= reply.generateCsrf();
        return token;
      },
    };
  }

  async page(
    reply: FastifyReply,
    parts: Omit<PageParts, "gate"> & { readonly status?: number },
  ): Promise<FastifyReply> {
    const gate = parts.viewer ? await this.#options.service.applyGate() : undefined;
    return sendPage(
      reply,
      parts.status ?? 200,
      layout(this.assets.names, { ...parts, ...(gate ? { gate } : {}) }),
    );
  }

  /** Errors of page routes answer as pages; a JSON client of /runs/:id gets the API's error body. */
  fail(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply | Promise<FastifyReply> {
    if (!prefersHtml(request.headers.accept) && !request.headers["content-type"]?.includes("form")) {
      return sendError(error, request, reply);
    }
    const known = isRunnerError(error) && Object.hasOwn(STATUS_OF, error.code) && error.code !== "INTERNAL";
    const client = clientErrorOf(error);
    if (!known && !client) request.log.error({ err: error }, "request failed");
    const status = known ? STATUS_OF[error.code as keyof typeof STATUS_OF] : (client?.status ?? 500);
    const message = known
      ? error.message
      : (client?.message ?? "The runner failed to answer; its log has the details.");
    const access = this.accessOf(request);
    return this.page(reply, {
      title: "Error",
      status,
      ...(access ? { viewer: { access, csrf: () => reply.generateCsrf() } } : {}),
      body: errorPage(status, message),
    });
  }
}

function clientErrorOf(error: unknown): { status: number; message: string } | undefined {
  if (!(error instanceof Error) || !("statusCode" in error) || typeof error.statusCode !== "number")
    return undefined;
  if (error.statusCode < 400 || error.statusCode >= 500) return undefined;
  const csrf = "code" in error && typeof error.code === "string" && error.code.startsWith("FST_CSRF");
  return {
    status: csrf ? 403 : error.statusCode,
    message: csrf
      ? "The form was stale or not from this dashboard: go back, reload the page and try again."
      : error.message,
  };
}

export function sendPage(reply: FastifyReply, status: number, text: string): FastifyReply {
  return reply
    .code(status)
    .type("text/html; charset=utf-8")
    .header("content-security-policy", PAGE_POLICY)
    .header("referrer-policy", "same-origin")
    .header("x-content-type-options", "nosniff")
    .header("cache-control", "no-store")
    .send(text);
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

/** A page that loads `url` again from this site, so that the browser sends its SameSite=Strict session. */
function reopenPage(url: string): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${url}"><title>Opening… · gitops-runner</title></head>
<body><p><a href="${url}">Open the page</a></p></body></html>
`.text;
}

function withoutToken(url: string): string {
  const parsed = new URL(url, "http://runner.invalid");
  parsed.searchParams.delete("token");
  return `${parsed.pathname}${parsed.search}`;
}

/** Where to go after signing in: a path of this runner only, never another site. */
function safeNext(next: string | undefined): string {
  if (!next?.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  return next;
}

function signInRoutes(app: FastifyInstance, tokens: Tokens, session: Sessions, context: PageContext): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const grantOf = tokenGrants(tokens);
  api.get("/sign-in", { schema: { hide: true, querystring: signInQuerySchema } }, async (request, reply) => {
    const next = safeNext(request.query.next);
    if (context.accessOf(request)) return reply.redirect(next, 303);
    return context.page(reply, { title: "Sign in", body: signInPage({ next, csrf: reply.generateCsrf() }) });
  });
  api.post(
    "/sign-in",
    { schema: { hide: true, body: signInBodySchema }, preHandler: app.csrfProtection },
    async (request, reply) => {
      const next = safeNext(request.body.next);
      if (grantOf(request.body.token.trim()) === undefined) {
        request.log.info("sign-in refused");
        return context.page(reply, {
          title: "Sign in",
          status: 401,
          body: signInPage({ next, csrf: reply.generateCsrf(), error: "That token is not valid here." }),
        });
      }
      session.start(reply, request.body.token.trim());
      request.log.info("signed in");
      return reply.redirect(next, 303);
    },
  );
  api.post(
    "/sign-out",
    { schema: { hide: true, body: formSchema }, preHandler: app.csrfProtection },
    async (_request, reply) => {
      session.end(reply);
      return reply.redirect("/sign-in", 303);
    },
  );
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

  api.get(
    "/stacks/:name/confirm/:action",
    { schema: { ...hide, params: stackConfirmSchema } },
    async (request, reply) => {
      const viewer = context.viewer(request, reply, "write");
      if (!viewer) return reply;
      const stack = await requireStack(service, request.params.name);
      const body = confirmStackPage(stack, request.params.action as StackAction, viewer);
      return context.page(reply, { title: "Confirm", viewer, section: "stacks", body });
    },
  );

  api.get(
    "/runs/:id/confirm/:action",
    { schema: { ...hide, params: runConfirmSchema } },
    async (request, reply) => {
      const viewer = context.viewer(request, reply, "write");
      if (!viewer) return reply;
      const run = await requireRun(service, request.params.id);
      const body = confirmRunPage(run, request.params.action as RunAction, viewer);
      return context.page(reply, { title: "Confirm", viewer, section: "stacks", body });
    },
  );
}

/** The forms' targets: each checks the session's write access and the CSRF token, acts, and goes back. */
function actionRoutes(app: FastifyInstance, service: ServiceApi, context: PageContext): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const writer = (request: FastifyRequest, reply: FastifyReply) => context.viewer(request, reply, "write");
  const guarded = { preHandler: app.csrfProtection };

  api.post(
    "/stacks/:name/:action",
    { ...guarded, schema: { hide: true, params: stackActionSchema, body: suspendFormSchema } },
    async (request, reply) => {
      if (!writer(request, reply)) return reply;
      const { name, action } = request.params;
      const back = (key: string) => reply.redirect(`/stacks/${encodeURIComponent(name)}?notice=${key}`, 303);
      switch (action) {
        case "plan":
        case "apply":
        case "drift":
          await service.trigger({ kind: action, stack: name });
          return back("queued");
        case "suspend":
          await service.suspend(name, request.body.reason?.trim() || undefined);
          return back("suspended");
        case "resume":
          await service.resume(name);
          return back("resumed");
        case "release-lock":
          return back((await service.releaseLock(name)).released ? "released" : "not-locked");
      }
    },
  );

  api.post(
    "/runs/:id/:action",
    { ...guarded, schema: { hide: true, params: runActionSchema, body: cancelFormSchema } },
    async (request, reply) => {
      if (!writer(request, reply)) return reply;
      const { id, action } = request.params;
      if (action === "approve") {
        await service.approve(id);
        return reply.redirect(`/runs/${encodeURIComponent(id)}?notice=approved`, 303);
      }
      const result = await service.cancel(id, { force: request.body.force === "true" });
      const target = result.runId ? `/runs/${encodeURIComponent(result.runId)}` : "/queue";
      return reply.redirect(`${target}?notice=cancelled`, 303);
    },
  );

  api.post(
    "/freeze",
    { ...guarded, schema: { hide: true, body: freezeFormSchema } },
    async (request, reply) => {
      if (!writer(request, reply)) return reply;
      const until = request.body.until ? new Date(`${request.body.until}Z`) : undefined;
      if (until && Number.isNaN(until.getTime()))
        throw new RunnerError("BAD_REQUEST", "until: not a date and time");
      await service.freeze({ reason: request.body.reason, ...(until ? { until: until.toISOString() } : {}) });
      return reply.redirect("/queue?notice=frozen", 303);
    },
  );

  api.post("/unfreeze", { ...guarded, schema: { hide: true, body: formSchema } }, async (request, reply) => {
    if (!writer(request, reply)) return reply;
    await service.unfreeze();
    return reply.redirect("/queue?notice=unfrozen", 303);
  });
}

async function requireStack(service: Pick<ServiceApi, "getStack">, name: string) {
  const stack = await service.getStack(name);
  if (!stack) throw new RunnerError("STACK_UNKNOWN", `unknown stack "${name}"`);
  return stack;
}

function noticeOf(query: { readonly notice?: string }): { notice?: string } {
  const text = notice(query.notice);
  return text ? { notice: text } : {};
}
