import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";
import { processHolderPrefix } from "../engine/lock.ts";
import { isRunnerError } from "../errors.ts";
import type { EventRecord } from "../store/records.ts";
import type { EventQueue } from "./events.ts";

export interface WorkerPoolOptions {
  readonly queue: EventQueue;
  readonly scope: string;
  readonly workers: number;
  readonly logger: Logger;
  /**
   * Runs one claimed event; `signal` aborts when it is cancelled, its lease is
   * lost, or the runner stops; `applySignal` only when what may interrupt a
   * running apply step happens: a forced cancel, a lost lease, the runner stopping.
   */
  readonly handle: (
    event: EventRecord,
    signals: { readonly signal: AbortSignal; readonly applySignal: AbortSignal },
    log: Logger,
  ) => Promise<"done" | "superseded">;
  /** Lanes whose events wait for now (the apply lane while applies are frozen or outside a window). */
  readonly heldLanes: () => Promise<readonly string[]>;
  /** Whether work may be taken now (the data directory and the database are healthy). */
  readonly mayWork: () => boolean;
  /** Told when the database fails or recovers, for readiness. */
  readonly onStoreHealth: (error: unknown | undefined) => void;
  /** Redacts what an event's failure records. */
  readonly redact: (text: string) => string;
  /** How often an idle worker looks for events queued by another replica. */
  readonly idlePollMs: number;
  readonly leaseMs: number;
}

interface Running {
  readonly event: EventRecord;
  readonly controller: AbortController;
  /** Aborted only by what may interrupt a running apply step. */
  readonly interrupt: AbortController;
}

/** Why an event was cancelled by a person (or a newer push), as its signal's reason. */
export class CancelRequested extends Error {
  readonly force: boolean;

  constructor(reason: string, force: boolean) {
    super(reason);
    this.name = "CancelRequested";
    this.force = force;
  }
}

/**
 * Workers that claim events from the store and run them, several at once:
 * each event's lease is renewed while it runs, a cancel asked for through the
 * store (by any replica) aborts it, and a failing database or a full disk
 * pauses the workers instead of crashing the process.
 */
export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #running = new Map<string, Running>();
  readonly #stopping = new AbortController();
  #loops: Promise<void>[] = [];
  readonly #wake = new Set<() => void>();

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
  }

  start(): void {
    this.#loops = Array.from({ length: this.#options.workers }, (_, index) =>
      this.#loop(`${processHolderPrefix()}worker-${index}`),
    );
  }

  /** Wakes idle workers: an event was queued here. */
  wake(): void {
    for (const resolve of [...this.#wake]) resolve();
  }

  /**
   * Cancels events this process runs, e.g. the plan of a pull request's older
   * head; a running apply step is interrupted only when `force` is set.
   */
  cancel(eventIds: readonly string[], reason: string, force = false): void {
    for (const id of eventIds) {
      const running = this.#running.get(id);
      if (!running) continue;
      const request = new CancelRequested(reason, force);
      running.controller.abort(request);
      if (force) running.interrupt.abort(request);
    }
  }

  runningEvents(): EventRecord[] {
    return [...this.#running.values()].map((running) => running.event);
  }

  /** Stops taking work; running events get `graceMs` to finish, then they are cancelled. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping.abort();
    this.wake();
    const grace = setTimeout(() => {
      for (const running of this.#running.values()) abortBoth(running, new Error("shutting down"));
    }, graceMs);
    await Promise.all(this.#loops);
    clearTimeout(grace);
  }

  async #loop(holder: string): Promise<void> {
    const { queue, scope, logger } = this.#options;
    let failures = 0;
    while (!this.#stopping.signal.aborted) {
      if (!this.#options.mayWork()) {
        await this.#idle(1000);
        continue;
      }
      let event: EventRecord | undefined;
      try {
        event = await queue.claimEvent(scope, holder, this.#options.leaseMs, await this.#options.heldLanes());
        if (failures > 0) this.#options.onStoreHealth(undefined);
        failures = 0;
      } catch (error) {
        if (failures++ === 0)
          logger.error({ err: error }, "claiming work failed; workers pause until the database answers");
        this.#options.onStoreHealth(error);
        await this.#idle(Math.min(1000 * 2 ** failures, 10_000));
        continue;
      }
      if (!event) {
        await this.#idle(this.#options.idlePollMs);
        continue;
      }
      await this.#run(event, holder);
    }
  }

  async #run(event: EventRecord, holder: string): Promise<void> {
    const { queue, logger } = this.#options;
    const log = logger.child({ eventId: event.id, event: event.kind, stack: event.stack, pr: event.pr });
    const running: Running = { event, controller: new AbortController(), interrupt: new AbortController() };
    const { controller } = running;
    this.#running.set(event.id, running);
    const heartbeat = setInterval(() => {
      queue.renewEvent(event.id, holder, this.#options.leaseMs).then(
        (renewed) => {
          if (renewed === undefined)
            abortBoth(running, new Error("the event's lease was lost to another replica"));
          else if (renewed.cancelReason) this.cancel([event.id], renewed.cancelReason, renewed.cancelForce);
        },
        (error: unknown) => log.warn({ err: error }, "renewing the event's lease failed"),
      );
    }, this.#options.leaseMs / 3);
    heartbeat.unref();

    let status: "done" | "superseded" | "failed" | "cancelled";
    let error: string | undefined;
    try {
      const handled = await this.#options.handle(
        event,
        { signal: controller.signal, applySignal: running.interrupt.signal },
        log,
      );
      // Cancelled by a person: whatever the event finished before it stopped, the rest did not run.
      status =
        handled === "done" && controller.signal.reason instanceof CancelRequested ? "cancelled" : handled;
    } catch (thrown) {
      const message = this.#options.redact(thrown instanceof Error ? thrown.message : String(thrown));
      status = controller.signal.aborted ? "cancelled" : "failed";
      error = message;
      if (isRunnerError(thrown)) log.warn({ code: thrown.code, message }, "event failed");
      else log.error({ err: thrown }, "event failed");
    } finally {
      clearInterval(heartbeat);
      this.#running.delete(event.id);
    }
    await this.#finish(event, status, error, log);
  }

  /** Records the event's end, retrying while the database or the disk refuses. */
  async #finish(
    event: EventRecord,
    status: "done" | "superseded" | "failed" | "cancelled",
    error: string | undefined,
    log: Logger,
  ): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#options.queue.finishEvent(event.id, status, error);
        if (attempt > 0) this.#options.onStoreHealth(undefined);
        return;
      } catch (failure) {
        if (attempt === 0) log.error({ err: failure, status }, "recording the event's end failed; retrying");
        this.#options.onStoreHealth(failure);
        if (this.#stopping.signal.aborted && attempt >= 3) return;
        await delay(Math.min(1000 * 2 ** attempt, 10_000));
      }
    }
  }

  /** Waits for a wake-up, the timeout, or the stop. */
  async #idle(ms: number): Promise<void> {
    if (this.#stopping.signal.aborted) return;
    const waiting = this.#wake;
    const stop = this.#stopping.signal;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        stop.removeEventListener("abort", done);
        waiting.delete(done);
        resolve();
      }
      stop.addEventListener("abort", done, { once: true });
      waiting.add(done);
    });
  }
}

function abortBoth(running: Running, reason: Error): void {
  running.controller.abort(reason);
  running.interrupt.abort(reason);
}
