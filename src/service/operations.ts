import type { Logger } from "pino";
import { type ApplyGate, applyGate, gateReason, type MaintenanceWindow } from "../domain/apply-gate.ts";
import { decideCancel } from "../domain/cancel.ts";
import { RunnerError } from "../errors.ts";
import type {
  AppKey,
  EventRecord,
  Freeze,
  RunCancel,
  RunRecord,
  RunSummary,
  StackKey,
  StackOverride,
} from "../store/records.ts";
import type { ApplyGateView, CancelResult, QueueEntry } from "./api.ts";
import { laneOf } from "./events.ts";

/** What the operations read and write; declared here, where they are used. */
export interface OperationRecords {
  getRun(id: string): Promise<RunRecord | undefined>;
  getEvent(id: string): Promise<EventRecord | undefined>;
  runsOfEvents(eventIds: readonly string[]): Promise<RunSummary[]>;
  listOpenEvents(scope: string, limit: number): Promise<EventRecord[]>;
  cancelQueuedEvent(scope: string, id: string, reason: string): Promise<boolean>;
  requestEventCancel(scope: string, id: string, reason: string, force: boolean): Promise<boolean>;
  recordRunCancel(runId: string, cancel: RunCancel): Promise<void>;
  stackOverrides(app: AppKey): Promise<Map<string, StackOverride>>;
  setStackOverride(key: StackKey, override: { suspended: boolean; reason?: string }): Promise<void>;
  clearStackOverride(key: StackKey): Promise<void>;
  getFreeze(app: AppKey): Promise<Freeze | undefined>;
  setFreeze(app: AppKey, freeze: { reason: string; until?: string }): Promise<Freeze>;
  clearFreeze(app: AppKey): Promise<boolean>;
}

export interface OperationOptions {
  readonly records: OperationRecords;
  readonly app: AppKey;
  /** The app's queue. */
  readonly scope: string;
  readonly windows: readonly MaintenanceWindow[];
  /** Cancels an event this process runs at once (another replica sees the request at its next lease renewal). */
  readonly cancelRunning: (eventId: string, reason: string, force: boolean) => void;
  /** Wakes the workers: held events may run now. */
  readonly wake: () => void;
  readonly logger: Logger;
  readonly now?: () => Date;
}

const APPLY_LANE = laneOf("apply", undefined, undefined);
const QUEUE_LIMIT = 500;

/**
 * What operators do to a running runner: cancel a run, suspend and resume a
 * stack, freeze applies; and what the applies' gate (freeze, maintenance
 * windows) holds. The decisions are pure (src/domain/); this carries them out.
 */
export class Operations {
  readonly #options: OperationOptions;
  readonly #records: OperationRecords;

  constructor(options: OperationOptions) {
    this.#options = options;
    this.#records = options.records;
  }

