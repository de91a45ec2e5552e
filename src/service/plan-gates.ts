import type { CommandReport } from "../engine/report.ts";
import { code, escapeText } from "../forge/comment.ts";

/**
 * What the pull-request comment says beyond the plan table: the policy
 * checks' violations per stack. Pure: a report in, Markdown out.
 */
export function policySection(report: CommandReport): string | undefined {
  const flagged = report.stacks.filter((stack) => (stack.violations?.length ?? 0) > 0);
  if (flagged.length === 0) return undefined;
  const lines = ["#### Policy checks", ""];
  for (const stack of flagged) {
    const violations = stack.violations ?? [];
    lines.push(
      `- **${escapeText(stack.name)}**: ${violations.length} ${violations.length === 1 ? "violation" : "violations"}`,
    );
    for (const violation of violations) {
      const where = violation.address ? `${code(violation.address)}: ` : "";
      const approvable = violation.approvable ? " _(a person may approve the plan)_" : "";
      lines.push(`  - ${code(violation.check)}: ${where}${escapeText(violation.message)}${approvable}`);
    }
  }
  lines.push(
    "",
    "After the merge, the apply of these stacks stops as `blocked` until the violations are fixed.",
  );
  return lines.join("\n");
}

/** Whether the plan check fails for what the policy checks found. */
export function failsPolicyChecks(report: CommandReport): boolean {
  return report.stacks.some((stack) => (stack.violations?.length ?? 0) > 0);
}
