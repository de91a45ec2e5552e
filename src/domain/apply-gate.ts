import { CronExpressionParser } from "cron-parser";
import type { Freeze } from "../store/records.ts";

/**
 * Whether an apply or a drift correction may start now: not while an operator
 * froze applies (until the freeze's end, if it has one), and, when the
 * runner's configuration names maintenance windows, only inside one. Plans and
 * drift checks are never held. Pure: a function of the freeze, the windows and
 * the clock.
 */
export interface MaintenanceWindow {
  /** A 5-field cron expression: when each window opens. */
  readonly cron: string;
  readonly durationMs: number;
  /** The IANA time zone the expression is read in. */
  readonly timezone: string;
  /** How the configuration wrote it, for people. */
  readonly text: string;
}

export type ApplyGate =
  | { readonly kind: "open" }
  | { readonly kind: "frozen"; readonly freeze: Freeze }
  | { readonly kind: "outside-window"; readonly opensAt: Date };

export function applyGate(
  now: Date,
  freeze: Freeze | undefined,
  windows: readonly MaintenanceWindow[],
): ApplyGate {
  if (freeze && (freeze.until === undefined || Date.parse(freeze.until) > now.getTime())) {
    return { kind: "frozen", freeze };
  }
  if (windows.length === 0 || windows.some((window) => isInside(window, now))) return { kind: "open" };
  const opensAt = Math.min(...windows.map((window) => opening(window, now, "next").getTime()));
  return { kind: "outside-window", opensAt: new Date(opensAt) };
}

/** What people are told of a closed gate: why applies wait, and until when if known. */
export function gateReason(gate: ApplyGate): string | undefined {
  switch (gate.kind) {
    case "open":
      return undefined;
    case "frozen":
      return gate.freeze.until
        ? `applies are frozen until ${gate.freeze.until}: ${gate.freeze.reason}`
        : `applies are frozen: ${gate.freeze.reason}`;
    case "outside-window":
      return `applies wait for the next maintenance window, at ${gate.opensAt.toISOString()}`;
  }
}

/**
 * Inside when the latest opening at or before now is less than the duration
 * ago. Only the latest opening matters: an earlier one ended no later than it.
 */
function isInside(window: MaintenanceWindow, now: Date): boolean {
  const opened = opening(window, new Date(now.getTime() + 1), "prev");
  return now.getTime() - opened.getTime() < window.durationMs;
}

function opening(window: MaintenanceWindow, from: Date, direction: "prev" | "next"): Date {
  const times = CronExpressionParser.parse(window.cron, { currentDate: from, tz: window.timezone });
  return (direction === "prev" ? times.prev() : times.next()).toDate();
}
