import { z } from "zod";
import { ForgeError, forgeError, messageOf, unexpectedAnswer } from "./errors.ts";
import { DEFAULT_TIMEOUT_MS, timedFetch } from "./http.ts";
import type { ForgeKind } from "./port.ts";

/**
 * A JSON REST API over fetch, as the GitLab, Gitea and Bitbucket clients use
 * it: every call has a timeout, a failure becomes a ForgeError naming the
 * action (never the token), and an answer is checked against its schema.
 */
export interface RestCall {
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Under the API root; or `url`, an absolute address the forge gave (a next page). */
  readonly path: string;
  readonly url?: string;
  /** What is being done, for errors: "get pull request #4 of acme/infra". */
  readonly action: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly body?: unknown;
}

export interface RestAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

export interface RestClient {
  send(call: RestCall): Promise<RestAnswer>;
  json<T>(call: RestCall, schema: z.ZodType<T>): Promise<T>;
  /**
   * Every item of a paged list: `first` is the first page's call; `page`
   * reads an answer's items (an array, checked against `item`) and the call
   * for the next page, when there is one. Each forge pages its own way.
   */
  all<T>(
    first: RestCall,
    item: z.ZodType<T>,
    page: (answer: RestAnswer, call: RestCall) => Page,
  ): Promise<T[]>;
}

export interface Page {
  readonly items: unknown;
  readonly next?: RestCall;
}

/** A bound on paging, against a server that never says it is done. */
const MAX_PAGES = 500;

export interface RestClientOptions {
  readonly forge: ForgeKind;
  /** e.g. https://gitlab.example.com/api/v4, without a trailing slash. */
  readonly apiRoot: string;
  /** Sent with every request: the credentials among them. */
  readonly headers: Readonly<Record<string, string>>;
  /** Cut out of every error text. */
  readonly secret: string;
  readonly fetch?: typeof fetch;
  /** Per request; defaults to 30 s. */
  readonly timeoutMs?: number;
}

export function restClient(options: RestClientOptions): RestClient {
  const { forge, secret } = options;
  const fetchImpl = timedFetch(options.fetch ?? globalThis.fetch, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);

  async function send(call: RestCall): Promise<RestAnswer> {
    const url = new URL(call.url ?? `${options.apiRoot}${call.path}`);
    for (const [name, value] of Object.entries(call.query ?? {})) url.searchParams.set(name, value);
    let response: Response;
    let text: string;
    try {
      response = await fetchImpl(url, {
        method: call.method,
        headers: {
          ...options.headers,
          accept: "application/json",
          ...(call.body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
      });
      text = await response.text();
    } catch (error) {
      throw forgeError({ forge, action: call.action, secret, detail: reason(error), cause: error });
    }
    const body = parseJson(text);
    if (!response.ok) {
      throw forgeError({
        forge,
        action: call.action,
        secret,
        status: response.status,
        detail: messageOf(body) ?? "",
      });
    }
    return { status: response.status, headers: response.headers, body };
  }

  return {
    send,
    async json(call, schema) {
      const answer = await send(call);
      const parsed = schema.safeParse(answer.body);
      if (!parsed.success) throw unexpectedAnswer(forge, call.action, answer.status, parsed.error);
      return parsed.data;
    },
    async all(first, item, page) {
      const items: z.infer<typeof item>[] = [];
      let call: RestCall | undefined = first;
      for (let count = 0; call !== undefined; count++) {
        if (count === MAX_PAGES) {
          throw new ForgeError("FORGE_FAILED", `${forge}: ${first.action}: more than ${MAX_PAGES} pages`);
        }
        const answer = await send(call);
        const read = page(answer, call);
        const parsed = z.array(item).safeParse(read.items);
        if (!parsed.success) throw unexpectedAnswer(forge, first.action, answer.status, parsed.error);
        items.push(...parsed.data);
        call = read.next;
      }
      return items;
    },
  };
}

function parseJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** fetch rejects with "fetch failed" and the reason (refused, timed out) in its cause. */
function reason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.cause instanceof Error ? error.cause.message : error.message;
}

/** A path segment from an id the runner got back from the forge, refused when it is not a number. */
export function numericId(forge: ForgeKind, id: string, what: string, action: string): string {
  if (!/^[1-9][0-9]*$/.test(id) || !Number.isSafeInteger(Number(id))) {
    throw new ForgeError("FORGE_NOT_FOUND", `${forge}: ${action}: not a ${what} id`);
  }
  return id;
}
