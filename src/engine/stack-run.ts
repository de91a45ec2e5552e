import { hostname } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import { isRunnerError, RunnerError } from "../errors.ts";
import type { RunKind, RunOutcome, RunStep } from "../store/records.ts";
import type { EngineContext } from "./context.ts";
import { EMPTY_SUMMARY, type StackReport } from "./report.ts";

/**
 * The log of one run: each step's output under a header, in order. Every part
 * is redacted and written to the run's record as it is added, so that what a
 * run logged survives a crash and can be followed while it runs.
 */
export class RunLog {
  readonly #parts: string[] = [];
  readonly #write: (text: string) => Promise<void>;
  readonly #redact: (text: string) => string;
  #written: Promise<void> = Promise.resolve();
  #lost = false;

  constructor(redact: (text: string) => string, write: (text: string) => Promise<void>) {
    this.#redact = redact;
    this.#write = write;
  }

  add(step: string, text: string): void {
    this.#push(`==> ${step}\n${text.trimEnd()}\n`);
  }

  /**
   * Starts a step's part that grows while the step runs: its header now, then
   * each piece of output (whole lines) as it comes, so the log can be followed.
   */
  live(step: string): (text: string) => void {
    this.#push(`==> ${step}\n`);
    return (text) => this.#push(text);
  }

  #push(text: string): void {
    const part = this.#redact(text);
    this.#parts.push(part);
    this.#written = this.#written.then(() =>
      this.#write(part).catch(() => {
        this.#lost = true;
      }),
    );
  }

  /** Whether a part could not be written as it came (the database or the disk refused it). */
  get incomplete(): boolean {
    return this.#lost;
  }

  text(): string {
    return this.#parts.join("");
  }

  /** Resolves when every part is in the record. */
  flushed(): Promise<void> {
    return this.#written;
  }
}

/** The stack name of runs that concern the whole app, such as its synthesis. */
export const APP = "*";

export interface RunScope {
  readonly id: string;
  readonly log: RunLog;
  /** Runs one step, recording its timing; a failure names the stack and the step. */
  step<T>(name: string, work: () => Promise<T>): Promise<T>;
  /** The steps so far. */
  steps(): readonly RunStep[];
}

export interface RunResult {
  readonly report: Omit<StackReport, "runId" | "name" | "commit">;
  readonly outcome: RunOutcome;
}

/** Errors the user must act on (shown as failed); anything else is the runner's own fault (errored). */
const USER_FACING = new Set([
  "SYNTH_FAILED",
  "SYNTH_CONFIG_INVALID",
  "SYNTH_MANIFEST_INVALID",
  "DEPENDENCIES_FAILED",
  "POLICY_INVALID",
  "POLICY_CHECK_FAILED",
  "TERRAFORM_FAILED",
  "TERRAFORM_LOCKED",
  "STACK_LOCKED",
  "STATE_MISSING",
  "COMMIT_OLDER_THAN_APPLIED",
]);

