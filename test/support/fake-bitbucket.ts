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
  parseRequestBody,
  startFakeServer,
  Unexpected,
} from "./fake-forge.ts";

/**
 * A strict stand-in for the Bitbucket Cloud REST API 2.0 endpoints the runner
 * uses, built from the API's documented shapes (developer.atlassian.com/cloud/
 * bitbucket/rest: pull requests, pull request comments, commit statuses, the
 * current user, a repository's user permissions): paged answers with `values`
 * and an absolute `next`, commit hashes abbreviated to 12 characters in pull
 * requests, build statuses keyed by a `key` of at most 40 characters with a
 * required link. There are no reactions. State lives in memory.
 */
export interface FakeBitbucketOptions {
  readonly workspace: string;
  readonly repo: string;
  readonly token: string;
  /** A user API token (Basic with this e-mail address) instead of an access token (Bearer). */
  readonly username?: string;
  /** The repository's branches, for opening a pull request through the API. */
  readonly branchSha?: (branch: string) => string | undefined;
}

export interface FakeBitbucket extends FakeForge {
  /** The UUID of the account the token acts as: the author of the comments it writes. */
  readonly botUuid: string;
}

const STATE = z.enum(["INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"]);
const commentBodySchema = z.strictObject({
  content: z.strictObject({ raw: z.string().min(1) }),
  parent: z.strictObject({ id: z.number().int() }).optional(),
});
const createBodySchema = z.strictObject({
  title: z.string().min(1),
  description: z.string().optional(),
  source: z.strictObject({ branch: z.strictObject({ name: z.string().min(1) }) }),
  destination: z.strictObject({ branch: z.strictObject({ name: z.string().min(1) }) }).optional(),
});
const statusBodySchema = z.strictObject({
  key: z.string().min(1).max(40, "key: Ensure this value has at most 40 characters"),
  state: STATE,
  name: z.string().optional(),
  description: z.string().optional(),
  url: z.url({ protocol: /^https?$/, error: "url: Enter a valid URL." }),
  refname: z.string().optional(),
});

interface PullRequestRecord {
  id: number;
  title: string;
  body: string;
  author: string;
  mergedBy: string | null;
  approvers: string[];
  headSha: string;
  headRef: string;
  baseRef: string;
  headRepository: string | null;
  state: "OPEN" | "MERGED" | "DECLINED";
  mergeCommitSha: string | null;
}

interface CommentRecord {
  id: number;
  pullRequest: number;
  body: string;
  author: string;
  deleted: boolean;
}

interface StatusRecord extends FakeStatus {
  readonly sha: string;
  readonly key: string;
}

