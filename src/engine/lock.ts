import { hostname } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import { RunnerError } from "../errors.ts";
import type { EngineContext } from "./context.ts";

const LEASE_MS = 60_000;
const HEARTBEAT_MS = 20_000;
const POLL_MS = 250;

/**
 * Runs `work` holding the store's lock for one stack: one apply or correction
 * at a time, across replicas. It waits (bounded) for another holder to finish;
 * the lease is renewed while the work runs and released in one place.
 */
export async function withStackLock<T>(
  context: EngineContext,
  key: string,
  runId: string,
  work: () => Promise<T>,
): Promise<T> {
  const holder = lockHolderName(runId);
  const deadline = Date.now() + context.lockWaitMs;
  while (!(await context.store.acquireLock(key, holder, LEASE_MS))) {
    if (Date.now() >= deadline) {
      const current = await context.store.lockHolder(key);
      throw new RunnerError(
        "STACK_LOCKED",
        `another apply holds this stack: ${current ?? "a run that just ended"} (waited ${Math.round(context.lockWaitMs / 1000)} s)`,
      );
    }
    await delay(POLL_MS, undefined, context.signal ? { signal: context.signal } : {}).catch(() => {
      throw new RunnerError("EXEC_CANCELLED", "cancelled while waiting for the stack's lock");
    });
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

/** Waits (bounded) until nobody holds the stack's lock: a plan does not race an apply of its stack. */
export async function waitUntilUnlocked(context: EngineContext, key: string): Promise<void> {
  const deadline = Date.now() + context.lockWaitMs;
  for (;;) {
    const holder = await context.store.lockHolder(key);
    if (holder === undefined) return;
    if (Date.now() >= deadline) {
      throw new RunnerError(
        "STACK_LOCKED",
        `the stack is being applied by ${holder}; waited ${Math.round(context.lockWaitMs / 1000)} s for it to end`,
      );
    }
    await delay(POLL_MS, undefined, context.signal ? { signal: context.signal } : {}).catch(() => {
      throw new RunnerError("EXEC_CANCELLED", "cancelled while waiting for the stack's apply to end");
    });
  }
}

/** Names a lock's holder by run, process and host, so an operator can tell whose it is. */
export function lockHolderName(runId: string): string {
  return `${processHolderPrefix()}run ${runId}`;
}

/** The prefix of every lock this process holds: released in bulk when it is known to be dead. */
export function processHolderPrefix(): string {
  return `${hostname()}:${process.pid}:`;
}
