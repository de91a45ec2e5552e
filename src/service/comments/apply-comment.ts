import type { ChangeDifference, ReviewComparison } from "../../domain/review.ts";
import type { CommandReport, StackReport } from "../../engine/report.ts";
import { code, escapeHtml, escapeText, fenceTicks, linkTarget } from "../../markdown/escape.ts";
import { commentMarkers } from "./markers.ts";
import {
  countsLine,
  describeActions,
  notAffected,
  plural,
  type RunUrl,
  short,
  stackTable,
} from "./stacks.ts";

/**
 * The comment on a merged pull request: how the apply of its merge commit
 * went, what to do next for each failed or blocked stack, and where the merge
 * commit's plan differs from the plan reviewed on the pull request. Pure.
 */
export interface ApplyCommentInput {
  readonly report: CommandReport;
  readonly mergeSha: string;
  /** The comment's hidden first line; the default runner's when unset. */
  readonly marker?: string;
  readonly runUrl?: RunUrl;
  /** Stacks whose merge plan differs from the pull request's last plan, with how. */
  readonly review?: readonly StackReview[];
  /** A newer commit applied instead of the merge commit. */
  readonly coalescedInto?: string;
}

export interface StackReview {
  readonly stack: string;
  readonly comparison: Extract<ReviewComparison, { kind: "differs" }>;
}

/** The apply comment is not split: long texts in it are cut and the run link says where the rest is. */
const APPLY_ERROR_LIMIT = 2000;
const DIFFERENCE_LIMIT = 50;

export function renderApplyComment(input: ApplyCommentInput): string {
  const { report, runUrl } = input;
  const applied = input.coalescedInto ?? input.mergeSha;
  const lines = [
    input.marker ?? commentMarkers().apply,
    `### gitops-runner apply of ${code(short(applied))}`,
    "",
  ];
  lines.push(
    countsLine(report.stacks, {
      head: (count) => `**${count} affected ${plural(count, "stack")}**`,
      none: "No stack needed applying.",
      notRun: "not applied",
    }),
  );

  const notes: string[] = [];
  if (input.coalescedInto !== undefined) {
    notes.push(
      `> This merge (${code(short(input.mergeSha))}) was not applied on its own: the newer commit ` +
        `${code(short(input.coalescedInto))} was applied instead, and it includes this change.`,
    );
  }
  const review = input.review ?? [];
  if (review.length > 0) {
    notes.push(
      `> **Not what was reviewed:** the plan at the merge commit differs from this pull request's last plan for ${review
        .map((entry) => escapeText(entry.stack))
        .join(", ")}: see the differences below.`,
    );
  }
  if (notes.length > 0) lines.push("", notes.join("\n>\n"));

  const table = stackTable(report.stacks, runUrl);
  if (table.length > 0) lines.push("", ...table);
  const unaffected = notAffected(report.stacks);
  if (unaffected !== undefined) lines.push("", unaffected);

  for (const stack of report.stacks) {
    const next = nextStep(stack, runUrl);
    if (next.length > 0) lines.push("", ...next);
  }
  for (const entry of review) lines.push("", ...reviewDifferences(entry));
  return lines.join("\n");
}

/** What a failed or blocked stack needs from people. */
function nextStep(stack: StackReport, runUrl: RunUrl | undefined): string[] {
  const url = stack.runId !== null && runUrl ? runUrl(stack.runId) : undefined;
  const run = url === undefined ? "" : ` [Run ${escapeText(stack.runId ?? "")}](${linkTarget(url)}).`;
  const name = `**${escapeText(stack.name)}**`;
  if (stack.status === "failed") {
    const lines = [`${name} failed${stack.error ? ` (${code(stack.error.code)})` : ""}.${run}`];
    if (stack.error !== undefined) {
      const message = stack.error.message;
      const cut = message.length > APPLY_ERROR_LIMIT;
      const shown = cut
        ? `${message.slice(0, APPLY_ERROR_LIMIT)}\n… (cut; the run's log has the rest)`
        : message;
      const ticks = fenceTicks(shown);
      lines.push("", ticks, shown, ticks);
    }
    const rerun = code(`POST /api/stacks/${encodeURIComponent(stack.name)}/apply`);
    lines.push("", `Next: fix the stack and push again, or re-run with ${rerun}.`);
    return lines;
  }
  if (stack.status === "blocked") {
    const reason = stack.reason === undefined ? "" : `: ${escapeText(stack.reason)}`;
    const approve =
      stack.runId === null
        ? "approve its run in the dashboard"
        : `approve with ${code(`POST /api/runs/${encodeURIComponent(stack.runId)}/approve`)}`;
    return [
      `${name} is blocked${reason}.${run}`,
      "",
      `Next: ${approve}; the run then applies that very plan.`,
    ];
  }
  return [];
}

function reviewDifferences(entry: StackReview): string[] {
  const { differences, notReviewed } = entry.comparison;
  const shown = differences.slice(0, DIFFERENCE_LIMIT);
  const more = differences.length - shown.length;
  const title = notReviewed
    ? `${entry.stack}: planned at the merge commit, not in the pull request's plan`
    : `${entry.stack}: how the merge commit's plan differs from the reviewed one`;
  return [
    `<details><summary>${escapeHtml(title)}</summary>`,
    "",
    ...shown.map((difference) => `- ${describeDifference(difference)}`),
    ...(more > 0 ? [`- and ${more} more (see the run)`] : []),
    "",
    "</details>",
  ];
}

function describeDifference(difference: ChangeDifference): string {
  const address = code(difference.address);
  switch (difference.kind) {
    case "added":
      return `${address} ${describeActions(difference.actions)}; the reviewed plan did not change it`;
    case "removed":
      return `${address} is no longer changed; the reviewed plan said it ${describeActions(difference.actions)}`;
    case "changed":
      return `${address} ${describeActions(difference.planned)}; the reviewed plan said it ${describeActions(difference.reviewed)}`;
  }
}
