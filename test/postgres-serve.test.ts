import pg from "pg";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { runCli } from "./support/cli.ts";
import { PG_PASSWORD, usePostgres } from "./support/postgres.ts";
import { dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";

const postgres = usePostgres();
let databases = 0;

const app = {
  network: { vpc: { input: { cidr: "10.0.0.0/16" } } },
  service: { api: { input: { replicas: 2 }, reads: "network.vpc" } },
};

describe("serve on PostgreSQL", () => {
  it("moves an embedded-default installation into PostgreSQL with nothing lost; the next drift check is clean", async () => {
    const repo = await TestRepo.create(app);
    const data = await dataDir();
    const applied = await runCli(["apply", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(applied.code).toBe(0);
    expect(applied.json.stacks.map((stack: { status: string }) => stack.status)).toEqual([
      "applied",
      "applied",
    ]);

    const url = await postgres().createDatabase(`moved_${++databases}`);
    const config = await writeServeConfig(data, {
      repository: { url: repo.dir },
      store: { type: "postgres", urlEnv: "DATABASE_URL" },
      pollIntervalSeconds: 3600,
    });
    const moved = await runCli(["migrate-store", "--config", config, "--data-dir", data, "--json"], {
      DATABASE_URL: url,
    });
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.json.records).toMatchObject({ runs: 3, stacks: 2 });
    expect(moved.json.states).toHaveLength(2);
    expect(moved.json.appliedFolders.sort()).toEqual(["network", "service"]);

    // A replica with a data directory of its own: everything it needs is in the database.
    const replicaData = await dataDir();
    const replicaConfig = await writeServeConfig(replicaData, {
      repository: { url: repo.dir },
      store: { type: "postgres", urlEnv: "DATABASE_URL" },
      pollIntervalSeconds: 3600,
    });
    const served = await startServe(replicaConfig, { DATABASE_URL: url });
    await vi.waitFor(
      async () =>
        expect(
          ((await served.json("/api/stacks")).stacks as { state: string }[]).map((view) => view.state),
        ).toEqual(["in-sync", "in-sync"]),
      { timeout: 60_000, interval: 250 },
    );
    expect((await served.api("/api/drift", { method: "POST" })).status).toBe(202);
    const drift = await vi.waitFor(
      async () => {
        const { runs } = await served.json<{ runs: { stack: string; status: string; result: string }[] }>(
          "/api/runs?kind=drift",
        );
        expect(runs).toHaveLength(2);
        expect(runs.every((run) => run.status !== "running")).toBe(true);
        return runs;
      },
      { timeout: 90_000, interval: 250 },
    );
    expect(drift.map((run) => `${run.stack} ${run.status} ${run.result}`).sort()).toEqual([
      "network succeeded no-changes",
      "service succeeded no-changes",
    ]);
    const { runs } = await served.json<{ runs: unknown[] }>("/api/runs?kind=apply");
    expect(runs).toHaveLength(2);
    expect(await served.stop()).toBe(0);
  });

  it("refuses to start on an unreachable database, naming its host and never the password", async () => {
    const repo = await TestRepo.create(app);
    const data = await dataDir();
    const config = await writeServeConfig(data, {
      repository: { url: repo.dir },
      store: { type: "postgres", urlEnv: "DATABASE_URL" },
    });
    const url = `postgres://runner:${PG_PASSWORD}@127.0.0.1:1/nowhere`;
    const result = await runCli(["serve", "--config", config], { DATABASE_URL: url });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("database 127.0.0.1:1/nowhere: cannot connect");
    expect(result.stderr).not.toContain(PG_PASSWORD);
  });

  it("when the database goes away, fails readiness and pauses without crashing, then resumes", async () => {
    const server = postgres();
    const url = await server.createDatabase(`lost_${++databases}`);
    const repo = await TestRepo.create(app);
    const data = await dataDir();
    const served = await startServe(
      await writeServeConfig(data, {
        repository: { url: repo.dir },
        store: { type: "postgres", urlEnv: "DATABASE_URL" },
        pollIntervalSeconds: 1,
      }),
      { DATABASE_URL: url },
    );
    const ready = async () => (await fetch(new URL("/readyz", served.url))).status;
    await vi.waitFor(async () => expect(await ready()).toBe(200), { timeout: 60_000, interval: 250 });

    await server.stop();
    onTestFinished(() => server.start().catch(() => undefined));
    await vi.waitFor(async () => expect(await ready()).toBe(503), { timeout: 30_000, interval: 250 });
    await vi.waitFor(
      () =>
        expect(served.logs.map((entry) => entry.msg)).toContain(
          "the database does not answer: work is paused",
        ),
      { timeout: 30_000, interval: 250 },
    );
    expect((await fetch(new URL("/healthz", served.url))).status).toBe(200);
    expect(served.process.exitCode).toBeNull();

    await server.start();
    await repo.setApp({ ...app, service: { api: { input: { replicas: 3 }, reads: "network.vpc" } } });
    const head = await repo.commit("Scale");
    await vi.waitFor(
      async () => {
        expect(await ready()).toBe(200);
        const views = (await served.json("/api/stacks")).stacks as {
          name: string;
          lastAppliedCommit?: string;
        }[];
        expect(views.find((view) => view.name === "service")?.lastAppliedCommit).toBe(head);
      },
      { timeout: 90_000, interval: 250 },
    );
    expect(served.logs.map((entry) => entry.msg)).toContain("the database answers again: work resumes");
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query("SELECT kind, stack, trigger FROM runs WHERE status = 'running'");
    await client.end();
    expect(rows).toEqual([]);
    expect(await served.stop()).toBe(0);
  });
});
