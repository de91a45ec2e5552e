import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { DatabaseSync } from "node:sqlite";
import { onTestFailed, onTestFinished } from "vitest";
import { inheritedEnv, repoRoot } from "./toolchain.ts";

/** Reads the runner's embedded database in a data directory (read-only), as a test's own look at what it recorded. */
export function queryDb<T>(data: string, sql: string): T[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

/** Writes a runner configuration into the data directory: that data directory, any free port, then `config`. */
export async function writeServeConfig(data: string, config: Record<string, unknown>): Promise<string> {
  const file = path.join(data, "runner.json");
  await writeFile(file, JSON.stringify({ dataDir: data, listen: { port: 0 }, ...config }));
  return file;
}

export const WRITE_TOKEN = "test-write-token-0123456789";
export const READ_TOKEN = "test-read-token-0123456789";

export interface Served {
  readonly url: string;
  readonly process: ChildProcess;
  /** Every log line (JSON) the runner wrote so far. */
  readonly logs: Record<string, unknown>[];
  api(route: string, init?: RequestInit & { token?: string }): Promise<Response>;
  json<T = any>(route: string): Promise<T>;
  /** SIGTERM, then the exit code (or the signal that ended it). */
  stop(): Promise<number | NodeJS.Signals>;
}

/** Starts the real `gitops-runner serve` in a child process and waits until it listens. */
export async function startServe(configFile: string, env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(
    process.execPath,
    [path.join(repoRoot, "bin", "gitops-runner.js"), "serve", "--config", configFile],
    {
      cwd: repoRoot,
      env: {
        ...baseEnv(),
        GITOPS_RUNNER_API_TOKEN: WRITE_TOKEN,
        GITOPS_RUNNER_READ_TOKEN: READ_TOKEN,
        ...env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  const logs: Record<string, unknown>[] = [];
  const exited = once(child, "exit");
  // What a failed test's runner said: its warnings and errors, then its last lines.
  onTestFailed(() => {
    const notable = logs.filter((entry) => Number(entry.level ?? 50) >= 40);
    console.error(
      `serve (pid ${child.pid}) warnings and errors:\n${notable.map((entry) => JSON.stringify(entry)).join("\n")}\n` +
        `serve (pid ${child.pid}) last lines:\n${logs
          .slice(-30)
          .map((entry) => JSON.stringify(entry))
          .join("\n")}`,
    );
  });
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === "listening" && typeof entry.url === "string") resolve(entry.url);
      } catch {
        logs.push({ text: line });
      }
    });
    child.once("exit", (code) =>
      reject(new Error(`serve exited with ${code} before listening: ${JSON.stringify(logs)}`)),
    );
  });
  const api = (route: string, init: RequestInit & { token?: string } = {}) => {
    const { token = WRITE_TOKEN, ...rest } = init;
    return fetch(new URL(route, url), {
      ...rest,
      headers: { authorization: `Bearer ${token}`, ...(rest.headers as Record<string, string> | undefined) },
    });
  };
  return {
    url,
    process: child,
    logs,
    api,
    async json(route) {
      const response = await api(route);
      if (!response.ok) throw new Error(`${route}: ${response.status} ${await response.text()}`);
      return (await response.json()) as never;
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
      return code ?? (signal as NodeJS.Signals);
    },
  };
}

function baseEnv(): Record<string, string> {
  return { ...inheritedEnv(), GITOPS_RUNNER_LOG_LEVEL: "info" };
}
