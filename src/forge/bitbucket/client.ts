import { createHash } from "node:crypto";
import { z } from "zod";
import { ForgeError, isForgeError, unexpectedAnswer } from "../errors.ts";
import { shorten } from "../http.ts";
import type { Comment, CommitState, Forge, PullRequest } from "../port.ts";
import { numericId, type RestCall, restClient } from "../rest.ts";

/**
 * Bitbucket Cloud's REST API 2.0: pull requests, their comments, and commit
 * build statuses. Lists are paged by following `next` as given (checked to
 * stay on the API's origin). Bitbucket has no reactions: a command is
 * answered with a reply.
 */
export interface BitbucketForgeOptions {
  readonly workspace: string;
  readonly repo: string;
  /** A repository, project or workspace access token (Bearer); with `username`, a user's API token (Basic). */
  readonly token: string;
  /** The Atlassian account's e-mail address, for a user API token. */
  readonly username?: string;
  /** The API root; defaults to https://api.bitbucket.org/2.0. */
  readonly baseUrl?: string;
  /** Where people see the repository; defaults to https://bitbucket.org. */
  readonly webUrl?: string;
  /**
   * The UUID (with braces) of the account the runner's comments are written
   * by. Learnt from `GET /user` when unset; an access token cannot read that,
   * and the runner then learns it from the first comment it writes.
   */
  readonly login?: string;
  readonly fetch?: typeof fetch;
  /** Per request; defaults to 30 s. */
  readonly timeoutMs?: number;
}

/** No documented limit; 32k is accepted everywhere and keeps a comment readable. */
const MAX_COMMENT_LENGTH = 32_000;
const MAX_DESCRIPTION_LENGTH = 140;
/** Bitbucket refuses a status key over 40 characters. */
const MAX_KEY_LENGTH = 40;
const PAGE_LENGTH = "50";

const BITBUCKET_STATE: Readonly<Record<CommitState, string>> = {
  pending: "INPROGRESS",
  success: "SUCCESSFUL",
  failure: "FAILED",
  error: "FAILED",
};

const endSchema = z.object({
  branch: z.object({ name: z.string() }),
  commit: z.object({ hash: z.string() }),
  repository: z.object({ full_name: z.string() }).nullish(),
});
const accountSchema = z.object({
  uuid: z.string(),
  nickname: z.string().nullish(),
  display_name: z.string().nullish(),
});
const pullRequestSchema = z.object({
  id: z.number().int().positive(),
  author: accountSchema.nullish(),
  closed_by: accountSchema.nullish(),
  /** Reviewers and others taking part; `approved` says whether each approves now. */
  participants: z.array(z.object({ user: accountSchema, approved: z.boolean() })).optional(),
  state: z.enum(["OPEN", "MERGED", "DECLINED", "SUPERSEDED"]),
  source: endSchema,
  destination: endSchema,
  merge_commit: z.object({ hash: z.string() }).nullish(),
  links: z.object({ html: z.object({ href: z.string() }) }),
});
const commentSchema = z.object({
  id: z.number().int().positive(),
  content: z.object({ raw: z.string().nullish() }),
  user: z.object({ uuid: z.string() }).nullish(),
  deleted: z.boolean().optional(),
});
const userSchema = z.object({ uuid: z.string() });
const permissionSchema = z.object({ permission: z.string(), user: z.object({ uuid: z.string() }) });

/** A page: its items are checked by the caller's schema. */
const pageSchema = z.object({ values: z.unknown(), next: z.string().optional() });