export async function startFakeBitbucket(options: FakeBitbucketOptions): Promise<FakeBitbucket> {
  const { workspace, repo, token } = options;
  const fullName = `${workspace}/${repo}`;
  const botUuid = `{${uuidFor("gitops-runner-bot")}}`;
  const pullRequests = new Map<number, PullRequestRecord>();
  const comments: CommentRecord[] = [];
  const statuses: StatusRecord[] = [];
  const permissions = new Map<string, FakePermission>();
  let nextId = 700_001;

  const server = await startFakeServer({
    name: "Bitbucket",
    prefix: "/2.0",
    notFound: error("Resource not found"),
    handle,
  });
  const apiRoot = `${server.origin}/2.0`;
  const webRoot = "https://bitbucket.org";
  const repoPrefix = `/repositories/${workspace}/${repo}`;

  function handle(request: FakeRequest): FakeResponse {
    authorize(request);
    if (request.path === "/user" && request.method === "GET") {
      // Access tokens act as a bot account that this endpoint does not serve.
      if (!options.username) {
        return { status: 401, body: error("Token is invalid or not supported for this endpoint.") };
      }
      return { status: 200, body: account(botUuid, "gitops-runner") };
    }
    if (
      request.path === `/workspaces/${workspace}/permissions/repositories/${repo}` &&
      request.method === "GET"
    ) {
      return listPermissions(request);
    }
    if (!request.path.startsWith(`${repoPrefix}/`)) {
      throw new Unexpected(
        404,
        `no route for ${request.method} ${request.path}`,
        error("Resource not found"),
      );
    }
    const rest = request.path.slice(repoPrefix.length + 1).split("/");
    const shape = rest.map((part, index) =>
      /^\d+$/.test(part) ? ":n" : index === 1 && rest[0] === "commit" ? ":sha" : part,
    );
    const route = `${request.method} ${shape.join("/")}`;
    const pullRequest = Number(rest[1]);
    switch (route) {
      case "GET pullrequests":
        return listPullRequests(request);
      case "POST pullrequests":
        return createPullRequest(request);
      case "GET pullrequests/:n":
        return withPullRequest(pullRequest, (found) => ({ status: 200, body: pullRequestJson(found) }));
      case "GET pullrequests/:n/comments":
        return withPullRequest(pullRequest, () => listComments(request, pullRequest));
      case "POST pullrequests/:n/comments":
        return withPullRequest(pullRequest, () => createComment(request, pullRequest));
      case "PUT pullrequests/:n/comments/:n":
        return withPullRequest(pullRequest, () => updateComment(request, pullRequest, Number(rest[3])));
      case "DELETE pullrequests/:n/comments/:n":
        return withPullRequest(pullRequest, () => deleteComment(request, pullRequest, Number(rest[3])));
      case "POST commit/:sha/statuses/build":
        return createStatus(request, rest[1] ?? "");
      default:
        throw new Unexpected(
          404,
          `no route for ${request.method} ${request.path}`,
          error("Resource not found"),
        );
    }
  }

  function authorize(request: FakeRequest): void {
    const expected = options.username
      ? `Basic ${Buffer.from(`${options.username}:${token}`).toString("base64")}`
      : `Bearer ${token}`;
    if (request.headers.authorization !== expected) {
      throw new Unexpected(401, "bad or missing credentials", error("Access token expired or invalid."));
    }
  }

  function withPullRequest(id: number, then: (found: PullRequestRecord) => FakeResponse): FakeResponse {
    const found = pullRequests.get(id);
    return found ? then(found) : { status: 404, body: error(`No pull request with ID ${id}.`) };
  }

  function listPullRequests(request: FakeRequest): FakeResponse {
    allowQuery(request, ["state", "pagelen", "page", "q", "sort"], error("Invalid query"));
    const state = request.query.get("state") ?? "OPEN";
    if (!["OPEN", "MERGED", "DECLINED", "SUPERSEDED"].includes(state)) {
      throw new Unexpected(400, `state=${state}`, error(`Invalid state ${state}`));
    }
    const matching = [...pullRequests.values()]
      .filter((pull) => pull.state === state)
      .sort((a, b) => b.id - a.id);
    // Bitbucket serves at most 50 pull requests a page.
    return paged(request, matching.map(pullRequestJson), 50);
  }

  /** POST .../pullrequests: a branch of this repository into another (the main branch by default). */
  function createPullRequest(request: FakeRequest): FakeResponse {
    allowQuery(request, [], error("Invalid query"));
    const body = parseRequestBody(request, createBodySchema, 400, (reason) => error(reason));
    const head = body.source.branch.name;
    const base = body.destination?.branch.name ?? "main";
    const headSha = options.branchSha?.(head);
    if (headSha === undefined || options.branchSha?.(base) === undefined) {
      const missing = headSha === undefined ? head : base;
      return { status: 400, body: error(`${missing}: branch not found`) };
    }
    const id = Math.max(0, ...pullRequests.keys()) + 1;
    const created: PullRequestRecord = {
      id,
      title: body.title,
      body: body.description ?? "",
      author: "gitops-runner",
      mergedBy: null,
      approvers: [],
      headSha,
      headRef: head,
      baseRef: base,
      headRepository: fullName,
      state: "OPEN",
      mergeCommitSha: null,
    };
    pullRequests.set(id, created);
    return { status: 201, body: pullRequestJson(created) };
  }

  function listComments(request: FakeRequest, pullRequest: number): FakeResponse {
    allowQuery(request, ["pagelen", "page", "q", "sort"], error("Invalid query"));
    return paged(
      request,
      comments.filter((comment) => comment.pullRequest === pullRequest).map(commentJson),
      100,
    );
  }

  function createComment(request: FakeRequest, pullRequest: number): FakeResponse {
    allowQuery(request, [], error("Invalid query"));
    const body = parseRequestBody(request, commentBodySchema, 400, (reason) => error(reason));
    const comment = { id: nextId++, pullRequest, body: body.content.raw, author: botUuid, deleted: false };
    comments.push(comment);
    return { status: 201, body: commentJson(comment) };
  }

  function updateComment(request: FakeRequest, pullRequest: number, id: number): FakeResponse {
    allowQuery(request, [], error("Invalid query"));
    const body = parseRequestBody(request, commentBodySchema, 400, (reason) => error(reason));
    const comment = comments.find(
      (candidate) => candidate.id === id && candidate.pullRequest === pullRequest,
    );
    if (!comment || comment.deleted) return { status: 404, body: error("No such comment") };
    if (comment.author !== botUuid)
      throw new Unexpected(403, "edited someone else's comment", error("Forbidden"));
    comment.body = body.content.raw;
    return { status: 200, body: commentJson(comment) };
  }

  function deleteComment(request: FakeRequest, pullRequest: number, id: number): FakeResponse {
    allowQuery(request, [], error("Invalid query"));
    const comment = comments.find(
      (candidate) => candidate.id === id && candidate.pullRequest === pullRequest,
    );
    if (!comment || comment.deleted) return { status: 404, body: error("No such comment") };
    comment.deleted = true;
    return { status: 204 };
  }

  function createStatus(request: FakeRequest, sha: string): FakeResponse {
    allowQuery(request, [], error("Invalid query"));
    if (!/^[0-9a-f]{7,40}$/.test(sha))
      throw new Unexpected(404, `no commit ${sha}`, error(`Commit not found: ${sha}`));
    const body = parseRequestBody(request, statusBodySchema, 400, (reason) => error(reason));
    statuses.push({
      sha,
      key: body.key,
      context: body.key,
      state: body.state,
      description: body.description,
      targetUrl: body.url,
    });
    return {
      status: 201,
      body: {
        type: "build",
        key: body.key,
        state: body.state,
        name: body.name ?? body.key,
        url: body.url,
        description: body.description ?? "",
      },
    };
  }

  function listPermissions(request: FakeRequest): FakeResponse {
    allowQuery(request, ["q", "sort", "pagelen", "page"], error("Invalid query"));
    const q = request.query.get("q") ?? "";
    const uuid = /^user\.uuid="(\{[0-9a-f-]+\})"$/.exec(q)?.[1];
    if (q !== "" && uuid === undefined) throw new Unexpected(400, `q=${q}`, error("Invalid query"));
    const entries = [...permissions]
      .filter(([name, level]) => level !== "none" && (uuid === undefined || accountUuid(name) === uuid))
      .map(([name, level]) => ({
        type: "repository_permission",
        permission: level,
        user: account(accountUuid(name), name),
        repository: { type: "repository", full_name: fullName, name: repo },
      }));
    return paged(request, entries, 50);
  }

  /** `values`, `page`, `pagelen`, `size` and an absolute `next` while there is more. */
  function paged(request: FakeRequest, items: readonly unknown[], maxLength: number): FakeResponse {
    const page = Number(request.query.get("page") ?? "1");
    const pagelen = Number(request.query.get("pagelen") ?? "10");
    if (
      !Number.isInteger(page) ||
      page < 1 ||
      !Number.isInteger(pagelen) ||
      pagelen < 1 ||
      pagelen > maxLength
    ) {
      throw new Unexpected(400, `page=${page} pagelen=${pagelen}`, error("Invalid pagelen"));
    }
    const values = items.slice((page - 1) * pagelen, page * pagelen);
    const more = page * pagelen < items.length;
    const next = new URLSearchParams(request.query);
    next.set("page", String(page + 1));
    return {
      status: 200,
      body: {
        size: items.length,
        page,
        pagelen,
        values,
        ...(more ? { next: `${apiRoot}${request.path}?${next}` } : {}),
      },
    };
  }

  function pullRequestJson(pull: PullRequestRecord): Record<string, unknown> {
    const end = (branch: string, hash: string, repository: string | null) => ({
      branch: { name: branch },
      commit: { type: "commit", hash: hash.slice(0, 12) },
      repository:
        repository === null
          ? null
          : { type: "repository", full_name: repository, name: repository.split("/")[1] },
    });
    return {
      type: "pullrequest",
      id: pull.id,
      title: pull.title,
      state: pull.state,
      author: account(pull.author === "gitops-runner" ? botUuid : accountUuid(pull.author), pull.author),
      closed_by: pull.mergedBy === null ? null : account(accountUuid(pull.mergedBy), pull.mergedBy),
      participants: pull.approvers.map((name) => ({
        type: "participant",
        role: "REVIEWER",
        approved: true,
        user: account(accountUuid(name), name),
      })),
      source: end(pull.headRef, pull.headSha, pull.headRepository),
      destination: end(pull.baseRef, "0".repeat(40), fullName),
      merge_commit:
        pull.mergeCommitSha === null ? null : { type: "commit", hash: pull.mergeCommitSha.slice(0, 12) },
      close_source_branch: false,
      links: {
        self: { href: `${apiRoot}${repoPrefix}/pullrequests/${pull.id}` },
        html: { href: `${webRoot}/${fullName}/pull-requests/${pull.id}` },
      },
    };
  }

  function commentJson(comment: CommentRecord): Record<string, unknown> {
    return {
      type: "pullrequest_comment",
      id: comment.id,
      content: { type: "rendered", raw: comment.body, markup: "markdown", html: "" },
      user: account(comment.author, comment.author === botUuid ? "gitops-runner" : comment.author),
      deleted: comment.deleted,
      pending: false,
      links: {
        html: {
          href: `${webRoot}/${fullName}/pull-requests/${comment.pullRequest}/_/diff#comment-${comment.id}`,
        },
      },
    };
  }

  function pullRequest(id: number): PullRequestRecord {
    const found = pullRequests.get(id);
    if (!found) throw new Error(`fake Bitbucket: no pull request #${id}`);
    return found;
  }

  return {
    url: apiRoot,
    botUuid,
    calls: server.calls,
    unexpected: server.unexpected,
    addPullRequest(input: FakePullRequestInput) {
      pullRequests.set(input.number, {
        id: input.number,
        title: input.title ?? `Change ${input.number}`,
        body: "",
        author: input.author ?? "contributor",
        mergedBy: null,
        approvers: [],
        headSha: input.headSha,
        headRef: input.headRef ?? `change-${input.number}`,
        baseRef: input.baseRef ?? "main",
        headRepository: input.headRepository === undefined ? fullName : input.headRepository,
        state: "OPEN",
        mergeCommitSha: null,
      });
    },
    setPullRequestState(number: number, state: "open" | "closed" | "merged", merge?: FakeMerge) {
      const found = pullRequest(number);
      found.state = state === "open" ? "OPEN" : state === "merged" ? "MERGED" : "DECLINED";
      found.mergeCommitSha = state === "merged" ? (merge?.mergeCommitSha ?? null) : null;
      found.mergedBy = state === "merged" ? (merge?.mergedBy ?? "maintainer") : null;
    },
    addApproval(number: number, user: string) {
      pullRequest(number).approvers.push(user);
    },
    pullRequests() {
      return [...pullRequests.values()].map((pull) => ({
        number: pull.id,
        headRef: pull.headRef,
        headSha: pull.headSha,
        baseRef: pull.baseRef,
        title: pull.title,
        body: pull.body,
        author: pull.author,
        state: pull.state.toLowerCase(),
      }));
    },
    setHeadSha(number: number, sha: string) {
      pullRequest(number).headSha = sha;
    },
    /** `author` is a name; its account's UUID writes the comment. */
    addComment(number: number, body: string, author = "reviewer") {
      pullRequest(number);
      const comment = {
        id: nextId++,
        pullRequest: number,
        body,
        author: accountUuid(author),
        deleted: false,
      };
      comments.push(comment);
      return { id: comment.id, body, author: comment.author };
    },
    comments(number: number): FakeComment[] {
      return comments
        .filter((comment) => comment.pullRequest === number && !comment.deleted)
        .map(({ id, body, author }) => ({ id, body, author }));
    },
    setPermission(name: string, level: FakePermission) {
      permissions.set(name, level);
    },
    reactions() {
      return [];
    },
    /** Statuses posted for the commit, whether named by its full hash or an abbreviation. */
    statuses(sha: string): FakeStatus[] {
      return statuses
        .filter((status) => sha.startsWith(status.sha) || status.sha.startsWith(sha))
        .map(({ context, state, description, targetUrl }) => ({ context, state, description, targetUrl }));
    },
    pullRequestUrl(number: number) {
      return `${webRoot}/${fullName}/pull-requests/${number}`;
    },
    takeUnexpected: server.takeUnexpected,
    assertNoUnexpected: server.assertNoUnexpected,
    waitForCall: server.waitForCall,
    close: server.close,
  };
}

/** The UUID (with braces) of a named account. */
export function accountUuid(name: string): string {
  return `{${uuidFor(name)}}`;
}

function uuidFor(name: string): string {
  const hex = createHash("sha256").update(name).digest("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function account(uuid: string, nickname: string): Record<string, unknown> {
  return { type: "user", uuid, nickname, display_name: nickname, account_id: `557058:${uuid.slice(1, 9)}` };
}

function error(message: string): Record<string, unknown> {
  return { type: "error", error: { message } };
}
