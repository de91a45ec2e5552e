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
 * A strict stand-in for the GitLab REST API v4 endpoints the runner uses,
 * built from GitLab's documented request and response shapes
 * (docs.gitlab.com/api: merge_requests, notes, commits). State lives in memory.
 */
export interface FakeGitLabOptions {
  /** The project's path, e.g. "group/infra"; requests may name it by path (URL-encoded) or id. */
  readonly project: string;
  readonly token: string;
  readonly projectId?: number;
  /** Serve the instance under a path, as a self-hosted GitLab with a relative URL root does. */
  readonly relativeUrlRoot?: string;
  /** The user the token belongs to: the author of the notes it creates. */
  readonly username?: string;
  /** The commit a branch of the project points at; undefined: no such branch. */
  readonly branchSha?: (branch: string) => string | undefined;
}

export interface FakeGitLabMerge extends FakeMerge {
  /** Set when the merge request was squashed. */
  readonly squashCommitSha?: string;
}

export interface FakeGitLab extends FakeForge {
  readonly projectId: number;
  /**
   * A merged merge request without a merge commit SHA was merged fast-forward.
   * "locked" is the state GitLab shows while it merges.
   */
  setPullRequestState(
    number: number,
    state: "open" | "closed" | "merged" | "locked",
    merge?: FakeGitLabMerge,
  ): void;
  /** A note GitLab itself writes ("added 1 commit"). */
  addSystemNote(number: number, body: string): void;
}

const NOTE_LIMIT = 1_000_000;

interface MergeRequestRecord {
  iid: number;
  title: string;
  description: string;
  author: string;
  mergedBy: string | null;
  approvers: string[];
  sha: string;
  sourceBranch: string;
  targetBranch: string;
  sourceProjectId: number;
  state: "opened" | "closed" | "merged" | "locked";
  mergeCommitSha: string | null;
  squashCommitSha: string | null;
  createdAt: string;
  mergedAt: string | null;
}

interface NoteRecord {
  id: number;
  iid: number;
  body: string;
  author: string;
  system: boolean;
  createdAt: string;
  updatedAt: string;
}

/** A commit status as GitLab keeps it: a pending or running one changes in place. */
interface StatusRecord {
  readonly id: number;
  readonly sha: string;
  readonly name: string;
  status: string;
  description: string | null;
  targetUrl: string | null;
  readonly createdAt: string;
}

const noteBodySchema = z.strictObject({ body: z.string().min(1).max(NOTE_LIMIT) });
const createMergeRequestSchema = z.strictObject({
  source_branch: z.string().min(1),
  target_branch: z.string().min(1),
  title: z.string().min(1),
  description: z.string().max(NOTE_LIMIT).optional(),
  assignee_id: z.number().int().optional(),
  labels: z.string().optional(),
  remove_source_branch: z.boolean().optional(),
  squash: z.boolean().optional(),
  target_project_id: z.number().int().optional(),
});
const statusBodySchema = z.strictObject({
  state: z.enum(["pending", "running", "success", "failed", "canceled", "skipped"]),
  ref: z.string().max(255).optional(),
  name: z.string().optional(),
  context: z.string().optional(),
  target_url: z.string().optional(),
  description: z.string().optional(),
  coverage: z.number().optional(),
  pipeline_id: z.number().int().optional(),
});

/** GitLab's event for moving a status into each state, as its refusals name them. */
const TRANSITION: Readonly<Record<string, string>> = { pending: "enqueue", running: "run" };

