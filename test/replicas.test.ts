import { access, readFile } from "node:fs/promises";
import path from "node:path";
import pg from "pg";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { startFakeGitHub } from "./support/fake-github.ts";
import { deliverGitHub, githubForgeConfig, githubPullRequest } from "./support/github-deliveries.ts";
import { usePostgres } from "./support/postgres.ts";
import { type AppSpec, dataDir, TestRepo } from "./support/repo.ts";
import { type Served, startServe, writeServeConfig } from "./support/serve.ts";

/**
 * Two `serve` processes on one real PostgreSQL, watching one repository:
 * the promises of the runner hold across replicas.
 */
const postgres = usePostgres();
let databases = 0;

interface Replicas {
  readonly repo: TestRepo;
  readonly url: string;
  readonly replicas: Served[];
  readonly data: string[];
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
}

async function twoReplicas(
  spec: AppSpec,
  extra: Record<string, unknown> = {},
  env: Record<string, string> = {},
  files: Record<string, string> = {},
): Promise<Replicas> {
  const url = await postgres().createDatabase(`replicas_${++databases}`);
  const repo = await TestRepo.create(spec);
  for (const [file, content] of Object.entries(files)) await repo.write(file, content);
  if (Object.keys(files).length > 0) await repo.commit("Policy");
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  onTestFinished(() => client.end());
  const data = [await dataDir(), await dataDir()];
  const replicas: Served[] = [];
  for (const folder of data) {
    const config = await writeServeConfig(folder, {
      repository: { url: repo.dir },
      store: { type: "postgres", urlEnv: "DATABASE_URL" },
      pollIntervalSeconds: 1,
      // Short enough for a quick take-over after kill -9, long enough for a loaded machine.
      leaseSeconds: 10,
      drift: { tickSeconds: 1, jitterPercent: 0 },
      ...extra,
    });
    replicas.push(await startServe(config, { DATABASE_URL: url, ...env }));
  }
  return {
    repo,
    url,
    replicas,
    data,
    query: async <T>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as T[],
  };
}

async function appliedEverywhere(setup: Replicas, commit: string, stacks: readonly string[]): Promise<void> {
  await vi.waitFor(
    async () => {
      const views = (await setup.replicas[setup.replicas.length - 1]?.json("/api/stacks"))?.stacks as {
        name: string;
        lastAppliedCommit?: string;
      }[];
      for (const stack of stacks) {
        expect(views.find((view) => view.name === stack)?.lastAppliedCommit).toBe(commit);
      }
    },
    { timeout: 120_000, interval: 250 },
  );
}

