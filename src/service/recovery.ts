import type { Logger } from "pino";
import type { Store } from "../store/store.ts";

/** How long a restart lets an orphaned terraform finish on its own before ending it. */
const LET_FINISH_MS = 120_000;
const WAIT_FOR_GROUP_MS = 30_000;
const POLL_GROUP_MS = 100;

/**
 * After a crash: runs that were running become interrupted; a terraform
 * process group one of them started is asked to end and waited for (its state
 * lock lives exactly as long as it does, so nothing is force-unlocked while it
 * lives); the store's locks are released. Returns the stacks to re-check.
 */
export async function recoverInterruptedRuns(store: Store, logger: Logger): Promise<string[]> {
  const interrupted = await store.interruptRunning();
  const stacks = new Set<string>();
  for (const run of interrupted) {
    logger.warn({ runId: run.id, stack: run.stack, kind: run.kind }, "run interrupted by a restart");
    const pgid = await store.runProcess(run.id);
    if (pgid !== undefined && isAlive(pgid)) {
      // Let it finish what it started (its state is written at the end), then end it.
      logger.warn(
        { runId: run.id, pgid },
        "waiting for the interrupted run's terraform process group to end",
      );
      if (!(await waitForGroup(pgid, LET_FINISH_MS))) {
        signalGroup(pgid, "SIGTERM");
        if (!(await waitForGroup(pgid, WAIT_FOR_GROUP_MS))) {
          signalGroup(pgid, "SIGKILL");
          await waitForGroup(pgid, WAIT_FOR_GROUP_MS);
        }
      }
    }
    if (run.stack !== "*" && (run.kind === "apply" || run.kind === "drift")) stacks.add(run.stack);
  }
  // The embedded store serves one process: every lock was this process's own.
  await store.releaseAllLocks();
  return [...stacks];
}

function isAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

/** Waits until no process of the group is left, checking every 100 ms; false on timeout. */
async function waitForGroup(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pgid)) return true;
    await new Promise((resolve) => setTimeout(resolve, POLL_GROUP_MS));
  }
  return !isAlive(pgid);
}
