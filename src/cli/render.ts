import type { CommandReport } from "../engine/report.ts";
import type { SynthReport } from "../engine/synth.ts";

/** The human-readable form of a command's report. */
export function renderReport(command: string, report: CommandReport): string {
  const rows = report.stacks.map((stack) => {
    const { add, change, destroy, replace } = stack.summary;
    const counts = `+${add} ~${change} -${destroy}${replace > 0 ? ` (${replace} replaced)` : ""}`;
    const notes = [
      stack.pending ? "pending apply" : "",
      stack.wouldBlock ? "would block: destroys" : "",
      stack.provisional ? "provisional" : "",
      stack.reason ?? "",
      stack.error ? `${stack.error.code}: ${stack.error.message}` : "",
    ].filter(Boolean);
    return [stack.name, stack.status, counts, notes.join("; ")];
  });
  const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => (row[column] ?? "").length), 5));
  const lines = rows.map((row) =>
    row
      .map((cell, column) => (column < 3 ? cell.padEnd(widths[column] ?? 0) : cell))
      .join("  ")
      .trimEnd(),
  );
  return `${command} at ${report.commit.slice(0, 12)}\n${lines.join("\n")}\n`;
}

export function renderSynth(report: SynthReport): string {
  const lines = report.stacks.map(
    (stack) =>
      `${stack.name}  ${stack.hash.slice(0, 12)}${stack.dependencies.length > 0 ? `  depends on ${stack.dependencies.join(", ")}` : ""}`,
  );
  return `synthesized ${report.commit.slice(0, 12)}\n${lines.join("\n")}\n`;
}
