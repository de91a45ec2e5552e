import { execFileSync } from "node:child_process";
import { userInfo } from "node:os";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { runCli } from "./support/cli.ts";
import { startFakeGitHub } from "./support/fake-github.ts";
import { deliverGitHub, githubForgeConfig, githubPullRequest } from "./support/github-deliveries.ts";
import { type AppSpec, dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";

const SECRET = "forge-webhook-secret";
const TOKEN = "forge-token-abc123";
const OPS_TOKEN = "ops-bot-token-0123456789";

const stacks = (cidr: string): AppSpec => ({
  network: { vpc: { input: { cidr } } },
  service: { api: { input: { replicas: 2 }, reads: "network.vpc" } },
});

describe("the audit trail", () => {
  it("records who merged, wrote and approved what was applied, the delivery and the token, past the run", async () => {
    const repo = await TestRepo.create(stacks("10.0.0.0/16"));
    const data = await dataDir();
    const branchSha = (branch: string) => {
      try {
        return execFileSync("git", ["rev-parse", `refs/heads/${branch}`], { cwd: repo.dir })
          .toString()
          .trim();
      } catch {
        return undefined;
      }
    };
    const forge = await startFakeGitHub({ owner: "acme", repo: "infra", token: TOKEN, branchSha });
    onTestFinished(() => forge.close());
    const config = await writeServeConfig(data, {
      repository: { url: repo.dir },
      pollIntervalSeconds: 3600,
      apiTokens: [{ name: "ops-bot", tokenEnv: "OPS_TOKEN" }],
      forge: githubForgeConfig(forge.url),
    });
    const served = await startServe(config, {
      TEST_FORGE_TOKEN: TOKEN,
      TEST_FORGE_SECRET: SECRET,
      OPS_TOKEN,
    });
    const audit = async (query: string) => (await served.json(`/api/audit${query}`)).entries;
    await vi.waitFor(async () => expect(await audit("")).toHaveLength(2), { timeout: 90_000, interval: 250 });

    await repo.checkout("widen", true);
    await repo.setApp(stacks("10.0.0.0/8"));
    const head = await repo.commit("Widen the network");
    forge.addPullRequest({ number: 7, headSha: head, headRef: "widen", author: "ana" });
    forge.addReview(7, "cy", "APPROVED");
    forge.addReview(7, "di", "CHANGES_REQUESTED");
    await repo.checkout("main");
    await repo.git("merge", "--no-ff", "--quiet", "-m", "Merge pull request #7", "widen");
    const merge = await repo.head();
    forge.setPullRequestState(7, "merged", { mergeCommitSha: merge, mergedBy: "bo" });
    const payload = githubPullRequest("closed", 7, head, { merged: true, merge_commit_sha: merge });
    const delivered = await deliverGitHub(served.url, SECRET, {
      event: "pull_request",
      id: "delivery-merge-7",
      payload,
    });
    expect(delivered.status).toBe(202);

    await vi.waitFor(async () => expect((await audit("?stack=network"))[0]?.commit).toBe(merge), {
      timeout: 90_000,
      interval: 250,
    });
    const [network] = await audit("?stack=network");
    expect(network).toMatchObject({
      stack: "network",
      kind: "apply",
      result: "applied",
      trigger: "webhook:pull_request:merged",
      commitAuthor: "Developer <dev@example.invalid>",
      origin: {
        deliveryId: "delivery-merge-7",
        pullRequest: {
          number: 7,
          url: forge.pullRequestUrl(7),
          author: "ana",
          mergedBy: "bo",
          approvers: ["cy"],
        },
      },
      summary: { add: 0, change: 1, destroy: 0, replace: 0, import: 0 },
      resources: [{ address: "terraform_data.vpc", actions: ["update"] }],
    });
    const run = await served.json(`/api/runs/${network.runId}`);
    expect(run).toMatchObject({ pr: 7, origin: network.origin });

    // A person's trigger through the API, under the token's configured name.
    const triggered = await served.api("/api/stacks/service/apply", { method: "POST", token: OPS_TOKEN });
    expect(triggered.status).toBe(202);
    await vi.waitFor(async () => expect((await audit("?stack=service"))[0]?.trigger).toBe("api"), {
      timeout: 90_000,
      interval: 250,
    });
    expect((await audit("?stack=service"))[0]).toMatchObject({
      commit: merge,
      origin: { tokenName: "ops-bot" },
    });
    expect(await audit(`?since=${new Date(Date.now() + 60_000).toISOString()}`)).toEqual([]);
    expect(await served.stop()).toBe(0);

    // The same trail from the command line, with the store alone (no fetch).
    const listed = await runCli([
      "audit",
      "--repo",
      repo.dir,
      "--data-dir",
      data,
      "--stack",
      "network",
      "--json",
    ]);
    expect(listed.code).toBe(0);
    expect(listed.json.entries.map((entry: { commit: string }) => entry.commit)).toEqual([
      merge,
      expect.any(String),
    ]);
    const table = await runCli(["audit", "--repo", repo.dir, "--data-dir", data]);
    expect(table.stdout.split("\n")[0]).toMatch(
      /^WHEN\s+STACK\s+RESULT\s+COMMIT\s+PULL REQUEST\s+WHO\s+CHANGES$/,
    );
    expect(table.stdout).toContain("#7");
    expect(table.stdout).toContain("by ana, merged by bo, approved by cy");
    expect(table.stdout).toContain("token ops-bot");
    const bad = await runCli(["audit", "--repo", repo.dir, "--data-dir", data, "--since", "last week"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('since: "last week" is not a date');
    forge.assertNoUnexpected();
  });

  it("records the user who applied from the command line", async () => {
    const repo = await TestRepo.create({ solo: { thing: { input: { size: 1 } } } });
    const data = await dataDir();
    expect((await runCli(["apply", "--repo", repo.dir, "--data-dir", data])).code).toBe(0);
    const listed = await runCli(["audit", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(listed.json.entries).toEqual([
      expect.objectContaining({
        stack: "solo",
        result: "applied",
        trigger: "cli",
        origin: { user: userInfo().username },
        resources: [{ address: "terraform_data.thing", actions: ["create"] }],
      }),
    ]);
  });
});
