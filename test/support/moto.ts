import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { freePort } from "./ports.ts";

export interface Moto {
  readonly endpoint: string;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 60_000;

export async function startMoto(binary: string): Promise<Moto> {
  const port = await freePort();
  const child = spawn(binary, ["-H", "127.0.0.1", "-p", String(port)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilServing(endpoint, child);
  } catch (error) {
    child.kill("SIGKILL");
    throw new Error(`moto did not start on ${endpoint}: ${(error as Error).message}\n${stderr}`);
  }
  return {
    endpoint,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Polls moto's own API until it answers; fails as soon as the process exits. */
async function waitUntilServing(endpoint: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`exited with code ${code}`);
  });
  while (Date.now() < deadline) {
    const answered = fetch(`${endpoint}/moto-api/data.json`).then(
      (response) => response.ok,
      () => false,
    );
    if (await Promise.race([answered, exited])) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no answer within ${READY_TIMEOUT_MS} ms`);
}
