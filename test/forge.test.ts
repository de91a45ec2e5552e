import { inspect } from "node:util";
import { describe, expect, it, onTestFinished } from "vitest";
import { ForgeError } from "../src/forge/errors.ts";
import { githubForge } from "../src/forge/github/client.ts";
import { gitlabForge } from "../src/forge/gitlab/client.ts";
import type { FakeForge, RecordedCall } from "./support/fake-forge.ts";
import { type FakeGitHubOptions, startFakeGitHub } from "./support/fake-github.ts";
import { type FakeGitLabOptions, startFakeGitLab } from "./support/fake-gitlab.ts";

const TOKEN = "glpat-secret-token-0123456789";
const MARKER = "<!-- gitops-runner:plan -->";

function sha(n: number): string {
  return n.toString(16).padStart(40, "a");
}

async function fakeGitHub(options: Partial<FakeGitHubOptions> = {}) {
  const fake = await startFakeGitHub({ owner: "acme", repo: "infra", token: TOKEN, ...options });
  onTestFinished(() => fake.close());
  return fake;
}

async function fakeGitLab(options: Partial<FakeGitLabOptions> = {}) {
  const fake = await startFakeGitLab({ project: "acme/platform/infra", token: TOKEN, ...options });
  onTestFinished(() => fake.close());
  return fake;
}

/** Method and path of each call, with the query when it has one. */
function requests(fake: FakeForge): string[] {
  return fake.calls.map((call: RecordedCall) => {
    const query = new URLSearchParams(call.query).toString();
    return `${call.method} ${call.path}${query ? `?${query}` : ""} → ${call.status}`;
  });
}

async function forgeFailure(promise: Promise<unknown>): Promise<ForgeError> {
  const error = await promise.then(
    () => undefined,
    (rejected: unknown) => rejected,
  );
  expect(error).toBeInstanceOf(ForgeError);
  // Nothing reachable from the error, message or cause, may carry the token.
  expect(inspect(error, { depth: 8 })).not.toContain(TOKEN);
  return error as ForgeError;
}