  #now(): Date {
    return this.#options.now?.() ?? new Date();
  }

  async cancel(id: string, force: boolean): Promise<CancelResult> {
    const records = this.#records;
    const { scope } = this.#options;
    const run = await records.getRun(id);
    const eventId = run ? run.eventId : id;
    const event = eventId ? await records.getEvent(eventId) : undefined;
    if (!run && !event) throw new RunnerError("RUN_NOT_FOUND", `no run or queued event with id ${id}`);
    const running =
      event?.status === "running" ? (await records.runsOfEvents([event.id])).filter(isRunning) : [];
    const step = (candidate: RunSummary) => candidate.steps?.findLast((entry) => entry.status === "running");
    const applying = (run ? running.filter((candidate) => candidate.id === run.id) : running).some(
      (candidate) => step(candidate)?.name === "apply",
    );
    const decision = decideCancel(
      {
        ...(run ? { run: { status: run.status } } : {}),
        ...(event ? { event: { id: event.id, status: event.status } } : {}),
        applying,
      },
      force,
    );
    const reason = force ? "cancelled by an operator (forced)" : "cancelled by an operator";
    switch (decision.kind) {
      case "refuse":
        throw new RunnerError(decision.code, `${run ? "run" : "event"} ${id}: ${decision.reason}`);
      case "drop":
        if (!(await records.cancelQueuedEvent(scope, decision.eventId, reason))) {
          // It was claimed meanwhile: cancel it as a running one.
          return this.cancel(id, force);
        }
        this.#options.logger.warn({ eventId: decision.eventId }, "queued event cancelled by an operator");
        return { cancelled: "queued", eventId: decision.eventId, force };
      case "signal": {
        await records.requestEventCancel(scope, decision.eventId, reason, force);
        const at = this.#now().toISOString();
        for (const candidate of running) {
          const current = step(candidate)?.name;
          await records.recordRunCancel(candidate.id, {
            requestedAt: at,
            force,
            ...(current ? { step: current } : {}),
          });
        }
        this.#options.cancelRunning(decision.eventId, reason, force);
        this.#options.logger.warn(
          { eventId: decision.eventId, runId: run?.id, force },
          "running event cancelled by an operator",
        );
        return { cancelled: "running", eventId: decision.eventId, ...(run ? { runId: run.id } : {}), force };
      }
    }
  }

  /** Stores a suspension of the stack; it wins over the policy file. */
  async suspend(stack: string, reason: string | undefined): Promise<void> {
    await this.#records.setStackOverride(
      { ...this.#options.app, stack },
      {
        suspended: true,
        ...(reason ? { reason } : {}),
      },
    );
    this.#options.logger.warn({ stack, reason }, "stack suspended by an operator");
  }

  /**
   * Resumes the stack: forgets a stored suspension, or, when the policy file
   * itself suspends the stack, stores a resumption that wins over it.
   */
  async resume(stack: string, fileSuspends: boolean): Promise<void> {
    const key = { ...this.#options.app, stack };
    if (fileSuspends) await this.#records.setStackOverride(key, { suspended: false });
    else await this.#records.clearStackOverride(key);
    this.#options.logger.warn({ stack }, "stack resumed by an operator");
  }

  async gate(): Promise<ApplyGate> {
    return applyGate(this.#now(), await this.#records.getFreeze(this.#options.app), this.#options.windows);
  }

  async gateView(): Promise<ApplyGateView> {
    const gate = await this.gate();
    const reason = gateReason(gate);
    return {
      open: gate.kind === "open",
      ...(reason ? { reason } : {}),
      ...(gate.kind === "frozen" ? { frozen: gate.freeze } : {}),
      ...(gate.kind === "outside-window" ? { opensAt: gate.opensAt.toISOString() } : {}),
      windows: this.#options.windows.map((window) => window.text),
    };
  }

  /** The lanes whose events wait now: the applies', while the gate is closed. */
  async heldLanes(): Promise<readonly string[]> {
    return (await this.gate()).kind === "open" ? [] : [APPLY_LANE];
  }

  async freeze(request: { readonly reason: string; readonly until?: string }): Promise<ApplyGateView> {
    if (request.until !== undefined && Date.parse(request.until) <= this.#now().getTime()) {
      throw new RunnerError("BAD_REQUEST", `body.until: ${request.until} is not in the future`);
    }
    await this.#records.setFreeze(this.#options.app, request);
    this.#options.logger.warn(
      { reason: request.reason, until: request.until },
      "applies frozen by an operator",
    );
    return this.gateView();
  }

  async unfreeze(): Promise<ApplyGateView> {
    if (await this.#records.clearFreeze(this.#options.app)) {
      this.#options.logger.warn("applies unfrozen by an operator");
      this.#options.wake();
    }
    return this.gateView();
  }

  /** The queued and running events, running first, each with its runs and why it waits. */
  async queue(): Promise<{ readonly events: readonly QueueEntry[]; readonly applies: ApplyGateView }> {
    const events = await this.#records.listOpenEvents(this.#options.scope, QUEUE_LIMIT);
    const runs = await this.#records.runsOfEvents(events.map((event) => event.id));
    const applies = await this.gateView();
    const runningLanes = new Map(
      events.filter((event) => event.status === "running").map((event) => [event.lane, event]),
    );
    const entries = events.map((event): QueueEntry => {
      const busy = runningLanes.get(event.lane);
      const waitsFor =
        event.status !== "queued"
          ? undefined
          : event.lane === APPLY_LANE && !applies.open
            ? applies.reason
            : busy
              ? `the ${busy.kind} ${busy.id} before it`
              : "a free worker";
      return {
        id: event.id,
        kind: event.kind,
        status: event.status === "running" ? "running" : "queued",
        ...(event.stack ? { stack: event.stack } : {}),
        ...(event.commit ? { commit: event.commit } : {}),
        ...(event.pr !== undefined ? { pr: event.pr } : {}),
        source: event.source,
        createdAt: event.createdAt,
        ...(event.claimedBy ? { claimedBy: event.claimedBy } : {}),
        runs: runs.filter((run) => run.eventId === event.id),
        ...(waitsFor ? { waitsFor } : {}),
      };
    });
    return { events: entries, applies };
  }
}

function isRunning(run: RunSummary): boolean {
  return run.status === "running";
}
