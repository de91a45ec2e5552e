import { describe, expect, it, vi } from "vitest";
import {
  events,
  githubPullRequest,
  githubSetup,
  idle,
  planStatus,
  runsOf,
} from "./support/pull-request-serve.ts";
import type { AppSpec } from "./support/repo.ts";

/**
 * What merges is compared with what was reviewed: the real `serve` against a
 * fake GitHub, real git, real tofu.
 */
const APPLY_MARKER = "<!-- gitops-runner:apply -->";

const app = (cidr: string, extra = false): AppSpec => ({
  network: { vpc: { input: { cidr } }, ...(extra ? { extra: { input: { purpose: "not reviewed" } } } : {}) },
  service: { api: { input: { replicas: 2 }, reads: "network.vpc" } },
});

describe("applying what was reviewed", () => {
  it("calls out a widened policy, blocks a merge whose plan differs from the reviewed one, and applies it once approved", async () => {
    const policy = { network: { requireReviewedPlan: true } };
    const { repo, data, forge, served, deliver } = await githubSetup({ spec: app("10.0.0.0/16"), policy });
    await repo.checkout("widen", true);
    await repo.setApp(app("10.0.0.0/12"));
    await repo.write(
      "gitops-runner.policy.json",
      JSON.stringify({ network: { requireReviewedPlan: true, allowDestroy: true } }),
    );
    const head = await repo.commit("Widen the network, and let it be destroyed");
    forge.addPullRequest({ number: 7, headSha: head, headRef: "widen" });
    expect(await deliver("pull_request", githubPullRequest("opened", 7, head), "d-open")).toBe(202);
    await planStatus(forge, head, "success");
    const [plan] = forge.comments(7);
    expect(plan?.body.split("\n")[3]).toMatch(
      /^> \*\*This pull request widens the policy:\*\* network: `allowDestroy` false → true\./,
    );

    // The merge commit carries a change nobody reviewed.
    await repo.checkout("main");
    await repo.git("merge", "--no-ff", "--quiet", "-m", "Merge pull request #7", "widen");
    await repo.setApp(app("10.0.0.0/12", true));
    await repo.git("commit", "--quiet", "--amend", "--all", "--no-edit");
    const merge = await repo.head();
    forge.setPullRequestState(7, "merged", { mergeCommitSha: merge });
    const merged = githubPullRequest("closed", 7, head, { merged: true, merge_commit_sha: merge });
    expect(await deliver("pull_request", merged, "d-merged")).toBe(202);
    await planStatus(forge, merge, "failure", "gitops-runner/apply");
    await idle(data);

    const blocked = forge.comments(7).find((comment) => comment.body.startsWith(APPLY_MARKER))?.body ?? "";
    expect(blocked).toContain(
      "> **Not what was reviewed:** the plan at the merge commit differs from this pull request's last plan for network",
    );
    expect(blocked).toContain(
      "- `terraform_data.extra` will be created; the reviewed plan did not change it",
    );
    expect(blocked).toMatch(
      /\*\*network\*\* is blocked: the plan differs from the one reviewed on pull request \\#7/,
    );
    const { runs } = await served.json("/api/runs?kind=apply&status=blocked");
    expect(runs).toHaveLength(1);
    const run = await served.json(`/api/runs/${runs[0].id}`);
    expect(run.review).toEqual({
      pr: 7,
      comparison: {
        kind: "differs",
        notReviewed: false,
        differences: [{ kind: "added", address: "terraform_data.extra", actions: ["create"] }],
      },
    });

    const approved = await served.api(`/api/runs/${run.id}/approve`, { method: "POST" });
    expect(approved.status).toBe(202);
    await planStatus(forge, merge, "success", "gitops-runner/apply");
    await idle(data);
    const applied = forge.comments(7).find((comment) => comment.body.startsWith(APPLY_MARKER))?.body ?? "";
    expect(applied).toContain("**1 affected stack**: 1 applied.");
    // Still not what was reviewed: the comment keeps saying so, and the run too.
    expect(applied).toContain("> **Not what was reviewed:**");
    const { runs: done } = await served.json("/api/runs?kind=apply&status=succeeded&stack=network");
    expect(done[0]).toMatchObject({ commit: merge, review: { pr: 7, comparison: { kind: "differs" } } });
    expect(forge.comments(7).filter((comment) => comment.body.startsWith(APPLY_MARKER))).toHaveLength(1);
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });

  it("applies a merge that is what was reviewed, and says nothing of it", async () => {
    const { repo, data, forge, served, deliver } = await githubSetup({
      spec: app("10.0.0.0/16"),
      policy: { default: { requireReviewedPlan: true } },
    });
    await repo.checkout("widen", true);
    await repo.setApp(app("10.0.0.0/12"));
    const head = await repo.commit("Widen the network");
    forge.addPullRequest({ number: 8, headSha: head, headRef: "widen" });
    expect(await deliver("pull_request", githubPullRequest("opened", 8, head), "d-open")).toBe(202);
    await planStatus(forge, head, "success");
    await repo.checkout("main");
    await repo.git("merge", "--no-ff", "--quiet", "-m", "Merge pull request #8", "widen");
    const merge = await repo.head();
    forge.setPullRequestState(8, "merged", { mergeCommitSha: merge });
    const merged = githubPullRequest("closed", 8, head, { merged: true, merge_commit_sha: merge });
    expect(await deliver("pull_request", merged, "d-merged")).toBe(202);
    await planStatus(forge, merge, "success", "gitops-runner/apply");
    await idle(data);
    const comment =
      forge.comments(8).find((candidate) => candidate.body.startsWith(APPLY_MARKER))?.body ?? "";
    expect(comment).toContain("1 applied");
    expect(comment).not.toContain("Not what was reviewed");
    const { runs } = await served.json("/api/runs?kind=apply&stack=network&limit=1");
    expect(runs[0]).toMatchObject({
      commit: merge,
      status: "succeeded",
      review: { pr: 8, comparison: { kind: "same" } },
    });
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});

describe("after an apply", () => {
  const three = (cidr: string, replicas: number, zone: string): AppSpec => ({
    network: { vpc: { input: { cidr } } },
    service: { api: { input: { replicas }, reads: "network.vpc" } },
    dns: { zone: { input: { zone } } },
  });

  it("marks stale and plans again the open pull requests whose plan covers an applied stack or one reading it", async () => {
    const { repo, data, forge, served, deliver } = await githubSetup({
      spec: three("10.0.0.0/16", 2, "a.example"),
    });
    await repo.checkout("scale", true);
    await repo.setApp(three("10.0.0.0/16", 3, "a.example"));
    const scale = await repo.commit("Scale the service");
    await repo.checkout("main");
    await repo.checkout("rename", true);
    await repo.setApp(three("10.0.0.0/16", 2, "b.example"));
    const rename = await repo.commit("Rename the zone");
    forge.addPullRequest({ number: 20, headSha: scale, headRef: "scale" });
    forge.addPullRequest({ number: 21, headSha: rename, headRef: "rename" });
    expect(await deliver("pull_request", githubPullRequest("opened", 20, scale), "d-20")).toBe(202);
    expect(await deliver("pull_request", githubPullRequest("opened", 21, rename), "d-21")).toBe(202);
    await planStatus(forge, scale, "success");
    await planStatus(forge, rename, "success");
    await idle(data);
    const planCount = (sha: string) => runsOf(data, sha).filter((run) => run.kind === "plan").length;
    const [scalePlans, renamePlans] = [planCount(scale), planCount(rename)];
    expect(scalePlans).toBe(1);

    // Someone changes the network on main directly; the service reads it.
    await repo.checkout("main");
    await repo.setApp(three("10.0.0.0/12", 2, "a.example"));
    const pushed = await repo.commit("Widen the network on main");
    expect(await deliver("push", { ref: "refs/heads/main", after: pushed }, "d-push")).toBe(202);
    await vi.waitFor(() => expect(planCount(scale)).toBe(scalePlans + 1), { timeout: 60_000, interval: 200 });
    await idle(data);

    // First marked stale in place, then planned again: now behind main for the service.
    const marked = forge.calls.find(
      (call) =>
        call.method === "PATCH" &&
        JSON.stringify(call.body).includes(`changed when \`${pushed.slice(0, 7)}\` was applied`),
    );
    expect(JSON.stringify(marked?.body)).toContain("**Stale:** service changed when");
    const [comment, ...others] = forge.comments(20);
    expect(others).toEqual([]);
    expect(comment?.body).toContain("> **Stale:** this branch is behind the followed branch for service");
    expect(comment?.body).not.toContain("was applied after this plan was made");
    // The other pull request's plan still holds: neither marked nor planned again.
    expect(planCount(rename)).toBe(renamePlans);
    expect(forge.comments(21)[0]?.body).not.toContain("Stale");
    expect(
      events(data)
        .filter((event) => event.pr === 21)
        .map((event) => event.status),
    ).toEqual(["done"]);
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});
