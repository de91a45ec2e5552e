import { Octokit } from "@octokit/rest";
import { z } from "zod";
import { approvedBy } from "../approvals.ts";
import { type ForgeError, forgeError, isForgeError, messageOf, unexpectedAnswer } from "../errors.ts";
import { DEFAULT_TIMEOUT_MS, shorten, timedFetch } from "../http.ts";
import type { Comment, Forge, PullRequest } from "../port.ts";
import { numericId } from "../rest.ts";

export interface GitHubForgeOptions {
  readonly owner: string;
  readonly repo: string;
  readonly token: string;
  /** The REST API root; for GitHub Enterprise Server e.g. https://ghe.example.com/api/v3. */
  readonly baseUrl?: string;
  readonly fetch?: typeof fetch;
  readonly userAgent?: string;
  /** Per request; defaults to 30 s. */
  readonly timeoutMs?: number;
  /**
   * The login the runner's comments are written by. Learnt from `GET /user`
   * when unset; a GitHub App's installation token cannot read that, so set
   * it to the app's bot login, `<app-slug>[bot]`.
   */
  readonly login?: string;
}

/** GitHub rejects issue comments longer than this. */
const MAX_COMMENT_LENGTH = 65_536;
/** GitHub rejects longer commit status descriptions with a 422. */
const MAX_DESCRIPTION_LENGTH = 140;
const PER_PAGE = 100;

// Only the fields used; GitHub sends many more.
const repositorySchema = z.object({ full_name: z.string() });
const userSchema = z.object({ login: z.string() });
const pullRequestSchema = z.object({
  user: userSchema.nullish(),
  merged_by: userSchema.nullish(),
  number: z.number().int().positive(),
  state: z.enum(["open", "closed"]),
  html_url: z.string(),
  merged_at: z.string().nullish(),
  merge_commit_sha: z.string().nullish(),
  head: z.object({ ref: z.string(), sha: z.string(), repo: repositorySchema.nullable() }),
  base: z.object({ ref: z.string(), repo: repositorySchema }),
});
const commentSchema = z.object({
  id: z.number().int().positive(),
  body: z.string().nullish(),
  user: userSchema.nullable(),
});
const reviewSchema = z.object({ user: userSchema.nullable(), state: z.string() });
/** `permission` is the classic level: admin, write (also for maintain), read or none. */
const permissionSchema = z.object({ permission: z.string() });

type GitHubPullRequest = z.infer<typeof pullRequestSchema>;

/** Octokit logs failed requests to the console; failures reach the caller as ForgeErrors instead. */
const silentLog = { debug() {}, info() {}, warn() {}, error() {} };