describe("githubForge", () => {
  it("lists every open pull request across pages", async () => {
    const fake = await fakeGitHub();
    for (let number = 1; number <= 150; number++) fake.addPullRequest({ number, headSha: sha(number) });
    fake.setPullRequestState(3, "closed");
    fake.setPullRequestState(4, "merged", { mergeCommitSha: sha(1004) });
    const forge = githubForge({ owner: "acme", repo: "infra", token: TOKEN, baseUrl: fake.url });

    const open = await forge.pullRequests.listOpen();

    expect(open.map((pull) => pull.number).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 150 }, (_, index) => index + 1).filter((number) => number !== 3 && number !== 4),
    );
    // An open pull request's merge_commit_sha is GitHub's test merge: not reported.
    expect(open.find((pull) => pull.number === 7)).toStrictEqual({
      number: 7,
      headSha: sha(7),
      headRef: "change-7",
      baseRef: "main",
      fromFork: false,
      state: "open",
      url: fake.pullRequestUrl(7),
      author: "contributor",
    });
    expect(requests(fake)).toEqual([
      "GET /repos/acme/infra/pulls?state=open&per_page=100 → 200",
      "GET /repos/acme/infra/pulls?state=open&per_page=100&page=2 → 200",
    ]);
    fake.assertNoUnexpected();
  });

  it("gets a pull request: merged, closed, and from forks", async () => {
    const fake = await fakeGitHub();
    fake.addPullRequest({
      number: 1,
      headSha: sha(1),
      headRef: "feature",
      baseRef: "release",
      author: "ana",
    });
    fake.setPullRequestState(1, "merged", { mergeCommitSha: sha(101), mergedBy: "bo" });
    fake.addPullRequest({ number: 2, headSha: sha(2) });
    fake.setPullRequestState(2, "closed");
    fake.addPullRequest({ number: 3, headSha: sha(3), headRepository: "mallory/infra" });
    fake.addPullRequest({ number: 4, headSha: sha(4), headRepository: null });
    const forge = githubForge({ owner: "acme", repo: "infra", token: TOKEN, baseUrl: fake.url });

    expect(await forge.pullRequests.get(1)).toStrictEqual({
      number: 1,
      headSha: sha(1),
      headRef: "feature",
      baseRef: "release",
      fromFork: false,
      state: "merged",
      mergeCommitSha: sha(101),
      url: fake.pullRequestUrl(1),
      author: "ana",
      mergedBy: "bo",
    });
    expect(await forge.pullRequests.get(2)).toMatchObject({ state: "closed", fromFork: false });
    expect(await forge.pullRequests.get(2)).not.toHaveProperty("mergeCommitSha");
    expect(await forge.pullRequests.get(3)).toMatchObject({ state: "open", fromFork: true });
    // The fork was deleted: GitHub reports head.repo as null.
    expect(await forge.pullRequests.get(4)).toMatchObject({ fromFork: true });
    fake.assertNoUnexpected();
  });

  it("names the approvers: the latest deciding review of each reviewer", async () => {
    const fake = await fakeGitHub();
    fake.addPullRequest({ number: 5, headSha: sha(5) });
    fake.addReview(5, "ana", "APPROVED");
    fake.addReview(5, "bo", "APPROVED");
    fake.addReview(5, "bo", "CHANGES_REQUESTED");
    fake.addReview(5, "cy", "CHANGES_REQUESTED");
    fake.addReview(5, "cy", "APPROVED");
    fake.addReview(5, "cy", "COMMENTED");
    fake.addReview(5, "di", "COMMENTED");
    const forge = githubForge({ owner: "acme", repo: "infra", token: TOKEN, baseUrl: fake.url });

    expect(await forge.pullRequests.approvers(5)).toEqual(["ana", "cy"]);
    expect(requests(fake)).toEqual(["GET /repos/acme/infra/pulls/5/reviews?per_page=100 → 200"]);
    await forgeFailure(forge.pullRequests.approvers(6));
    fake.takeUnexpected();
    fake.assertNoUnexpected();
  });

  it("opens a pull request of a pushed branch, and reports one of a missing branch", async () => {
    const branches: Record<string, string> = { main: sha(1), "rollback-demo": sha(2) };
    const fake = await fakeGitHub({ login: "runner-bot", branchSha: (branch) => branches[branch] });
    const forge = githubForge({ owner: "acme", repo: "infra", token: TOKEN, baseUrl: fake.url });

    const opened = await forge.pullRequests.create({
      head: "rollback-demo",
      base: "main",
      title: "Roll back demo",
      body: "Restores the app.",
    });
    expect(opened).toMatchObject({
      number: 1,
      headSha: sha(2),
      headRef: "rollback-demo",
      state: "open",
      author: "runner-bot",
    });
    expect(opened.url).toBe(fake.pullRequestUrl(1));
    expect(fake.pullRequests()).toEqual([
      expect.objectContaining({
        number: 1,
        headRef: "rollback-demo",
        baseRef: "main",
        body: "Restores the app.",
      }),
    ]);
    const failure = await forgeFailure(
      forge.pullRequests.create({ head: "nowhere", base: "main", title: "x", body: "" }),
    );
    expect(failure.status).toBe(422);
    fake.assertNoUnexpected();
  });

  it("lists comments with their authors, creates, updates and removes its comment", async () => {
    const fake = await fakeGitHub();
    fake.addPullRequest({ number: 9, headSha: sha(9) });
    // More than one page of other people's comments before the runner's.
    for (let index = 0; index < 105; index++) fake.addComment(9, `looks fine ${index}`);
    const forge = githubForge({ owner: "acme", repo: "infra", token: TOKEN, baseUrl: fake.url });

    const before = await forge.comments.list(9);
    expect(before).toHaveLength(105);
    expect(before[0]).toEqual({
      id: expect.stringMatching(/^\d+$/),
      body: "looks fine 0",
      author: "reviewer",
    });
    const created = await forge.comments.create(9, `${MARKER}\nPlan: 1 to add`);
    expect(created).toEqual({
      id: expect.stringMatching(/^\d+$/),
      body: `${MARKER}\nPlan: 1 to add`,
      author: "gitops-runner[bot]",
    });
    expect((await forge.comments.list(9)).at(-1)).toEqual(created);
    await forge.comments.update(9, created.id, `${MARKER}\nPlan: no changes`);
    expect(fake.comments(9).at(-1)).toEqual({
      id: Number(created.id),
      body: `${MARKER}\nPlan: no changes`,
      author: "gitops-runner[bot]",
    });
    await forge.comments.remove(9, created.id);

    expect(fake.comments(9)).toHaveLength(105);
    expect(fake.calls.filter((call) => call.method !== "GET")).toEqual([
      {
        method: "POST",
        path: "/repos/acme/infra/issues/9/comments",
        query: {},
        body: { body: `${MARKER}\nPlan: 1 to add` },
        status: 201,
      },
      {
        method: "PATCH",
        path: `/repos/acme/infra/issues/comments/${created.id}`,
        query: {},
        body: { body: `${MARKER}\nPlan: no changes` },
        status: 200,
      },
      {
        method: "DELETE",
        path: `/repos/acme/infra/issues/comments/${created.id}`,
        query: {},
        body: undefined,
        status: 204,
      },
    ]);
    expect(requests(fake).filter((line) => line.startsWith("GET"))).toEqual([
      "GET /repos/acme/infra/issues/9/comments?per_page=100 → 200",
      "GET /repos/acme/infra/issues/9/comments?per_page=100&page=2 → 200",
      "GET /repos/acme/infra/issues/9/comments?per_page=100 → 200",
      "GET /repos/acme/infra/issues/9/comments?per_page=100&page=2 → 200",
    ]);
    fake.assertNoUnexpected();
  });

  it("sets commit statuses, the description cut to GitHub's 140 characters", async () => {
    const fake = await fakeGitHub();
    const forge = githubForge({ owner: "acme", repo: "infra", token: TOKEN, baseUrl: fake.url });
    const firstStatus = fake.waitForCall((call) => call.method === "POST");

    await forge.statuses.set(sha(5), {
      context: "gitops-runner/plan",
      state: "pending",
      description: "Planning",
    });
    expect(await firstStatus).toMatchObject({
      path: `/repos/acme/infra/statuses/${sha(5)}`,
      body: { context: "gitops-runner/plan", state: "pending", description: "Planning" },
    });
    await forge.statuses.set(sha(5), {
      context: "gitops-runner/plan",
      state: "failure",
      description: "x".repeat(200),
      targetUrl: "https://runner.example.com/runs/17",
    });

    expect(fake.statuses(sha(5))).toEqual([
      { context: "gitops-runner/plan", state: "pending", description: "Planning", targetUrl: undefined },
      {
        context: "gitops-runner/plan",
        state: "failure",
        description: `${"x".repeat(139)}…`,
        targetUrl: "https://runner.example.com/runs/17",
      },
    ]);
    fake.assertNoUnexpected();
  });

  it("serves GitHub Enterprise under /api/v3 through the injected fetch", async () => {
    const fake = await fakeGitHub({ enterprise: true });
    fake.addPullRequest({ number: 1, headSha: sha(1) });
    const fetched: string[] = [];
    const forge = githubForge({
      owner: "acme",
      repo: "infra",
      token: TOKEN,
      baseUrl: `${fake.url}/`,
      userAgent: "gitops-runner-test",
      fetch: (input, init) => {
        fetched.push(String(input));
        return fetch(input, init);
      },
    });

    expect(fake.url).toMatch(/\/api\/v3$/);
    expect(await forge.pullRequests.listOpen()).toHaveLength(1);
    expect(fetched).toEqual([`${fake.url}/repos/acme/infra/pulls?state=open&per_page=100`]);
    fake.assertNoUnexpected();
  });

  it("reports a wrong token as FORGE_UNAUTHORIZED without the token", async () => {
    const fake = await fakeGitHub();
    const forge = githubForge({ owner: "acme", repo: "infra", token: `${TOKEN}-wrong`, baseUrl: fake.url });

    const error = await forgeFailure(forge.pullRequests.listOpen());

    expect(error).toMatchObject({ code: "FORGE_UNAUTHORIZED", status: 401 });
    expect(error.message).toContain("Bad credentials");
    expect(fake.takeUnexpected()).toMatchObject([{ method: "GET", status: 401, reason: "bad credentials" }]);
    fake.assertNoUnexpected();
  });

  it("reports an unknown pull request or comment as FORGE_NOT_FOUND", async () => {
    const fake = await fakeGitHub();
    const forge = githubForge({ owner: "acme", repo: "infra", token: TOKEN, baseUrl: fake.url });

    expect(await forgeFailure(forge.pullRequests.get(404))).toMatchObject({
      code: "FORGE_NOT_FOUND",
      status: 404,
    });
    expect(await forgeFailure(forge.comments.create(404, "hello"))).toMatchObject({
      code: "FORGE_NOT_FOUND",
    });
    expect(await forgeFailure(forge.comments.update(1, "12345", "hello"))).toMatchObject({
      code: "FORGE_NOT_FOUND",
    });
    expect(await forgeFailure(forge.comments.remove(1, "not-an-id"))).toMatchObject({
      code: "FORGE_NOT_FOUND",
      status: undefined,
    });
    expect(requests(fake)).toEqual([
      "GET /repos/acme/infra/pulls/404 → 404",
      "POST /repos/acme/infra/issues/404/comments → 404",
      "PATCH /repos/acme/infra/issues/comments/12345 → 404",
    ]);
    fake.assertNoUnexpected();
  });

  it("reports an unreachable forge as FORGE_FAILED with no status", async () => {
    const fake = await fakeGitHub();
    await fake.close();
    const forge = githubForge({ owner: "acme", repo: "infra", token: TOKEN, baseUrl: fake.url });

    expect(await forgeFailure(forge.pullRequests.listOpen())).toMatchObject({
      code: "FORGE_FAILED",
      status: undefined,
    });
    fake.assertNoUnexpected();
  });
});

