import { createHmac } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { startFakeGitHub } from "./support/fake-github.ts";
import { startFakeGitLab } from "./support/fake-gitlab.ts";
import { githubForgeConfig } from "./support/github-deliveries.ts";
import {
  events,
  githubPullRequest,
  githubSetup,
  idle,
  planStatus,
  SECRET,
  serveForge,
  stacks,
  synthStarted,
  TOKEN,
} from "./support/pull-request-serve.ts";
import { dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";

const MARKER = "<!-- gitops-runner:plan -->";
const APPLY_MARKER = "<!-- gitops-runner:apply -->";

describe("pull requests on GitHub", () => {
  it("plans an opened pull request, updates its one comment on a new push, and reports the apply after the merge", async () => {
    const { repo, data, forge, served, deliver } = await githubSetup();

    await repo.checkout("widen", true);
    await repo.setApp(stacks("10.0.0.0/8"));
    const first = await repo.commit("Widen the network");
    forge.addPullRequest({ number: 7, headSha: first, headRef: "widen" });
    expect(await deliver("pull_request", githubPullRequest("opened", 7, first), "delivery-1")).toBe(202);
    await planStatus(forge, first, "success");

    const [comment] = forge.comments(7);
    expect(forge.comments(7)).toHaveLength(1);
    expect(comment?.body.startsWith(MARKER)).toBe(true);
    expect(comment?.body).toContain("network");
    expect(comment?.body).toContain(first.slice(0, 7));
    expect(forge.statuses(first).map((status) => [status.state, status.description])).toEqual([
      ["pending", "planning the affected stacks"],
      ["success", expect.stringMatching(/^\d stacks?: \+\d ~\d -\d/)],
    ]);

    await repo.setApp(stacks("10.0.0.0/12"));
    const second = await repo.commit("Narrow it a little");
    forge.setHeadSha(7, second);
    expect(await deliver("pull_request", githubPullRequest("synchronize", 7, second), "delivery-2")).toBe(
      202,
    );
    await planStatus(forge, second, "success");
    expect(forge.comments(7)).toHaveLength(1);
    expect(forge.comments(7)[0]?.id).toBe(comment?.id);
    expect(forge.comments(7)[0]?.body).toContain(second.slice(0, 7));

    await repo.checkout("main");
    await repo.git("merge", "--no-ff", "--quiet", "-m", "Merge pull request #7", "widen");
    const merge = await repo.head();
    forge.setPullRequestState(7, "merged", { mergeCommitSha: merge });
    expect(
      await deliver(
        "pull_request",
        githubPullRequest("closed", 7, second, { merged: true, merge_commit_sha: merge }),
        "delivery-3",
      ),
    ).toBe(202);
    await vi.waitFor(
      () =>
        expect(forge.statuses(merge).map((status) => `${status.context} ${status.state}`)).toEqual([
          "gitops-runner/apply success",
        ]),
      { timeout: 60_000, interval: 200 },
    );
    const applyComment = forge.comments(7).find((candidate) => candidate.body.startsWith(APPLY_MARKER));
    expect(applyComment?.body).toContain("network");
    expect(forge.comments(7)).toHaveLength(2);

    // The exact writes to the forge, in order.
    const writes = forge.calls
      .filter((call) => call.method !== "GET")
      .map(
        (call) => `${call.method} ${call.path.replace(/[0-9a-f]{40}/, "<sha>").replace(/\/\d+$/, "/<id>")}`,
      );
    expect(writes).toEqual([
      "POST /repos/acme/infra/statuses/<sha>",
      "POST /repos/acme/infra/issues/7/comments",
      "POST /repos/acme/infra/statuses/<sha>",
      "POST /repos/acme/infra/statuses/<sha>",
      "PATCH /repos/acme/infra/issues/comments/<id>",
      "POST /repos/acme/infra/statuses/<sha>",
      "POST /repos/acme/infra/issues/7/comments",
      "POST /repos/acme/infra/statuses/<sha>",
    ]);
    forge.assertNoUnexpected();
    expect(
      events(data)
        .filter((event) => event.pr === 7)
        .map((event) => `${event.kind} ${event.status}`),
    ).toEqual(["pr-plan done", "pr-plan done", "poll done"]);
    expect(await served.stop()).toBe(0);
  });

  it("refuses a wrong or missing signature and an altered body, and accepts a replayed delivery once", async () => {
    const { data, forge, served, deliver, repo } = await githubSetup();
    const head = await repo.head();
    forge.addPullRequest({ number: 8, headSha: head });
    const payload = githubPullRequest("opened", 8, head);
    const before = events(data).length;

    expect(await deliver("pull_request", payload, "d-wrong", `sha256=${"0".repeat(64)}`)).toBe(401);
    expect(await deliver("pull_request", payload, "d-missing", "")).toBe(401);
    const body = JSON.stringify(payload);
    const signature = `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`;
    expect(await deliver("pull_request", { ...payload, number: 9 }, "d-altered", signature)).toBe(401);
    expect(events(data)).toHaveLength(before);

    expect(await deliver("pull_request", payload, "d-once")).toBe(202);
    expect(await deliver("pull_request", payload, "d-once")).toBe(202);
    expect(events(data).filter((event) => event.kind === "pr-plan")).toHaveLength(1);
    await planStatus(forge, head, "success");
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });

  it("cancels the running plan of an older head when a newer one is pushed", async () => {
    const { repo, data, forge, served, deliver } = await githubSetup();
    await repo.checkout("slow", true);
    // This head's app takes its time to synthesize, and says when it has started.
    await repo.write(
      "main.ts",
      `import { writeFileSync } from "node:fs";\nwriteFileSync("slow-synth-started", "");\nawait new Promise((resolve) => setTimeout(resolve, 120_000));\n`,
    );
    const older = await repo.commit("A slow synth");
    forge.addPullRequest({ number: 12, headSha: older, headRef: "slow" });
    expect(await deliver("pull_request", githubPullRequest("opened", 12, older), "d-older")).toBe(202);
    await synthStarted(data, "slow-synth-started");

    await repo.setApp(stacks("10.0.0.0/16", 4));
    const newer = await repo.commit("Scale instead");
    forge.setHeadSha(12, newer);
    expect(await deliver("pull_request", githubPullRequest("synchronize", 12, newer), "d-newer")).toBe(202);
    await planStatus(forge, newer, "success");

    expect(forge.statuses(older).map((status) => status.state)).toEqual(["pending"]);
    expect(forge.comments(12)).toHaveLength(1);
    expect(forge.comments(12)[0]?.body).toContain(newer.slice(0, 7));
    const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
    const olderRuns = db.prepare("SELECT kind, status FROM runs WHERE commit_sha = ?").all(older);
    db.close();
    expect(olderRuns).toEqual([{ kind: "synth", status: "cancelled" }]);
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });

  it("drops the queued and running plans of pull requests that are closed", async () => {
    const { repo, data, forge, served, deliver } = await githubSetup();
    await repo.checkout("slow", true);
    await repo.write(
      "main.ts",
      `import { writeFileSync } from "node:fs";\nwriteFileSync("slow-synth-started", "");\nawait new Promise((resolve) => setTimeout(resolve, 120_000));\n`,
    );
    const slow = await repo.commit("A slow synth");
    await repo.checkout("main");
    await repo.checkout("quick", true);
    await repo.setApp(stacks("10.0.0.0/16", 6));
    const quick = await repo.commit("A quick change");
    forge.addPullRequest({ number: 20, headSha: slow, headRef: "slow" });
    forge.addPullRequest({ number: 21, headSha: quick, headRef: "quick" });

    expect(await deliver("pull_request", githubPullRequest("opened", 20, slow), "d-20")).toBe(202);
    await synthStarted(data, "slow-synth-started");
    expect(await deliver("pull_request", githubPullRequest("opened", 21, quick), "d-21")).toBe(202);
    expect(await deliver("pull_request", githubPullRequest("closed", 21, quick), "d-21-closed")).toBe(202);
    expect(await deliver("pull_request", githubPullRequest("closed", 20, slow), "d-20-closed")).toBe(202);
    await idle(data);

    expect(
      events(data)
        .filter((event) => event.kind === "pr-plan")
        .map((event) => `${event.pr} ${event.status}`),
    ).toEqual(["20 superseded", "21 superseded"]);
    // The quick plan may have started beside the slow one before the close arrived; it never finished.
    expect(forge.statuses(quick).every((status) => status.state === "pending")).toBe(true);
    expect(forge.statuses(slow).map((status) => status.state)).toEqual(["pending"]);
    expect(forge.comments(20)).toEqual([]);
    expect(forge.comments(21)).toEqual([]);
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });

  it("does not synthesize a pull request from a fork, and says why", async () => {
    const { data, forge, served, deliver, repo } = await githubSetup();
    await repo.checkout("from-fork", true);
    await repo.setApp(stacks("10.9.0.0/16"));
    const head = await repo.commit("A change from a fork");
    forge.addPullRequest({ number: 11, headSha: head, headRepository: "mallory/infra" });
    const payload = githubPullRequest("opened", 11, head, {
      head: { sha: head, repo: { full_name: "mallory/infra" } },
    });
    expect(await deliver("pull_request", payload, "d-fork")).toBe(202);
    await planStatus(forge, head, "error");
    expect(forge.comments(11)).toHaveLength(1);
    expect(forge.comments(11)[0]?.body).toContain("comes from a fork, so it was not synthesized");
    const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
    const synthesized = db.prepare("SELECT count(*) AS n FROM runs WHERE commit_sha = ?").get(head) as {
      n: number;
    };
    db.close();
    expect(synthesized.n).toBe(0);
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});

describe("pull requests without webhooks", () => {
  it("finds new heads through the forge's API on each poll, and keeps the forge token out of synthesis", async () => {
    const repo = await TestRepo.create(stacks("10.0.0.0/16"));
    const data = await dataDir();
    const forge = await startFakeGitHub({ owner: "acme", repo: "infra", token: TOKEN });
    onTestFinished(() => forge.close());
    await repo.checkout("scale", true);
    // The app shows what it sees in a resource's input, which the plan stored for the run carries.
    await repo.write(
      "main.ts",
      (await readFile(path.join(repo.dir, "main.ts"), "utf8"))
        .replace('"replicas":2', '"replicas":3')
        .replace('"cidr":"10.0.0.0/16"', '"cidr":"10.0.0.0/16","environment":JSON.stringify(process.env)'),
    );
    const head = await repo.commit("Scale, and show what synthesis sees");
    await repo.checkout("main");
    forge.addPullRequest({ number: 30, headSha: head, headRef: "scale" });
    const config = await writeServeConfig(data, {
      repository: { url: repo.dir },
      pollIntervalSeconds: 1,
      forge: githubForgeConfig(forge.url, { token: "TEST_FORGE_TOKEN" }),
    });
    const served = await startServe(config, { TEST_FORGE_TOKEN: TOKEN });
    await planStatus(forge, head, "success");
    expect(forge.comments(30)).toHaveLength(1);
    const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
    const planned = db
      .prepare("SELECT plan FROM runs WHERE commit_sha = ? AND stack = 'network' AND plan IS NOT NULL")
      .get(head) as { plan: string };
    db.close();
    const input = (JSON.parse(planned.plan) as any).resource_changes.find(
      (change: any) => change.type === "terraform_data",
    ).change.after.input;
    const environment = JSON.parse(input.environment) as Record<string, string>;
    expect(environment.CDKTF_OUTDIR).toBeDefined();
    expect(JSON.stringify(environment)).not.toContain(TOKEN);
    expect(Object.keys(environment).filter((name) => /TOKEN|SECRET/.test(name))).toEqual([]);
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});

describe("merge requests on GitLab", () => {
  it("plans an opened merge request with one note and a commit status", async () => {
    const repo = await TestRepo.create(stacks("10.0.0.0/16"));
    const forge = await startFakeGitLab({ project: "acme/infra", token: TOKEN });
    onTestFinished(() => forge.close());
    const { served } = await serveForge({
      repository: repo.dir,
      forge: { type: "gitlab", project: "acme/infra", baseUrl: forge.url },
      applied: 2,
    });
    await repo.checkout("scale", true);
    await repo.setApp(stacks("10.0.0.0/16", 5));
    const head = await repo.commit("Scale the service");
    forge.addPullRequest({ number: 3, headSha: head, headRef: "scale" });
    const response = await fetch(new URL("/webhooks/gitlab", served.url), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitlab-token": SECRET,
        "x-gitlab-event": "Merge Request Hook",
        "x-gitlab-event-uuid": "uuid-1",
      },
      body: JSON.stringify({
        object_kind: "merge_request",
        object_attributes: {
          iid: 3,
          action: "open",
          last_commit: { id: head },
          source_project_id: 1,
          target_project_id: 1,
        },
      }),
    });
    expect(response.status).toBe(202);
    await vi.waitFor(
      () =>
        expect(forge.statuses(head).map((status) => `${status.context} ${status.state}`)).toEqual([
          "gitops-runner/plan pending",
          "gitops-runner/plan success",
        ]),
      { timeout: 90_000, interval: 200 },
    );
    expect(forge.comments(3)).toHaveLength(1);
    expect(forge.comments(3)[0]?.body).toContain("service");
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});
