import { isRunnerError, RunnerError } from "../errors.ts";
import type { RunKind, RunOutcome } from "../store/store.ts";
import type { EngineContext } from "./context.ts";
import { EMPTY_SUMMARY, type StackReport } from "./report.ts";

/** The log of one run: each step's output under a header, in order. */
export class RunLog {
  readonly #parts: string[] = [];

  add(step: string, text: string): void {
    this.#parts.push(`==> ${step}\n${text.trimEnd()}\n`);
  }

  text(): string {
    return this.#parts.join("");
  }
}

/** The stack name of runs that concern the whole app, such as its synthesis. */
export const APP = "*";

export interface RunScope {
  readonly id: string;
  readonly log: RunLog;
  /** Runs one step, logging its duration; a failure names the stack and the step. */
  step<T>(name: string, work: () => Promise<T>): Promise<T>;
}

export interface RunResult {
  readonly report: Omit<StackReport, "runId" | "name" | "commit">;
  readonly outcome: Omit<RunOutcome, "log">;
}

/** Errors the user must act on (shown as failed); anything else is the runner's own fault (errored). */
const USER_FACING = new Set([
  "SYNTH_FAILED",
  "SYNTH_CONFIG_INVALID",
  "SYNTH_MANIFEST_INVALID",
  "DEPENDENCIES_FAILED",
  "POLICY_INVALID",
  "TERRAFORM_FAILED",
  "TERRAFORM_LOCKED",
  "STACK_LOCKED",
  "STATE_MISSING",
  "COMMIT_OLDER_THAN_APPLIED",
]);

/**
 * Records one run of one stack around `body`: started before it, finished
 * after it with its outcome and log, whatever happens.
 */
export async function recordedRun(
  context: EngineContext,
  kind: RunKind,
  stack: string,
  commit: string,
  body: (scope: RunScope) => Promise<RunResult>,
): Promise<StackReport> {
  const id = context.newRunId();
  const started = performance.now();
  const logger = context.logger.child({ runId: id, stack, commit, kind });
  const log = new RunLog();
  await context.store.startRun({
    id,
    kind,
    repoId: context.repoId,
    appDir: context.appDir,
    stack,
    commit,
    trigger: context.trigger,
  });
  context.onRunStarted?.({ id, kind, stack, commit });
  const scope: RunScope = {
    id,
    log,
    async step(name, work) {
      const started = performance.now();
      try {
        const result = await work();
        logger.info({ step: name, durationMs: Math.round(performance.now() - started) }, "step finished");
        return result;
      } catch (error) {
        logger.warn({ step: name, code: isRunnerError(error) ? error.code : undefined }, "step failed");
        const message = error instanceof Error ? error.message : String(error);
        log.add(`${name} (failed)`, message);
        const subject = stack === APP ? "app" : `stack ${stack}`;
        const detail = message.replace(/^terraform \w+: /, "").replace(new RegExp(`^${name}: `), "");
        throw new RunnerError(
          isRunnerError(error) ? error.code : "EXEC_FAILED",
          `${subject}: ${name}: ${detail}`,
          {
            cause: error,
          },
        );
      }
    },
  };

  let result: RunResult;
  try {
    result = await body(scope);
  } catch (error) {
    const code = isRunnerError(error) ? error.code : "INTERNAL";
    const message = error instanceof Error ? error.message : String(error);
    const userFacing = USER_FACING.has(code);
    const cancelled = code === "EXEC_CANCELLED";
    if (!userFacing && !cancelled) logger.error({ err: error }, "run errored");
    result = {
      report: { status: "failed", summary: EMPTY_SUMMARY, resources: [], error: { code, message } },
      outcome: {
        status: cancelled ? "cancelled" : userFacing ? "failed" : "errored",
        result: "failed",
        error: { code, message },
      },
    };
  }
  await context.store.finishRun(id, { ...result.outcome, log: log.text() });
  const { status, result: word, summary, error } = result.outcome;
  context.onRunFinished?.({
    id,
    kind,
    stack,
    commit,
    status,
    result: word,
    ...(summary ? { summary } : {}),
    ...(error ? { error } : {}),
    durationMs: performance.now() - started,
  });
  logger.info({ status: result.outcome.status, result: result.outcome.result }, "run finished");
  return { name: stack, commit, runId: id, ...result.report };
}
