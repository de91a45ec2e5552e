import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import type { z } from "zod";

/**
 * What the fake GitHub and GitLab share: a loopback HTTP server that records
 * every request in order and answers the ones a correct client would not send
 * with an error, noting them as unexpected so that the test fails.
 */

export interface RecordedCall {
  readonly method: string;
  /** Relative to the API root (no /api/v3 or /api/v4), still URL-encoded. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** The parsed JSON body; undefined when there was none. */
  readonly body: unknown;
  /** The status the fake answered with. */
  readonly status: number;
}

export interface UnexpectedRequest extends RecordedCall {
  readonly reason: string;
}

/** What the fakes have in common, so end-to-end tests can run against either. */
export interface FakeForge {
  /** The API root for GitHub (what `baseUrl` takes); the instance root for GitLab. */
  readonly url: string;
  /** Every expected request, in the order they came. */
  readonly calls: readonly RecordedCall[];
  /** Requests a correct client would not send; assertNoUnexpected fails while there are any. */
  readonly unexpected: readonly UnexpectedRequest[];
  addPullRequest(pullRequest: FakePullRequestInput): void;
  setPullRequestState(number: number, state: "open" | "closed" | "merged", merge?: FakeMerge): void;
  /** A push to the pull request's branch. */
  setHeadSha(number: number, sha: string): void;
  /** An approval of the pull request by `user` (a review on GitHub, an approval on GitLab). */
  addApproval(number: number, user: string): void;
  /** Every pull request, including those opened through the API. */
  pullRequests(): FakePullRequestView[];
  /** A comment someone else wrote. */
  addComment(number: number, body: string, author?: string): FakeComment;
  /** The pull request's comments now, oldest first. */
  comments(number: number): FakeComment[];
  /** What the forge's permission API reports for someone (default: no access at all). */
  setPermission(account: string, level: FakePermission): void;
  /** The reactions (emoji names as the forge names them) the token's user put on a comment. */
  reactions(commentId: number): string[];
  /** Every status accepted for the commit, in the order posted. */
  statuses(sha: string): FakeStatus[];
  pullRequestUrl(number: number): string;
  /** Returns the unexpected requests so far and forgets them: for tests that provoke one on purpose. */
  takeUnexpected(): UnexpectedRequest[];
  assertNoUnexpected(): void;
  /** Resolves with the first call, past or future, that matches. */
  waitForCall(matches: (call: RecordedCall) => boolean, timeoutMs?: number): Promise<RecordedCall>;
  close(): Promise<void>;
}

export interface FakePullRequestInput {
  readonly number: number;
  readonly headSha: string;
  /** Defaults to `change-<number>`. */
  readonly headRef?: string;
  /** Defaults to `main`. */
  readonly baseRef?: string;
  /**
   * The repository the head lives in ("owner/name" on GitHub, the project path on
   * GitLab): another one makes a fork, null a fork since deleted. Defaults to the base.
   */
  readonly headRepository?: string | null;
  readonly title?: string;
  /** Who opened it; defaults to "contributor". */
  readonly author?: string;
}

export interface FakePullRequestView {
  readonly number: number;
  readonly headRef: string;
  readonly headSha: string;
  readonly baseRef: string;
  readonly title: string;
  readonly body: string;
  readonly author: string;
  readonly state: string;
}

/** GitHub's and Gitea's levels; the GitLab fake maps them onto access levels. */
export type FakePermission = "admin" | "write" | "read" | "none";

export interface FakeMerge {
  readonly mergeCommitSha?: string;
  /** Who merged it; defaults to "maintainer". */
  readonly mergedBy?: string;
}

export interface FakeComment {
  readonly id: number;
  readonly body: string;
  readonly author: string;
}

export interface FakeStatus {
  readonly context: string;
  /** In the forge's own words: GitHub's "failure" is GitLab's "failed". */
  readonly state: string;
  readonly description: string | undefined;
  readonly targetUrl: string | undefined;
}

