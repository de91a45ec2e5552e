import { access, rename } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { startFakeGitHub } from "./support/fake-github.ts";
import { deliverGitHub, githubForgeConfig, githubPullRequest } from "./support/github-deliveries.ts";
import { type AppSpec, dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";

function runs(data: string): { kind: string; stack: string; status: string; started_at: string }[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return db.prepare("SELECT kind, stack, status, started_at FROM runs ORDER BY started_at").all() as never;
  } finally {
    db.close();
  }
}

describe("serve remembers what it learnt", () => {
  it("after a restart with no new commit and an unreachable repository, shows every stack at once and resumes drift checks within a tick", async () => {
    const repo = await TestRepo.create({
      web: { service: { input: { size: 1 } } },
      db: { table: { input: { size: 1 } } },
    });
    await repo.write("gitops-runner.policy.json", JSON.stringify({ default: { driftSchedule: "10s" } }));
    const head = await repo.commit("Check for drift every ten seconds");
    const data = await dataDir();
    const config = await writeServeConfig(data, {
      repository: { url: repo.dir },
      pollIntervalSeconds: 3600,
      drift: { tickSeconds: 2, jitterPercent: 0 },
    });
    const first = await startServe(config);
    await vi.waitFor(
      () =>
        expect(
          runs(data)
            .filter((run) => run.kind === "drift" && run.status === "succeeded")
            .map((run) => run.stack),
        ).toEqual(expect.arrayContaining(["web", "db"])),
      { timeout: 90_000, interval: 250 },
    );
    expect(await first.stop()).toBe(0);

    // The repository is gone: the restart's first poll fails, so whatever it shows comes from its records.
    await rename(repo.dir, `${repo.dir}-moved`);
    onTestFinished(() => rename(`${repo.dir}-moved`, repo.dir).catch(() => undefined));
    const restarted = new Date().toISOString();
    const second = await startServe(config);
    const { stacks } = await second.json<{
      stacks: { name: string; state: string; lastAppliedCommit: string }[];
    }>("/api/stacks");
    expect(stacks.map((stack) => [stack.name, stack.state, stack.lastAppliedCommit])).toEqual([
      ["db", "in-sync", head],
      ["web", "in-sync", head],
    ]);
    await vi.waitFor(
      () => {
        const after = runs(data).filter((run) => run.kind === "drift" && run.started_at > restarted);
        expect(after.map((run) => run.stack)).toEqual(expect.arrayContaining(["web", "db"]));
      },
      { timeout: 20_000, interval: 250 },
    );
    expect(await second.stop()).toBe(0);
  });
});

describe("serve works on several things at once", () => {
  it("plans a pull request of one stack while a sixty-second apply of another runs", async () => {
    const spec = (slow: boolean, replicas: number, marker: string): AppSpec => ({
      queue: {
        jobs: { input: { size: 1 } },
        ...(slow ? { worker: { input: { size: 1 }, slowCreate: 60, createMarker: marker } } : {}),
      },
      web: { service: { input: { replicas } } },
    });
    const data = await dataDir();
    const marker = path.join(data, "slow-apply-started");
    const repo = await TestRepo.create(spec(false, 1, marker));
    const secret = "forge-webhook-secret";
    const token = "forge-token-abc123";
    const forge = await startFakeGitHub({ owner: "acme", repo: "infra", token });
    onTestFinished(() => forge.close());
    const served = await startServe(
      await writeServeConfig(data, {
        repository: { url: repo.dir },
        pollIntervalSeconds: 1,
        shutdownGraceSeconds: 1,
        forge: githubForgeConfig(forge.url),
      }),
      { TEST_FORGE_TOKEN: token, TEST_FORGE_SECRET: secret },
    );
    await vi.waitFor(
      async () =>
        expect(
          ((await served.json("/api/stacks")).stacks as { lastAppliedCommit?: string }[]).every(
            (stack) => stack.lastAppliedCommit,
          ),
        ).toBe(true),
      { timeout: 90_000, interval: 250 },
    );

    await repo.setApp(spec(true, 1, marker));
    await repo.commit("A slow queue");
    await vi.waitFor(() => access(marker), { timeout: 60_000, interval: 100 });

    await repo.checkout("scale", true);
    await repo.setApp(spec(true, 3, marker));
    const head = await repo.commit("Scale web");
    forge.addPullRequest({ number: 9, headSha: head, headRef: "scale" });
    const payload = githubPullRequest("opened", 9, head);
    const response = await deliverGitHub(served.url, secret, { event: "pull_request", id: "pr-9", payload });
    expect(response.status).toBe(202);
    await vi.waitFor(
      () =>
        expect(forge.statuses(head).map((status) => `${status.context} ${status.state}`)).toContain(
          "gitops-runner/plan success",
        ),
      { timeout: 50_000, interval: 250 },
    );
    // The apply of the queue is still running: the plan did not wait for it.
    expect(
      runs(data).filter((run) => run.kind === "apply" && run.stack === "queue" && run.status === "running"),
    ).toHaveLength(1);
    expect(forge.comments(9)[0]?.body).toContain("web");
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});
