import { z } from "zod";
import { ForgeError, isForgeError } from "../errors.ts";
import { shorten } from "../http.ts";
import type { Comment, CommitState, Forge, PullRequest } from "../port.ts";
import { numericId, type RestCall, restClient } from "../rest.ts";

export interface GitLabForgeOptions {
  /** The numeric project id or its path, e.g. "group/subgroup/name". */
  readonly project: string;
  readonly token: string;
  /** The instance's root URL; defaults to https://gitlab.com. */
  readonly baseUrl?: string;
  readonly fetch?: typeof fetch;
  /** Per request; defaults to 30 s. */
  readonly timeoutMs?: number;
  /** The username the runner's notes are written by; learnt from `GET /user` when unset. */
  readonly login?: string;
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
const noteSchema = z.object({
  id: z.number().int().positive(),
  body: z.string(),
  system: z.boolean(),
  author: userSchema,
});
/** A user looked up by name, for the permission API that wants an id. */
const userWithIdSchema = z.object({ id: z.number().int(), username: z.string() });
const memberSchema = z.object({ access_level: z.number().int() });
const commitStatusSchema = z.object({ name: z.string(), status: z.string() });
const approvalsSchema = z.object({ approved_by: z.array(z.object({ user: userSchema })) });

type MergeRequest = z.infer<typeof mergeRequestSchema>;

/** Developer (30) and above may push; below are guests and reporters. */
const DEVELOPER = 30;

export function gitlabForge(options: GitLabForgeOptions): Forge {
  const { project, token } = options;
  const projectPath = `/projects/${encodeURIComponent(project)}`;
  const client = restClient({
    forge: "gitlab",
    apiRoot: `${(options.baseUrl ?? "https://gitlab.com").replace(/\/+$/, "")}/api/v4`,
    headers: { "PRIVATE-TOKEN": token },
    secret: token,
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });
  const { send, json } = client;

  /** Follows x-next-page, GitLab's offset pagination, to the last page. */
  function all<T>(call: RestCall, item: z.ZodType<T>): Promise<T[]> {
    const first = { ...call, query: { ...call.query, per_page: PER_PAGE, page: "1" } };
    return client.all(first, item, (answer, current) => {
      const next = answer.headers.get("x-next-page");
      if (!next) return { items: answer.body };
      const page = Number(current.query?.page);
      if (!Number.isInteger(Number(next)) || Number(next) <= page) {
        throw new ForgeError("FORGE_FAILED", `gitlab: ${call.action}: unexpected x-next-page ${next}`, {
          status: answer.status,
        });
      }
      return { items: answer.body, next: { ...current, query: { ...current.query, page: next } } };
    });
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
      async list(pullRequest) {
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
        return notes.filter((note) => !note.system).map(toComment);
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
      async react(pullRequest, commentId) {
        const action = `award an emoji to note ${commentId} on merge request !${pullRequest} of ${project}`;
        await send({
          method: "POST",
          path: `${mergeRequestPath(pullRequest)}/notes/${noteId(commentId, action)}/award_emoji`,
          action,
          body: { name: "thumbsup" },
        });
      },
    },
    accounts: {
      async self() {
        if (options.login !== undefined) return options.login;
        return (await json({ method: "GET", path: "/user", action: "read the token's user" }, userSchema))
          .username;
      },
      async canWrite(account) {
        const action = `read the access level of ${account.name} on ${project}`;
        const id =
          account.id ??
          (
            await json(
              { method: "GET", path: "/users", action, query: { username: account.name } },
              z.array(userWithIdSchema),
            )
          ).find((user) => user.username === account.name)?.id;
        if (id === undefined) return false;
        try {
          const member = await json(
            {
              method: "GET",
              path: `${projectPath}/members/all/${numericId("gitlab", String(id), "user", action)}`,
              action,
            },
            memberSchema,
          );
          return member.access_level >= DEVELOPER;
        } catch (error) {
          // Not a member of the project or of a group above it.
          if (isForgeError(error, "FORGE_NOT_FOUND")) return false;
          throw error;
        }
      },
    },
    statuses: {
      async set(sha, status) {
        const state = GITLAB_STATE[status.state];
        const call: RestCall = {
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
  return { id: String(note.id), body: note.body, author: note.author.username };
}

function noteId(commentId: string, action: string): string {
  return numericId("gitlab", commentId, "GitLab note", action);
}