export interface FakeRequest {
  readonly method: string;
  /** Relative to the API root, still URL-encoded. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  readonly body: unknown;
}

export interface FakeResponse {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Thrown by a fake's handler: the answer for a request that a correct client would not send. */
export class Unexpected extends Error {
  readonly status: number;
  readonly body: unknown;

  constructor(status: number, reason: string, body: unknown) {
    super(reason);
    this.name = "Unexpected";
    this.status = status;
    this.body = body;
  }
}

export interface FakeServer {
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  readonly calls: RecordedCall[];
  readonly unexpected: UnexpectedRequest[];
  takeUnexpected(): UnexpectedRequest[];
  assertNoUnexpected(): void;
  waitForCall(matches: (call: RecordedCall) => boolean, timeoutMs?: number): Promise<RecordedCall>;
  close(): Promise<void>;
}

export interface FakeServerOptions {
  readonly name: string;
  /** Where the API is served, e.g. "/api/v4"; anything outside it is unexpected. */
  readonly prefix: string;
  /** Answered outside the prefix and for unknown routes. */
  readonly notFound: unknown;
  readonly handle: (request: FakeRequest) => FakeResponse;
}

interface Waiter {
  readonly matches: (call: RecordedCall) => boolean;
  readonly resolve: (call: RecordedCall) => void;
}

export async function startFakeServer(options: FakeServerOptions): Promise<FakeServer> {
  const calls: RecordedCall[] = [];
  const unexpected: UnexpectedRequest[] = [];
  let waiters: Waiter[] = [];
  let closing: Promise<void> | undefined;

  function record(call: RecordedCall): void {
    calls.push(call);
    const ready = waiters.filter((waiter) => waiter.matches(call));
    waiters = waiters.filter((waiter) => !ready.includes(waiter));
    for (const waiter of ready) waiter.resolve(call);
  }

  async function serve(incoming: IncomingMessage, outgoing: ServerResponse): Promise<void> {
    const method = incoming.method ?? "";
    const url = new URL(incoming.url ?? "/", "http://fake");
    const inside = url.pathname === options.prefix || url.pathname.startsWith(`${options.prefix}/`);
    const path = inside ? url.pathname.slice(options.prefix.length) || "/" : url.pathname;
    const query = Object.fromEntries(url.searchParams);
    const text = await readText(incoming);
    let body: unknown;
    let answer: FakeResponse;
    try {
      body = parseJsonBody(method, incoming.headers, text);
      if (!inside) throw new Unexpected(404, `outside ${options.prefix || "/"}`, options.notFound);
      answer = options.handle({ method, path, query: url.searchParams, headers: incoming.headers, body });
      record({ method, path, query, body, status: answer.status });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      answer =
        error instanceof Unexpected
          ? { status: error.status, body: error.body }
          : { status: 500, body: { message: `fake ${options.name} failed: ${reason}` } };
      unexpected.push({ method, path, query, body: body ?? text, status: answer.status, reason });
    }
    respond(outgoing, answer);
  }

  const server = createServer((incoming, outgoing) => {
    serve(incoming, outgoing).catch((error: unknown) => {
      outgoing.destroy(error instanceof Error ? error : undefined);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error(`fake ${options.name}: no port`);

  return {
    origin: `http://127.0.0.1:${address.port}`,
    calls,
    unexpected,
    takeUnexpected() {
      return unexpected.splice(0);
    },
    assertNoUnexpected() {
      if (unexpected.length === 0) return;
      const lines = unexpected.map(
        (request) => `  ${request.method} ${request.path} → ${request.status}: ${request.reason}`,
      );
      throw new Error(`fake ${options.name} got unexpected requests:\n${lines.join("\n")}`);
    },
    waitForCall(matches, timeoutMs = 30_000) {
      const done = calls.find(matches);
      if (done) return Promise.resolve(done);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((waiter) => waiter.resolve !== settle);
          const seen = calls.map((call) => `  ${call.method} ${call.path}`).join("\n");
          reject(new Error(`fake ${options.name}: no matching call within ${timeoutMs} ms; calls:\n${seen}`));
        }, timeoutMs);
        const settle = (call: RecordedCall) => {
          clearTimeout(timer);
          resolve(call);
        };
        waiters.push({ matches, resolve: settle });
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function readText(incoming: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function parseJsonBody(method: string, headers: IncomingHttpHeaders, text: string): unknown {
  if (text === "") return undefined;
  if (method === "GET" || method === "DELETE")
    throw new Unexpected(400, `a body on ${method}`, problem("body"));
  const type = headers["content-type"]?.split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new Unexpected(400, `body sent as ${type ?? "no content type"}`, problem("content type"));
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Unexpected(400, "body is not JSON", problem("Problems parsing JSON"));
  }
}

function respond(outgoing: ServerResponse, answer: FakeResponse): void {
  outgoing.statusCode = answer.status;
  for (const [name, value] of Object.entries(answer.headers ?? {})) outgoing.setHeader(name, value);
  if (answer.status === 204 || answer.body === undefined) {
    outgoing.end();
    return;
  }
  outgoing.setHeader("content-type", "application/json; charset=utf-8");
  outgoing.end(JSON.stringify(answer.body));
}

function problem(message: string): { message: string } {
  return { message };
}

/** Rejects query parameters the client has no business sending; each may appear once. */
export function allowQuery(request: FakeRequest, allowed: readonly string[], answer: unknown): void {
  for (const name of new Set(request.query.keys())) {
    if (!allowed.includes(name)) throw new Unexpected(400, `unexpected query parameter ${name}`, answer);
    if (request.query.getAll(name).length > 1) throw new Unexpected(400, `repeated ${name}`, answer);
  }
}

/** Validates a JSON body against the documented (strict) shape. */
export function parseRequestBody<T>(
  request: FakeRequest,
  schema: z.ZodType<T>,
  status: number,
  answer: (reason: string) => unknown,
): T {
  const parsed = schema.safeParse(request.body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const reason = `body ${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}`;
  throw new Unexpected(status, reason, answer(reason));
}

export interface Page<T> {
  readonly items: T[];
  readonly page: number;
  readonly perPage: number;
  readonly totalPages: number;
}

/** Offset pagination as both forges do it: `page` from 1, `per_page` up to 100. */
export function paginate<T>(
  request: FakeRequest,
  items: readonly T[],
  defaultPerPage: number,
  answer: unknown,
): Page<T> {
  const page = positiveInteger(request.query.get("page") ?? "1", "page", answer);
  const perPage = positiveInteger(
    request.query.get("per_page") ?? String(defaultPerPage),
    "per_page",
    answer,
  );
  if (perPage > 100) throw new Unexpected(400, `per_page ${perPage} over 100`, answer);
  const start = (page - 1) * perPage;
  return {
    items: items.slice(start, start + perPage),
    page,
    perPage,
    totalPages: Math.max(1, Math.ceil(items.length / perPage)),
  };
}

function positiveInteger(text: string, name: string, answer: unknown): number {
  if (!/^[1-9][0-9]*$/.test(text))
    throw new Unexpected(400, `${name}=${text} is not a positive integer`, answer);
  return Number(text);
}

/** A Link header as both forges send it, with absolute URLs. */
export function linkHeader(base: string, request: FakeRequest, page: Page<unknown>): string {
  const link = (number: number, rel: string) => {
    const query = new URLSearchParams(request.query);
    query.set("page", String(number));
    query.set("per_page", String(page.perPage));
    return `<${base}${request.path}?${query}>; rel="${rel}"`;
  };
  const links: string[] = [];
  if (page.page > 1) links.push(link(page.page - 1, "prev"));
  if (page.page < page.totalPages) links.push(link(page.page + 1, "next"));
  links.push(link(1, "first"), link(page.totalPages, "last"));
  return links.join(", ");
}

/** A commit SHA-1 or SHA-256, as both forges take them in paths. */
export function isCommitSha(text: string): boolean {
  return /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(text);
}