describe("who the runner is, and who may ask it for something", () => {
  it("GitHub: the token's login once asked, collaborators' permission levels, a reaction", async () => {
    const fake = await fakeGitHub();
    fake.addPullRequest({ number: 9, headSha: sha(9) });
    const asked = fake.addComment(9, "/gitops-runner plan", "alice");
    for (const [name, level] of [
      ["alice", "write"],
      ["root", "admin"],
      ["mallory", "read"],
    ] as const)
      fake.setPermission(name, level);
    const forge = githubForge({ owner: "acme", repo: "infra", token: TOKEN, baseUrl: fake.url });

    expect(await forge.accounts.self()).toBe("gitops-runner[bot]");
    const can = async (name: string) => forge.accounts.canWrite({ name });
    expect([await can("alice"), await can("root"), await can("mallory"), await can("stranger")]).toEqual([
      true,
      true,
      false,
      false,
    ]);
    await forge.comments.react?.(9, String(asked.id));
    await forge.comments.react?.(9, String(asked.id));
    expect(fake.reactions(asked.id)).toEqual(["+1"]);
    // An app's installation token cannot read /user: its login is configured instead.
    const app = githubForge({
      owner: "acme",
      repo: "infra",
      token: TOKEN,
      baseUrl: fake.url,
      login: "infra-bot[bot]",
    });
    expect(await app.accounts.self()).toBe("infra-bot[bot]");
    expect(fake.calls.filter((call) => call.path === "/user")).toHaveLength(1);
    fake.assertNoUnexpected();
  });

  it("GitLab: the token's username, members' access levels by id or by username, an award", async () => {
    const fake = await fakeGitLab();
    fake.addPullRequest({ number: 9, headSha: sha(9) });
    const asked = fake.addComment(9, "/gitops-runner plan", "alice");
    fake.setPermission("alice", "write");
    fake.setPermission("maintainer", "admin");
    fake.setPermission("reporter", "read");
    const forge = gitlabForge({ project: "acme/platform/infra", token: TOKEN, baseUrl: fake.url });

    expect(await forge.accounts.self()).toBe("gitops-runner");
    expect(await forge.accounts.canWrite({ name: "alice" })).toBe(true);
    expect(await forge.accounts.canWrite({ name: "maintainer" })).toBe(true);
    expect(await forge.accounts.canWrite({ name: "reporter" })).toBe(false);
    expect(await forge.accounts.canWrite({ name: "stranger" })).toBe(false);
    await forge.comments.react?.(9, String(asked.id));
    expect(fake.reactions(asked.id)).toEqual(["thumbsup"]);
    expect(requests(fake).filter((line) => line.includes("/members/") || line.includes("/users"))).toEqual([
      `GET /users?username=alice → 200`,
      expect.stringMatching(/^GET \/projects\/acme%2Fplatform%2Finfra\/members\/all\/\d+ → 200$/),
      `GET /users?username=maintainer → 200`,
      expect.stringMatching(/members\/all\/\d+ → 200$/),
      `GET /users?username=reporter → 200`,
      expect.stringMatching(/members\/all\/\d+ → 200$/),
      `GET /users?username=stranger → 200`,
      expect.stringMatching(/members\/all\/\d+ → 404$/),
    ]);
    fake.assertNoUnexpected();
  });
});

