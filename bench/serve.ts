/**
 * `serve` as an operator sees it, in figures:
 *   rss      idle RSS on the embedded default after its first apply (target: under 120 MB);
 *   webhook  from a signed pull-request webhook to the start of its plan (the plan's pending
 *            status), idle and while another stack is applying (target: under 1 s);
 *   history  idle CPU, RSS and the latency of /api/stacks and /api/runs?limit=1 with 20,000 runs
 *            (5,000 per stack) beside the same runner with an empty history (target: within 1.2x).
 * Usage: node bench/serve.ts [rss|webhook|history ...]   (all three by default)
 */
import { randomUUID } from "node:crypto";
import { access, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { setTimeout as delay } from "node:timers/promises";
import { startFakeGitHub } from "../test/support/fake-github.ts";
import { deliverGitHub, githubForgeConfig, githubPullRequest } from "../test/support/github-deliveries.ts";
import { serveConfig, stacksInSync, startServe, TOKEN, until } from "./served.ts";
import {
  appSource,
  baseEnv,
  commitAll,
  createRepo,
  engineBinary,
  median,
  out,
  printHeader,
  printTable,
  progress,
  runMain,
  tempRoot,
} from "./support.ts";

const USAGE = "usage: node bench/serve.ts [rss|webhook|history ...]";

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

/** CPU seconds (user + system) the process has used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// --- rss ---------------------------------------------------------------------------

async function idleRss(root: string): Promise<void> {
  // Side by side: Node's compile cache off (every start strips the TypeScript with a WebAssembly
  // transformer), on with an empty cache (a start with no fill before it), and on with the cache
  // that start filled (as after the set-up's or the image build's fill, or any later start).
  const cache = path.join(root, "compile-cache");
  const twins: [string, Record<string, string>][] = [
    ["compile cache off", { NODE_DISABLE_COMPILE_CACHE: "1" }],
    ["compile cache on, empty", { NODE_COMPILE_CACHE: cache }],
    ["compile cache on, filled", { NODE_COMPILE_CACHE: cache }],
  ];
  const rows: string[][] = [];
  for (const [index, [name, env]] of twins.entries()) {
    progress(`rss: ${name}: serve on the embedded default (the demo stacks), until its first apply is done`);
    const data = path.join(root, `embedded-${index}`);
    const served = await startServe([], {
      GITOPS_RUNNER_DATA_DIR: data,
      GITOPS_RUNNER_API_TOKEN: TOKEN,
      ...env,
    });
    try {
      await until("the demo applied", () => stacksInSync(served, 1));
      progress(`rss: ${name}: idle for 20 s`);
      const samples: number[] = [];
      for (let second = 0; second < 20; second++) {
        await delay(1000);
        samples.push(await rssMb(served.process.pid as number));
      }
      rows.push([name, median(samples).toFixed(0), Math.max(...samples).toFixed(0), "< 120 MB"]);
    } finally {
      await served.stop();
    }
  }
  out(
    `\nidle RSS of serve (node runner/main.js) on the embedded default after its first apply, sampled each second for 20 s\n`,
  );
  printTable(["", "median MB", "max MB", "target"], rows);
}

// --- webhook ---------------------------------------------------------------------------

async function webhookLatency(root: string): Promise<void> {
  const secret = "bench-webhook-secret";
  const forge = await startFakeGitHub({ owner: "acme", repo: "infra", token: "bench-forge-token" });
  const repo = path.join(root, "webhook-repo");
  const marker = path.join(root, "slow-apply-started");
  const spec = (size: number) => ({ a: { jobs: { size: 1 } }, b: { web: { size } } });
  await createRepo(repo, spec(1));
  const { config } = await serveConfig(root, "webhook", repo, {
    pollIntervalSeconds: 1,
    shutdownGraceSeconds: 1,
    forge: githubForgeConfig(forge.url, { token: "BENCH_FORGE_TOKEN", webhookSecret: "BENCH_FORGE_SECRET" }),
  });
  const served = await startServe(["--config", config], {
    GITOPS_RUNNER_API_TOKEN: TOKEN,
    BENCH_FORGE_TOKEN: "bench-forge-token",
    BENCH_FORGE_SECRET: secret,
  });
  const git = async (...args: string[]) => {
    const { run } = await import("./support.ts");
    return (await run("git", args, { cwd: repo, env: baseEnv })).stdout.trim();
  };
  try {
    progress("webhook: waiting for the first apply");
    await until("the first apply", () => stacksInSync(served, 2));
    // Stack a's resource that sleeps 300 s when created, once the busy samples start: kept by
    // every pull request after it, which changes stack b alone.
    let slowA = false;
    const source = (size: number) =>
      slowA
        ? appSource(spec(size)).replace(
            "app.synth();",
            `new DataResource(s_a, "slow", { input: 1, provisioners: [{ type: "local-exec", command: "touch ${marker}; sleep 300" }] });\napp.synth();`,
          )
        : appSource(spec(size));
    let number = 100;
    const measure = async (): Promise<number> => {
      number++;
      await git("checkout", "--quiet", "-b", `change-${number}`, "main");
      await writeFile(path.join(repo, "main.ts"), source(number));
      await commitAll(repo, `Change ${number}`);
      const head = await git("rev-parse", "HEAD");
      await git("checkout", "--quiet", "main");
      forge.addPullRequest({ number, headSha: head, headRef: `change-${number}` });
      const sent = performance.now();
      const response = await deliverGitHub(served.url, secret, {
        event: "pull_request",
        id: randomUUID(),
        payload: githubPullRequest("opened", number, head),
      });
      if (response.status !== 202) throw new Error(`webhook answered ${response.status}`);
      await until("the plan's pending status", async () =>
        forge.statuses(head).some((status) => status.state === "pending") ? true : undefined,
      );
      const latency = performance.now() - sent;
      await until("the plan's end", async () =>
        forge.statuses(head).some((status) => status.state !== "pending") ? true : undefined,
      );
      return latency;
    };
    const idle: number[] = [];
    for (let sample = 0; sample < 5; sample++) idle.push(await measure());

    progress("webhook: a slow apply of stack a (a resource that sleeps 300 s when it is created)");
    slowA = true;
    await writeFile(path.join(repo, "main.ts"), source(1));
    await commitAll(repo, "A slow resource");
    await until("the slow apply to start", () => access(marker).then(() => true));
    const busy: number[] = [];
    for (let sample = 0; sample < 5; sample++) {
      busy.push(await measure());
      const running = await served.json<{ runs: unknown[] }>("/api/runs?kind=apply&status=running");
      if (running.runs.length !== 1) throw new Error("the apply of stack a ended before the samples did");
    }

    out(
      "\nfrom a signed pull-request webhook to its plan's pending status (the start of the plan), 5 samples each\n",
    );
    printTable(
      ["", "median ms", "max ms", "target"],
      [
        ["idle", median(idle).toFixed(0), Math.max(...idle).toFixed(0), "< 1000 ms"],
        ["while stack a applies", median(busy).toFixed(0), Math.max(...busy).toFixed(0), "< 1000 ms"],
      ],
    );
  } finally {
    await served.stop();
    await forge.close();
  }
}

// --- history ---------------------------------------------------------------------------

async function historyCost(root: string): Promise<void> {
  const repo = path.join(root, "history-repo");
  const stacks = ["net", "db", "web", "jobs"];
  await createRepo(repo, Object.fromEntries(stacks.map((stack) => [stack, { item: { stack } }])));
  const twins: { name: string; data: string; config: string }[] = [];
  for (const name of ["empty history", "20,000 runs"]) {
    const { data, config } = await serveConfig(root, `history-${twins.length}`, repo, {
      pollIntervalSeconds: 5,
      drift: { tickSeconds: 2 },
    });
    twins.push({ name, data, config });
  }
  for (const twin of twins) {
    progress(`history: first apply for the ${twin.name} twin`);
    const served = await startServe(["--config", twin.config], { GITOPS_RUNNER_API_TOKEN: TOKEN });
    await until("the first apply", () => stacksInSync(served, stacks.length));
    await served.stop();
  }
  progress("history: writing 20,000 runs (5,000 per stack) into the second twin's runner.db");
  inflate(path.join(twins[1]?.data ?? "", "runner.db"), stacks, 5000);

  const rows: string[][] = [];
  const figures: Record<string, number>[] = [];
  for (const twin of twins) {
    progress(`history: ${twin.name}: idle for 20 s, then route latencies`);
    const served = await startServe(["--config", twin.config], { GITOPS_RUNNER_API_TOKEN: TOKEN });
    try {
      await until("readiness", async () =>
        (await fetch(new URL("/readyz", served.url))).ok ? true : undefined,
      );
      await delay(3000);
      const pid = served.process.pid as number;
      const cpuBefore = await cpuSeconds(pid);
      await delay(20_000);
      const cpu = (await cpuSeconds(pid)) - cpuBefore;
      const rss = await rssMb(pid);
      const latency = async (route: string) => {
        const samples: number[] = [];
        for (let sample = 0; sample < 30; sample++) {
          const started = performance.now();
          await served.json(route);
          samples.push(performance.now() - started);
        }
        return median(samples);
      };
      const stacksMs = await latency("/api/stacks");
      const runsMs = await latency("/api/runs?limit=1");
      figures.push({ cpu, rss, stacksMs, runsMs });
      rows.push([twin.name, cpu.toFixed(2), rss.toFixed(0), stacksMs.toFixed(1), runsMs.toFixed(1)]);
    } finally {
      await served.stop();
    }
  }
  const [empty, full] = figures as [Record<string, number>, Record<string, number>];
  const ratio = (key: string) => ((full[key] ?? 0) / Math.max(empty[key] ?? 0, 1e-9)).toFixed(2);
  rows.push([
    "20,000 runs / empty",
    `${ratio("cpu")}x`,
    `${ratio("rss")}x`,
    `${ratio("stacksMs")}x`,
    `${ratio("runsMs")}x`,
  ]);
  out("\nserve idle for 20 s (poll every 5 s, drift tick every 2 s), then 30 requests per route (medians)\n");
  printTable(["", "idle CPU s / 20 s", "RSS MB", "/api/stacks ms", "/api/runs?limit=1 ms"], rows);
  out("target: the 20,000-run history within 1.2x of the empty one\n");
}

/** Adds runs to a stopped runner's database, as years of history would: each with a log and a plan. */
function inflate(file: string, stacks: readonly string[], perStack: number): void {
  const db = new DatabaseSync(file);
  try {
    const { repo_id: repoId, app_dir: appDir } = db
      .prepare("SELECT repo_id, app_dir FROM stacks LIMIT 1")
      .get() as {
      repo_id: string;
      app_dir: string;
    };
    const log = `==> plan\n${"terraform_data.item: Refreshing state... [id=0123]\n".repeat(80)}`;
    const plan = JSON.stringify({ format_version: "1.2", planned_values: {}, resource_changes: [] });
    const insert = db.prepare(
      `INSERT INTO runs (id, kind, repo_id, app_dir, stack, commit_sha, trigger, status, result, started_at, ended_at, summary, resources, plan, log)
       VALUES (?, ?, ?, ?, ?, ?, 'schedule', 'succeeded', 'no-changes', ?, ?, ?, '[]', ?, ?)`,
    );
    const start = Date.parse("2025-01-01T00:00:00Z");
    db.exec("BEGIN");
    for (const [index, stack] of stacks.entries()) {
      for (let run = 0; run < perStack; run++) {
        const at = new Date(start + (run * stacks.length + index) * 60_000).toISOString();
        insert.run(
          randomUUID(),
          run % 10 === 0 ? "plan" : "drift",
          repoId,
          appDir,
          stack,
          "0".repeat(40),
          at,
          at,
          JSON.stringify({ add: 0, change: 0, destroy: 0, replace: 0, import: 0 }),
          plan,
          log,
        );
      }
    }
    db.exec("COMMIT");
  } finally {
    db.close();
  }
}

runMain(USAGE, async () => {
  const parts = process.argv.slice(2);
  for (const part of parts)
    if (!["rss", "webhook", "history"].includes(part)) throw new Error(`unknown part ${part}`);
  const wanted = (part: string) => parts.length === 0 || parts.includes(part);
  await printHeader(
    "serve: idle memory, webhook latency, and cost with a long history",
    await engineBinary(),
    ["serve runs as `npm start` runs it (node runner/main.js); figures read from /proc."],
  );
  const root = await tempRoot("serve");
  try {
    if (wanted("rss")) await idleRss(root.dir);
    if (wanted("webhook")) await webhookLatency(root.dir);
    if (wanted("history")) await historyCost(root.dir);
  } finally {
    await root.remove();
  }
});
