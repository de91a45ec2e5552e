import { z } from "zod";
import { ForgeError, forgeError, isForgeError, messageOf, unexpectedAnswer } from "./errors.ts";
import type { Comment, CommitState, Forge, PullRequest } from "./forge.ts";
import { DEFAULT_TIMEOUT_MS, shorten, timedFetch } from "./http.ts";

export interface GitLabForgeOptions {
  /** The numeric project id or its path, e.g. "group/subgroup/name". */
  readonly project: string;
  readonly token: string;
  /** The instance's root URL; defaults to https://gitlab.com. */
  readonly baseUrl?: string;
  readonly fetch?: typeof fetch;
  /** Per request; defaults to 30 s. */
  readonly timeoutMs?: number;
}

/** GitLab's limit on a note's body. */
const MAX_COMMENT_LENGTH = 1_000_000;
/** Kept as short as GitHub's so a status reads the same on both forges. */
const MAX_DESCRIPTION_LENGTH = 140;
const PER_PAGE = "100";

/** GitLab has no "error" state; both of the runner's unhappy states show as failed. */
const GITLAB_STATE: Readonly<Record<CommitState, string>> = {
  pending: "pending",
  success: "success",
  failure: "failed",
  error: "failed",
};

// Only the fields used; GitLab sends many more.
const userSchema = z.object({ username: z.string() });
const mergeRequestSchema = z.object({
  author: userSchema.nullish(),
  merged_by: userSchema.nullish(),
  merge_user: userSchema.nullish(),
  iid: z.number().int().positive(),
  sha: z.string(),
  source_branch: z.string(),
  target_branch: z.string(),
  source_project_id: z.number().int(),
  target_project_id: z.number().int(),
  state: z.enum(["opened", "closed", "merged", "locked"]),
  merge_commit_sha: z.string().nullish(),
  squash_commit_sha: z.string().nullish(),
  web_url: z.string(),
});
const noteSchema = z.object({ id: z.number().int().positive(), body: z.string(), system: z.boolean() });
const commitStatusSchema = z.object({ name: z.string(), status: z.string() });
const approvalsSchema = z.object({ approved_by: z.array(z.object({ user: userSchema })) });

type MergeRequest = z.infer<typeof mergeRequestSchema>;

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

interface Call {
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  readonly path: string;
  readonly action: string;
  readonly query?: Readonly<Record<string, string>>;
  readonly body?: Readonly<Record<string, string>>;
}