export function bitbucketForge(options: BitbucketForgeOptions): Forge {
  const { workspace, repo, token } = options;
  const where = `${workspace}/${repo}`;
  const apiRoot = (options.baseUrl ?? "https://api.bitbucket.org/2.0").replace(/\/+$/, "");
  const webRoot = (options.webUrl ?? "https://bitbucket.org").replace(/\/+$/, "");
  const repoPath = `/repositories/${encodeURIComponent(workspace)}/${encodeURIComponent(repo)}`;
  const authorization = options.username
    ? `Basic ${Buffer.from(`${options.username}:${token}`).toString("base64")}`
    : `Bearer ${token}`;
  const client = restClient({
    forge: "bitbucket",
    apiRoot,
    headers: { authorization },
    secret: token,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
  const { send, json } = client;

  /** Follows `next` as Bitbucket gives it, only ever to the API's own origin. */
  function all<T>(call: RestCall, item: z.ZodType<T>): Promise<T[]> {
    const first = { ...call, query: { ...call.query, pagelen: PAGE_LENGTH } };
    return client.all(first, item, (answer) => {
      const parsed = pageSchema.safeParse(answer.body);
      if (!parsed.success) throw unexpectedAnswer("bitbucket", call.action, answer.status, parsed.error);
      const { values, next } = parsed.data;
      if (next === undefined) return { items: values };
      if (new URL(next).origin !== new URL(apiRoot).origin) {
        throw new ForgeError("FORGE_FAILED", `bitbucket: ${call.action}: a next page on another origin`);
      }
      return {
        items: values,
        next: { method: call.method, path: call.path, url: next, action: call.action },
      };
    });
  }

  const pullRequestPath = (id: number) => `${repoPath}/pullrequests/${id}`;
  const commentPath = (pullRequest: number, commentId: string, action: string) =>
    `${pullRequestPath(pullRequest)}/comments/${numericId("bitbucket", commentId, "Bitbucket comment", action)}`;

  return {
    kind: "bitbucket",
    maxCommentLength: MAX_COMMENT_LENGTH,
    pullRequests: {
      async listOpen() {
        const pulls = await all(
          {
            method: "GET",
            path: `${repoPath}/pullrequests`,
            action: `list open pull requests of ${where}`,
            query: { state: "OPEN" },
          },
          pullRequestSchema,
        );
        return pulls.map(toPullRequest);
      },
      async get(number) {
        const pull = await json(
          { method: "GET", path: pullRequestPath(number), action: `get pull request #${number} of ${where}` },
          pullRequestSchema,
        );
        return toPullRequest(pull);
      },
      async approvers(number) {
        const pull = await json(
          {
            method: "GET",
            path: pullRequestPath(number),
            action: `read approvals of pull request #${number} of ${where}`,
          },
          pullRequestSchema,
        );
        return (pull.participants ?? [])
          .filter((participant) => participant.approved)
          .map((participant) => nameOf(participant.user));
      },
      async create(request) {
        const pull = await json(
          {
            method: "POST",
            path: `${repoPath}/pullrequests`,
            action: `open a pull request of ${request.head} into ${request.base} of ${where}`,
            body: {
              title: request.title,
              description: request.body,
              source: { branch: { name: request.head } },
              destination: { branch: { name: request.base } },
            },
          },
          pullRequestSchema,
        );
        return toPullRequest(pull);
      },
    },
    comments: {
      async list(pullRequest) {
        const comments = await all(
          {
            method: "GET",
            path: `${pullRequestPath(pullRequest)}/comments`,
            action: `list comments of pull request #${pullRequest} of ${where}`,
          },
          commentSchema,
        );
        return comments.filter((comment) => comment.deleted !== true).map(toComment);
      },
      async create(pullRequest, body) {
        const comment = await json(
          {
            method: "POST",
            path: `${pullRequestPath(pullRequest)}/comments`,
            action: `comment on pull request #${pullRequest} of ${where}`,
            body: { content: { raw: body } },
          },
          commentSchema,
        );
        return toComment(comment);
      },
      async update(pullRequest, commentId, body) {
        const action = `update comment ${commentId} on pull request #${pullRequest} of ${where}`;
        await send({
          method: "PUT",
          path: commentPath(pullRequest, commentId, action),
          action,
          body: { content: { raw: body } },
        });
      },
      async remove(pullRequest, commentId) {
        const action = `delete comment ${commentId} on pull request #${pullRequest} of ${where}`;
        await send({ method: "DELETE", path: commentPath(pullRequest, commentId, action), action });
      },
    },
    statuses: {
      async set(sha, status) {
        await send({
          method: "POST",
          path: `${repoPath}/commit/${encodeURIComponent(sha)}/statuses/build`,
          action: `set status ${status.context} on ${sha} of ${where}`,
          body: {
            key: statusKey(status.context),
            state: BITBUCKET_STATE[status.state],
            name: status.context,
            description: shorten(status.description, MAX_DESCRIPTION_LENGTH),
            // Bitbucket wants a link with every status.
            url: status.targetUrl ?? `${webRoot}/${workspace}/${repo}/commits/${sha}`,
          },
        });
      },
    },
    accounts: {
      async self() {
        if (options.login !== undefined) return options.login;
        try {
          return (await json({ method: "GET", path: "/user", action: "read the token's user" }, userSchema))
            .uuid;
        } catch (error) {
          // Access tokens act as a bot account that /user does not answer for.
          if (isForgeError(error, "FORGE_UNAUTHORIZED")) return undefined;
          throw error;
        }
      },
      async canWrite(account) {
        // Effective permissions (direct or through a group); readable by repository administrators.
        const permissions = await all(
          {
            method: "GET",
            path: `/workspaces/${encodeURIComponent(workspace)}/permissions/repositories/${encodeURIComponent(repo)}`,
            action: `read the permission of ${account.name} on ${where} (the token must administer the repository)`,
            query: { q: `user.uuid="${account.name.replace(/"/g, "")}"` },
          },
          permissionSchema,
        );
        const level = permissions.find((entry) => entry.user.uuid === account.name)?.permission;
        return level === "write" || level === "admin";
      },
    },
  };
}

/** A key of at most 40 characters; a longer context keeps its start and a hash of the whole. */
function statusKey(context: string): string {
  if (context.length <= MAX_KEY_LENGTH) return context;
  const digest = createHash("sha256").update(context).digest("hex").slice(0, 8);
  return `${context.slice(0, MAX_KEY_LENGTH - 9)}-${digest}`;
}

function toPullRequest(pull: z.infer<typeof pullRequestSchema>): PullRequest {
  const merged = pull.state === "MERGED";
  const source = pull.source.repository?.full_name;
  return {
    number: pull.id,
    headSha: pull.source.commit.hash,
    headRef: pull.source.branch.name,
    baseRef: pull.destination.branch.name,
    // A fork's repository may be gone (null): not this one either way.
    fromFork: source !== pull.destination.repository?.full_name,
    state: merged ? "merged" : pull.state === "OPEN" ? "open" : "closed",
    ...(merged && pull.merge_commit ? { mergeCommitSha: pull.merge_commit.hash } : {}),
    url: pull.links.html.href,
    ...(pull.author ? { author: nameOf(pull.author) } : {}),
    ...(merged && pull.closed_by ? { mergedBy: nameOf(pull.closed_by) } : {}),
  };
}

/** How people read an account: its nickname, else its display name, else its UUID. */
function nameOf(account: z.infer<typeof accountSchema>): string {
  return account.nickname ?? account.display_name ?? account.uuid;
}

function toComment(comment: z.infer<typeof commentSchema>): Comment {
  return { id: String(comment.id), body: comment.content.raw ?? "", author: comment.user?.uuid ?? "" };
}
