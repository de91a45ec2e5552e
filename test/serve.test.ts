import { createHmac } from "node:crypto";
import { access, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { startFakeGitHub } from "./support/fake-github.ts";
import { githubForgeConfig } from "./support/github-deliveries.ts";
import { type AppSpec, dataDir, TestRepo } from "./support/repo.ts";
import { queryDb, READ_TOKEN, startServe, writeServeConfig } from "./support/serve.ts";

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

const query = queryDb;

const app = (replicas: number): AppSpec => ({ web: { service: { input: { replicas } } } });

function signed(body: string): string {
  return `sha256=${createHmac("sha256", WEBHOOK_SECRET).update(body).digest("hex")}`;
}

/** POSTs a JSON webhook delivery; the status and the parsed answer. */
async function post(
  base: string,
  route: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: { eventId: string; duplicate: boolean } }> {
  const response = await fetch(new URL(route, base), {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return {
    status: response.status,
    body: (await response.json()) as { eventId: string; duplicate: boolean },
  };
}

/** One stack whose only resource, on create, waits while the file `hold` exists (two minutes at most). */
function heldApp(hold: string, started: string): string {
  const wait = `touch ${started}; i=0; while [ -e ${hold} ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done`;
  return `import { App, DataResource, TerraformStack } from "cdktf";

const app = new App();
const web = new TerraformStack(app, "web");
new DataResource(web, "held", {
  input: { replicas: 1 },
  provisioners: [{ type: "local-exec", command: ${JSON.stringify(wait)} }],
});
app.synth();
`;
}

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

  it("answers a burst of 100 webhooks and pushes while a poll is queued with that poll, and polls once", async () => {
    // The first apply waits in a provisioner for as long as `hold` exists: the one worker is
    // busy, so the burst's first webhook queues a poll and the others find it queued.
    const repo = await TestRepo.create(app(1));
    const data = await dataDir();
    const hold = path.join(data, "hold");
    const started = path.join(data, "apply-started");
    await writeFile(hold, "");
    await repo.write("main.ts", heldApp(hold, started));
    await repo.commit("Apply web slowly");
    const github = await startFakeGitHub({ owner: "acme", repo: "infra", token: "forge-token" });
    onTestFinished(() => github.close());
    const served = await startServe(
      await writeConfig(data, {
        repository: { url: repo.dir },
        pollIntervalSeconds: 3600,
        workers: 1,
        webhooks: { generic: { secretEnv: "TEST_WEBHOOK_SECRET" } },
        forge: githubForgeConfig(github.url, {
          token: "TEST_FORGE_TOKEN",
          webhookSecret: "TEST_WEBHOOK_SECRET",
        }),
      }),
      { TEST_WEBHOOK_SECRET: WEBHOOK_SECRET, TEST_FORGE_TOKEN: "forge-token" },
    );
    await vi.waitFor(() => access(started), { timeout: 120_000, interval: 200 });

    const generic = JSON.stringify({ repository: repo.dir });
    const push = JSON.stringify({ ref: "refs/heads/main", after: await repo.head() });
    const deliver = (index: number) =>
      index % 10 === 0
        ? post(served.url, "/webhooks/github", push, {
            "x-hub-signature-256": signed(push),
            "x-github-delivery": `push-${index}`,
            "x-github-event": "push",
          })
        : post(served.url, "/webhooks/generic", generic, {
            "x-gitops-runner-signature": signed(generic),
            "x-gitops-runner-delivery": `delivery-${index}`,
          });
    const reads = Array.from({ length: 100 }, (_, index) =>
      served.api(index % 2 === 0 ? "/api/stacks" : "/api/runs", { token: READ_TOKEN }),
    );
    const [answers, readAnswers] = await Promise.all([
      Promise.all(Array.from({ length: 100 }, (_, index) => deliver(index))),
      Promise.all(reads),
    ]);

    expect(readAnswers.map((response) => response.status)).toEqual(readAnswers.map(() => 200));
    expect(answers.map((answer) => answer.status)).toEqual(answers.map(() => 202));
    const polls = () =>
      query<{ id: string; status: string; delivery_id: string }>(
        data,
        "SELECT id, status, delivery_id FROM events WHERE kind = 'poll' AND source LIKE 'webhook:%'",
      );
    const [queued] = polls();
    expect(polls()).toEqual([expect.objectContaining({ status: "queued" })]);
    expect(new Set(answers.map((answer) => answer.body.eventId))).toEqual(new Set([queued?.id]));

    await rm(hold);
    await vi.waitFor(
      () =>
        expect(query(data, "SELECT id FROM events WHERE status IN ('queued', 'running')")).toHaveLength(0),
      { timeout: 120_000, interval: 200 },
    );
    expect(polls()).toEqual([expect.objectContaining({ id: queued?.id, status: "done" })]);
    // The poll found the commit already applied: nothing else was queued.
    expect(query(data, "SELECT id FROM events WHERE kind = 'apply'")).toHaveLength(1);

    // An exact repeat is answered with its event; the same body under a new id polls once more.
    const delivery = queued?.delivery_id ?? "";
    const repeatHeaders = delivery.startsWith("push-")
      ? { "x-hub-signature-256": signed(push), "x-github-delivery": delivery, "x-github-event": "push" }
      : { "x-gitops-runner-signature": signed(generic), "x-gitops-runner-delivery": delivery };
    const repeat = await post(
      served.url,
      delivery.startsWith("push-") ? "/webhooks/github" : "/webhooks/generic",
      delivery.startsWith("push-") ? push : generic,
      repeatHeaders,
    );
    expect(repeat).toEqual({ status: 202, body: { eventId: queued?.id, duplicate: true } });
    const replay = await post(served.url, "/webhooks/generic", generic, {
      "x-gitops-runner-signature": signed(generic),
      "x-gitops-runner-delivery": "replayed-under-a-new-id",
    });
    expect(replay.body.duplicate).toBe(false);
    expect(polls()).toHaveLength(2);
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
    const webhook = (headers: Record<string, string>, payload: string) =>
      fetch(new URL("/webhooks/generic", served.url), {
        method: "POST",
        headers: { "content-type": "application/json", "x-gitops-runner-delivery": "refused", ...headers },
        body: payload,
      }).then((response) => response.status);
    expect(await webhook({ "x-gitops-runner-signature": "sha256=00" }, body)).toBe(401);
    expect(await webhook({}, body)).toBe(401);
    expect(
      await webhook({ "x-gitops-runner-signature": signed(body) }, body.replace("}", ', "extra": 1}')),
    ).toBe(401);
    const malformed = "{not json";
    expect(await webhook({ "x-gitops-runner-signature": signed(malformed) }, malformed)).toBe(400);

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
