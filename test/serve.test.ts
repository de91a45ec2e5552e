import { createHmac } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it, vi } from "vitest";
import { type AppSpec, dataDir, TestRepo } from "./support/repo.ts";
import { READ_TOKEN, startServe, writeServeConfig } from "./support/serve.ts";

const WEBHOOK_SECRET = "webhook-secret-for-tests";

const writeConfig = writeServeConfig;

interface Run {
  id: string;
  kind: string;
  stack: string;
  commit: string;
  status: string;
  result?: string;
  log?: string;
}

function query<T>(data: string, sql: string): T[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

const app = (replicas: number): AppSpec => ({ web: { service: { input: { replicas } } } });

/** serve on a fresh repository and data directory, once its first apply is done. */
async function servedAndApplied(config: Record<string, unknown>, env: Record<string, string> = {}) {
  const repo = await TestRepo.create(app(1));
  const data = await dataDir();
  const served = await startServe(await writeConfig(data, { repository: { url: repo.dir }, ...config }), env);
  await vi.waitFor(
    async () => expect((await served.json("/api/stacks")).stacks[0].lastAppliedCommit).toBeDefined(),
    { timeout: 60_000, interval: 200 },
  );
  // The apply's event is finished too, so that what the test compares is at rest.
  await vi.waitFor(
    () => expect(query(data, "SELECT id FROM events WHERE status IN ('queued', 'running')")).toHaveLength(0),
    { timeout: 60_000, interval: 200 },
  );
  return { repo, data, served };
}

describe("gitops-runner serve", () => {
  it("applies a pushed commit within a poll interval, shows the run with its log, and counts it", async () => {
    const repo = await TestRepo.create(app(1));
    const data = await dataDir();
    const served = await startServe(
      await writeConfig(data, { repository: { url: repo.dir }, pollIntervalSeconds: 1 }),
    );

    const first = await vi.waitFor(
      async () => {
        const { runs } = await served.json<{ runs: Run[] }>("/api/runs?kind=apply&status=succeeded");
        expect(runs).toHaveLength(1);
        return runs[0] as Run;
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(first.commit).toBe(await repo.head());

    await repo.setApp(app(3));
    const pushed = await repo.commit("Scale web to 3");
    const second = await vi.waitFor(
      async () => {
        const { runs } = await served.json<{ runs: Run[] }>("/api/runs?kind=apply&status=succeeded");
        const run = runs.find((candidate) => candidate.commit === pushed);
        expect(run).toBeDefined();
        return run as Run;
      },
      { timeout: 30_000, interval: 200 },
    );
    const detail = await served.json<Run>(`/api/runs/${second.id}`);
    expect(detail.result).toBe("applied");
    expect(detail.log).toContain("Apply complete! Resources: 0 added, 1 changed, 0 destroyed.");

    const { stacks } = await served.json<{
      stacks: { name: string; state: string; lastAppliedCommit: string }[];
    }>("/api/stacks");
    expect(stacks).toEqual([
      expect.objectContaining({ name: "web", state: "in-sync", lastAppliedCommit: pushed }),
    ]);

    const metrics = await (await fetch(new URL("/metrics", served.url))).text();
    expect(metrics).toMatch(/^gitops_runner_runs_total\{kind="apply",status="succeeded"\} 2$/m);
    expect(metrics).toMatch(/^gitops_runner_seconds_since_last_successful_poll \d/m);
    expect(await served.stop()).toBe(0);
  });

  it("ends at the newest of three quick commits and never applies an older one after a newer", async () => {
    const repo = await TestRepo.create(app(1));
    const data = await dataDir();
    const served = await startServe(
      await writeConfig(data, { repository: { url: repo.dir }, pollIntervalSeconds: 1 }),
    );
    await vi.waitFor(
      async () => expect((await served.json("/api/stacks")).stacks[0].lastAppliedCommit).toBeDefined(),
      {
        timeout: 60_000,
        interval: 200,
      },
    );

    const commits: string[] = [];
    for (const replicas of [2, 3, 4]) {
      await repo.setApp(app(replicas));
      commits.push(await repo.commit(`Scale web to ${replicas}`));
    }
    const newest = commits.at(-1);
    await vi.waitFor(
      async () => expect((await served.json("/api/stacks")).stacks[0].lastAppliedCommit).toBe(newest),
      { timeout: 60_000, interval: 200 },
    );
    const applied = query<{ commit_sha: string }>(
      data,
      "SELECT commit_sha FROM runs WHERE kind = 'apply' AND result = 'applied' ORDER BY rowid",
    ).map((row) => row.commit_sha);
    const order =
      [await repo.git("rev-list", "--reverse", "HEAD").then((out) => out.trim().split("\n"))][0] ?? [];
    const positions = applied.map((commit) => order.indexOf(commit));
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(applied.at(-1)).toBe(newest);
    expect(await served.stop()).toBe(0);
  });

  it("accepts a burst of webhooks and API reads: each answered with a status, none lost, no duplicate runs", async () => {
    const { repo, data, served } = await servedAndApplied(
      { pollIntervalSeconds: 3600, webhooks: { generic: { secretEnv: "TEST_WEBHOOK_SECRET" } } },
      { TEST_WEBHOOK_SECRET: WEBHOOK_SECRET },
    );
    const runsBefore = query(data, "SELECT id FROM runs").length;

    const reads = Array.from({ length: 200 }, (_, index) =>
      served
        .api(index % 2 === 0 ? "/api/stacks" : "/api/runs", { token: READ_TOKEN })
        .then((response) => response.status),
    );
    const deliveries = Array.from({ length: 50 }, (_, index) => {
      const body = JSON.stringify({ repository: repo.dir });
      return fetch(new URL("/webhooks/generic", served.url), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-gitops-runner-delivery": `delivery-${index % 40}`,
          "x-gitops-runner-signature": `sha256=${createHmac("sha256", WEBHOOK_SECRET).update(body).digest("hex")}`,
        },
        body,
      }).then(async (response) => ({
        status: response.status,
        body: (await response.json()) as { eventId: string },
      }));
    });
    const [readStatuses, answers] = await Promise.all([Promise.all(reads), Promise.all(deliveries)]);
    expect(readStatuses.every((status) => status === 200)).toBe(true);
    expect(answers.every((answer) => answer.status === 202)).toBe(true);

    // Deliveries that find a poll queued join it: every one is answered with a persisted event,
    // and the burst fetches far fewer times than it has deliveries.
    const events = query<{ id: string; kind: string }>(
      data,
      "SELECT id, kind FROM events WHERE source = 'webhook:generic'",
    );
    const ids = new Set(events.map((event) => event.id));
    expect(answers.every((answer) => ids.has(answer.body.eventId))).toBe(true);
    expect(events.every((event) => event.kind === "poll")).toBe(true);
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events.length).toBeLessThan(40);
    await vi.waitFor(
      () =>
        expect(query(data, "SELECT id FROM events WHERE status IN ('queued', 'running')")).toHaveLength(0),
      { timeout: 60_000, interval: 200 },
    );
    expect(query(data, "SELECT id FROM runs")).toHaveLength(runsBefore);
    expect(await served.stop()).toBe(0);
  });

  it("refuses bad tokens, signatures, bodies and stack names, and none of them changes anything", async () => {
    const { repo, data, served } = await servedAndApplied(
      { pollIntervalSeconds: 3600, webhooks: { generic: { secretEnv: "TEST_WEBHOOK_SECRET" } } },
      { TEST_WEBHOOK_SECRET: WEBHOOK_SECRET },
    );
    const before = query(data, "SELECT id, status FROM events");

    const post = (route: string, token?: string) =>
      fetch(new URL(route, served.url), {
        method: "POST",
        headers: token ? { authorization: `Bearer ${token}` } : {},
      }).then((response) => response.status);
    expect(await post("/api/stacks/web/apply")).toBe(401);
    expect(await post("/api/stacks/web/apply", "wrong-token")).toBe(401);
    expect(await post("/api/stacks/web/apply", READ_TOKEN)).toBe(403);
    expect((await served.api("/api/stacks/nope/apply", { method: "POST" })).status).toBe(404);

    const body = JSON.stringify({ repository: repo.dir });
    const signed = `sha256=${createHmac("sha256", WEBHOOK_SECRET).update(body).digest("hex")}`;
    const webhook = (headers: Record<string, string>, payload: string) =>
      fetch(new URL("/webhooks/generic", served.url), {
        method: "POST",
        headers: { "content-type": "application/json", "x-gitops-runner-delivery": "refused", ...headers },
        body: payload,
      }).then((response) => response.status);
    expect(await webhook({ "x-gitops-runner-signature": "sha256=00" }, body)).toBe(401);
    expect(await webhook({}, body)).toBe(401);
    expect(await webhook({ "x-gitops-runner-signature": signed }, body.replace("}", ', "extra": 1}'))).toBe(
      401,
    );
    const malformed = "{not json";
    const malformedSignature = `sha256=${createHmac("sha256", WEBHOOK_SECRET).update(malformed).digest("hex")}`;
    expect(await webhook({ "x-gitops-runner-signature": malformedSignature }, malformed)).toBe(400);

    expect(query(data, "SELECT id, status FROM events")).toEqual(before);
    expect(await served.stop()).toBe(0);
  });

  it("holds a merge apply as blocked when autoApply is off, and applies it once approved", async () => {
    const repo = await TestRepo.create(app(1));
    await repo.write("gitops-runner.policy.json", JSON.stringify({ web: { autoApply: false } }));
    await repo.commit("Approve applies of web by hand");
    const data = await dataDir();
    const served = await startServe(
      await writeConfig(data, { repository: { url: repo.dir }, pollIntervalSeconds: 3600 }),
    );
    const blocked = await vi.waitFor(
      async () => {
        const { runs } = await served.json<{ runs: Run[] }>("/api/runs?kind=apply&status=blocked");
        expect(runs).toHaveLength(1);
        return runs[0] as Run;
      },
      { timeout: 60_000, interval: 200 },
    );
    expect((await served.json("/api/stacks")).stacks[0].state).toBe("blocked");

    const approval = await served.api(`/api/runs/${blocked.id}/approve`, { method: "POST" });
    expect(approval.status).toBe(202);
    await vi.waitFor(
      async () => expect((await served.json("/api/stacks")).stacks[0]).toMatchObject({ state: "in-sync" }),
      { timeout: 60_000, interval: 200 },
    );
    const again = await served.api(`/api/runs/${blocked.id}/approve`, { method: "POST" });
    expect(again.status).toBe(409);
    const notBlocked = await served.api(
      `/api/runs/${(await served.json<{ runs: Run[] }>("/api/runs?kind=apply&status=succeeded")).runs[0]?.id}/approve`,
      { method: "POST" },
    );
    expect(notBlocked.status).toBe(409);
    expect(await served.stop()).toBe(0);
  });

  it("refuses to start on a configuration with several mistakes, listing each", async () => {
    const data = await dataDir();
    const config = path.join(data, "runner.json");
    await writeFile(
      config,
      JSON.stringify({ pollIntervalSeconds: 0, listen: { port: "eighty" }, webhooks: { github: {} } }),
    );
    const served = startServe(config);
    await expect(served).rejects.toThrow(/serve exited with 1 before listening/);
    const error = await served.catch((caught: Error) => caught.message);
    expect(error).toContain("pollIntervalSeconds");
    expect(error).toContain("listen.port");
    expect(error).toContain("webhooks");
  });
});
