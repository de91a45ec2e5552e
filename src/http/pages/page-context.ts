import type { FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { isRunnerError, RunnerError } from "../../errors.ts";
import type { ServiceApi, StackDetail } from "../../service/api.ts";
import { type Access, bearerGrant, type Grant, tokenGrants } from "../auth.ts";
import { STATUS_OF, sendError } from "../errors.ts";
import { html } from "../html.ts";
import { prefersHtml } from "../negotiation.ts";
import type { Sessions } from "../session.ts";
import type { Assets } from "./assets.ts";
import type { DashboardOptions } from "./dashboard.ts";
import { errorPage } from "./forms.ts";
import { layout, notice, type PageParts, type Viewer } from "./layout.ts";

/** Scripts and styles only from the runner itself; no inline script or style, no frames. */
const PAGE_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/** The CSRF token every form carries. */
export const csrfField = { _csrf: z.string().max(200) };
export const formSchema = z.strictObject(csrfField);

/** What every page route needs: who is asking, how to answer a page, and how to fail as one. */
export class PageContext {
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
    return this.#grant(request)?.access;
  }

  /** The session's grant (or a bearer token's), with the token's name the audit trail records. */
  #grant(request: FastifyRequest): Grant | undefined {
    return this.#sessions.grantOf(request) ?? bearerGrant(this.#grantOf, request);
  }

  /**
   * The viewer of a page that needs `need`: without a session, the answer is
   * the sign-in page (a redirect there, remembering where they were going).
   */
  viewer(request: FastifyRequest, reply: FastifyReply, need: Access): Viewer | undefined {
    const grant = this.#grant(request);
    const access = grant?.access;
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
      ...(grant ? { tokenName: grant.name } : {}),
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

/** A page that loads `url` again from this site, so that the browser sends its SameSite=Strict session. */
function reopenPage(url: string): string {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${url}"><title>Opening… · gitops-runner</title></head>
<body><p><a href="${url}">Open the page</a></p></body></html>
`.text;
}

export function withoutToken(url: string): string {
  const parsed = new URL(url, "http://runner.invalid");
  parsed.searchParams.delete("token");
  return `${parsed.pathname}${parsed.search}`;
}

export async function requireStack(
  service: Pick<ServiceApi, "getStack">,
  name: string,
): Promise<StackDetail> {
  const stack = await service.getStack(name);
  if (!stack) throw new RunnerError("STACK_UNKNOWN", `unknown stack "${name}"`);
  return stack;
}

export function noticeOf(query: { readonly notice?: string }): { notice?: string } {
  const text = notice(query.notice);
  return text ? { notice: text } : {};
}
