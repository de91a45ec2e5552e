import { z } from "zod";
import { approvedBy } from "../approvals.ts";
import { shorten } from "../http.ts";
import type { Comment, Forge, PullRequest } from "../port.ts";
import { numericId, type RestCall, restClient } from "../rest.ts";

/**
 * Gitea's REST API (/api/v1), which Forgejo serves too: GitHub's layout with
 * its own differences. Lists are paged with `page` and `limit` (the server
 * clamps `limit` to its MAX_RESPONSE_ITEMS, 50 by default); an issue's
 * comments come in one unpaged list; a status answer says `status` where
 * GitHub says `state`.
 */
export interface GiteaForgeOptions {
  /** The instance's root URL, e.g. https://gitea.example.com (or a Forgejo's). */
  readonly baseUrl: string;
  readonly owner: string;
  readonly repo: string;
  readonly token: string;
  /** The login the runner's comments are written by; learnt from `GET /user` when unset. */
  readonly login?: string;
  readonly fetch?: typeof fetch;
  /** Per request; defaults to 30 s. */
  readonly timeoutMs?: number;
}

/** Gitea documents no limit; GitHub's keeps a comment readable and well under any database column. */
const MAX_COMMENT_LENGTH = 65_536;
const MAX_DESCRIPTION_LENGTH = 140;
/** The most a default Gitea returns per page: asking for more gets 50 anyway. */
const PAGE_LIMIT = 50;

const repositorySchema = z.object({ full_name: z.string() }).nullish();
const loginSchema = z.object({ login: z.string() });
const pullRequestSchema = z.object({
  user: loginSchema.nullish(),
  merged_by: loginSchema.nullish(),
  number: z.number().int().positive(),
  state: z.enum(["open", "closed"]),
  html_url: z.string(),
  merged: z.boolean(),
  merge_commit_sha: z.string().nullish(),
  head: z.object({ ref: z.string(), sha: z.string(), repo_id: z.number().int(), repo: repositorySchema }),
  base: z.object({ ref: z.string(), repo_id: z.number().int(), repo: repositorySchema }),
});
const userSchema = z.object({ id: z.number().int(), login: z.string() });
const commentSchema = z.object({
  id: z.number().int().positive(),
  body: z.string(),
  user: userSchema.nullish(),
});
const permissionSchema = z.object({ permission: z.string() });
const reviewSchema = z.object({
  user: loginSchema.nullish(),
  state: z.string(),
  dismissed: z.boolean().optional(),
});
/** What Gitea answers a new status with: `status`, not GitHub's `state`. */
const statusSchema = z.object({
  status: z.enum(["pending", "success", "error", "failure", "warning", "skipped"]),
  context: z.string(),
});

const WRITERS = new Set(["write", "admin", "owner"]);

