import { createHash } from "node:crypto";
import { z } from "zod";
import {
  allowQuery,
  type FakeComment,
  type FakeForge,
  type FakeMerge,
  type FakePermission,
  type FakePullRequestInput,
  type FakeRequest,
  type FakeResponse,
  type FakeStatus,
  isCommitSha,
  linkHeader,
  paginate,
  parseRequestBody,
  startFakeServer,
  Unexpected,
} from "./fake-forge.ts";

/**
 * A strict stand-in for the GitHub REST API endpoints the runner uses, built
 * from GitHub's documented request and response shapes (docs.github.com/rest:
 * pulls, issue comments, commit statuses). State lives in memory.
 */
export interface FakeGitHubOptions {
  readonly owner: string;
  readonly repo: string;
  readonly token: string;
  /** Serve under /api/v3, as GitHub Enterprise Server does. */
  readonly enterprise?: boolean;
  /** The login the token belongs to: the author of the comments it creates. */
  readonly login?: string;
  /** The commit a branch of the repository points at; undefined: no such branch (opening a pull request from it fails). */
  readonly branchSha?: (branch: string) => string | undefined;
}

export interface FakeGitHub extends FakeForge {
  /** A review: APPROVED, CHANGES_REQUESTED, COMMENTED or DISMISSED. */
  addReview(number: number, user: string, state: string): void;
}

const DOCS = "https://docs.github.com/rest";
const COMMENT_LIMIT = 65_536;
const DESCRIPTION_LIMIT = 140;

interface PullRequestRecord {
  number: number;
  title: string;
  body: string;
  author: string;
  mergedBy: string | null;
  headSha: string;
  headRef: string;
  baseRef: string;
  headRepository: string | null;
  state: "open" | "closed";
  mergedAt: string | null;
  mergeCommitSha: string | null;
  createdAt: string;
}

interface CommentRecord {
  id: number;
  issue: number;
  body: string;
  author: string;
  createdAt: string;
  updatedAt: string;
}

interface ReviewRecord {
  readonly id: number;
  readonly pull: number;
  readonly user: string;
  readonly state: string;
  readonly submittedAt: string;
}

interface StatusRecord extends FakeStatus {
  readonly id: number;
  readonly sha: string;
  readonly createdAt: string;
}

const bodySchema = z.strictObject({ body: z.string().max(COMMENT_LIMIT) });
const createPullSchema = z.strictObject({
  title: z.string().min(1),
  head: z.string().min(1),
  base: z.string().min(1),
  body: z.string().max(COMMENT_LIMIT).optional(),
  head_repo: z.string().optional(),
  maintainer_can_modify: z.boolean().optional(),
  draft: z.boolean().optional(),
  issue: z.number().int().optional(),
});
const statusSchema = z.strictObject({
  state: z.enum(["error", "failure", "pending", "success"]),
  target_url: z.string().nullish(),
  description: z
    .string()
    .refine(
      (text) => Array.from(text).length <= DESCRIPTION_LIMIT,
      "description is too long (maximum is 140 characters)",
    )
    .nullish(),
  context: z.string().optional(),
});

