import type { CommandReport, StackReport, StackStatus } from "../engine/report.ts";
import type { SynthReport } from "../engine/synth.ts";
import type { PlanSummary } from "../terraform/plan-json.ts";

const HEADER = ["STACK", "STATUS", "CHANGES", "REASON"];
/** Results without a plan to count: the stack did not run, or its plan failed. */
const UNPLANNED: ReadonlySet<StackStatus> = new Set(["skipped", "failed", "pending"]);

/** The human-readable form of a command's report: a line naming the commit, then a table of stacks. */
export function renderReport(command: string, report: CommandReport): string {
  const rows = [HEADER, ...report.stacks.map(stackRow)];
  const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => (row[column] ?? "").length)));
  const lines = rows.map((row) =>
    row
      .map((cell, column) => (column < 3 ? cell.padEnd(widths[column] ?? 0) : cell))
      .join("  ")
      .trimEnd(),
  );
  return `${command} at ${report.commit.slice(0, 12)}\n${lines.join("\n")}\n`;
}

function stackRow(stack: StackReport): string[] {
  const notes = [
    stack.pending ? "pending apply" : "",
    stack.wouldBlock ? "would block: destroys" : "",
    stack.provisional ? "provisional" : "",
    stack.reason ?? "",
    stack.error ? `${stack.error.code}: ${stack.error.message}` : "",
  ].filter(Boolean);
  return [
    stack.name,
    stack.status,
    UNPLANNED.has(stack.status) ? "" : counts(stack.summary),
    notes.join("; "),
  ];
}

/** A plan's counts as people read them: "+1 ~0 -2 (1 replaced)". */
export function counts(summary: PlanSummary): string {
  const { add, change, destroy, replace } = summary;
  return `+${add} ~${change} -${destroy}${replace > 0 ? ` (${replace} replaced)` : ""}`;
}

export function renderSynth(report: SynthReport): string {
  const lines = report.stacks.map(
    (stack) =>
      `${stack.name}  ${stack.hash.slice(0, 12)}${stack.dependencies.length > 0 ? `  depends on ${stack.dependencies.join(", ")}` : ""}`,
  );
  return `synthesized ${report.commit.slice(0, 12)}\n${lines.join("\n")}\n`;
}
