import { describe, expect, it, vi } from "vitest";
import {
  events,
  gatedApp,
  gateStarted,
  githubComment,
  githubPullRequest,
  githubSetup,
  idle,
  openGates,
  planStatus,
  runsOf,
  stacks,
} from "./support/pull-request-serve.ts";

/**
 * The pull-request flow against defects found with GitHub's own recorded
 * deliveries: repeated and out-of-order deliveries, other people's comments,
 * other base branches; and comment commands. The real `serve` against a
 * strict fake of GitHub's REST API.
 */
const MARKER = "<!-- gitops-runner:plan -->";

describe("deliveries that repeat or come out of order", () => {
  it("does not cancel the newest head's plan when an earlier delivery is redelivered", async () => {
    const { repo, data, forge, served, deliver, deliverFor } = await githubSetup();
    await repo.checkout("widen", true);
    await repo.setApp(stacks("10.0.0.0/12"));
    const first = await repo.commit("Widen the network");
    forge.addPullRequest({ number: 7, headSha: first, headRef: "widen" });
    expect(await deliver("pull_request", githubPullRequest("opened", 7, first), "d-opened")).toBe(202);
    await planStatus(forge, first, "success");

    await repo.write("main.ts", gatedApp(stacks("10.0.0.0/8")));
    const second = await repo.commit("Widen it more");
    forge.setHeadSha(7, second);
    expect(await deliver("pull_request", githubPullRequest("synchronize", 7, second), "d-sync")).toBe(202);
    await gateStarted(data);
    // GitHub's "Redeliver" of the first delivery, while the newest head is being planned.
    const repeated = await deliverFor("pull_request", githubPullRequest("opened", 7, first), "d-opened");
    expect(repeated).toMatchObject({ status: 202, body: { duplicate: true } });
    await openGates(data);

    await planStatus(forge, second, "success");
    await idle(data);
    expect(forge.statuses(second).map((status) => status.state)).toEqual(["pending", "success"]);
    expect(
      events(data)
        .filter((event) => event.kind === "pr-plan")
        .map((event) => `${event.commit?.slice(0, 7)} ${event.status}`),
    ).toEqual([`${first.slice(0, 7)} done`, `${second.slice(0, 7)} done`]);
    expect(forge.comments(7)).toHaveLength(1);
    expect(forge.comments(7)[0]?.body).toContain(second.slice(0, 7));
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });

  it("plans the head the forge reports, and drops a late delivery of an older head", async () => {
    const { repo, data, forge, served, deliver } = await githubSetup();
    await repo.checkout("scale", true);
    await repo.setApp(stacks("10.0.0.0/16", 3));
    const older = await repo.commit("Scale to 3");
    await repo.write("main.ts", gatedApp(stacks("10.0.0.0/16", 4)));
    const newer = await repo.commit("Scale to 4");
    // The pull request was opened at the older head and pushed to at once; the `opened`
    // delivery arrives after the `synchronize` one.
    forge.addPullRequest({ number: 8, headSha: newer, headRef: "scale" });
    expect(await deliver("pull_request", githubPullRequest("synchronize", 8, newer), "d-sync")).toBe(202);
    await gateStarted(data);
    expect(await deliver("pull_request", githubPullRequest("opened", 8, older), "d-late-open")).toBe(202);
    await vi.waitFor(
      () =>
        expect(events(data).find((event) => event.kind === "pr-plan" && event.commit === older)?.status).toBe(
          "superseded",
        ),
      { timeout: 30_000, interval: 100 },
    );
    await openGates(data);

    await planStatus(forge, newer, "success");
    await idle(data);
    expect(forge.statuses(older)).toEqual([]);
    expect(runsOf(data, older)).toEqual([]);
    expect(forge.comments(8)).toHaveLength(1);
    expect(forge.comments(8)[0]?.body).toContain(newer.slice(0, 7));
    // The plan's runs are the pull request's.
    expect(new Set(runsOf(data, newer).map((run) => run.pr))).toEqual(new Set([8]));
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});

describe("the runner's own comments", () => {
  it("never edits a comment someone else wrote, even one that starts with its marker", async () => {
    const { repo, data, forge, served, deliver } = await githubSetup();
    await repo.checkout("scale", true);
    await repo.setApp(stacks("10.0.0.0/16", 5));
    const first = await repo.commit("Scale to 5");
    forge.addPullRequest({ number: 9, headSha: first, headRef: "scale" });
    const quoted = forge.addComment(
      9,
      `${MARKER}\nQuoting the bot: this is what it said last time.`,
      "reviewer",
    );
    expect(await deliver("pull_request", githubPullRequest("opened", 9, first), "d-1")).toBe(202);
    await planStatus(forge, first, "success");
    await repo.setApp(stacks("10.0.0.0/16", 6));
    const second = await repo.commit("Scale to 6");
    forge.setHeadSha(9, second);
    expect(await deliver("pull_request", githubPullRequest("synchronize", 9, second), "d-2")).toBe(202);
    await planStatus(forge, second, "success");
    await idle(data);

    const [theirs, ours, ...more] = forge.comments(9);
    expect(theirs).toEqual(quoted);
    expect(ours?.author).toBe("gitops-runner[bot]");
    expect(ours?.body).toContain(second.slice(0, 7));
    expect(more).toEqual([]);
    // The account was asked for once.
    expect(forge.calls.filter((call) => call.path === "/user")).toHaveLength(1);
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });

  it("names its comments and statuses as configured, so that two runners can share a repository", async () => {
    const { repo, data, forge, served, deliver } = await githubSetup({
      forge: {
        commentMarker: "gitops-runner-prod",
        planStatus: "prod/plan",
        applyStatus: "prod/apply",
        login: "gitops-runner[bot]",
      },
    });
    await repo.checkout("scale", true);
    await repo.setApp(stacks("10.0.0.0/16", 7));
    const head = await repo.commit("Scale to 7");
    forge.addPullRequest({ number: 10, headSha: head, headRef: "scale" });
    // The staging runner's comment, written by the same account under the default marker.
    forge.addComment(10, `${MARKER}\n### gitops-runner plan for staging`, "gitops-runner[bot]");
    expect(await deliver("pull_request", githubPullRequest("opened", 10, head), "d-1")).toBe(202);
    await planStatus(forge, head, "success", "prod/plan");
    await idle(data);
    // With its login configured, the runner never asks the forge who it is.
    expect(forge.calls.filter((call) => call.path === "/user")).toEqual([]);
    expect(forge.statuses(head).map((status) => status.context)).toEqual(["prod/plan", "prod/plan"]);
    const bodies = forge.comments(10).map((comment) => comment.body.split("\n")[0]);
    expect(bodies).toEqual([MARKER, "<!-- gitops-runner-prod:plan -->"]);
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});

describe("pull requests into other branches", () => {
  it("plans only those into the followed branch", async () => {
    const { repo, data, forge, served, deliver } = await githubSetup();
    await repo.checkout("hotfix", true);
    await repo.setApp(stacks("10.1.0.0/16"));
    const head = await repo.commit("A hotfix for the release branch");
    forge.addPullRequest({ number: 11, headSha: head, headRef: "hotfix", baseRef: "release" });
    expect(await deliver("pull_request", githubPullRequest("opened", 11, head), "d-1")).toBe(202);
    // Nor on a command: the command is not even answered.
    forge.setPermission("alice", "write");
    const asked = forge.addComment(11, "/gitops-runner plan", "alice");
    expect(await deliver("issue_comment", githubComment(11, { ...asked, login: "alice" }), "d-2")).toBe(202);
    await idle(data);
    expect(
      events(data)
        .filter((event) => event.pr === 11)
        .map((event) => event.status),
    ).toEqual(["done", "done"]);
    expect(forge.reactions(asked.id)).toEqual([]);
    expect(forge.statuses(head)).toEqual([]);
    expect(forge.comments(11)).toEqual([asked]);
    expect(runsOf(data, head)).toEqual([]);
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});

describe("comment commands", () => {
  it("plans again for people with write access, answers others, and ignores its own comments", async () => {
    const { repo, data, forge, served, deliver } = await githubSetup();
    await repo.checkout("scale", true);
    await repo.setApp(stacks("10.0.0.0/16", 8));
    const head = await repo.commit("Scale to 8");
    forge.addPullRequest({ number: 12, headSha: head, headRef: "scale" });
    expect(await deliver("pull_request", githubPullRequest("opened", 12, head), "d-open")).toBe(202);
    await planStatus(forge, head, "success");
    await idle(data);
    const plans = () => runsOf(data, head).filter((run) => run.kind === "plan").length;
    const planned = plans();
    forge.setPermission("alice", "write");
    forge.setPermission("mallory", "read");

    const asked = forge.addComment(12, "/gitops-runner plan service", "alice");
    expect(await deliver("issue_comment", githubComment(12, { ...asked, login: "alice" }), "d-alice")).toBe(
      202,
    );
    await idle(data);
    expect(forge.reactions(asked.id)).toEqual(["+1"]);
    expect(plans()).toBe(planned + 1);
    expect(runsOf(data, head).at(-1)).toMatchObject({ kind: "plan", stack: "service", pr: 12 });

    const refused = forge.addComment(12, "/gitops-runner plan", "mallory");
    expect(
      await deliver("issue_comment", githubComment(12, { ...refused, login: "mallory" }), "d-mallory"),
    ).toBe(202);
    await idle(data);
    expect(forge.reactions(refused.id)).toEqual([]);
    expect(forge.comments(12).at(-1)).toMatchObject({
      author: "gitops-runner[bot]",
      body: "gitops-runner: only people with write access to this repository can ask for a plan.",
    });
    expect(plans()).toBe(planned + 1);

    const own = forge.addComment(12, "/gitops-runner plan", "gitops-runner[bot]");
    expect(
      await deliver("issue_comment", githubComment(12, { ...own, login: "gitops-runner[bot]" }), "d-own"),
    ).toBe(202);
    const chatter = { id: 1, body: "Looks good to me", login: "alice" };
    expect(await deliver("issue_comment", githubComment(12, chatter), "d-chatter")).toBe(202);
    await idle(data);
    expect(forge.reactions(own.id)).toEqual([]);
    expect(plans()).toBe(planned + 1);
    // The own comment was looked at (an event) and dropped; the chatter was never queued.
    expect(
      events(data)
        .filter((event) => event.pr === 12)
        .map((event) => event.status),
    ).toEqual(["done", "done", "done", "done"]);
    const permissionChecks = forge.calls.filter((call) => call.path.endsWith("/permission"));
    expect(permissionChecks.map((call) => call.path)).toEqual([
      "/repos/acme/infra/collaborators/alice/permission",
      "/repos/acme/infra/collaborators/mallory/permission",
    ]);
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});
