import { describe, expect, it, onTestFinished, vi } from "vitest";
import { giteaForge } from "../src/forge/gitea/client.ts";
import { GITEA_PAGE_LIMIT, type GiteaServer, type GiteaUser, startGitea } from "./support/gitea.ts";
import { idle, runsOf, SECRET, serveForge, stacks } from "./support/pull-request-serve.ts";
import { TestRepo } from "./support/repo.ts";

/**
 * Gitea (the forge Forgejo forked) as a real server: the client against its
 * API, and the real `serve` planning and applying its pull requests through
 * real webhooks. Where Gitea differs from GitHub: `synchronized` without
 * before/after, pages of `limit` items (this server's MAX_RESPONSE_ITEMS is
 * small so that a handful crosses a page), an unpaged comment list, `status`
 * where GitHub says `state`.
 */
const MARKER = "<!-- gitops-runner:plan -->";
const APPLY_MARKER = "<!-- gitops-runner:apply -->";
const REPOSITORY = "owner/infra";

interface Forge {
  gitea: GiteaServer;
  owner: GiteaUser;
  bot: GiteaUser;
  alice: GiteaUser;
  mallory: GiteaUser;
  repo: TestRepo;
}

/** A Gitea with a repository owner/infra holding the stacks, the runner's account an administrator of it. */
async function giteaWithRepository(): Promise<Forge> {
  const gitea = await startGitea();
  onTestFinished(() => gitea.stop());
  const owner = await gitea.createUser("owner", { admin: true });
  const [bot, alice, mallory] = [
    await gitea.createUser("gitops-bot"),
    await gitea.createUser("alice"),
    await gitea.createUser("mallory"),
  ];
  await owner.api(
    "POST",
    "/user/repos",
    { name: "infra", private: false, auto_init: false, default_branch: "main" },
    201,
  );
  const repo = await TestRepo.create(stacks("10.0.0.0/16"));
  await repo.git("push", "--quiet", owner.gitUrl(REPOSITORY), "main");
  // Gitea answers others' permissions only to administrators of the repository.
  for (const [user, permission] of [
    [bot, "admin"],
    [alice, "write"],
    [mallory, "read"],
  ] as const) {
    await owner.api("PUT", `/repos/${REPOSITORY}/collaborators/${user.name}`, { permission }, 204);
  }
  return { gitea, owner, bot, alice, mallory, repo };
}

/** Pushes branches and waits until Gitea has taken them in: pushes are processed in the background. */
async function pushBranches(forge: Forge, branches: readonly string[]): Promise<string[]> {
  await forge.repo.git("push", "--quiet", "--force", forge.owner.gitUrl(REPOSITORY), ...branches);
  const heads: string[] = [];
  for (const branch of branches) {
    const head = (await forge.repo.git("rev-parse", branch)).trim();
    await vi.waitFor(
      async () => {
        const found = await forge.owner.raw("GET", `/repos/${REPOSITORY}/branches/${branch}`);
        expect(found.status).toBe(200);
        expect(((await found.json()) as { commit: { id: string } }).commit.id).toBe(head);
      },
      { timeout: 30_000, interval: 100 },
    );
    heads.push(head);
  }
  return heads;
}

async function pushBranch(forge: Forge, branch: string): Promise<string> {
  const [head = ""] = await pushBranches(forge, [branch]);
  return head;
}

async function openPullRequest(forge: Forge, branch: string, base = "main"): Promise<number> {
  const pull = await forge.owner.api(
    "POST",
    `/repos/${REPOSITORY}/pulls`,
    { head: branch, base, title: `Change ${branch}` },
    201,
  );
  return pull.number as number;
}

/** The latest status of each context on a commit, as Gitea reports it (`status`, not `state`). */
async function statuses(forge: Forge, sha: string): Promise<Record<string, string>> {
  const list = await forge.owner.api<{ context: string; status: string; id: number }[]>(
    "GET",
    `/repos/${REPOSITORY}/commits/${sha}/statuses?limit=50`,
  );
  const latest: Record<string, string> = {};
  for (const status of [...list].sort((a, b) => a.id - b.id)) latest[status.context] = status.status;
  return latest;
}

