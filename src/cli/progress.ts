import type { EngineContext, FinishedRun, StartedRun } from "../engine/context.ts";
import { APP } from "../engine/stack-run.ts";
import { counts } from "./render.ts";

/**
 * What a person at a terminal sees while a command works: one line when each
 * run starts and one when it ends. Runs of several stacks overlap, so each
 * line names its run in full rather than updating a line in place.
 */
export function progressCallbacks(
  write: (text: string) => void,
): Pick<EngineContext, "onRunStarted" | "onRunFinished"> {
  return {
    onRunStarted: (run) => write(`${startedLine(run)}\n`),
    onRunFinished: (run) => write(`${finishedLine(run)}\n`),
  };
}

/** "plan network: started" */
export function startedLine(run: StartedRun): string {
  return `${subject(run)}: started`;
}

/** "plan network: changes +0 ~1 -0 (1.3s)", "apply api: failed TERRAFORM_FAILED (0.4s)" */
export function finishedLine(run: FinishedRun): string {
  const word = run.status === "cancelled" ? "cancelled" : run.result;
  const detail = run.error ? run.error.code : run.summary ? counts(run.summary) : "";
  return `${subject(run)}: ${[word, detail].filter(Boolean).join(" ")} (${duration(run.durationMs)})`;
}

function subject(run: StartedRun): string {
  return `${run.kind} ${run.stack === APP ? "app" : run.stack}`;
}

/** "0.4s", "12s", "2m05s" */
export function duration(ms: number): string {
  if (ms < 9950) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`;
}