/**
 * Records one run of one stack around `body`: started before it, its log
 * written as it goes, finished after it with its outcome, whatever happens.
 * Failures the user must act on are `failed` with their message; the
 * runner's own faults are `errored`, and what people see of them (a pull
 * request, a chat message) is a short coded line while the detail goes to the
 * operator's log.
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
  await context.store.startRun({
    id,
    kind,
    repoId: context.repoId,
    appDir: context.appDir,
    stack,
    commit,
    trigger: context.trigger,
    ...(context.origin ? { origin: context.origin } : {}),
    host: hostname(),
    ...(context.eventId ? { eventId: context.eventId } : {}),
    ...(context.pullRequest !== undefined ? { pr: context.pullRequest } : {}),
  });
  context.onRunStarted?.({ id, kind, stack, commit });
  const log = new RunLog(context.redact, (text) =>
    context.store.appendRunLog(id, text).catch((error: unknown) => {
      logger.error(
        { err: error },
        "the run's log could not be written as it came; it is written whole at the end",
      );
      throw error;
    }),
  );
  let currentStep = "start";
  const steps = new StepRecord(id, context, logger);
  const scope: RunScope = {
    id,
    log,
    steps: () => steps.list(),
    async step(name, work) {
      const stepStarted = performance.now();
      currentStep = name;
      const index = steps.start(name);
      try {
        const result = await work();
        steps.end(index, "succeeded");
        logger.info({ step: name, durationMs: Math.round(performance.now() - stepStarted) }, "step finished");
        return result;
      } catch (error) {
        steps.end(index, "failed");
        logger.warn({ step: name, code: isRunnerError(error) ? error.code : undefined }, "step failed");
        const message = error instanceof Error ? error.message : String(error);
        log.add(`${name} (failed)`, message);
        const subject = stack === APP ? "app" : `stack ${stack}`;
        const detail = message.replace(/^terraform \w+: /, "").replace(new RegExp(`^${name}: `), "");
        throw new RunnerError(
          isRunnerError(error) ? error.code : "EXEC_FAILED",
          `${subject}: ${name}: ${detail}`,
          { cause: error },
        );
      }
    },
  };

  let result: RunResult;
  try {
    result = await body(scope);
  } catch (error) {
    result = failedResult(error, { runId: id, stack, step: currentStep }, context.redact);
    if (result.outcome.status === "errored") {
      logger.error({ err: error, step: currentStep }, "run errored: the runner's own fault");
    }
  }
  await log.flushed();
  await steps.flushed();
  await persistently(
    () => context.store.finishRun(id, result.outcome, log.incomplete ? log.text() : undefined),
    logger,
  );
  const { status, result: word, summary } = result.outcome;
  // What people are shown of an error: for the runner's own faults, the short coded line.
  const error = result.report.error;
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

/** A run's steps with their timings, written to the run's record as each starts and ends. */
class StepRecord {
  readonly #steps: RunStep[] = [];
  readonly #runId: string;
  readonly #context: EngineContext;
  readonly #logger: EngineContext["logger"];
  #written: Promise<void> = Promise.resolve();

  constructor(runId: string, context: EngineContext, logger: EngineContext["logger"]) {
    this.#runId = runId;
    this.#context = context;
    this.#logger = logger;
  }

  start(name: string): number {
    this.#steps.push({ name, startedAt: new Date().toISOString(), status: "running" });
    this.#save();
    return this.#steps.length - 1;
  }

  end(index: number, status: "succeeded" | "failed"): void {
    const step = this.#steps[index];
    if (!step) return;
    this.#steps[index] = { ...step, endedAt: new Date().toISOString(), status };
    this.#save();
  }

  list(): readonly RunStep[] {
    return [...this.#steps];
  }

  flushed(): Promise<void> {
    return this.#written;
  }

  #save(): void {
    const steps = this.list();
    this.#written = this.#written.then(() =>
      this.#context.store.recordSteps(this.#runId, steps).catch((error: unknown) => {
        this.#logger.warn({ err: error }, "the run's steps could not be recorded");
      }),
    );
  }
}

/**
 * Records what must not be lost (a run's end) through a database or disk that
 * refuses for a while: retried with backoff, for about three minutes.
 */
async function persistently(write: () => Promise<void>, logger: EngineContext["logger"]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await write();
      if (attempt > 0) logger.info({ attempts: attempt + 1 }, "the run's end was recorded after retries");
      return;
    } catch (error) {
      if (attempt >= 20) throw error;
      if (attempt === 0) logger.error({ err: error }, "recording the run's end failed; retrying");
      await delay(Math.min(500 * 2 ** attempt, 10_000));
    }
  }
}

/** What a run that threw becomes: failed (the user's to act on), cancelled, or errored (the runner's). */
export function failedResult(
  error: unknown,
  where: { readonly runId: string; readonly stack: string; readonly step: string },
  redact: (text: string) => string,
): RunResult {
  const code = isRunnerError(error) ? error.code : "INTERNAL";
  const message = redact(error instanceof Error ? error.message : String(error));
  const status = code === "EXEC_CANCELLED" ? "cancelled" : USER_FACING.has(code) ? "failed" : "errored";
  const subject = where.stack === APP ? "app" : `stack ${where.stack}`;
  const shown =
    status === "errored"
      ? `${subject}: ${where.step}: the runner failed (${code}); the operator's log has the details of run ${where.runId}`
      : message;
  return {
    report: { status: "failed", summary: EMPTY_SUMMARY, resources: [], error: { code, message: shown } },
    outcome: { status, result: "failed", error: { code, message } },
  };
}