export function githubForge(options: GitHubForgeOptions): Forge {
  const { owner, repo, token } = options;
  const octokit = new Octokit({
    auth: token,
    userAgent: options.userAgent ?? "gitops-runner",
    ...(options.baseUrl === undefined ? {} : { baseUrl: options.baseUrl.replace(/\/+$/, "") }),
    request: {
      fetch: timedFetch(options.fetch ?? globalThis.fetch, options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    },
    log: silentLog,
  });
  const where = `${owner}/${repo}`;

  async function call<T>(action: string, schema: z.ZodType<T>, run: () => Promise<unknown>): Promise<T> {
    let data: unknown;
    try {
      data = await run();
    } catch (error) {
      throw failure(action, error, token);
    }
    const parsed = schema.safeParse(data);
    if (!parsed.success) throw unexpectedAnswer("github", action, 200, parsed.error);
    return parsed.data;
  }

  return {
    kind: "github",
    maxCommentLength: MAX_COMMENT_LENGTH,
    pullRequests: {
      async listOpen() {
        const pulls = await call(`list open pull requests of ${where}`, z.array(pullRequestSchema), () =>
          octokit.paginate(octokit.rest.pulls.list, { owner, repo, state: "open", per_page: PER_PAGE }),
        );
        return pulls.map(toPullRequest);
      },
      async get(number) {
        const pull = await call(
          `get pull request #${number} of ${where}`,
          pullRequestSchema,
          async () => (await octokit.rest.pulls.get({ owner, repo, pull_number: number })).data,
        );
        return toPullRequest(pull);
      },
      async approvers(number) {
        const reviews = await call(
          `list reviews of pull request #${number} of ${where}`,
          z.array(reviewSchema),
          () =>
            octokit.paginate(octokit.rest.pulls.listReviews, {
              owner,
              repo,
              pull_number: number,
              per_page: PER_PAGE,
            }),
        );
        return approvedBy(reviews, (review) => ({
          login: review.user?.login,
          verdict:
            review.state === "APPROVED"
              ? "approves"
              : review.state === "CHANGES_REQUESTED" || review.state === "DISMISSED"
                ? "withdraws"
                : undefined,
        }));
      },
      async create(request) {
        const pull = await call(
          `open a pull request of ${request.head} into ${request.base} of ${where}`,
          pullRequestSchema,
          async () =>
            (
              await octokit.rest.pulls.create({
                owner,
                repo,
                head: request.head,
                base: request.base,
                title: request.title,
                body: request.body,
              })
            ).data,
        );
        return toPullRequest(pull);
      },
    },
    comments: {
      async list(pullRequest) {
        const comments = await call(
          `list comments of pull request #${pullRequest} of ${where}`,
          z.array(commentSchema),
          () =>
            octokit.paginate(octokit.rest.issues.listComments, {
              owner,
              repo,
              issue_number: pullRequest,
              per_page: PER_PAGE,
            }),
        );
        return comments.map(toComment);
      },
      async create(pullRequest, body) {
        const comment = await call(
          `comment on pull request #${pullRequest} of ${where}`,
          commentSchema,
          async () =>
            (await octokit.rest.issues.createComment({ owner, repo, issue_number: pullRequest, body })).data,
        );
        return toComment(comment);
      },
      async update(pullRequest, commentId, body) {
        const action = `update comment ${commentId} on pull request #${pullRequest} of ${where}`;
        const comment_id = commentNumber(commentId, action);
        await call(action, z.unknown(), () =>
          octokit.rest.issues.updateComment({ owner, repo, comment_id, body }),
        );
      },
      async remove(pullRequest, commentId) {
        const action = `delete comment ${commentId} on pull request #${pullRequest} of ${where}`;
        const comment_id = commentNumber(commentId, action);
        await call(action, z.unknown(), () => octokit.rest.issues.deleteComment({ owner, repo, comment_id }));
      },
      async react(pullRequest, commentId) {
        const action = `react to comment ${commentId} on pull request #${pullRequest} of ${where}`;
        const comment_id = commentNumber(commentId, action);
        await call(action, z.unknown(), () =>
          octokit.rest.reactions.createForIssueComment({ owner, repo, comment_id, content: "+1" }),
        );
      },
    },
    accounts: {
      async self() {
        if (options.login !== undefined) return options.login;
        const user = await call(
          "read the token's user (set forge.login for an app)",
          userSchema,
          async () => (await octokit.rest.users.getAuthenticated()).data,
        );
        return user.login;
      },
      async canWrite(account) {
        const action = `read the permission of ${account.name} on ${where}`;
        try {
          const level = await call(
            action,
            permissionSchema,
            async () =>
              (
                await octokit.rest.repos.getCollaboratorPermissionLevel({
                  owner,
                  repo,
                  username: account.name,
                })
              ).data,
          );
          return level.permission === "admin" || level.permission === "write";
        } catch (error) {
          // Someone who is no collaborator at all.
          if (isForgeError(error, "FORGE_NOT_FOUND")) return false;
          throw error;
        }
      },
    },
    statuses: {
      async set(sha, status) {
        await call(`set status ${status.context} on ${sha} of ${where}`, z.unknown(), () =>
          octokit.rest.repos.createCommitStatus({
            owner,
            repo,
            sha,
            context: status.context,
            state: status.state,
            description: shorten(status.description, MAX_DESCRIPTION_LENGTH),
            ...(status.targetUrl === undefined ? {} : { target_url: status.targetUrl }),
          }),
        );
      },
    },
  };
}

function toPullRequest(pull: GitHubPullRequest): PullRequest {
  const merged = pull.merged_at !== null && pull.merged_at !== undefined;
  const head = pull.head.repo?.full_name.toLowerCase();
  return {
    number: pull.number,
    headSha: pull.head.sha,
    headRef: pull.head.ref,
    baseRef: pull.base.ref,
    // A null head repository is a fork that has since been deleted.
    fromFork: head !== pull.base.repo.full_name.toLowerCase(),
    state: merged ? "merged" : pull.state,
    // On an open pull request merge_commit_sha is GitHub's test merge, not a commit on the base.
    ...(merged && pull.merge_commit_sha ? { mergeCommitSha: pull.merge_commit_sha } : {}),
    url: pull.html_url,
    ...(pull.user ? { author: pull.user.login } : {}),
    ...(pull.merged_by ? { mergedBy: pull.merged_by.login } : {}),
  };
}

function toComment(comment: z.infer<typeof commentSchema>): Comment {
  // A deleted account shows as null: nobody the runner is.
  return { id: String(comment.id), body: comment.body ?? "", author: comment.user?.login ?? "" };
}

function commentNumber(commentId: string, action: string): number {
  return Number(numericId("github", commentId, "GitHub comment", action));
}

/** Octokit's RequestError carries the answer in `response`; without one, no answer came. */
function failure(action: string, error: unknown, token: string): ForgeError {
  const response = responseOf(error);
  return forgeError({
    forge: "github",
    action,
    secret: token,
    ...(response === undefined
      ? { detail: error instanceof Error ? error.message : String(error) }
      : { status: response.status, detail: messageOf(response.data) ?? "" }),
    cause: error,
  });
}

function responseOf(error: unknown): { status: number; data: unknown } | undefined {
  if (!(error instanceof Error) || !("response" in error)) return undefined;
  const response = z.object({ status: z.number().int(), data: z.unknown() }).safeParse(error.response);
  return response.success ? response.data : undefined;
}
