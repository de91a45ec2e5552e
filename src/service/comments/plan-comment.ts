import type { WidenedPermission } from "../../domain/review.ts";
import type { CommandReport, StackReport } from "../../engine/report.ts";
import { code, escapeHtml, escapeText, linkTarget } from "../../markdown/escape.ts";
import { fenced, paginateSections, type Section, SectionWriter } from "../../markdown/pages.ts";
import { commentMarkers } from "./markers.ts";
import {
  countsLine,
  countsText,
  describeActions,
  notAffected,
  plural,
  type RunUrl,
  short,
  stackTable,
  WAITS,
} from "./stacks.ts";

/**
 * The plan comment of a pull request, rendered from the plan at its head:
 * one comment, split only when over the forge's size limit. Pure: data in,
 * Markdown out. Only what renders the same on the forges is used: headings,
 * tables, blockquotes, fences, <details>.
 */

export interface StackPlanDetail {
  readonly name: string;
  /** Terraform's human plan text of the resource changes, already redacted (sensitive values show as (sensitive)), may be empty */
  readonly changes: string;
}

export interface PlanCommentInput {
  /** The plan at the pull request's head. */
  readonly report: CommandReport;
  readonly headSha: string;
  readonly baseSha?: string;
  readonly details: readonly StackPlanDetail[];
  /** The comment's hidden first line; the default runner's when unset. */
  readonly marker?: string;
  /** Link to a run in the dashboard. */
  readonly runUrl?: RunUrl;
  /** Permissions the pull request's policy change grants: said first of all. */
  readonly widened?: readonly WidenedPermission[];
  /** Said before the table, e.g. that the plan failed before any stack. Plain text. */
  readonly notices?: readonly string[];
  /** The affected stacks for which the branch is behind the followed branch. */
  readonly stale?: readonly string[];
  /** Markdown blocks shown after the table (policy checks, environments), each already escaped. */
  readonly extraSections?: readonly string[];
}

/** Below this, a part could not hold a stack's heading and a few lines. */
const MIN_COMMENT_LENGTH = 1000;

/**
 * One or more comment bodies, each at most `maxLength` characters (UTF-16 code
 * units, which never undercounts), each starting with the marker and with its
 * fences and <details> balanced. When split, every part says "part i of n".
 */
export function renderPlanComment(input: PlanCommentInput, maxLength: number): string[] {
  if (maxLength < MIN_COMMENT_LENGTH) {
    throw new RangeError(`a plan comment needs at least ${MIN_COMMENT_LENGTH} characters, not ${maxLength}`);
  }
  const details = new Map(input.details.map((detail) => [detail.name, detail.changes]));
  const sections = [
    planHeader(input),
    planTable(input.report.stacks, input.runUrl),
    ...(input.extraSections ?? []).map((markdown) => {
      const writer = new SectionWriter();
      writer.write(markdown);
      return writer.lines;
    }),
    ...input.report.stacks.flatMap((stack) => {
      const section = stackDetails(stack, details.get(stack.name) ?? "", input.runUrl);
      return section ? [section] : [];
    }),
    footer(),
  ].filter((section) => section.length > 0);
  return paginateSections(
    sections,
    maxLength,
    input.marker ?? commentMarkers().plan,
    (part, parts) => `_Part ${part} of ${parts} of the plan for ${code(short(input.headSha))}_`,
  );
}

/** The notice that the branch is behind the followed branch for some of the stacks it affects. */
export function staleNotice(stacks: readonly string[]): string {
  return (
    `> **Stale:** this branch is behind the followed branch for ${stacks.map(escapeText).join(", ")} ` +
    "(the followed branch changed it, or a stack it reads, since this branch left it), so the plan after " +
    "the merge may differ. Merge the followed branch into this branch or rebase it to plan again."
  );
}

/**
 * Put at the top of a plan comment after an apply changed stacks it planned:
 * the comment is out of date until the plan that follows replaces it.
 */
export function appliedSinceNotice(stacks: readonly string[], commit: string): string {
  return (
    `> **Stale:** ${stacks.map(escapeText).join(", ")} changed when ${code(short(commit))} was applied ` +
    "after this plan was made; it is being planned again."
  );
}

function planHeader(input: PlanCommentInput): Section {
  const writer = new SectionWriter();
  writer.write(`### gitops-runner plan for ${code(short(input.headSha))}`, "");
  const widened = input.widened ?? [];
  if (widened.length > 0) {
    writer.write(
      `> **This pull request widens the policy:** ${widened.map(describeWidening).join("; ")}. ` +
        "The policy of the commit being applied governs, so these apply to this change's own merge.",
      "",
    );
  }
  const base = input.baseSha === undefined ? "" : ` against base ${code(short(input.baseSha))}`;
  writer.write(
    countsLine(input.report.stacks, {
      head: (count) => `**${count} ${plural(count, "stack")} planned**${base}`,
      none: `No stack was planned${base}.`,
      notRun: "not planned",
    }),
  );
  const notices = (input.notices ?? []).map((notice) => notice.replace(/\r\n?/g, "\n").trim());
  const stale = input.stale ?? [];
  if (notices.length > 0 || stale.length > 0) writer.write("");
  notices.forEach((notice, index) => {
    if (index > 0) writer.write(">");
    const [first = "", ...rest] = notice.split("\n");
    writer.write(`> ${escapeText(first)}`);
    if (rest.length > 0) {
      writer.write(">");
      fenced(writer, rest.join("\n"), "", "> ");
    }
  });
  if (stale.length > 0) {
    if (notices.length > 0) writer.write(">");
    writer.write(staleNotice(stale));
  }
  return writer.lines;
}

