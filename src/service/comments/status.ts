import type { CommandReport, StackReport } from "../../engine/report.ts";
import { hasPlan, plural } from "./stacks.ts";

const DESCRIPTION_LIMIT = 140;

/** The commit status's description: "2 stacks: +3 ~1 -1 (1 replaced); 1 failed", at most 140 characters. */
export function statusDescription(report: CommandReport): string {
  const run = report.stacks.filter((stack) => stack.status !== "skipped");
  const count = (test: (stack: StackReport) => boolean | undefined) => report.stacks.filter(test).length;
  const problems = (
    [
      [count((stack) => stack.status === "failed"), "failed"],
      [count((stack) => stack.skippedForFailure), "skipped (dependency failed)"],
      [count((stack) => stack.status === "blocked"), "blocked"],
      [count((stack) => stack.wouldBlock), "would block"],
      [count((stack) => stack.status === "pending"), "waiting for a producer"],
    ] as const
  ).flatMap(([number, label]) => (number > 0 ? [`${number} ${label}`] : []));
  if (run.length === 0 && problems.length === 0) return "no stack affected";
  const total = { add: 0, change: 0, destroy: 0, replace: 0 };
  for (const stack of run.filter(hasPlan)) {
    total.add += stack.summary.add;
    total.change += stack.summary.change;
    total.destroy += stack.summary.destroy;
    total.replace += stack.summary.replace;
  }
  const changes = run.every((stack) => stack.status === "no-changes")
    ? "no changes"
    : `+${total.add} ~${total.change} -${total.destroy}${total.replace > 0 ? ` (${total.replace} replaced)` : ""}`;
  const text = `${run.length} ${plural(run.length, "stack")}: ${changes}${problems.length > 0 ? `; ${problems.join(", ")}` : ""}`;
  return text.length <= DESCRIPTION_LIMIT ? text : `${text.slice(0, DESCRIPTION_LIMIT - 1)}…`;
}