async function waitForStatus(forge: Forge, sha: string, context: string, state: string): Promise<void> {
  await vi.waitFor(async () => expect((await statuses(forge, sha))[context]).toBe(state), {
    timeout: 90_000,
    interval: 250,
  });
}

interface GiteaComment {
  id: number;
  body: string;
  user: { login: string };
}

async function comments(forge: Forge, number: number): Promise<GiteaComment[]> {
  return forge.owner.api("GET", `/repos/${REPOSITORY}/issues/${number}/comments`);
}

describe("the Gitea client against a real Gitea", () => {
  it("lists open pull requests across pages, reads one, and knows who may write", async () => {
    const forge = await giteaWithRepository();
    const count = GITEA_PAGE_LIMIT + 2;
    const branches = Array.from({ length: count }, (_, index) => `change-${index + 1}`);
    for (const [index, branch] of branches.entries()) {
      await forge.repo.checkout("main");
      await forge.repo.checkout(branch, true);
      await forge.repo.write(`note-${index + 1}.txt`, `${index + 1}\n`);
      await forge.repo.commit(`Change ${index + 1}`);
    }
    await pushBranches(forge, branches);
    for (const branch of branches) await openPullRequest(forge, branch);
    await forge.owner.api("PATCH", `/repos/${REPOSITORY}/pulls/1`, { state: "closed" }, 201);
    const client = giteaForge({
      baseUrl: forge.gitea.url,
      owner: "owner",
      repo: "infra",
      token: forge.bot.token,
    });

    const open = await client.pullRequests.listOpen();
    expect(open.map((pull) => pull.number).sort((a, b) => a - b)).toEqual(
      Array.from({ length: count - 1 }, (_, index) => index + 2),
    );
    expect(await client.pullRequests.get(3)).toEqual({
      number: 3,
      headSha: await forge.repo.git("rev-parse", "change-3").then((text) => text.trim()),
      headRef: "change-3",
      baseRef: "main",
      fromFork: false,
      state: "open",
      url: `${forge.gitea.url}/${REPOSITORY}/pulls/3`,
      author: "owner",
    });
    expect((await client.pullRequests.get(1)).state).toBe("closed");
    // Who approves: alice's approval stands, mallory's was withdrawn by a request for changes.
    await forge.alice.api(
      "POST",
      `/repos/${REPOSITORY}/pulls/3/reviews`,
      { event: "APPROVED", body: "Fine" },
      200,
    );
    await forge.mallory.api(
      "POST",
      `/repos/${REPOSITORY}/pulls/3/reviews`,
      { event: "APPROVED", body: "Ok" },
      200,
    );
    await forge.mallory.api(
      "POST",
      `/repos/${REPOSITORY}/pulls/3/reviews`,
      { event: "REQUEST_CHANGES", body: "On second thought" },
      200,
    );
    expect(await client.pullRequests.approvers(3)).toEqual(["alice"]);
    // A pull request the runner opens (a rollback's).
    await forge.repo.checkout("main");
    await forge.repo.checkout("rollback", true);
    await forge.repo.write("rollback.txt", "back\n");
    await forge.repo.commit("Roll back");
    await pushBranch(forge, "rollback");
    const opened = await client.pullRequests.create({
      head: "rollback",
      base: "main",
      title: "Roll back",
      body: "Restores.",
    });
    expect(opened).toMatchObject({
      headRef: "rollback",
      baseRef: "main",
      state: "open",
      author: "gitops-bot",
    });
    expect(await client.accounts.self()).toBe("gitops-bot");
    expect(await client.accounts.canWrite({ name: "alice" })).toBe(true);
    expect(await client.accounts.canWrite({ name: "owner" })).toBe(true);
    expect(await client.accounts.canWrite({ name: "mallory" })).toBe(false);
  });

  it("keeps its comment among more than a page of others, reacts, and sets statuses", async () => {
    const forge = await giteaWithRepository();
    await forge.repo.checkout("scale", true);
    await forge.repo.setApp(stacks("10.0.0.0/16", 3));
    await forge.repo.commit("Scale");
    const head = await pushBranch(forge, "scale");
    const number = await openPullRequest(forge, "scale");
    for (let index = 0; index < GITEA_PAGE_LIMIT + 1; index++) {
      await forge.alice.api(
        "POST",
        `/repos/${REPOSITORY}/issues/${number}/comments`,
        { body: `Looks fine ${index}` },
        201,
      );
    }
    const client = giteaForge({
      baseUrl: forge.gitea.url,
      owner: "owner",
      repo: "infra",
      token: forge.bot.token,
    });

    const created = await client.comments.create(number, `${MARKER}\nPlan: 1 to add`);
    expect(created.author).toBe("gitops-bot");
    const listed = await client.comments.list(number);
    // One answer holds them all: Gitea does not page an issue's comments.
    expect(listed).toHaveLength(GITEA_PAGE_LIMIT + 2);
    expect(listed.at(-1)).toEqual(created);
    await client.comments.update(number, created.id, `${MARKER}\nPlan: no changes`);
    expect((await comments(forge, number)).at(-1)).toMatchObject({ body: `${MARKER}\nPlan: no changes` });
    const command = listed[0]?.id ?? "";
    await client.comments.react?.(number, command);
    const reactions = await forge.owner.api<{ content: string; user: { login: string } }[]>(
      "GET",
      `/repos/${REPOSITORY}/issues/comments/${command}/reactions`,
    );
    expect(reactions.map((reaction) => `${reaction.user.login} ${reaction.content}`)).toEqual([
      "gitops-bot +1",
    ]);
    await client.comments.remove(number, created.id);
    expect(await comments(forge, number)).toHaveLength(GITEA_PAGE_LIMIT + 1);

    await client.statuses.set(head, {
      context: "gitops-runner/plan",
      state: "pending",
      description: "planning",
    });
    await client.statuses.set(head, {
      context: "gitops-runner/plan",
      state: "failure",
      description: "x".repeat(300),
    });
    expect(await statuses(forge, head)).toEqual({ "gitops-runner/plan": "failure" });
  });
});

