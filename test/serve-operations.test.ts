import { mkdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { repoId } from "../src/state/local-state.ts";
import { migrate } from "../src/store/migrations.ts";
import { SqlStore } from "../src/store/sql-store.ts";
import { SqliteDriver } from "../src/store/sqlite-driver.ts";
import { type AppSpec, dataDir, heldAppSource, TestRepo } from "./support/repo.ts";
import { queryDb, type Served, startServe, writeServeConfig } from "./support/serve.ts";
import { tempDir } from "./support/toolchain.ts";

/** The operations of a runner (cancel, suspend and resume, freeze, windows, bounded disk) through the real serve. */

interface Run {
  id: string;
  kind: string;
  stack: string;
  commit: string;
  status: string;
  result?: string;
  eventId?: string;
  steps?: { name: string; status: string }[];
  cancel?: { force: boolean; step?: string };
}

const app = (replicas: number): AppSpec => ({ web: { service: { input: { replicas } } } });
const WAIT = { timeout: 90_000, interval: 200 };

const query = queryDb;

function post(served: Served, route: string, body?: unknown): Promise<Response> {
  return served.api(route, {
    method: "POST",
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
}

async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  return ((await response.json()) as { error: { code: string; message: string } }).error;
}

async function runs(served: Served, filter: string): Promise<Run[]> {
  return (await served.json<{ runs: Run[] }>(`/api/runs?${filter}`)).runs;
}

async function servedAndApplied(config: Record<string, unknown>) {
  const repo = await TestRepo.create(app(1));
  const data = await dataDir();
  const served = await startServe(await writeServeConfig(data, { repository: { url: repo.dir }, ...config }));
  await vi.waitFor(async () => expect((await served.json("/api/stacks/web")).state).toBe("in-sync"), WAIT);
  return { repo, data, served };
}

describe("cancel", () => {
  it("drops a queued event, stops a waiting plan, interrupts an apply step only when forced, and frees the stack", async () => {
    const repo = await TestRepo.create(app(1));
    const data = await dataDir();
    const hold = path.join(data, "hold");
    const ticks = path.join(data, "ticks");
    await writeFile(hold, "");
    await repo.write("main.ts", heldAppSource({ stack: "web", hold, ticks }));
    await repo.commit("Apply web slowly");
    const served = await startServe(
      await writeServeConfig(data, { repository: { url: repo.dir }, pollIntervalSeconds: 3600, workers: 2 }),
    );

    const apply = await vi.waitFor(async () => {
      const [running] = await runs(served, "kind=apply&status=running");
      expect(running?.steps?.at(-1)).toMatchObject({ name: "apply", status: "running" });
      return running as Run;
    }, WAIT);
    // The apply's log grows while it runs: its output is written as it comes.
    const first = await served.json<{ text: string; offset: number }>(`/api/runs/${apply.id}/log`);
    expect(first.text).toContain("==> apply\n");
    await vi.waitFor(async () => {
      const more = await served.json<{ text: string }>(`/api/runs/${apply.id}/log?after=${first.offset}`);
      expect(more.text).toMatch(/tick \d+/);
    }, WAIT);

    const refused = await post(served, `/api/runs/${apply.id}/cancel`);
    expect(refused.status).toBe(409);
    expect((await errorOf(refused)).code).toBe("RUN_APPLYING");

    // A plan of the stack waits for its apply; a drift check waits for a free worker.
    expect((await post(served, "/api/stacks/web/plan")).status).toBe(202);
    const plan = await vi.waitFor(async () => {
      const [waiting] = await runs(served, "kind=plan&status=running");
      expect(waiting?.steps?.at(-1)).toMatchObject({ name: "wait for apply", status: "running" });
      return waiting as Run;
    }, WAIT);
    const drift = (await (await post(served, "/api/stacks/web/drift")).json()) as { eventId: string };
    const queue = await served.json<{ events: { id: string; status: string; waitsFor?: string }[] }>(
      "/api/queue",
    );
    expect(queue.events.find((event) => event.id === drift.eventId)).toMatchObject({
      status: "queued",
      waitsFor: "a free worker",
    });

    const dropped = await post(served, `/api/runs/${drift.eventId}/cancel`);
    expect(dropped.status).toBe(200);
    expect(await dropped.json()).toEqual({ cancelled: "queued", eventId: drift.eventId, force: false });
    expect(query(data, `SELECT status FROM events WHERE id = '${drift.eventId}'`)).toEqual([
      { status: "cancelled" },
    ]);

    const stopped = await post(served, `/api/runs/${plan.id}/cancel`, {});
    expect(stopped.status).toBe(202);
    expect(await stopped.json()).toMatchObject({ cancelled: "running", runId: plan.id, force: false });
    await vi.waitFor(
      async () => expect(await served.json(`/api/runs/${plan.id}`)).toMatchObject({ status: "cancelled" }),
      WAIT,
    );
    expect((await served.json<Run>(`/api/runs/${apply.id}`)).status).toBe("running");

    const [{ pgid }] = query<{ pgid: number }>(data, `SELECT pgid FROM runs WHERE id = '${apply.id}'`) as [
      { pgid: number },
    ];
    const forced = await post(served, `/api/runs/${apply.id}/cancel`, { force: true });
    expect(forced.status).toBe(202);
    const ended = await vi.waitFor(async () => {
      const run = await served.json<Run>(`/api/runs/${apply.id}`);
      expect(run.status).toBe("cancelled");
      return run;
    }, WAIT);
    expect(ended.cancel).toMatchObject({ force: true, step: "apply" });
    expect(ended.steps?.find((step) => step.name === "apply")?.status).toBe("failed");
    // The provisioner's process group is gone, though `hold` still exists.
    await vi.waitFor(() => expect(() => process.kill(-pgid, 0)).toThrow(), WAIT);
    expect(query(data, `SELECT status FROM events WHERE id = '${ended.eventId}'`)).toEqual([
      { status: "cancelled" },
    ]);
    const stack = await served.json("/api/stacks/web");
    expect(stack.lockHolder).toBeUndefined();
    expect(stack.state).toBe("failed");

    // The lock is free: the next apply runs. Terraform tainted the half-created resource, so it
    // plans to replace it, which the policy does not allow without approval.
    await rm(hold);
    expect((await post(served, "/api/stacks/web/apply")).status).toBe(202);
    const next = await vi.waitFor(async () => {
      const [latest] = await runs(served, "kind=apply&status=blocked");
      expect(latest).toBeDefined();
      return latest as Run & { resources: { address: string; actions: string[] }[] };
    }, WAIT);
    expect(next.resources).toEqual([{ address: "terraform_data.held", actions: ["delete", "create"] }]);
    expect(await served.stop()).toBe(0);
  });

  it("answers 404 for an unknown id and 409 for a run that has ended", async () => {
    const { served } = await servedAndApplied({ pollIntervalSeconds: 3600 });
    const [applied] = await runs(served, "kind=apply");
    expect((await post(served, "/api/runs/no-such-run/cancel")).status).toBe(404);
    const ended = await post(served, `/api/runs/${applied?.id}/cancel`, { force: true });
    expect(ended.status).toBe(409);
    expect(await errorOf(ended)).toEqual({
      code: "RUN_NOT_CANCELLABLE",
      message: `run ${applied?.id}: the run has ended (succeeded)`,
    });
    expect(await served.stop()).toBe(0);
  });
});

describe("suspend and resume", () => {
  it("skips a suspended stack's applies and drift checks, and applies what it missed once resumed", async () => {
    const { repo, data, served } = await servedAndApplied({ pollIntervalSeconds: 1 });
    const before = (await served.json("/api/stacks/web")).lastAppliedCommit;

    const suspended = await post(served, "/api/stacks/web/suspend", { reason: "incident 42" });
    expect(suspended.status).toBe(200);
    expect(await suspended.json()).toMatchObject({
      state: "suspended",
      policy: { suspended: true },
      policySource: { override: { suspended: true, reason: "incident 42" } },
    });

    await repo.setApp(app(2));
    const pushed = await repo.commit("Scale web to 2");
    await vi.waitFor(
      () =>
        expect(
          query(data, `SELECT status FROM events WHERE kind = 'apply' AND commit_sha = '${pushed}'`),
        ).toEqual([{ status: "done" }]),
      WAIT,
    );
    expect((await post(served, "/api/stacks/web/drift")).status).toBe(202);
    await vi.waitFor(
      () =>
        expect(query(data, "SELECT status FROM events WHERE kind = 'drift' AND source = 'api'")).toEqual([
          { status: "done" },
        ]),
      WAIT,
    );
    expect(await runs(served, "kind=drift")).toEqual([]);
    expect((await runs(served, "kind=apply")).map((run) => run.commit)).not.toContain(pushed);
    expect(await served.json("/api/stacks/web")).toMatchObject({
      state: "suspended",
      lastAppliedCommit: before,
      pending: true,
    });

    const resumed = await post(served, "/api/stacks/web/resume");
    expect(resumed.status).toBe(200);
    expect(await resumed.json()).toMatchObject({ state: "pending", policySource: {} });
    await vi.waitFor(
      async () =>
        expect(await served.json("/api/stacks/web")).toMatchObject({
          state: "in-sync",
          lastAppliedCommit: pushed,
        }),
      WAIT,
    );

    // Suspended by its policy file, and resumed by an operator: the stored resumption wins.
    await repo.write("gitops-runner.policy.json", JSON.stringify({ web: { suspended: true } }));
    await repo.commit("Suspend web in the policy");
    await vi.waitFor(
      async () => expect((await served.json("/api/stacks/web")).state).toBe("suspended"),
      WAIT,
    );
    const again = await (await post(served, "/api/stacks/web/resume")).json();
    expect(again).toMatchObject({
      state: "in-sync",
      policy: { suspended: false },
      policySource: { file: "gitops-runner.policy.json", override: { suspended: false } },
    });
    expect(await served.stop()).toBe(0);
  });
});

describe("freeze and maintenance windows", () => {
  it("holds applies while frozen, lets plans go on, and runs the held apply once unfrozen", async () => {
    const { repo, served } = await servedAndApplied({ pollIntervalSeconds: 1 });

    const frozen = await post(served, "/api/freeze", { reason: "release week" });
    expect(frozen.status).toBe(200);
    expect(await frozen.json()).toMatchObject({
      open: false,
      reason: "applies are frozen: release week",
      frozen: { reason: "release week" },
    });
    const past = await post(served, "/api/freeze", { reason: "x", until: "2001-01-01T00:00:00Z" });
    expect(past.status).toBe(400);
    expect((await errorOf(past)).message).toContain("body.until");

    await repo.setApp(app(3));
    const pushed = await repo.commit("Scale web to 3");
    await vi.waitFor(async () => {
      const { events } = await served.json<{
        events: { kind: string; commit?: string; waitsFor?: string }[];
      }>("/api/queue");
      expect(events.find((event) => event.kind === "apply" && event.commit === pushed)?.waitsFor).toBe(
        "applies are frozen: release week",
      );
    }, WAIT);

    expect((await post(served, "/api/stacks/web/plan")).status).toBe(202);
    await vi.waitFor(
      async () => expect((await runs(served, "kind=plan"))[0]).toMatchObject({ result: "changes" }),
      WAIT,
    );
    expect((await served.json("/api/stacks/web")).lastAppliedCommit).not.toBe(pushed);

    const lifted = await served.api("/api/freeze", { method: "DELETE" });
    expect(await lifted.json()).toEqual({ open: true, windows: [] });
    await vi.waitFor(
      async () => expect((await served.json("/api/stacks/web")).lastAppliedCommit).toBe(pushed),
      WAIT,
    );
    expect(await served.stop()).toBe(0);
  });

  it("holds applies outside every maintenance window, naming when the next one opens", async () => {
    const repo = await TestRepo.create(app(1));
    const data = await dataDir();
    const served = await startServe(
      await writeServeConfig(data, {
        repository: { url: repo.dir },
        pollIntervalSeconds: 3600,
        // Opens for a minute on the 1st of January only.
        maintenanceWindows: [{ cron: "0 0 1 1 *", duration: "1m" }],
      }),
    );
    const gate = await served.json("/api/freeze");
    expect(gate).toEqual({
      open: false,
      reason: `applies wait for the next maintenance window, at ${gate.opensAt}`,
      opensAt: expect.stringMatching(/^\d{4}-01-01T00:00:00\.000Z$/),
      windows: ["0 0 1 1 * for 1m (UTC)"],
    });
    await vi.waitFor(async () => {
      const { events } = await served.json<{ events: { kind: string; waitsFor?: string }[] }>("/api/queue");
      expect(events.find((event) => event.kind === "apply")?.waitsFor).toBe(gate.reason);
    }, WAIT);
    expect(await runs(served, "kind=apply")).toEqual([]);
    expect(await served.stop()).toBe(0);
  });
});

describe("bounded disk", () => {
  it("prunes old runs and events but keeps each stack's last apply and drift check, trims the dependency cache, and reports the data directory's size", async () => {
    // An app without dependencies to install: nothing but the seeded entries is in the cache.
    const repo = await TestRepo.create(app(1));
    await repo.remove("package.json");
    await repo.remove("package-lock.json");
    await repo.commit("No dependencies");
    const data = await tempDir("data");
    const key = { repoId: repoId(repo.dir), appDir: "" };

    const driver = new SqliteDriver(path.join(data, "runner.db"));
    await migrate(driver);
    const store = new SqlStore(driver);
    const seeded: [string, "apply" | "drift" | "plan", string, "succeeded" | "failed"][] = [
      ["old-apply", "apply", "2020-01-01", "succeeded"],
      ["last-apply", "apply", "2020-02-01", "succeeded"],
      ["failed-apply", "apply", "2020-03-01", "failed"],
      ["old-drift", "drift", "2020-01-02", "succeeded"],
      ["last-drift", "drift", "2020-02-02", "succeeded"],
      ["old-plan", "plan", "2020-01-03", "succeeded"],
      ["recent-plan", "plan", new Date().toISOString().slice(0, 10), "succeeded"],
    ];
    for (const [id, kind, day, status] of seeded) {
      await store.startRun({ id, kind, ...key, stack: "web", commit: "c", trigger: "test" });
      await store.finishRun(id, { status, result: status });
      await driver.run("UPDATE runs SET started_at = ? WHERE id = ?", [`${day}T00:00:00.000Z`, id]);
    }
    const scope = `${key.repoId}/_`;
    await store.enqueue(scope, { id: "old-event", kind: "poll", source: "test", lane: "poll" });
    await store.finishEvent("old-event", "done");
    await driver.run("UPDATE events SET created_at = '2020-01-01T00:00:00.000Z' WHERE id = 'old-event'");
    await store.close();

    const cache = path.join(data, "cache", "npm");
    const entry = async (name: string, bytes: number, daysAgo: number, complete = true) => {
      const dir = path.join(cache, name);
      await mkdir(path.join(dir, "node_modules"), { recursive: true });
      await writeFile(path.join(dir, "node_modules", "blob"), Buffer.alloc(bytes));
      if (complete) await writeFile(path.join(dir, ".gitops-runner-complete"), "");
      const when = new Date(Date.now() - daysAgo * 86_400_000);
      await utimes(dir, when, when);
    };
    await entry("aaaa-oldest", 40_000, 30);
    await entry("bbbb-older", 40_000, 20);
    await entry("cccc-recent", 40_000, 2);
    await entry("dddd-in-progress.partial", 40_000, 40, false);

    const served = await startServe(
      await writeServeConfig(data, {
        repository: { url: repo.dir },
        pollIntervalSeconds: 3600,
        retention: { days: 30 },
        cache: { maxBytes: 50_000 },
      }),
    );
    await vi.waitFor(
      () =>
        expect(
          query<{ id: string }>(data, "SELECT id FROM runs WHERE started_at < '2021-01-01'").map(
            (row) => row.id,
          ),
        ).toEqual(["last-apply", "last-drift"]),
      WAIT,
    );
    expect(query(data, "SELECT id FROM runs WHERE id = 'recent-plan'")).toHaveLength(1);
    expect(query(data, "SELECT id FROM events WHERE id = 'old-event'")).toEqual([]);
    await vi.waitFor(async () => {
      const { readdir } = await import("node:fs/promises");
      expect((await readdir(cache)).sort()).toEqual(["cccc-recent", "dddd-in-progress.partial"]);
    }, WAIT);

    const metrics = await (await fetch(new URL("/metrics", served.url))).text();
    const size = Number(/^gitops_runner_data_dir_bytes (\d+)$/m.exec(metrics)?.[1]);
    expect(size).toBeGreaterThan(80_000);
    expect(await readFile(path.join(data, "runner.db"))).toBeDefined();
    expect(await served.stop()).toBe(0);
  });
});
