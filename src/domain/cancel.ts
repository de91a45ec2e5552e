import type { EventStatus, RunStatus } from "../store/records.ts";

/**
 * Whether a run (or a queued event: a run waiting for a worker) may be
 * cancelled, and how. A queued event is dropped. A running one is signalled
 * through its event, which stops every step that has not started and ends the
 * terraform process group of the one that runs; an apply step is interrupted
 * only with `force`, since a half-done apply can leave resources half-changed.
 * Pure.
 */
export interface CancelFacts {
  /** The run the id names, when it names one: its status and the step it is in. */
  readonly run?: { readonly status: RunStatus; readonly step?: string };
  /** The event the run belongs to, or that the id names. */
  readonly event?: { readonly id: string; readonly status: EventStatus };
  /** A running run of the event is in its apply step. */
  readonly applying: boolean;
}

export type CancelDecision =
  | { readonly kind: "drop"; readonly eventId: string }
  | { readonly kind: "signal"; readonly eventId: string; readonly force: boolean }
  | {
      readonly kind: "refuse";
      readonly code: "RUN_NOT_CANCELLABLE" | "RUN_APPLYING";
      readonly reason: string;
    };

export function decideCancel(facts: CancelFacts, force: boolean): CancelDecision {
  const { run, event } = facts;
  if (run && run.status !== "running") {
    return refuse("RUN_NOT_CANCELLABLE", `the run has ended (${run.status})`);
  }
  if (!event) {
    return refuse(
      "RUN_NOT_CANCELLABLE",
      "the run was not started by this runner's service (a command-line run?); stop that process instead",
    );
  }
  if (event.status === "queued") return { kind: "drop", eventId: event.id };
  if (event.status !== "running")
    return refuse("RUN_NOT_CANCELLABLE", `its work has ended (${event.status})`);
  if (facts.applying && !force) {
    return refuse(
      "RUN_APPLYING",
      "the run is in its apply step, and interrupting terraform apply can leave resources half-changed; cancel with force to interrupt it anyway",
    );
  }
  return { kind: "signal", eventId: event.id, force };
}

function refuse(code: "RUN_NOT_CANCELLABLE" | "RUN_APPLYING", reason: string): CancelDecision {
  return { kind: "refuse", code, reason };
}