export async function startFakeGitLab(options: FakeGitLabOptions): Promise<FakeGitLab> {
  const { project, token } = options;
  const projectId = options.projectId ?? 4242;
  const username = options.username ?? "gitops-runner";
  const root = options.relativeUrlRoot?.replace(/\/+$/, "") ?? "";
  const mergeRequests = new Map<number, MergeRequestRecord>();
  const notes: NoteRecord[] = [];
  const statusRecords: StatusRecord[] = [];
  const posted: (FakeStatus & { sha: string })[] = [];
  const otherProjects = new Map<string, number>();
  const accessLevels = new Map<string, number>();
  const awards: { noteId: number; name: string }[] = [];
  let nextId = 2_000_001;
  let clock = Date.parse("2030-01-01T00:00:00Z");
  const now = () => {
    clock += 1000;
    return new Date(clock).toISOString();
  };

  const server = await startFakeServer({
    name: "GitLab",
    prefix: `${root}/api/v4`,
    notFound: { message: "404 Not Found" },
    handle,
  });
  const webRoot = `${server.origin}${root}`;
  const apiRoot = `${webRoot}/api/v4`;

  function handle(request: FakeRequest): FakeResponse {
    if (request.headers["private-token"] !== token) {
      throw new Unexpected(401, "bad or missing PRIVATE-TOKEN", { message: "401 Unauthorized" });
    }
    const [first, id = "", ...rest] = request.path.split("/").slice(1);
    if (request.method === "GET" && request.path === "/user") {
      allowQuery(request, [], badRequest("invalid parameter"));
      return { status: 200, body: userJson(username) };
    }
    if (request.method === "GET" && request.path === "/users") return findUsers(request);
    if (first !== "projects")
      throw new Unexpected(404, `no route for ${request.path}`, { message: "404 Not Found" });
    if (id !== String(projectId) && !(id.includes("%") && safeDecode(id) === project)) {
      throw new Unexpected(404, `no project ${id}`, { message: "404 Project Not Found" });
    }
    const shape = rest.map((part) => (isCommitSha(part) ? ":sha" : /^\d+$/.test(part) ? ":n" : part));
    const iid = Number(rest[1]);
    switch (`${request.method} ${shape.join("/")}`) {
      case "GET merge_requests":
        return listMergeRequests(request);
      case "GET merge_requests/:n":
        return withMergeRequest(iid, (found) => ({ status: 200, body: mergeRequestJson(found) }));
      case "POST merge_requests":
        return createMergeRequest(request);
      case "GET merge_requests/:n/approvals":
        return withMergeRequest(iid, (found) => {
          allowQuery(request, [], badRequest("invalid parameter"));
          return { status: 200, body: approvalsJson(found) };
        });
      case "GET merge_requests/:n/notes":
        return withMergeRequest(iid, () => listNotes(request, iid));
      case "POST merge_requests/:n/notes":
        return withMergeRequest(iid, () => createNote(request, iid));
      case "PUT merge_requests/:n/notes/:n":
        return withMergeRequest(iid, () => updateNote(request, iid, Number(rest[3])));
      case "DELETE merge_requests/:n/notes/:n":
        return withMergeRequest(iid, () => deleteNote(request, iid, Number(rest[3])));
      case "POST merge_requests/:n/notes/:n/award_emoji":
        return withMergeRequest(iid, () => awardEmoji(request, iid, Number(rest[3])));
      case "GET members/all/:n":
        return member(request, Number(rest[2]));
      case "POST statuses/:sha":
        return createStatus(request, rest[1] ?? "");
      case "GET repository/commits/:sha/statuses":
        return listStatuses(request, rest[2] ?? "");
      default:
        throw new Unexpected(404, `no route for ${request.method} ${request.path}`, {
          message: "404 Not Found",
        });
    }
  }

  function withMergeRequest(iid: number, then: (found: MergeRequestRecord) => FakeResponse): FakeResponse {
    const found = mergeRequests.get(iid);
    return found ? then(found) : { status: 404, body: { message: "404 Not found" } };
  }

  /** GET /users?username=NAME: a list of at most that one user. */
  function findUsers(request: FakeRequest): FakeResponse {
    allowQuery(request, ["username"], badRequest("invalid parameter"));
    const name = request.query.get("username");
    if (!name) throw new Unexpected(400, "no username", badRequest("username is missing"));
    return { status: 200, body: [userJson(name)] };
  }

  /** GET /projects/:id/members/all/:user_id: direct or inherited membership, or 404. */
  function member(request: FakeRequest, userId: number): FakeResponse {
    allowQuery(request, [], badRequest("invalid parameter"));
    const name = [...accessLevels.keys()].find((candidate) => userJson(candidate).id === userId);
    const level = name === undefined ? undefined : accessLevels.get(name);
    if (name === undefined || level === undefined) return { status: 404, body: { message: "404 Not found" } };
    return { status: 200, body: { ...userJson(name), access_level: level } };
  }

  /** POST .../notes/:note_id/award_emoji: 201; the same emoji twice is a 404 "Award Emoji Name has already been taken". */
  function awardEmoji(request: FakeRequest, iid: number, noteId: number): FakeResponse {
    allowQuery(request, [], badRequest("invalid parameter"));
    const { name } = parseRequestBody(request, z.strictObject({ name: z.string().min(1) }), 400, (reason) =>
      badRequest(reason),
    );
    if (!notesOf(iid).some((note) => note.id === noteId))
      return { status: 404, body: { message: "404 Not found" } };
    if (awards.some((award) => award.noteId === noteId && award.name === name)) {
      throw new Unexpected(404, "awarded twice", { message: "Award Emoji Name has already been taken" });
    }
    awards.push({ noteId, name });
    return { status: 201, body: { id: nextId++, name, user: userJson(username), awardable_id: noteId } };
  }

  function listMergeRequests(request: FakeRequest): FakeResponse {
    allowQuery(request, ["state", "per_page", "page", "order_by", "sort"], badRequest("invalid parameter"));
    const state = request.query.get("state") ?? "all";
    if (!["opened", "closed", "locked", "merged", "all"].includes(state)) {
      throw new Unexpected(400, `state=${state}`, { error: "state does not have a valid value" });
    }
    const matching = [...mergeRequests.values()]
      .filter((mergeRequest) => state === "all" || mergeRequest.state === state)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    return paged(request, matching.map(mergeRequestJson));
  }

  function createMergeRequest(request: FakeRequest): FakeResponse {
    allowQuery(request, [], badRequest("invalid parameter"));
    const body = parseRequestBody(request, createMergeRequestSchema, 400, (reason) => badRequest(reason));
    const sha = options.branchSha?.(body.source_branch);
    if (sha === undefined || options.branchSha?.(body.target_branch) === undefined) {
      return { status: 400, body: { message: { source_branch: ["Invalid source or target branch"] } } };
    }
    const open = [...mergeRequests.values()].find(
      (candidate) =>
        candidate.sourceBranch === body.source_branch &&
        candidate.targetBranch === body.target_branch &&
        candidate.state === "opened",
    );
    if (open) {
      return {
        status: 409,
        body: {
          message: [`Another open merge request already exists for this source branch: !${open.iid}`],
        },
      };
    }
    const iid = Math.max(0, ...mergeRequests.keys()) + 1;
    const created = newMergeRequest({
      number: iid,
      headSha: sha,
      headRef: body.source_branch,
      baseRef: body.target_branch,
      title: body.title,
      author: username,
    });
    created.description = body.description ?? "";
    mergeRequests.set(iid, created);
    return { status: 201, body: mergeRequestJson(created) };
  }

  function newMergeRequest(input: FakePullRequestInput): MergeRequestRecord {
    return {
      iid: input.number,
      title: input.title ?? `Change ${input.number}`,
      description: "",
      author: input.author ?? "contributor",
      mergedBy: null,
      approvers: [],
      sha: input.headSha,
      sourceBranch: input.headRef ?? `change-${input.number}`,
      targetBranch: input.baseRef ?? "main",
      sourceProjectId: projectIdOf(input.headRepository === undefined ? project : input.headRepository),
      state: "opened",
      mergeCommitSha: null,
      squashCommitSha: null,
      createdAt: now(),
      mergedAt: null,
    };
  }

  function approvalsJson(mergeRequest: MergeRequestRecord): Record<string, unknown> {
    return {
      id: 70_000 + mergeRequest.iid,
      iid: mergeRequest.iid,
      project_id: projectId,
      title: mergeRequest.title,
      description: mergeRequest.description,
      state: mergeRequest.state,
      created_at: mergeRequest.createdAt,
      updated_at: mergeRequest.createdAt,
      merge_status: "can_be_merged",
      approved: mergeRequest.approvers.length > 0,
      approvals_required: 0,
      approvals_left: 0,
      approved_by: mergeRequest.approvers.map((user) => ({ user: userJson(user) })),
    };
  }

  function listNotes(request: FakeRequest, iid: number): FakeResponse {
    allowQuery(request, ["sort", "order_by", "per_page", "page"], badRequest("invalid parameter"));
    const sort = request.query.get("sort") ?? "desc";
    const orderBy = request.query.get("order_by") ?? "created_at";
    if (!["asc", "desc"].includes(sort) || !["created_at", "updated_at"].includes(orderBy)) {
      throw new Unexpected(400, `sort=${sort} order_by=${orderBy}`, {
        error: "sort does not have a valid value",
      });
    }
    const key = orderBy === "created_at" ? "createdAt" : "updatedAt";
    const ordered = notesOf(iid).sort(
      (a, b) => (sort === "asc" ? 1 : -1) * (a[key].localeCompare(b[key]) || a.id - b.id),
    );
    return paged(request, ordered.map(noteJson));
  }

  function createNote(request: FakeRequest, iid: number): FakeResponse {
    allowQuery(request, [], badRequest("invalid parameter"));
    const { body } = parseRequestBody(request, noteBodySchema, 400, (reason) => badRequest(`Note ${reason}`));
    return { status: 201, body: noteJson(addNote(iid, body, username, false)) };
  }

  function updateNote(request: FakeRequest, iid: number, id: number): FakeResponse {
    allowQuery(request, [], badRequest("invalid parameter"));
    const { body } = parseRequestBody(request, noteBodySchema, 400, (reason) => badRequest(`Note ${reason}`));
    const note = notes.find((candidate) => candidate.id === id && candidate.iid === iid);
    if (!note) return { status: 404, body: { message: "404 Note Not Found" } };
    note.body = body;
    note.updatedAt = now();
    return { status: 200, body: noteJson(note) };
  }

  function deleteNote(request: FakeRequest, iid: number, id: number): FakeResponse {
    allowQuery(request, [], badRequest("invalid parameter"));
    const index = notes.findIndex((candidate) => candidate.id === id && candidate.iid === iid);
    if (index === -1) return { status: 404, body: { message: "404 Note Not Found" } };
    notes.splice(index, 1);
    return { status: 204 };
  }

  function createStatus(request: FakeRequest, sha: string): FakeResponse {
    allowQuery(request, [], badRequest("invalid parameter"));
    const body = parseRequestBody(request, statusBodySchema, 400, (reason) => ({ error: reason }));
    const name = body.name ?? body.context ?? "default";
    // Like GitLab, reuse the status of that name while it is pending or running; a finished one stays.
    let record = statusRecords.findLast(
      (candidate) =>
        candidate.sha === sha && candidate.name === name && ["pending", "running"].includes(candidate.status),
    );
    if (record?.status === body.state) {
      const event = TRANSITION[body.state] ?? body.state;
      return {
        status: 400,
        body: {
          message: `Cannot transition status via :${event} from :${record.status} (Reason(s): Status cannot transition via "${event}")`,
        },
      };
    }
    if (!record) {
      record = {
        id: nextId++,
        sha,
        name,
        status: body.state,
        description: null,
        targetUrl: null,
        createdAt: now(),
      };
      statusRecords.push(record);
    }
    record.status = body.state;
    if (body.description !== undefined) record.description = body.description;
    if (body.target_url !== undefined) record.targetUrl = body.target_url;
    posted.push({
      sha,
      context: name,
      state: body.state,
      description: body.description,
      targetUrl: body.target_url,
    });
    return { status: 201, body: statusJson(record) };
  }

  function listStatuses(request: FakeRequest, sha: string): FakeResponse {
    allowQuery(
      request,
      ["ref", "stage", "name", "pipeline_id", "all", "order_by", "sort", "per_page", "page"],
      badRequest("invalid parameter"),
    );
    const name = request.query.get("name");
    const matching = statusRecords.filter(
      (record) => record.sha === sha && (name === null || record.name === name),
    );
    // Without all=true GitLab lists only the latest status of each name.
    const latest =
      request.query.get("all") === "true"
        ? matching
        : matching.filter((record) => record === matching.findLast((other) => other.name === record.name));
    return paged(request, latest.map(statusJson));
  }

  function paged(request: FakeRequest, items: readonly unknown[]): FakeResponse {
    const page = paginate(request, items, 20, badRequest("invalid parameter"));
    const next = page.page < page.totalPages ? String(page.page + 1) : "";
    return {
      status: 200,
      body: page.items,
      headers: {
        "x-page": String(page.page),
        "x-per-page": String(page.perPage),
        "x-next-page": next,
        "x-prev-page": page.page > 1 ? String(page.page - 1) : "",
        "x-total": String(items.length),
        "x-total-pages": String(page.totalPages),
        link: linkHeader(apiRoot, request, page),
      },
    };
  }

  function notesOf(iid: number): NoteRecord[] {
    return notes.filter((note) => note.iid === iid);
  }

  function addNote(iid: number, body: string, author: string, system: boolean): NoteRecord {
    const createdAt = now();
    const note = { id: nextId++, iid, body, author, system, createdAt, updatedAt: createdAt };
    notes.push(note);
    return note;
  }

  function projectIdOf(path: string | null): number {
    if (path === project) return projectId;
    const key = path ?? "(deleted fork)";
    const known = otherProjects.get(key);
    if (known !== undefined) return known;
    const id = projectId + 1 + otherProjects.size;
    otherProjects.set(key, id);
    return id;
  }

  function mergeRequestJson(mergeRequest: MergeRequestRecord): Record<string, unknown> {
    return {
      id: 70_000 + mergeRequest.iid,
      iid: mergeRequest.iid,
      project_id: projectId,
      title: mergeRequest.title,
      description: mergeRequest.description,
      state: mergeRequest.state,
      created_at: mergeRequest.createdAt,
      updated_at: mergeRequest.createdAt,
      merged_at: mergeRequest.mergedAt,
      closed_at: mergeRequest.state === "closed" ? mergeRequest.createdAt : null,
      target_branch: mergeRequest.targetBranch,
      source_branch: mergeRequest.sourceBranch,
      source_project_id: mergeRequest.sourceProjectId,
      target_project_id: projectId,
      author: userJson(mergeRequest.author),
      merged_by: mergeRequest.mergedBy === null ? null : userJson(mergeRequest.mergedBy),
      merge_user: mergeRequest.mergedBy === null ? null : userJson(mergeRequest.mergedBy),
      draft: false,
      work_in_progress: false,
      merge_status: "can_be_merged",
      detailed_merge_status: "mergeable",
      sha: mergeRequest.sha,
      merge_commit_sha: mergeRequest.mergeCommitSha,
      squash_commit_sha: mergeRequest.squashCommitSha,
      squash: mergeRequest.squashCommitSha !== null,
      web_url: `${webRoot}/${project}/-/merge_requests/${mergeRequest.iid}`,
      references: { short: `!${mergeRequest.iid}`, full: `${project}!${mergeRequest.iid}` },
    };
  }

  function noteJson(note: NoteRecord): Record<string, unknown> {
    return {
      id: note.id,
      type: null,
      body: note.body,
      author: userJson(note.author),
      created_at: note.createdAt,
      updated_at: note.updatedAt,
      system: note.system,
      noteable_id: 70_000 + note.iid,
      noteable_type: "MergeRequest",
      noteable_iid: note.iid,
      resolvable: false,
      confidential: false,
      internal: false,
    };
  }

  function statusJson(record: StatusRecord): Record<string, unknown> {
    const finished = !["pending", "running"].includes(record.status);
    return {
      id: record.id,
      sha: record.sha,
      ref: "main",
      status: record.status,
      name: record.name,
      target_url: record.targetUrl,
      description: record.description,
      created_at: record.createdAt,
      started_at: record.status === "pending" ? null : record.createdAt,
      finished_at: finished ? record.createdAt : null,
      allow_failure: false,
      coverage: null,
      author: userJson(username),
    };
  }

  function mergeRequest(iid: number): MergeRequestRecord {
    const found = mergeRequests.get(iid);
    if (!found) throw new Error(`fake GitLab: no merge request !${iid}`);
    return found;
  }

  return {
    url: webRoot,
    projectId,
    calls: server.calls,
    unexpected: server.unexpected,
    addPullRequest(input: FakePullRequestInput) {
      if (mergeRequests.has(input.number))
        throw new Error(`fake GitLab: merge request !${input.number} exists`);
      mergeRequests.set(input.number, newMergeRequest(input));
    },
    setPermission(account: string, level: FakePermission) {
      const levels = { admin: 40, write: 30, read: 20, none: undefined } as const;
      const accessLevel = levels[level];
      if (accessLevel === undefined) accessLevels.delete(account);
      else accessLevels.set(account, accessLevel);
    },
    reactions(commentId: number) {
      return awards.filter((award) => award.noteId === commentId).map((award) => award.name);
    },
    setPullRequestState(number, state, merge?: FakeGitLabMerge) {
      const found = mergeRequest(number);
      found.state = state === "open" ? "opened" : state;
      found.mergedAt = state === "merged" ? now() : null;
      found.mergeCommitSha = state === "merged" ? (merge?.mergeCommitSha ?? null) : null;
      found.squashCommitSha = state === "merged" ? (merge?.squashCommitSha ?? null) : null;
      found.mergedBy = state === "merged" ? (merge?.mergedBy ?? "maintainer") : null;
    },
    addApproval(number, user) {
      mergeRequest(number).approvers.push(user);
    },
    pullRequests() {
      return [...mergeRequests.values()].map((found) => ({
        number: found.iid,
        headRef: found.sourceBranch,
        headSha: found.sha,
        baseRef: found.targetBranch,
        title: found.title,
        body: found.description,
        author: found.author,
        state: found.state,
      }));
    },
    setHeadSha(number, sha) {
      mergeRequest(number).sha = sha;
    },
    addComment(number, body, author = "reviewer") {
      mergeRequest(number);
      const { id } = addNote(number, body, author, false);
      return { id, body, author };
    },
    addSystemNote(number, body) {
      mergeRequest(number);
      addNote(number, body, "gitlab", true);
    },
    comments(number): FakeComment[] {
      return notesOf(number)
        .filter((note) => !note.system)
        .map(({ id, body, author }) => ({ id, body, author }));
    },
    statuses(sha): FakeStatus[] {
      return posted
        .filter((status) => status.sha === sha)
        .map(({ context, state, description, targetUrl }) => ({ context, state, description, targetUrl }));
    },
    pullRequestUrl(number) {
      return `${webRoot}/${project}/-/merge_requests/${number}`;
    },
    takeUnexpected: server.takeUnexpected,
    assertNoUnexpected: server.assertNoUnexpected,
    waitForCall: server.waitForCall,
    close: server.close,
  };
}

function badRequest(message: string): { message: string } {
  return { message: `400 Bad request - ${message}` };
}

function userJson(username: string): Record<string, unknown> {
  return { id: username.length * 1000 + username.charCodeAt(0), username, name: username, state: "active" };
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
