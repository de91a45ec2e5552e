import type { CommandReport, StackReport } from "../engine/report.ts";
import { code, escapeText } from "../markdown/escape.ts";

/**
 * What the pull-request comment says beyond the plan table: the policy
 * checks' violations per stack, and what happens on merge per environment.
 * Pure: a report in, Markdown out.
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

/** Whether the plan check fails: the policy checks found violations, or promotion would block an apply. */
export function failsPlanGates(report: CommandReport): boolean {
  return report.stacks.some(
    (stack) =>
      (stack.violations?.length ?? 0) > 0 ||
      (stack.status === "changes" && stack.environment?.promotion.kind === "blocked"),
  );
}

/** Per environment, in promotion order, what the merge does to each affected stack. */
export function environmentSection(report: CommandReport): string | undefined {
  const planned = report.stacks.filter((stack) => stack.environment && stack.runId !== null);
  if (planned.length === 0) return undefined;
  const order: string[] = [];
  for (const stack of planned) {
    const name = stack.environment?.name ?? "";
    if (!order.includes(name)) order.push(name);
  }
  const rows = order.flatMap((environment) =>
    planned
      .filter((stack) => stack.environment?.name === environment)
      .map(
        (stack) =>
          `| ${escapeText(environment)} | ${escapeText(stack.name)} | ${escapeText(onMerge(stack))} |`,
      ),
  );
  return ["#### Environments", "", "| Environment | Stack | On merge |", "| :-- | :-- | :-- |", ...rows].join(
    "\n",
  );
}

function onMerge(stack: StackReport): string {
  const environment = stack.environment;
  if (!environment) return "";
  if (stack.status === "failed") return "does not apply: its plan failed";
  if (stack.status === "no-changes") return "nothing to apply";
  if ((stack.violations?.length ?? 0) > 0) return "blocked by the policy checks";
  const approval = environment.autoApply ? "" : ", after a person approves it (autoApply is off)";
  const promotion = environment.promotion;
  switch (promotion.kind) {
    case "ungated":
      return `applies${approval}`;
    case "promoted":
      return `applies${approval}: ${promotion.from} applied this configuration at ${promotion.commit.slice(0, 7)}`;
    case "follows":
      return `applies once ${promotion.counterpart} (${promotion.from}) has applied the same configuration${approval}`;
    case "blocked":
      return `blocked: ${promotion.reason}`;
  }
}