/** "storage: allowDestroy false → true" */
function describeWidening(widening: WidenedPermission): string {
  return `${escapeText(widening.stack)}: ${code(widening.field)} ${escapeText(widening.from)} → ${escapeText(widening.to)}`;
}

function planTable(stacks: readonly StackReport[], runUrl: RunUrl | undefined): Section {
  const writer = new SectionWriter();
  const rows = stackTable(stacks, runUrl);
  if (rows.length > 0) {
    const head = rows.slice(0, 2);
    writer.open({ reopen: head, close: [] }, ...head);
    writer.write(...rows.slice(2));
    writer.close();
  }
  const unaffected = notAffected(stacks);
  if (unaffected !== undefined) {
    if (rows.length > 0) writer.write("");
    writer.write(unaffected);
  }
  return writer.lines;
}

/** The <details> of a stack that ran; none for an unchanged stack with nothing to show. */
function stackDetails(stack: StackReport, changes: string, runUrl: RunUrl | undefined): Section | undefined {
  const text = changes.replace(/\r\n?/g, "\n").replace(/\s+$/, "").replace(/^\n+/, "");
  const waits = stack.provisional === true || stack.status === "pending";
  const worthShowing =
    stack.resources.length > 0 || text.length > 0 || stack.error !== undefined || stack.wouldBlock || waits;
  if (stack.status === "skipped" || (stack.status === "no-changes" && !worthShowing)) return undefined;

  const writer = new SectionWriter();
  writer.open(
    {
      reopen: [`<details><summary>${escapeHtml(`${stack.name} (continued)`)}</summary>`, ""],
      close: ["", "</details>"],
    },
    `<details><summary>${escapeHtml(detailsSummary(stack))}</summary>`,
    "",
  );
  const url = stack.runId !== null && runUrl ? runUrl(stack.runId) : undefined;
  if (url !== undefined && stack.runId !== null) {
    writer.write(`Run: [${escapeText(stack.runId)}](${linkTarget(url)})`, "");
  }
  if (stack.wouldBlock) {
    writer.write(
      "**Needs approval to destroy:** this plan destroys or replaces resources and the policy does not " +
        "allow it for this stack. After the merge, its apply stops as `blocked` until someone approves " +
        "that plan.",
      "",
    );
  }
  if (waits) {
    const reason = stack.reason ?? `Provisional: ${WAITS}`;
    writer.write(
      `${escapeText(capitalize(reason))}. This stack reads the applied outputs of a stack this change ` +
        "also affects, so its plan here is provisional and does not fail the check.",
      "",
    );
  }
  if (stack.error !== undefined) {
    writer.lead(`Error ${code(stack.error.code)}:`, "");
    fenced(writer, stack.error.message, "");
    writer.write("");
  }
  if (stack.resources.length > 0) {
    writer.write(
      ...stack.resources.map(
        (resource) => `- ${code(resource.address)} ${describeActions(resource.actions)}`,
      ),
      "",
    );
  }
  if (text.length > 0) {
    const diff = asDiff(text);
    fenced(writer, diff ?? text, diff === undefined ? "hcl" : "diff");
    writer.write("");
  }
  writer.close();
  return writer.lines;
}

function footer(): Section {
  const writer = new SectionWriter();
  writer.write(
    "_This plan is a preview: after the merge, the merge commit is planned again and only that plan is applied._",
  );
  return writer.lines;
}

/** "network: +1 ~1 -0", with what else a reviewer must know at a glance. */
function detailsSummary(stack: StackReport): string {
  if (stack.status === "failed") return `${stack.name}: failed`;
  if (stack.status === "pending") return `${stack.name}: ${WAITS}`;
  const notes = [
    ...(stack.wouldBlock ? ["needs approval to destroy"] : []),
    ...(stack.provisional ? [WAITS] : []),
  ];
  return `${stack.name}: ${countsText(stack)}${notes.length > 0 ? ` — ${notes.join("; ")}` : ""}`;
}

/**
 * Terraform indents its change markers; the forges colour a ```diff line by
 * its first character. So the marker moves to the start of the line, the
 * indentation kept after it, and "~" (updated in place) becomes "!", which the
 * diff grammar knows (as Atlantis does). undefined: no line has a marker.
 */
function asDiff(text: string): string | undefined {
  let marked = false;
  const lines = text.split("\n").map((line) => {
    const match = /^(\s*)(-\/\+|\+\/-|[-+~])(?= |$)/.exec(line);
    if (match === null) return line;
    marked = true;
    const [whole, indent = "", marker = ""] = match;
    return `${marker === "~" ? "!" : marker}${indent}${line.slice(whole.length)}`;
  });
  return marked ? lines.join("\n") : undefined;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