export function giteaForge(options: GiteaForgeOptions): Forge {
  const { owner, repo, token } = options;
  const where = `${owner}/${repo}`;
  const repoPath = `/repos/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}`;
  const client = restClient({
    forge: "gitea",
    apiRoot: `${options.baseUrl.replace(/\/+$/, "")}/api/v1`,
    headers: { authorization: `token ${token}` },
    secret: token,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
  const { send, json } = client;

  /** Pages with `page` and `limit` while the `Link` header names a next page: never by a page count. */
  function all<T>(call: RestCall, item: z.ZodType<T>): Promise<T[]> {
    const first = { ...call, query: { ...call.query, page: "1", limit: String(PAGE_LIMIT) } };
    return client.all(first, item, (answer, current) => {
      const more = /rel="next"/.test(answer.headers.get("link") ?? "");
      const empty = Array.isArray(answer.body) && answer.body.length === 0;
      if (!more || empty) return { items: answer.body };
      const page = String(Number(current.query?.page) + 1);
      return { items: answer.body, next: { ...current, query: { ...current.query, page } } };
    });
  }

  const commentPath = (commentId: string, action: string) =>
    `${repoPath}/issues/comments/${numericId("gitea", commentId, "Gitea comment", action)}`;

  return {
    kind: "gitea",
    maxCommentLength: MAX_COMMENT_LENGTH,
    pullRequests: {
      async listOpen() {
        const pulls = await all(
          {
            method: "GET",
            path: `${repoPath}/pulls`,
            action: `list open pull requests of ${where}`,
            query: { state: "open" },
          },
          pullRequestSchema,
        );
        return pulls.map(toPullRequest);
      },
      async get(number) {
        const pull = await json(
          {
            method: "GET",
            path: `${repoPath}/pulls/${number}`,
            action: `get pull request #${number} of ${where}`,
          },
          pullRequestSchema,
        );
        return toPullRequest(pull);
      },
      async approvers(number) {
        const reviews = await all(
          {
            method: "GET",
            path: `${repoPath}/pulls/${number}/reviews`,
            action: `list reviews of pull request #${number} of ${where}`,
          },
          reviewSchema,
        );
        return approvedBy(reviews, (review) => ({
          login: review.user?.login,
          verdict:
            review.state === "APPROVED" && review.dismissed !== true
              ? "approves"
              : review.state === "REQUEST_CHANGES" || review.dismissed === true
                ? "withdraws"
                : undefined,
        }));
      },
      async create(request) {
        const pull = await json(
          {
            method: "POST",
            path: `${repoPath}/pulls`,
            action: `open a pull request of ${request.head} into ${request.base} of ${where}`,
            body: { head: request.head, base: request.base, title: request.title, body: request.body },
          },
          pullRequestSchema,
        );
        return toPullRequest(pull);
      },
    },
    comments: {
      async list(pullRequest) {
        // Not paged: one answer holds every comment.
        const comments = await json(
          {
            method: "GET",
            path: `${repoPath}/issues/${pullRequest}/comments`,
            action: `list comments of pull request #${pullRequest} of ${where}`,
          },
          z.array(commentSchema),
        );
        return comments.map(toComment);
      },
      async create(pullRequest, body) {
        const comment = await json(
          {
            method: "POST",
            path: `${repoPath}/issues/${pullRequest}/comments`,
            action: `comment on pull request #${pullRequest} of ${where}`,
            body: { body },
          },
          commentSchema,
        );
        return toComment(comment);
      },
      async update(pullRequest, commentId, body) {
        const action = `update comment ${commentId} on pull request #${pullRequest} of ${where}`;
        await send({ method: "PATCH", path: commentPath(commentId, action), action, body: { body } });
      },
      async remove(pullRequest, commentId) {
        const action = `delete comment ${commentId} on pull request #${pullRequest} of ${where}`;
        await send({ method: "DELETE", path: commentPath(commentId, action), action });
      },
      async react(pullRequest, commentId) {
        const action = `react to comment ${commentId} on pull request #${pullRequest} of ${where}`;
        await send({
          method: "POST",
          path: `${commentPath(commentId, action)}/reactions`,
          action,
          body: { content: "+1" },
        });
      },
    },
    statuses: {
      async set(sha, status) {
        const action = `set status ${status.context} on ${sha} of ${where}`;
        await json(
          {
            method: "POST",
            path: `${repoPath}/statuses/${encodeURIComponent(sha)}`,
            action,
            body: {
              state: status.state,
              context: status.context,
              description: shorten(status.description, MAX_DESCRIPTION_LENGTH),
              ...(status.targetUrl === undefined ? {} : { target_url: status.targetUrl }),
            },
          },
          statusSchema,
        );
      },
    },
    accounts: {
      async self() {
        if (options.login !== undefined) return options.login;
        return (await json({ method: "GET", path: "/user", action: "read the token's user" }, userSchema))
          .login;
      },
      async canWrite(account) {
        // Gitea answers others' permissions only to repository administrators.
        const level = await json(
          {
            method: "GET",
            path: `${repoPath}/collaborators/${encodeURIComponent(account.name)}/permission`,
            action: `read the permission of ${account.name} on ${where} (the token's user must administer the repository)`,
          },
          permissionSchema,
        );
        return WRITERS.has(level.permission);
      },
    },
  };
}

function toPullRequest(pull: z.infer<typeof pullRequestSchema>): PullRequest {
  const merged = pull.merged;
  return {
    number: pull.number,
    headSha: pull.head.sha,
    headRef: pull.head.ref,
    baseRef: pull.base.ref,
    fromFork: pull.head.repo_id !== pull.base.repo_id,
    state: merged ? "merged" : pull.state,
    ...(merged && pull.merge_commit_sha ? { mergeCommitSha: pull.merge_commit_sha } : {}),
    url: pull.html_url,
    ...(pull.user ? { author: pull.user.login } : {}),
    ...(pull.merged_by ? { mergedBy: pull.merged_by.login } : {}),
  };
}

function toComment(comment: z.infer<typeof commentSchema>): Comment {
  return { id: String(comment.id), body: comment.body, author: comment.user?.login ?? "" };
}
