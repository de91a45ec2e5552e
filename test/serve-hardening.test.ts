import { execFile } from "node:child_process";
import { once } from "node:events";
import { access, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { promisify } from "node:util";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { runCli } from "./support/cli.ts";
import { dataDir, TestRepo } from "./support/repo.ts";
import { READ_TOKEN, startServe, WRITE_TOKEN, writeServeConfig } from "./support/serve.ts";

const run = promisify(execFile);
const SECRET = "db-password-4c9e1f7a";

function rows<T>(data: string, sql: string): T[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

/** A receiver of the runner's signed JSON notifications. */
async function receiver(): Promise<{ url: string; bodies: string[] }> {
  const bodies: string[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      bodies.push(Buffer.concat(chunks).toString("utf8"));
      response.writeHead(204).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return { url: `http://127.0.0.1:${address.port}/hooks`, bodies };
}

/** A cdktf app of one stack whose resource runs `command` when it is created. */
function appRunning(command: string): string {
  return [
    'import { App, DataResource, TerraformStack } from "cdktf";',
    "const app = new App();",
    'const stack = new TerraformStack(app, "db");',
    `new DataResource(stack, "migrate", { input: 1, provisioners: [{ type: "local-exec", command: ${JSON.stringify(command)} }] });`,
    "app.synth();",
    "",
  ].join("\n");
}

describe("serve keeps secrets and its data directory to itself", () => {
  it("replaces every value it injects by (redacted) in what it stores, serves, logs and notifies", async () => {
    const repo = await TestRepo.create({});
    await repo.write("main.ts", appRunning('echo "connecting with $TF_VAR_db_password"; exit 3'));
    await repo.commit("A migration that fails and prints its secret");
    const data = await dataDir();
    const hooks = await receiver();
    const served = await startServe(
      await writeServeConfig(data, {
        repository: { url: repo.dir },
        pollIntervalSeconds: 3600,
        env: { TF_VAR_db_password: SECRET },
        notifications: [{ type: "webhook", url: hooks.url, secretEnv: "TEST_NOTIFY_SECRET" }],
      }),
      { TEST_NOTIFY_SECRET: "notify-secret-0123" },
    );
    await vi.waitFor(() => expect(hooks.bodies.some((body) => body.includes('"apply-failed"'))).toBe(true), {
      timeout: 90_000,
      interval: 250,
    });

    const { runs } = await served.json<{ runs: { id: string; kind: string }[] }>("/api/runs");
    const apply = runs.find((candidate) => candidate.kind === "apply");
    if (!apply) throw new Error("no apply run");
    const detail = await (await served.api(`/api/runs/${apply.id}`)).text();
    const page = await (
      await fetch(new URL(`/runs/${apply.id}`, served.url), {
        headers: { accept: "text/html", authorization: `Bearer ${READ_TOKEN}` },
      })
    ).text();
    expect(detail).toContain("connecting with (redacted)");
    expect(page).toContain("connecting with (redacted)");
    for (const text of [JSON.stringify(runs), detail, page, ...hooks.bodies])
      expect(text).not.toContain(SECRET);
    expect(await served.stop()).toBe(0);
    expect(JSON.stringify(served.logs)).not.toContain(SECRET);
    for (const file of await readdir(data)) {
      if (file.startsWith("runner.db"))
        expect((await readFile(path.join(data, file))).includes(SECRET)).toBe(false);
    }
  });

  it("keeps the data directory private (folders 0700, files 0600) with no output left outside it", async () => {
    const repo = await TestRepo.create({ web: { service: { input: { size: 1 } } } });
    const data = await dataDir();
    const applied = await runCli(["apply", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(applied.code).toBe(0);
    const state = path.join(data, "state");
    const [repoId] = await readdir(state);
    const stateFile = path.join(state, repoId as string, "_", "web", "terraform.tfstate");
    const mode = async (file: string) => (await stat(file)).mode & 0o777;
    expect(await mode(data)).toBe(0o700);
    expect(await mode(path.join(data, "runner.db"))).toBe(0o600);
    expect(await mode(stateFile)).toBe(0o600);
    expect(await mode(path.dirname(stateFile))).toBe(0o700);
    expect(await mode(path.join(data, "applied", repoId as string, "_", "web"))).toBe(0o700);
    expect(await mode(path.join(data, "applied", repoId as string, "_", "web", "cdk.tf.json"))).toBe(0o600);
    // Children's output is captured inside the data directory and removed when each step ends.
    expect(await readdir(path.join(data, "tmp"))).toEqual([]);
    expect(await readdir(path.join(data, "work"))).toEqual([]);
  });
});

describe("serve owns its data directory, and recovers in the open", () => {
  it("refuses a second serve on the same data directory before it changes anything", async () => {
    const data = await dataDir();
    const marker = path.join(data, "creates.log");
    const repo = await TestRepo.create({
      queue: { jobs: { input: { size: 1 }, slowCreate: 5, createMarker: marker } },
    });
    const config = await writeServeConfig(data, { repository: { url: repo.dir }, pollIntervalSeconds: 1 });
    const first = await startServe(config);
    await vi.waitFor(() => access(marker), { timeout: 60_000, interval: 100 });

    const second = await runCli(["serve", "--config", config], {
      GITOPS_RUNNER_API_TOKEN: WRITE_TOKEN,
    });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(
      new RegExp(
        `data directory ${data} is in use by another gitops-runner process \\(pid ${first.process.pid}, serve, since `,
      ),
    );
    await vi.waitFor(
      async () =>
        expect((await first.json("/api/stacks")).stacks[0].lastAppliedCommit).toBe(await repo.head()),
      { timeout: 60_000, interval: 200 },
    );
    expect(rows(data, "SELECT id FROM runs WHERE status = 'interrupted'")).toEqual([]);
    expect(await first.stop()).toBe(0);
  });

  it("answers health at once after kill -9, is ready only once recovery ends, and cleans up what the dead one left", async () => {
    const data = await dataDir();
    const marker = path.join(data, "creates.log");
    const repo = await TestRepo.create({
      queue: { jobs: { input: { size: 1 }, slowCreate: 12, createMarker: marker } },
    });
    const config = await writeServeConfig(data, { repository: { url: repo.dir }, pollIntervalSeconds: 1 });
    const first = await startServe(config);
    await vi.waitFor(() => access(marker), { timeout: 60_000, interval: 100 });
    const leftovers = await readdir(path.join(data, "work"));
    expect(leftovers.length).toBeGreaterThan(0);
    first.process.kill("SIGKILL");
    await once(first.process, "exit");

    const second = await startServe(config);
    // Listening means the port is bound; recovery waits for the dead runner's terraform meanwhile.
    expect((await fetch(new URL("/healthz", second.url))).status).toBe(200);
    const early = await fetch(new URL("/readyz", second.url));
    expect(early.status).toBe(503);
    expect(await early.json()).toMatchObject({ ready: false, checks: { recovered: false } });
    await vi.waitFor(async () => expect((await fetch(new URL("/readyz", second.url))).status).toBe(200), {
      timeout: 90_000,
      interval: 250,
    });

    const now = await readdir(path.join(data, "work"));
    for (const folder of leftovers) expect(now).not.toContain(folder);
    const [mirror] = await readdir(path.join(data, "repos"));
    const { stdout } = await run("git", ["worktree", "list", "--porcelain"], {
      cwd: path.join(data, "repos", mirror as string),
    });
    for (const folder of leftovers) expect(stdout).not.toContain(folder);
    const [interrupted] = rows<{ log: string }>(
      data,
      "SELECT log FROM runs WHERE status = 'interrupted' AND kind = 'apply'",
    );
    expect(interrupted?.log).toContain("==> init");
    expect(await second.stop()).toBe(0);
  });
});

describe("serve on a full disk", () => {
  it("fails readiness and pauses while the data directory is full, loses nothing, and resumes when space returns", async () => {
    const data = await dataDir();
    // A small file system of its own for the data directory (the dependency cache stays outside it).
    const mount = path.join(data, "small");
    await mkdir(mount);
    await run("mount", ["-t", "tmpfs", "-o", "size=48m", "tmpfs", mount]);
    onTestFinished(() => run("umount", ["-l", mount]).then(() => undefined));
    const small = path.join(mount, "data");
    await mkdir(path.join(small, "cache"), { recursive: true });
    await run("ln", ["-s", path.join(data, "cache", "npm"), path.join(small, "cache", "npm")]);

    const repo = await TestRepo.create({ web: { service: { input: { size: 1 } } } });
    const served = await startServe(
      await writeServeConfig(small, {
        repository: { url: repo.dir },
        pollIntervalSeconds: 1,
        minFreeMegabytes: 8,
      }),
    );
    const ready = async () => (await fetch(new URL("/readyz", served.url))).status;
    await vi.waitFor(async () => expect(await ready()).toBe(200), { timeout: 60_000, interval: 250 });
    await vi.waitFor(
      async () =>
        expect((await served.json("/api/stacks")).stacks[0].lastAppliedCommit).toBe(await repo.head()),
      { timeout: 60_000, interval: 250 },
    );

    const filler = path.join(mount, "filler");
    await run("fallocate", ["-l", "44m", filler]).catch(() =>
      run("dd", ["if=/dev/zero", `of=${filler}`, "bs=1M", "count=44"]),
    );
    await vi.waitFor(async () => expect(await ready()).toBe(503), { timeout: 30_000, interval: 250 });
    await repo.setApp({ web: { service: { input: { size: 2 } } } });
    const pushed = await repo.commit("Grow while the disk is full");
    // Paused: no work is taken while the disk is full.
    const before = await served.json<{ runs: unknown[] }>("/api/runs?kind=apply");
    await vi.waitFor(
      () =>
        expect(served.logs.map((entry) => entry.msg)).toContain(
          "the data directory cannot take writes: work is paused",
        ),
      { timeout: 30_000, interval: 250 },
    );
    expect((await served.json<{ runs: unknown[] }>("/api/runs?kind=apply")).runs).toHaveLength(
      before.runs.length,
    );

    await rm(filler);
    await vi.waitFor(
      async () => {
        expect(await ready()).toBe(200);
        expect((await served.json("/api/stacks")).stacks[0].lastAppliedCommit).toBe(pushed);
      },
      { timeout: 90_000, interval: 250 },
    );
    expect(served.process.exitCode).toBeNull();
    expect(served.logs.map((entry) => entry.msg)).toContain(
      "the data directory takes writes again: work resumes",
    );
    expect(await served.stop()).toBe(0);
  });
});

void writeFile;