export async function startFakeGitHub(options: FakeGitHubOptions): Promise<FakeGitHub> {
  const { owner, repo, token } = options;
  const fullName = `${owner}/${repo}`;
  const login = options.login ?? "gitops-runner[bot]";
  const prefix = options.enterprise ? "/api/v3" : "";
  const pullRequests = new Map<number, PullRequestRecord>();
  const comments: CommentRecord[] = [];
  const reviews: ReviewRecord[] = [];
  const statuses: StatusRecord[] = [];
  const permissions = new Map<string, FakePermission>();
  const reactions: { commentId: number; content: string }[] = [];
  let nextId = 1_000_001;
  let clock = Date.parse("2030-01-01T00:00:00Z");
  const now = () => {
    clock += 1000;
    return new Date(clock).toISOString();
  };

  const server = await startFakeServer({ name: "GitHub", prefix, notFound: notFound(), handle });
  const apiRoot = `${server.origin}${prefix}`;
  const webRoot = server.origin;

  function handle(request: FakeRequest): FakeResponse {
    authorize(request);
    if (request.method === "GET" && request.path === "/user") return currentUser(request);
    const segments = request.path.split("/").slice(1);
    const [root, ownerSegment, repoSegment, collection, ...rest] = segments;
    if (root !== "repos" || ownerSegment !== owner || repoSegment !== repo) {
      throw new Unexpected(404, `no route for ${request.method} ${request.path}`, notFound());
    }
    const route = `${request.method} ${collection ?? ""}/${rest.map((part) => (/^\d+$/.test(part) ? ":n" : part)).join("/")}`;
    switch (route) {
      case "GET pulls/":
        return listPullRequests(request);
      case "GET pulls/:n":
        return getPullRequest(request, Number(rest[0]));
      case "POST pulls/":
        return createPullRequest(request);
      case "GET pulls/:n/reviews":
        return listReviews(request, Number(rest[0]));
      case "GET issues/:n/comments":
        return listComments(request, Number(rest[0]));
      case "POST issues/:n/comments":
        return createComment(request, Number(rest[0]));
      case "PATCH issues/comments/:n":
        return updateComment(request, Number(rest[1]));
      case "DELETE issues/comments/:n":
        return deleteComment(request, Number(rest[1]));
      case "POST issues/comments/:n/reactions":
        return createReaction(request, Number(rest[1]));
      default:
        if (request.method === "POST" && collection === "statuses" && rest.length === 1) {
          return createStatus(request, rest[0] ?? "");
        }
        if (request.method === "GET" && collection === "collaborators" && rest[1] === "permission") {
          return permission(request, decodeURIComponent(rest[0] ?? ""));
        }
        throw new Unexpected(404, `no route for ${request.method} ${request.path}`, notFound());
    }
  }

  function authorize(request: FakeRequest): void {
    const authorization = request.headers.authorization;
    if (authorization === undefined) {
      throw new Unexpected(401, "no authorization header", {
        message: "Requires authentication",
        documentation_url: DOCS,
      });
    }
    const match = /^(?:token|bearer) (.+)$/i.exec(authorization);
    if (!match || match[1] !== token) {
      throw new Unexpected(401, "bad credentials", { message: "Bad credentials", documentation_url: DOCS });
    }
    if (!request.headers["user-agent"]) {
      // GitHub refuses requests without a User-Agent.
      throw new Unexpected(403, "no user-agent header", {
        message: "Request forbidden by administrative rules.",
      });
    }
    const accept = request.headers.accept ?? "";
    if (!/application\/(?:vnd\.github(?:\.v3)?\+)?json/.test(accept)) {
      throw new Unexpected(415, `accept ${accept}`, {
        message: "Unsupported 'Accept' header",
        documentation_url: DOCS,
      });
    }
  }

  /** GET /user: the token's own account. */
  function currentUser(request: FakeRequest): FakeResponse {
    allowQuery(request, [], invalid());
    return { status: 200, body: { ...userJson(login), name: null, site_admin: false } };
  }

  /** GET /repos/{owner}/{repo}/collaborators/{username}/permission */
  function permission(request: FakeRequest, username: string): FakeResponse {
    allowQuery(request, [], invalid());
    const level = permissions.get(username) ?? "none";
    return {
      status: 200,
      body: { permission: level, role_name: level === "none" ? "read" : level, user: userJson(username) },
    };
  }

  /** POST /repos/{owner}/{repo}/issues/comments/{id}/reactions: 201 when new, 200 when it was there. */
  function createReaction(request: FakeRequest, id: number): FakeResponse {
    allowQuery(request, [], invalid());
    const { content } = parseRequestBody(
      request,
      z.strictObject({
        content: z.enum(["+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"]),
      }),
      422,
      validationFailed,
    );
    if (!comments.some((comment) => comment.id === id)) return { status: 404, body: notFound() };
    const known = reactions.some((reaction) => reaction.commentId === id && reaction.content === content);
    if (!known) reactions.push({ commentId: id, content });
    return {
      status: known ? 200 : 201,
      body: { id: nextId++, node_id: "REA_1", user: userJson(login), content, created_at: now() },
    };
  }

  function listPullRequests(request: FakeRequest): FakeResponse {
    allowQuery(request, ["state", "per_page", "page"], invalid());
    const state = request.query.get("state") ?? "open";
    if (!["open", "closed", "all"].includes(state)) throw new Unexpected(422, `state=${state}`, invalid());
    // Newest first, GitHub's default order.
    const matching = [...pullRequests.values()]
      .filter((pull) => state === "all" || pull.state === state)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    return paged(request, matching.map(pullRequestJson));
  }

  function getPullRequest(request: FakeRequest, number: number): FakeResponse {
    allowQuery(request, [], invalid());
    const pull = pullRequests.get(number);
    if (!pull) return { status: 404, body: notFound() };
    return {
      status: 200,
      body: {
        ...pullRequestJson(pull),
        merged: pull.mergedAt !== null,
        merged_by: pull.mergedBy === null ? null : userJson(pull.mergedBy),
      },
    };
  }

  function createPullRequest(request: FakeRequest): FakeResponse {
    allowQuery(request, [], invalid());
    const body = parseRequestBody(request, createPullSchema, 422, validationFailed);
    const headSha = options.branchSha?.(body.head);
    if (headSha === undefined || options.branchSha?.(body.base) === undefined) {
      const field = headSha === undefined ? "head" : "base";
      return {
        status: 422,
        body: {
          message: "Validation Failed",
          errors: [{ resource: "PullRequest", field, code: "invalid" }],
          documentation_url: DOCS,
        },
      };
    }
    const open = [...pullRequests.values()].find(
      (pull) => pull.headRef === body.head && pull.state === "open",
    );
    if (open) {
      return {
        status: 422,
        body: {
          message: "Validation Failed",
          errors: [
            {
              resource: "PullRequest",
              code: "custom",
              message: `A pull request already exists for ${owner}:${body.head}.`,
            },
          ],
          documentation_url: DOCS,
        },
      };
    }
    const number = Math.max(0, ...pullRequests.keys()) + 1;
    const pull = newPullRequest({
      number,
      headSha,
      headRef: body.head,
      baseRef: body.base,
      title: body.title,
      author: login,
    });
    pull.body = body.body ?? "";
    pullRequests.set(number, pull);
    return { status: 201, body: { ...pullRequestJson(pull), merged: false, merged_by: null } };
  }

  function listReviews(request: FakeRequest, number: number): FakeResponse {
    allowQuery(request, ["per_page", "page"], invalid());
    if (!pullRequests.has(number)) return { status: 404, body: notFound() };
    const items = reviews
      .filter((review) => review.pull === number)
      .map((review) => ({
        id: review.id,
        node_id: `PRR_${review.id}`,
        user: userJson(review.user),
        body: "",
        state: review.state,
        html_url: `${webRoot}/${fullName}/pull/${number}#pullrequestreview-${review.id}`,
        pull_request_url: `${apiRoot}/repos/${fullName}/pulls/${number}`,
        submitted_at: review.submittedAt,
        commit_id: pullRequest(number).headSha,
        author_association: "MEMBER",
      }));
    return paged(request, items);
  }

  function newPullRequest(input: FakePullRequestInput): PullRequestRecord {
    return {
      number: input.number,
      title: input.title ?? `Change ${input.number}`,
      body: "",
      author: input.author ?? "contributor",
      mergedBy: null,
      headSha: input.headSha,
      headRef: input.headRef ?? `change-${input.number}`,
      baseRef: input.baseRef ?? "main",
      headRepository: input.headRepository === undefined ? fullName : input.headRepository,
      state: "open",
      mergedAt: null,
      mergeCommitSha: null,
      createdAt: now(),
    };
  }

  function listComments(request: FakeRequest, issue: number): FakeResponse {
    allowQuery(request, ["per_page", "page"], invalid());
    if (!pullRequests.has(issue)) return { status: 404, body: notFound() };
    return paged(request, commentsOf(issue).map(commentJson));
  }

  function createComment(request: FakeRequest, issue: number): FakeResponse {
    allowQuery(request, [], invalid());
    const { body } = parseRequestBody(request, bodySchema, 422, validationFailed);
    if (!pullRequests.has(issue)) return { status: 404, body: notFound() };
    return { status: 201, body: commentJson(addCommentRecord(issue, body, login)) };
  }

  function updateComment(request: FakeRequest, id: number): FakeResponse {
    allowQuery(request, [], invalid());
    const { body } = parseRequestBody(request, bodySchema, 422, validationFailed);
    const comment = comments.find((candidate) => candidate.id === id);
    if (!comment) return { status: 404, body: notFound() };
    comment.body = body;
    comment.updatedAt = now();
    return { status: 200, body: commentJson(comment) };
  }

  function deleteComment(request: FakeRequest, id: number): FakeResponse {
    allowQuery(request, [], invalid());
    const index = comments.findIndex((candidate) => candidate.id === id);
    if (index === -1) return { status: 404, body: notFound() };
    comments.splice(index, 1);
    return { status: 204 };
  }

  function createStatus(request: FakeRequest, sha: string): FakeResponse {
    allowQuery(request, [], invalid());
    const body = parseRequestBody(request, statusSchema, 422, validationFailed);
    if (!isCommitSha(sha))
      throw new Unexpected(422, `no commit ${sha}`, { message: `No commit found for SHA: ${sha}` });
    const status: StatusRecord = {
      id: nextId++,
      sha,
      context: body.context ?? "default",
      state: body.state,
      description: body.description ?? undefined,
      targetUrl: body.target_url ?? undefined,
      createdAt: now(),
    };
    statuses.push(status);
    return {
      status: 201,
      body: {
        url: `${apiRoot}/repos/${fullName}/statuses/${sha}`,
        id: status.id,
        node_id: `SC_${status.id}`,
        state: status.state,
        description: status.description ?? null,
        target_url: status.targetUrl ?? null,
        context: status.context,
        created_at: status.createdAt,
        updated_at: status.createdAt,
        creator: userJson(login),
      },
    };
  }

  function paged(request: FakeRequest, items: readonly unknown[]): FakeResponse {
    const page = paginate(request, items, 30, invalid());
    return { status: 200, body: page.items, headers: { link: linkHeader(apiRoot, request, page) } };
  }

  function commentsOf(issue: number): CommentRecord[] {
    return comments.filter((comment) => comment.issue === issue);
  }

  function addCommentRecord(issue: number, body: string, author: string): CommentRecord {
    const createdAt = now();
    const comment = { id: nextId++, issue, body, author, createdAt, updatedAt: createdAt };
    comments.push(comment);
    return comment;
  }

  function pullRequestJson(pull: PullRequestRecord): Record<string, unknown> {
    const headRepository = pull.headRepository === null ? null : repositoryJson(pull.headRepository);
    return {
      url: `${apiRoot}/repos/${fullName}/pulls/${pull.number}`,
      id: 50_000_000 + pull.number,
      node_id: `PR_${pull.number}`,
      html_url: `${webRoot}/${fullName}/pull/${pull.number}`,
      number: pull.number,
      state: pull.state,
      locked: false,
      title: pull.title,
      user: userJson(pull.author),
      body: pull.body === "" ? null : pull.body,
      created_at: pull.createdAt,
      updated_at: pull.createdAt,
      closed_at: pull.state === "closed" ? (pull.mergedAt ?? pull.createdAt) : null,
      merged_at: pull.mergedAt,
      // While open, GitHub reports the SHA of its test merge commit here.
      merge_commit_sha: pull.mergeCommitSha ?? testMergeSha(pull),
      draft: false,
      head: {
        label: `${pull.headRepository?.split("/")[0] ?? owner}:${pull.headRef}`,
        ref: pull.headRef,
        sha: pull.headSha,
        user: userJson(pull.headRepository?.split("/")[0] ?? owner),
        repo: headRepository,
      },
      base: {
        label: `${owner}:${pull.baseRef}`,
        ref: pull.baseRef,
        sha: "0".repeat(40),
        user: userJson(owner),
        repo: repositoryJson(fullName),
      },
      author_association: "CONTRIBUTOR",
    };
  }

  function repositoryJson(name: string): Record<string, unknown> {
    const [repositoryOwner = "", repositoryName = ""] = name.split("/");
    return {
      id: numberFor(name),
      name: repositoryName,
      full_name: name,
      owner: userJson(repositoryOwner),
      private: false,
      html_url: `${webRoot}/${name}`,
      fork: name !== fullName,
    };
  }

  function commentJson(comment: CommentRecord): Record<string, unknown> {
    return {
      id: comment.id,
      node_id: `IC_${comment.id}`,
      url: `${apiRoot}/repos/${fullName}/issues/comments/${comment.id}`,
      html_url: `${webRoot}/${fullName}/pull/${comment.issue}#issuecomment-${comment.id}`,
      issue_url: `${apiRoot}/repos/${fullName}/issues/${comment.issue}`,
      body: comment.body,
      user: userJson(comment.author),
      created_at: comment.createdAt,
      updated_at: comment.updatedAt,
      author_association: comment.author === login ? "NONE" : "CONTRIBUTOR",
    };
  }

  function pullRequest(number: number): PullRequestRecord {
    const pull = pullRequests.get(number);
    if (!pull) throw new Error(`fake GitHub: no pull request #${number}`);
    return pull;
  }

  return {
    url: apiRoot,
    calls: server.calls,
    unexpected: server.unexpected,
    addPullRequest(input: FakePullRequestInput) {
      if (pullRequests.has(input.number))
        throw new Error(`fake GitHub: pull request #${input.number} exists`);
      pullRequests.set(input.number, newPullRequest(input));
    },
    setPullRequestState(number: number, state: "open" | "closed" | "merged", merge?: FakeMerge) {
      const pull = pullRequest(number);
      if (state === "merged" && !merge?.mergeCommitSha) {
        throw new Error("fake GitHub: a merged pull request needs its merge commit SHA");
      }
      pull.state = state === "open" ? "open" : "closed";
      pull.mergedAt = state === "merged" ? now() : null;
      pull.mergeCommitSha = state === "merged" ? (merge?.mergeCommitSha ?? null) : null;
      pull.mergedBy = state === "merged" ? (merge?.mergedBy ?? "maintainer") : null;
    },
    addReview(number: number, user: string, state: string) {
      pullRequest(number);
      reviews.push({ id: nextId++, pull: number, user, state, submittedAt: now() });
    },
    addApproval(number: number, user: string) {
      pullRequest(number);
      reviews.push({ id: nextId++, pull: number, user, state: "APPROVED", submittedAt: now() });
    },
    pullRequests() {
      return [...pullRequests.values()].map((pull) => ({
        number: pull.number,
        headRef: pull.headRef,
        headSha: pull.headSha,
        baseRef: pull.baseRef,
        title: pull.title,
        body: pull.body,
        author: pull.author,
        state: pull.mergedAt === null ? pull.state : "merged",
      }));
    },
    setHeadSha(number: number, sha: string) {
      pullRequest(number).headSha = sha;
    },
    addComment(number: number, body: string, author = "reviewer") {
      pullRequest(number);
      const { id } = addCommentRecord(number, body, author);
      return { id, body, author };
    },
    comments(number: number): FakeComment[] {
      return commentsOf(number).map(({ id, body, author }) => ({ id, body, author }));
    },
    setPermission(account: string, level: FakePermission) {
      permissions.set(account, level);
    },
    reactions(commentId: number) {
      return reactions
        .filter((reaction) => reaction.commentId === commentId)
        .map((reaction) => reaction.content);
    },
    statuses(sha: string): FakeStatus[] {
      return statuses
        .filter((status) => status.sha === sha)
        .map(({ context, state, description, targetUrl }) => ({ context, state, description, targetUrl }));
    },
    pullRequestUrl(number: number) {
      return `${webRoot}/${fullName}/pull/${number}`;
    },
    takeUnexpected: server.takeUnexpected,
    assertNoUnexpected: server.assertNoUnexpected,
    waitForCall: server.waitForCall,
    close: server.close,
  };
}

function notFound(): Record<string, string> {
  return { message: "Not Found", documentation_url: DOCS, status: "404" };
}

function invalid(): Record<string, string> {
  return { message: "Invalid request.", documentation_url: DOCS, status: "422" };
}

function validationFailed(reason: string): Record<string, unknown> {
  return {
    message: "Validation Failed",
    errors: [{ code: "custom", message: reason }],
    documentation_url: DOCS,
  };
}

function userJson(name: string): Record<string, unknown> {
  return { login: name, id: numberFor(name), type: name.endsWith("[bot]") ? "Bot" : "User" };
}

function numberFor(text: string): number {
  return createHash("sha256").update(text).digest().readUInt32BE(0);
}

function testMergeSha(pull: PullRequestRecord): string {
  return createHash("sha1").update(`test-merge:${pull.number}:${pull.headSha}`).digest("hex");
}
