import { createHash } from "node:crypto";
import { CronExpressionParser } from "cron-parser";
import type { Schedule, StackPolicy } from "../policy/policy.ts";

export interface DriftTiming {
  /** When the stack's last drift check ended (or it was applied, if never checked). */
  readonly lastCheckedAt: Date;
  /** Drift checks that failed in a row, for backing off. */
  readonly failures: number;
}

const MAX_BACKOFF = 16;

/**
 * When a stack's next drift check is due: its schedule after the last check,
 * plus a stable per-stack jitter (so that stacks with one schedule spread
 * out), and backed off exponentially after failures. Pure.
 */
export function nextDriftCheck(
  stack: string,
  schedule: Schedule,
  timing: DriftTiming,
  jitterPercent: number,
): Date {
  const backoff = Math.min(2 ** timing.failures, MAX_BACKOFF);
  const from = timing.lastCheckedAt.getTime();
  let base: number;
  let period: number;
  if (schedule.kind === "interval") {
    period = schedule.everyMs;
    base = from + period * backoff;
  } else {
    const times = CronExpressionParser.parse(schedule.expression, { currentDate: new Date(from), tz: "UTC" });
    const first = times.next().getTime();
    const second = times.next().getTime();
    period = second - first;
    base = first + period * (backoff - 1);
  }
  return new Date(base + jitter(stack, period, jitterPercent));
}

function jitter(stack: string, period: number, percent: number): number {
  const fraction = createHash("sha256").update(stack).digest().readUInt32BE(0) / 0xffffffff;
  return Math.floor(fraction * period * (percent / 100));
}

/** What the scheduler knows of one applied stack. */
export interface DriftCandidate {
  readonly stack: string;
  readonly policy: StackPolicy;
  /** When the last drift check ended, else when the stack was applied. */
  readonly lastCheckedAt: Date;
  readonly failures: number;
  /** An apply or correction holds the stack. */
  readonly locked: boolean;
  /** A drift check of the stack is queued or running already. */
  readonly queued: boolean;
}

/**
 * The stacks whose drift check is due now: applied, in the app, drift not off,
 * not suspended, not held by an apply, not already queued, and past their
 * next check time. Pure: a function of stored records, policies and the clock.
 */
export function dueDriftChecks(
  candidates: readonly DriftCandidate[],
  now: Date,
  jitterPercent: number,
): string[] {
  return candidates
    .filter((candidate) => candidate.policy.drift !== "off" && !candidate.policy.suspended)
    .filter((candidate) => !candidate.locked && !candidate.queued)
    .filter(
      (candidate) =>
        nextDriftCheck(
          candidate.stack,
          candidate.policy.driftSchedule,
          { lastCheckedAt: candidate.lastCheckedAt, failures: candidate.failures },
          jitterPercent,
        ).getTime() <= now.getTime(),
    )
    .map((candidate) => candidate.stack);
}