describe("pull requests on a real Gitea", () => {
  it("plans an opened pull request, again on a command and a push in its one comment, and reports the apply after the merge", async () => {
    const forge = await giteaWithRepository();
    const { data, served } = await serveForge({
      repository: `${forge.gitea.url}/${REPOSITORY}.git`,
      forge: { type: "gitea", baseUrl: forge.gitea.url, owner: "owner", repo: "infra" },
      token: forge.bot.token,
      applied: 2,
    });
    await forge.owner.api(
      "POST",
      `/repos/${REPOSITORY}/hooks`,
      {
        type: "gitea",
        config: {
          url: new URL("/webhooks/gitea", served.url).toString(),
          content_type: "json",
          secret: SECRET,
        },
        events: ["push", "pull_request_only", "pull_request_sync", "pull_request_comment"],
        active: true,
      },
      201,
    );

    // Opened: the plan comment and the status.
    await forge.repo.checkout("widen", true);
    await forge.repo.setApp(stacks("10.0.0.0/12"));
    await forge.repo.commit("Widen the network");
    const first = await pushBranch(forge, "widen");
    const number = await openPullRequest(forge, "widen");
    await waitForStatus(forge, first, "gitops-runner/plan", "success");
    const own = async () =>
      (await comments(forge, number)).filter(
        (comment) => comment.user.login === "gitops-bot" && comment.body.startsWith(MARKER),
      );
    const [planned] = await own();
    expect(planned?.body).toContain(first.slice(0, 7));
    expect(planned?.body).toContain("network");

    // A discussion: more than a page of comments, one quoting the runner's marker.
    const quote = `${MARKER}\nQuoting the runner's last plan here.`;
    await forge.alice.api("POST", `/repos/${REPOSITORY}/issues/${number}/comments`, { body: quote }, 201);
    for (let index = 0; index < GITEA_PAGE_LIMIT; index++) {
      await forge.alice.api(
        "POST",
        `/repos/${REPOSITORY}/issues/${number}/comments`,
        { body: `Thoughts ${index}` },
        201,
      );
    }

    // Someone without write access asks for a plan, then someone with it.
    await forge.mallory.api(
      "POST",
      `/repos/${REPOSITORY}/issues/${number}/comments`,
      { body: "/gitops-runner plan" },
      201,
    );
    await vi.waitFor(
      async () =>
        expect((await comments(forge, number)).at(-1)).toMatchObject({
          user: { login: "gitops-bot" },
          body: "gitops-runner: only people with write access to this repository can ask for a plan.",
        }),
      { timeout: 30_000, interval: 250 },
    );
    const plans = () => runsOf(data, first).filter((run) => run.kind === "plan").length;
    const before = plans();
    const asked = await forge.alice.api(
      "POST",
      `/repos/${REPOSITORY}/issues/${number}/comments`,
      { body: "/gitops-runner plan" },
      201,
    );
    await vi.waitFor(() => expect(plans()).toBeGreaterThan(before), { timeout: 60_000, interval: 250 });
    await idle(data);
    const reactions = await forge.owner.api<{ content: string; user: { login: string } }[]>(
      "GET",
      `/repos/${REPOSITORY}/issues/comments/${asked.id}/reactions`,
    );
    expect(reactions.map((reaction) => `${reaction.user.login} ${reaction.content}`)).toEqual([
      "gitops-bot +1",
    ]);
    expect((await own()).map((comment) => comment.id)).toEqual([planned?.id]);

    // A push: Gitea says `synchronized`; the one comment is updated in place, the quote left alone.
    await forge.repo.setApp(stacks("10.0.0.0/12", 3));
    await forge.repo.commit("And scale the service");
    const second = await pushBranch(forge, "widen");
    await waitForStatus(forge, second, "gitops-runner/plan", "success");
    await idle(data);
    const after = await comments(forge, number);
    const updated = after.filter((comment) => comment.body.startsWith(MARKER));
    expect(updated.map((comment) => comment.user.login)).toEqual(["gitops-bot", "alice"]);
    expect(updated[0]?.id).toBe(planned?.id);
    expect(updated[0]?.body).toContain(second.slice(0, 7));
    expect(updated[1]?.body).toBe(quote);
    expect(after.length).toBeGreaterThan(GITEA_PAGE_LIMIT);
    expect(
      new Set(
        runsOf(data, second)
          .filter((run) => run.kind === "plan")
          .map((run) => run.pr),
      ),
    ).toEqual(new Set([number]));

    // The merge: the apply comment and the apply status on the merge commit.
    await forge.owner.api("POST", `/repos/${REPOSITORY}/pulls/${number}/merge`, { Do: "merge" }, 200);
    const merged = await forge.owner.api<{ merge_commit_sha: string; merged: boolean }>(
      "GET",
      `/repos/${REPOSITORY}/pulls/${number}`,
    );
    expect(merged.merged).toBe(true);
    await waitForStatus(forge, merged.merge_commit_sha, "gitops-runner/apply", "success");
    await vi.waitFor(
      async () => {
        const apply = (await comments(forge, number)).find((comment) =>
          comment.body.startsWith(APPLY_MARKER),
        );
        expect(apply?.user.login).toBe("gitops-bot");
        expect(apply?.body).toContain("**2 affected stacks**: 2 applied.");
      },
      { timeout: 30_000, interval: 250 },
    );
    const { stacks: views } = await served.json("/api/stacks");
    expect(views.map((view: { lastAppliedCommit: string }) => view.lastAppliedCommit)).toEqual([
      merged.merge_commit_sha,
      merged.merge_commit_sha,
    ]);
    expect(await served.stop()).toBe(0);
  });
});
