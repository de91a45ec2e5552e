import { hostname } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";
import type { AppKey, RunRecord } from "../store/records.ts";
import type { EventQueue } from "./events.ts";

/** How long recovery lets an orphaned terraform finish on its own before ending it. */
const LET_FINISH_MS = 120_000;
const WAIT_FOR_GROUP_MS = 30_000;
const POLL_GROUP_MS = 100;

export interface RecoveryRecords {
  runProcess(runId: string): Promise<{ pgid: number; host?: string } | undefined>;
  releaseLocksHeldBy(holderPrefix: string): Promise<number>;
  resetHead(app: AppKey): Promise<void>;
}

export interface RecoveryOptions {
  readonly queue: EventQueue;
  readonly records: RecoveryRecords;
  readonly scope: string;
  readonly app: AppKey;
  /**
   * The embedded store serves this process alone: every running event is
   * abandoned. A shared store: only those whose lease expired (their replica died).
   */
  readonly exclusive: boolean;
  readonly logger: Logger;
}

/**
 * After a crash (of this process, or of a replica): abandoned events and
 * their runs become interrupted; a terraform process group one of them
 * started on this host is waited for and then ended (its state lock lives
 * exactly as long as it does, so nothing is force-unlocked while it lives);
 * the dead process's locks are released. Returns the stacks to re-check; the
 * caller also has the branch head applied again, since an interrupted apply
 * never recorded its commit.
 */
export async function recoverAbandoned(
  options: RecoveryOptions,
): Promise<{ stacks: string[]; runs: RunRecord[] }> {
  const { queue, records, logger } = options;
  const { events, runs } = await queue.interruptAbandoned(options.scope, options.app, {
    all: options.exclusive,
  });
  for (const event of events) {
    logger.warn(
      { eventId: event.id, event: event.kind, holder: event.claimedBy },
      "event interrupted: its worker is gone",
    );
  }
  const stacks = new Set<string>();
  for (const run of runs) {
    logger.warn({ runId: run.id, stack: run.stack, kind: run.kind }, "run interrupted by a crash");
    const process = await records.runProcess(run.id);
    if (process && (process.host === undefined || process.host === hostname()) && isAlive(process.pgid)) {
      logger.warn(
        { runId: run.id, pgid: process.pgid },
        "waiting for the interrupted run's terraform process group to end",
      );
      if (!(await waitForGroup(process.pgid, LET_FINISH_MS))) {
        signalGroup(process.pgid, "SIGTERM");
        if (!(await waitForGroup(process.pgid, WAIT_FOR_GROUP_MS))) {
          signalGroup(process.pgid, "SIGKILL");
          await waitForGroup(process.pgid, WAIT_FOR_GROUP_MS);
        }
      }
    }
    if (run.stack !== "*" && (run.kind === "apply" || run.kind === "drift")) stacks.add(run.stack);
  }
  // The embedded store serves one process: every lock left in it was a dead process's. In a
  // shared store, the locks of each replica whose events were abandoned go with them.
  if (options.exclusive) await records.releaseLocksHeldBy("");
  else {
    for (const holder of new Set(events.map((event) => processOf(event.claimedBy)))) {
      if (holder) await records.releaseLocksHeldBy(holder);
    }
  }
  if (events.some((event) => event.kind === "apply") || runs.some((run) => run.kind === "apply")) {
    await records.resetHead(options.app);
  }
  return { stacks: [...stacks], runs };
}

/** "host:pid:" of a worker's holder name ("host:pid:worker-0"), naming every lock its process took. */
function processOf(holder: string | undefined): string | undefined {
  const end = holder?.lastIndexOf(":") ?? -1;
  return holder && end > 0 ? holder.slice(0, end + 1) : undefined;
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
    await delay(POLL_GROUP_MS);
  }
  return !isAlive(pgid);
}
