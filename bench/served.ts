/**
 * `serve` as a child process for benchmarks: started as `npm start` starts it
 * (node runner/main.js, the same Node flags and malloc arenas), its JSON API
 * with a write token, waiting on a condition without a fixed sleep, and its
 * data directory and configuration.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";
import { baseEnv, engineBinary, freshDataDir, repoRoot } from "./support.ts";

export const TOKEN = "bench-write-token-0123456789";
/** How `npm start` and the image run serve (package.json, Dockerfile): a small young generation, two malloc arenas. */
const SERVE_NODE_FLAGS = ["--max-semi-space-size=1"];
const SERVE_ENV = { MALLOC_ARENA_MAX: "2" };

export interface Served {
  readonly url: string;
  readonly process: ChildProcess;
  json<T>(route: string): Promise<T>;
  stop(): Promise<void>;
}

/** Starts `serve` (as `npm start` does: node runner/main.js) and waits until it listens. */
export async function startServe(args: readonly string[], env: Record<string, string>): Promise<Served> {
  const child = spawn(
    process.execPath,
    [...SERVE_NODE_FLAGS, path.join(repoRoot, "runner", "main.js"), ...args],
    {
      cwd: repoRoot,
      env: { ...baseEnv, ...SERVE_ENV, GITOPS_RUNNER_LOG_FORMAT: "json", ...env },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === "listening" && entry.url) resolve(entry.url);
      } catch {
        // Not a log line.
      }
    });
    child.once("exit", (code) => reject(new Error(`serve exited with ${code} before listening`)));
  });
  const token = env.GITOPS_RUNNER_API_TOKEN ?? TOKEN;
  return {
    url,
    process: child,
    async json<T>(route: string) {
      const response = await fetch(new URL(route, url), { headers: { authorization: `Bearer ${token}` } });
      if (!response.ok) throw new Error(`${route}: ${response.status}`);
      return (await response.json()) as T;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    },
  };
}

export async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 180_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    await delay(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function stacksInSync(served: Served, count: number): Promise<true | undefined> {
  const { stacks } = await served.json<{ stacks: { state: string }[] }>("/api/stacks");
  return stacks.length === count && stacks.every((stack) => stack.state === "in-sync") ? true : undefined;
}

/**
 * A fresh data directory `root/data-NAME` (with the benchmark's shared
 * dependency cache) and a configuration `root/NAME.json` for serve on `repo`:
 * any free port, the engine the benchmarks use, then `settings`.
 */
export async function serveConfig(
  root: string,
  name: string,
  repo: string,
  settings: Record<string, unknown>,
): Promise<{ readonly data: string; readonly config: string }> {
  const data = await freshDataDir(path.join(root, `data-${name}`), path.join(root, "dependency-cache"));
  const config = path.join(root, `${name}.json`);
  await writeFile(
    config,
    JSON.stringify({
      repository: { url: repo },
      dataDir: data,
      listen: { port: 0 },
      engine: await engineBinary(),
      ...settings,
    }),
  );
  return { data, config };
}