describe("two replicas on PostgreSQL", () => {
  it("apply ten quick commits once each at most, in order, ending at the newest", async () => {
    const spec = (version: number): AppSpec => ({
      web: { service: { input: { version } } },
      db: { table: { input: { version } } },
    });
    const setup = await twoReplicas(spec(0));
    await appliedEverywhere(setup, await setup.repo.head(), ["web", "db"]);
    for (let version = 1; version <= 10; version++) {
      await setup.repo.setApp(spec(version));
      await setup.repo.commit(`Version ${version}`);
    }
    const newest = await setup.repo.head();
    await appliedEverywhere(setup, newest, ["web", "db"]);

    const order = (await setup.repo.git("rev-list", "--reverse", "HEAD")).trim().split("\n");
    const applied = await setup.query<{ stack: string; commit_sha: string }>(
      "SELECT stack, commit_sha FROM runs WHERE kind = 'apply' AND result = 'applied' ORDER BY started_at",
    );
    for (const stack of ["web", "db"]) {
      const commits = applied.filter((run) => run.stack === stack).map((run) => run.commit_sha);
      expect(new Set(commits).size).toBe(commits.length);
      const positions = commits.map((commit) => order.indexOf(commit));
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
      expect(commits.at(-1)).toBe(newest);
    }
    // One apply of a stack at a time, across both replicas: no two apply runs of a stack overlap.
    const runs = await setup.query<{ stack: string; started_at: string; ended_at: string }>(
      "SELECT stack, started_at, ended_at FROM runs WHERE kind = 'apply' ORDER BY started_at",
    );
    for (const stack of ["web", "db"]) {
      const spans = runs.filter((run) => run.stack === stack);
      for (let index = 1; index < spans.length; index++) {
        expect(Date.parse(spans[index]?.started_at ?? "")).toBeGreaterThanOrEqual(
          Date.parse(spans[index - 1]?.ended_at ?? ""),
        );
      }
    }
    for (const replica of setup.replicas) expect(await replica.stop()).toBe(0);
  });

  it("after kill -9 of the replica that applies, the other finishes the work: interrupted, re-checked, state intact", async () => {
    const data = await dataDir();
    const marker = path.join(data, "creates.log");
    const setup = await twoReplicas(
      { queue: { jobs: { input: { size: 1 }, slowCreate: 6, createMarker: marker } } },
      { leaseSeconds: 4 },
    );
    await vi.waitFor(() => access(marker), { timeout: 90_000, interval: 100 });
    const [applying] = await setup.query<{ claimed_by: string }>(
      "SELECT claimed_by FROM events WHERE kind = 'apply' AND status = 'running'",
    );
    const pid = Number(applying?.claimed_by.split(":")[1]);
    const victim = setup.replicas.find((replica) => replica.process.pid === pid);
    const survivor = setup.replicas.find((replica) => replica !== victim);
    if (!victim || !survivor) throw new Error(`no replica runs the apply (holder ${applying?.claimed_by})`);
    victim.process.kill("SIGKILL");

    const head = await setup.repo.head();
    await vi.waitFor(
      async () => {
        const views = (await survivor.json("/api/stacks")).stacks as { lastAppliedCommit?: string }[];
        expect(views[0]?.lastAppliedCommit).toBe(head);
        const runs = await setup.query<{ kind: string; status: string; trigger: string }>(
          "SELECT kind, status, trigger FROM runs WHERE stack = 'queue'",
        );
        expect(runs).toContainEqual({ kind: "apply", status: "interrupted", trigger: "start" });
        expect(runs).toContainEqual({ kind: "plan", status: "succeeded", trigger: "recovery" });
      },
      { timeout: 180_000, interval: 500 },
    );
    // The killed replica's terraform finished its create; nothing was created twice.
    expect((await readFile(marker, "utf8")).trim().split("\n")).toEqual(["created"]);
    const states = await setup.query<{ data: string }>(
      `SELECT data FROM ${await schemaOf(setup, "queue")}.states WHERE name = 'default'`,
    );
    const resources = JSON.parse(states[0]?.data ?? "{}").resources as { mode: string }[];
    expect(resources.filter((resource) => resource.mode === "managed")).toHaveLength(1);
    expect(await survivor.stop()).toBe(0);
  });

  it("run each scheduled drift check once per due time across both replicas", async () => {
    const setup = await twoReplicas(
      { web: { service: { input: { size: 1 } } }, db: { table: { input: { size: 1 } } } },
      {},
      {},
      { "gitops-runner.policy.json": JSON.stringify({ default: { driftSchedule: "10s" } }) },
    );
    await appliedEverywhere(setup, await setup.repo.head(), ["web", "db"]);
    await vi.waitFor(
      async () => {
        const [row] = await setup.query<{ n: string }>(
          "SELECT count(*) AS n FROM runs WHERE kind = 'drift' AND status = 'succeeded'",
        );
        expect(Number(row?.n)).toBeGreaterThanOrEqual(6);
      },
      { timeout: 120_000, interval: 500 },
    );
    const drift = await setup.query<{ stack: string; started_at: string }>(
      "SELECT stack, started_at FROM runs WHERE kind = 'drift' ORDER BY started_at",
    );
    for (const stack of ["web", "db"]) {
      const starts = drift.filter((run) => run.stack === stack).map((run) => Date.parse(run.started_at));
      expect(starts.length).toBeGreaterThanOrEqual(2);
      for (let index = 1; index < starts.length; index++) {
        expect((starts[index] as number) - (starts[index - 1] as number)).toBeGreaterThanOrEqual(9_000);
      }
    }
    for (const replica of setup.replicas) expect(await replica.stop()).toBe(0);
  });

  it("plan a pull request once, whichever replica its webhook reaches, however often it arrives", async () => {
    const secret = "forge-webhook-secret";
    const token = "forge-token-abc123";
    const forge = await startFakeGitHub({ owner: "acme", repo: "infra", token });
    onTestFinished(() => forge.close());
    const setup = await twoReplicas(
      { web: { service: { input: { size: 1 } } } },
      {
        pollIntervalSeconds: 3600,
        forge: githubForgeConfig(forge.url),
      },
      { TEST_FORGE_TOKEN: token, TEST_FORGE_SECRET: secret },
    );
    await appliedEverywhere(setup, await setup.repo.head(), ["web"]);
    // The apply's event ends after the stack's record says applied: once it ends, it no longer
    // re-plans the open pull requests, which would count as a second plan of the one below.
    await vi.waitFor(
      async () =>
        expect(await setup.query("SELECT id FROM events WHERE status IN ('queued', 'running')")).toEqual([]),
      { timeout: 60_000, interval: 250 },
    );
    await setup.repo.checkout("bigger", true);
    await setup.repo.setApp({ web: { service: { input: { size: 2 } } } });
    const head = await setup.repo.commit("Bigger");
    forge.addPullRequest({ number: 3, headSha: head, headRef: "bigger" });

    const payload = githubPullRequest("opened", 3, head);
    const deliver = (replica: Served) =>
      deliverGitHub(replica.url, secret, { event: "pull_request", id: "delivery-3", payload }).then(
        (response) => response.status,
      );
    const [first, second] = setup.replicas as [Served, Served];
    expect(await Promise.all([deliver(first), deliver(second), deliver(first)])).toEqual([202, 202, 202]);

    await vi.waitFor(
      () =>
        expect(forge.statuses(head).map((status) => `${status.context} ${status.state}`)).toContain(
          "gitops-runner/plan success",
        ),
      { timeout: 90_000, interval: 250 },
    );
    const plans = await setup.query<{ id: string }>("SELECT id FROM events WHERE kind = 'pr-plan'");
    expect(plans).toHaveLength(1);
    const planRuns = await setup.query<{ id: string }>(
      "SELECT id FROM runs WHERE kind = 'plan' AND commit_sha = $1",
      [head],
    );
    expect(planRuns).toHaveLength(1);
    expect(forge.comments(3)).toHaveLength(1);
    forge.assertNoUnexpected();
    for (const replica of setup.replicas) expect(await replica.stop()).toBe(0);
  });
});

/** The pg backend's schema of a stack, as the runner names it (found by the state it holds). */
async function schemaOf(setup: Replicas, stack: string): Promise<string> {
  const rows = await setup.query<{ nspname: string }>(
    "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
    [`gitops_${stack}_%`],
  );
  if (rows.length !== 1) throw new Error(`expected one state schema for ${stack}, found ${rows.length}`);
  return rows[0]?.nspname as string;
}
