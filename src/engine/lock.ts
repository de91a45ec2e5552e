import { hostname } from "node:os";
import { RunnerError } from "../errors.ts";
import type { EngineContext } from "./context.ts";

const LEASE_MS = 60_000;
const HEARTBEAT_MS = 20_000;

/**
 * Runs `work` holding the store's lock for one stack: one apply or correction
 * at a time. The lease is renewed while the work runs and released in one place.
 */
export async function withStackLock<T>(
  context: EngineContext,
  key: string,
  runId: string,
  work: () => Promise<T>,
): Promise<T> {
  const holder = `run ${runId} (pid ${process.pid} on ${hostname()})`;
  if (!(await context.store.acquireLock(key, holder, LEASE_MS))) {
    const current = await context.store.lockHolder(key);
    throw new RunnerError(
      "STACK_LOCKED",
      `another apply holds this stack: ${current ?? "a run that just ended"}`,
    );
  }
  const heartbeat = setInterval(() => {
    context.store.renewLock(key, holder, LEASE_MS).catch((error: unknown) => {
      context.logger.error({ err: error, key }, "lock renewal failed");
    });
  }, HEARTBEAT_MS);
  heartbeat.unref();
  try {
    return await work();
  } finally {
    clearInterval(heartbeat);
    await context.store.releaseLock(key, holder);
  }
}