export function gitlabForge(options: GitLabForgeOptions): Forge {
  const { project, token } = options;
  const apiRoot = `${(options.baseUrl ?? "https://gitlab.com").replace(/\/+$/, "")}/api/v4`;
  const projectPath = `/projects/${encodeURIComponent(project)}`;
  const fetchImpl = timedFetch(options.fetch ?? globalThis.fetch, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);

  async function send(call: Call): Promise<Answer> {
    const url = new URL(`${apiRoot}${call.path}`);
    for (const [name, value] of Object.entries(call.query ?? {})) url.searchParams.set(name, value);
    let response: Response;
    let text: string;
    try {
      response = await fetchImpl(url, {
        method: call.method,
        headers: {
          "PRIVATE-TOKEN": token,
          accept: "application/json",
          ...(call.body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
      });
      text = await response.text();
    } catch (error) {
      throw forgeError({
        forge: "gitlab",
        action: call.action,
        secret: token,
        detail: reason(error),
        cause: error,
      });
    }
    const body = parseJson(text);
    if (!response.ok) {
      throw forgeError({
        forge: "gitlab",
        action: call.action,
        secret: token,
        status: response.status,
        detail: messageOf(body) ?? "",
      });
    }
    return { status: response.status, headers: response.headers, body };
  }

  async function json<T>(call: Call, schema: z.ZodType<T>): Promise<T> {
    const answer = await send(call);
    const parsed = schema.safeParse(answer.body);
    if (!parsed.success) throw unexpectedAnswer("gitlab", call.action, answer.status, parsed.error);
    return parsed.data;
  }

  /** Follows x-next-page, GitLab's offset pagination, to the last page. */
  async function all<T>(call: Call, item: z.ZodType<T>): Promise<T[]> {
    const items: T[] = [];
    let page = 1;
    for (;;) {
      const answer = await send({
        ...call,
        query: { ...call.query, per_page: PER_PAGE, page: String(page) },
      });
      const parsed = z.array(item).safeParse(answer.body);
      if (!parsed.success) throw unexpectedAnswer("gitlab", call.action, answer.status, parsed.error);
      items.push(...parsed.data);
      const next = answer.headers.get("x-next-page");
      if (!next) return items;
      const nextPage = Number(next);
      if (!Number.isInteger(nextPage) || nextPage <= page) {
        throw new ForgeError("FORGE_FAILED", `gitlab: ${call.action}: unexpected x-next-page ${next}`, {
          status: answer.status,
        });
      }
      page = nextPage;
    }
  }

  const mergeRequestPath = (iid: number) => `${projectPath}/merge_requests/${iid}`;

  /** Whether the latest status `name` on `sha` is pending already. */
  async function isPending(sha: string, name: string): Promise<boolean> {
    const statuses = await all(
      {
        method: "GET",
        path: `${projectPath}/repository/commits/${encodeURIComponent(sha)}/statuses`,
        action: `read status ${name} on ${sha} of ${project}`,
        query: { name },
      },
      commitStatusSchema,
    );
    return statuses.some((status) => status.name === name && status.status === "pending");
  }

  return {
    kind: "gitlab",
    maxCommentLength: MAX_COMMENT_LENGTH,
    pullRequests: {
      async listOpen() {
        const mergeRequests = await all(
          {
            method: "GET",
            path: `${projectPath}/merge_requests`,
            action: `list open merge requests of ${project}`,
            query: { state: "opened" },
          },
          mergeRequestSchema,
        );
        return mergeRequests.map(toPullRequest);
      },
      async get(number) {
        const mergeRequest = await json(
          {
            method: "GET",
            path: mergeRequestPath(number),
            action: `get merge request !${number} of ${project}`,
          },
          mergeRequestSchema,
        );
        return toPullRequest(mergeRequest);
      },
      async approvers(number) {
        const approvals = await json(
          {
            method: "GET",
            path: `${mergeRequestPath(number)}/approvals`,
            action: `read approvals of merge request !${number} of ${project}`,
          },
          approvalsSchema,
        );
        return approvals.approved_by.map((approval) => approval.user.username);
      },
      async create(request) {
        const mergeRequest = await json(
          {
            method: "POST",
            path: `${projectPath}/merge_requests`,
            action: `open a merge request of ${request.head} into ${request.base} of ${project}`,
            body: {
              source_branch: request.head,
              target_branch: request.base,
              title: request.title,
              description: request.body,
            },
          },
          mergeRequestSchema,
        );
        return toPullRequest(mergeRequest);
      },
    },
    comments: {
      async findByMarker(pullRequest, marker) {
        const notes = await all(
          {
            method: "GET",
            path: `${mergeRequestPath(pullRequest)}/notes`,
            action: `list notes of merge request !${pullRequest} of ${project}`,
            // GitLab lists newest first unless asked.
            query: { sort: "asc", order_by: "created_at" },
          },
          noteSchema,
        );
        return notes.filter((note) => !note.system && note.body.includes(marker)).map(toComment);
      },
      async create(pullRequest, body) {
        const note = await json(
          {
            method: "POST",
            path: `${mergeRequestPath(pullRequest)}/notes`,
            action: `comment on merge request !${pullRequest} of ${project}`,
            body: { body },
          },
          noteSchema,
        );
        return toComment(note);
      },
      async update(pullRequest, commentId, body) {
        const action = `update note ${commentId} on merge request !${pullRequest} of ${project}`;
        await send({
          method: "PUT",
          path: `${mergeRequestPath(pullRequest)}/notes/${noteId(commentId, action)}`,
          action,
          body: { body },
        });
      },
      async remove(pullRequest, commentId) {
        const action = `delete note ${commentId} on merge request !${pullRequest} of ${project}`;
        await send({
          method: "DELETE",
          path: `${mergeRequestPath(pullRequest)}/notes/${noteId(commentId, action)}`,
          action,
        });
      },
    },
    statuses: {
      async set(sha, status) {
        const state = GITLAB_STATE[status.state];
        const call: Call = {
          method: "POST",
          path: `${projectPath}/statuses/${encodeURIComponent(sha)}`,
          action: `set status ${status.context} on ${sha} of ${project}`,
          body: {
            state,
            name: status.context,
            description: shorten(status.description, MAX_DESCRIPTION_LENGTH),
            ...(status.targetUrl === undefined ? {} : { target_url: status.targetUrl }),
          },
        };
        try {
          await send(call);
        } catch (error) {
          // GitLab answers 400 to pending over pending (it cannot "enqueue" a pending status), where
          // GitHub accepts it: the state asked for already holds when a read-back says so.
          const refusedPending = state === "pending" && isForgeError(error) && error.status === 400;
          if (refusedPending && (await isPending(sha, status.context))) return;
          throw error;
        }
      },
    },
  };
}

function toPullRequest(mergeRequest: MergeRequest): PullRequest {
  const merged = mergeRequest.state === "merged";
  // merged_by is deprecated in favour of merge_user; older instances send only merged_by.
  const merger = mergeRequest.merge_user ?? mergeRequest.merged_by;
  return {
    number: mergeRequest.iid,
    headSha: mergeRequest.sha,
    headRef: mergeRequest.source_branch,
    baseRef: mergeRequest.target_branch,
    fromFork: mergeRequest.source_project_id !== mergeRequest.target_project_id,
    // "locked" is the short moment a merge is under way.
    state: merged ? "merged" : mergeRequest.state === "closed" ? "closed" : "open",
    // A fast-forward merge makes no new commit: the head itself lands on the target.
    ...(merged
      ? {
          mergeCommitSha: mergeRequest.merge_commit_sha ?? mergeRequest.squash_commit_sha ?? mergeRequest.sha,
        }
      : {}),
    url: mergeRequest.web_url,
    ...(mergeRequest.author ? { author: mergeRequest.author.username } : {}),
    ...(merger ? { mergedBy: merger.username } : {}),
  };
}

function toComment(note: z.infer<typeof noteSchema>): Comment {
  return { id: String(note.id), body: note.body };
}

function noteId(commentId: string, action: string): string {
  if (!/^[1-9][0-9]*$/.test(commentId)) {
    throw new ForgeError("FORGE_NOT_FOUND", `gitlab: ${action}: not a GitLab note id`);
  }
  return commentId;
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