describe("gitlabForge", () => {
  it("lists every open merge request across pages, naming the project by its encoded path", async () => {
    const fake = await fakeGitLab();
    for (let number = 1; number <= 150; number++) fake.addPullRequest({ number, headSha: sha(number) });
    fake.setPullRequestState(3, "closed");
    fake.setPullRequestState(4, "merged", { mergeCommitSha: sha(1004) });
    fake.setPullRequestState(5, "locked");
    const forge = gitlabForge({ project: "acme/platform/infra", token: TOKEN, baseUrl: fake.url });

    const open = await forge.pullRequests.listOpen();

    expect(open.map((pull) => pull.number).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 150 }, (_, index) => index + 1).filter((number) => number < 3 || number > 5),
    );
    expect(open.find((pull) => pull.number === 7)).toStrictEqual({
      number: 7,
      headSha: sha(7),
      headRef: "change-7",
      baseRef: "main",
      fromFork: false,
      state: "open",
      url: fake.pullRequestUrl(7),
      author: "contributor",
    });
    expect(requests(fake)).toEqual([
      "GET /projects/acme%2Fplatform%2Finfra/merge_requests?state=opened&per_page=100&page=1 → 200",
      "GET /projects/acme%2Fplatform%2Finfra/merge_requests?state=opened&per_page=100&page=2 → 200",
    ]);
    fake.assertNoUnexpected();
  });

  it("gets a merge request by numeric project id: merge commit, squash, fast-forward, forks", async () => {
    const fake = await fakeGitLab({ projectId: 77 });
    fake.addPullRequest({
      number: 1,
      headSha: sha(1),
      headRef: "feature",
      baseRef: "release",
      author: "ana",
    });
    fake.setPullRequestState(1, "merged", {
      mergeCommitSha: sha(101),
      squashCommitSha: sha(201),
      mergedBy: "bo",
    });
    fake.addPullRequest({ number: 2, headSha: sha(2) });
    fake.setPullRequestState(2, "merged", { squashCommitSha: sha(202) });
    fake.addPullRequest({ number: 3, headSha: sha(3) });
    fake.setPullRequestState(3, "merged");
    fake.addPullRequest({ number: 4, headSha: sha(4), headRepository: "mallory/infra" });
    fake.setPullRequestState(4, "closed");
    fake.addPullRequest({ number: 5, headSha: sha(5) });
    fake.setPullRequestState(5, "locked");
    const forge = gitlabForge({ project: "77", token: TOKEN, baseUrl: fake.url });

    expect(await forge.pullRequests.get(1)).toStrictEqual({
      number: 1,
      headSha: sha(1),
      headRef: "feature",
      baseRef: "release",
      fromFork: false,
      state: "merged",
      mergeCommitSha: sha(101),
      url: fake.pullRequestUrl(1),
      author: "ana",
      mergedBy: "bo",
    });
    expect(await forge.pullRequests.get(2)).toMatchObject({ state: "merged", mergeCommitSha: sha(202) });
    // Fast-forward: no new commit, the head itself is on the target branch.
    expect(await forge.pullRequests.get(3)).toMatchObject({ state: "merged", mergeCommitSha: sha(3) });
    expect(await forge.pullRequests.get(4)).toMatchObject({ state: "closed", fromFork: true });
    expect(await forge.pullRequests.get(4)).not.toHaveProperty("mergeCommitSha");
    expect(await forge.pullRequests.get(5)).toMatchObject({ state: "open", fromFork: false });
    expect(fake.calls.map((call) => call.path)).toContain("/projects/77/merge_requests/1");
    fake.assertNoUnexpected();
  });

  it("names the approvers GitLab reports", async () => {
    const fake = await fakeGitLab();
    fake.addPullRequest({ number: 5, headSha: sha(5) });
    fake.addApproval(5, "ana");
    fake.addApproval(5, "cy");
    const forge = gitlabForge({ project: "acme/platform/infra", token: TOKEN, baseUrl: fake.url });

    expect(await forge.pullRequests.approvers(5)).toEqual(["ana", "cy"]);
    expect(requests(fake)).toEqual([
      "GET /projects/acme%2Fplatform%2Finfra/merge_requests/5/approvals → 200",
    ]);
    fake.assertNoUnexpected();
  });

  it("opens a merge request of a pushed branch, and reports one of a missing branch", async () => {
    const branches: Record<string, string> = { main: sha(1), "rollback-demo": sha(2) };
    const fake = await fakeGitLab({ username: "runner-bot", branchSha: (branch) => branches[branch] });
    const forge = gitlabForge({ project: "acme/platform/infra", token: TOKEN, baseUrl: fake.url });

    const opened = await forge.pullRequests.create({
      head: "rollback-demo",
      base: "main",
      title: "Roll back demo",
      body: "Restores the app.",
    });
    expect(opened).toMatchObject({
      number: 1,
      headSha: sha(2),
      headRef: "rollback-demo",
      state: "open",
      author: "runner-bot",
    });
    expect(fake.pullRequests()).toEqual([
      expect.objectContaining({
        number: 1,
        headRef: "rollback-demo",
        baseRef: "main",
        body: "Restores the app.",
      }),
    ]);
    const failure = await forgeFailure(
      forge.pullRequests.create({ head: "nowhere", base: "main", title: "x", body: "" }),
    );
    expect(failure.status).toBe(400);
    fake.assertNoUnexpected();
  });

  it("lists notes with their authors, skipping system notes; creates, updates and removes its note", async () => {
    const fake = await fakeGitLab();
    fake.addPullRequest({ number: 9, headSha: sha(9) });
    for (let index = 0; index < 105; index++) fake.addComment(9, `looks fine ${index}`);
    fake.addSystemNote(9, `added 1 commit ${MARKER}`);
    const forge = gitlabForge({ project: "acme/platform/infra", token: TOKEN, baseUrl: fake.url });

    expect((await forge.comments.list(9)).map((note) => note.body)).toEqual(
      Array.from({ length: 105 }, (_, index) => `looks fine ${index}`),
    );
    const first = await forge.comments.create(9, `${MARKER}\nPlan: 1 to add`);
    const second = await forge.comments.create(9, `${MARKER}\nPlan, part 2`);
    expect(first.author).toBe("gitops-runner");
    // Oldest first, though GitLab lists newest first unless asked.
    expect((await forge.comments.list(9)).slice(-2)).toEqual([first, second]);
    await forge.comments.update(9, first.id, `${MARKER}\nPlan: no changes`);
    await forge.comments.remove(9, second.id);

    expect(fake.comments(9).slice(-1)).toEqual([
      { id: Number(first.id), body: `${MARKER}\nPlan: no changes`, author: "gitops-runner" },
    ]);
    const notes = "/projects/acme%2Fplatform%2Finfra/merge_requests/9/notes";
    expect(fake.calls.filter((call) => call.method !== "GET")).toEqual([
      { method: "POST", path: notes, query: {}, body: { body: `${MARKER}\nPlan: 1 to add` }, status: 201 },
      { method: "POST", path: notes, query: {}, body: { body: `${MARKER}\nPlan, part 2` }, status: 201 },
      {
        method: "PUT",
        path: `${notes}/${first.id}`,
        query: {},
        body: { body: `${MARKER}\nPlan: no changes` },
        status: 200,
      },
      { method: "DELETE", path: `${notes}/${second.id}`, query: {}, body: undefined, status: 204 },
    ]);
    expect(requests(fake).filter((line) => line.startsWith("GET"))).toEqual([
      `GET ${notes}?sort=asc&order_by=created_at&per_page=100&page=1 → 200`,
      `GET ${notes}?sort=asc&order_by=created_at&per_page=100&page=2 → 200`,
      `GET ${notes}?sort=asc&order_by=created_at&per_page=100&page=1 → 200`,
      `GET ${notes}?sort=asc&order_by=created_at&per_page=100&page=2 → 200`,
    ]);
    fake.assertNoUnexpected();
  });

  it("maps commit states to GitLab's and takes pending over pending as done", async () => {
    const fake = await fakeGitLab();
    const forge = gitlabForge({ project: "acme/platform/infra", token: TOKEN, baseUrl: fake.url });
    const plan = "gitops-runner/plan";
    const runUrl = "https://runner.example.com/runs/3";

    await forge.statuses.set(sha(1), { context: plan, state: "pending", description: "Planning" });
    await forge.statuses.set(sha(1), { context: plan, state: "pending", description: "Planning again" });
    await forge.statuses.set(sha(1), {
      context: plan,
      state: "success",
      description: "1 to add",
      targetUrl: runUrl,
    });
    await forge.statuses.set(sha(2), { context: plan, state: "failure", description: "x".repeat(200) });
    await forge.statuses.set(sha(3), { context: plan, state: "error", description: "Runner error" });

    expect(fake.statuses(sha(1))).toEqual([
      { context: plan, state: "pending", description: "Planning", targetUrl: undefined },
      { context: plan, state: "success", description: "1 to add", targetUrl: runUrl },
    ]);
    expect(fake.statuses(sha(2))).toEqual([
      { context: plan, state: "failed", description: `${"x".repeat(139)}…`, targetUrl: undefined },
    ]);
    expect(fake.statuses(sha(3))).toEqual([
      { context: plan, state: "failed", description: "Runner error", targetUrl: undefined },
    ]);
    const project = "/projects/acme%2Fplatform%2Finfra";
    expect(requests(fake)).toEqual([
      `POST ${project}/statuses/${sha(1)} → 201`,
      `POST ${project}/statuses/${sha(1)} → 400`,
      `GET ${project}/repository/commits/${sha(1)}/statuses?name=gitops-runner%2Fplan&per_page=100&page=1 → 200`,
      `POST ${project}/statuses/${sha(1)} → 201`,
      `POST ${project}/statuses/${sha(2)} → 201`,
      `POST ${project}/statuses/${sha(3)} → 201`,
    ]);
    expect(fake.calls[0]?.body).toEqual({ state: "pending", name: plan, description: "Planning" });
    fake.assertNoUnexpected();
  });

  it("reaches a self-hosted instance under a relative URL root", async () => {
    const fake = await fakeGitLab({ relativeUrlRoot: "/gitlab" });
    fake.addPullRequest({ number: 1, headSha: sha(1) });
    const forge = gitlabForge({ project: "acme/platform/infra", token: TOKEN, baseUrl: `${fake.url}/` });

    expect(fake.url).toMatch(/\/gitlab$/);
    expect(await forge.pullRequests.get(1)).toMatchObject({ number: 1, url: fake.pullRequestUrl(1) });
    fake.assertNoUnexpected();
  });

  it("reports a wrong token as FORGE_UNAUTHORIZED without the token", async () => {
    const fake = await fakeGitLab();
    const forge = gitlabForge({ project: "acme/platform/infra", token: `${TOKEN}-wrong`, baseUrl: fake.url });

    const error = await forgeFailure(forge.comments.create(1, "hello"));

    expect(error).toMatchObject({ code: "FORGE_UNAUTHORIZED", status: 401 });
    expect(error.message).toContain("401 Unauthorized");
    expect(fake.takeUnexpected()).toMatchObject([{ method: "POST", status: 401 }]);
    fake.assertNoUnexpected();
  });

  it("reports an unknown merge request or note as FORGE_NOT_FOUND", async () => {
    const fake = await fakeGitLab();
    fake.addPullRequest({ number: 1, headSha: sha(1) });
    const forge = gitlabForge({ project: "acme/platform/infra", token: TOKEN, baseUrl: fake.url });

    expect(await forgeFailure(forge.pullRequests.get(404))).toMatchObject({
      code: "FORGE_NOT_FOUND",
      status: 404,
    });
    expect(await forgeFailure(forge.comments.list(404))).toMatchObject({
      code: "FORGE_NOT_FOUND",
    });
    expect(await forgeFailure(forge.comments.update(1, "12345", "hello"))).toMatchObject({
      code: "FORGE_NOT_FOUND",
      status: 404,
    });
    fake.assertNoUnexpected();
  });

  it("reports an unreachable forge as FORGE_FAILED with no status", async () => {
    const fake = await fakeGitLab();
    await fake.close();
    const forge = gitlabForge({ project: "acme/platform/infra", token: TOKEN, baseUrl: fake.url });

    expect(await forgeFailure(forge.pullRequests.listOpen())).toMatchObject({
      code: "FORGE_FAILED",
      status: undefined,
    });
    fake.assertNoUnexpected();
  });
});
