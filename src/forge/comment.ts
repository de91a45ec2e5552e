import type { CommandReport, StackReport, StackStatus } from "../engine/report.ts";

/**
 * The pull-request comments, rendered from reports: the plan at the head (one
 * comment, split only when over the forge's size limit) and the result of the
 * apply after merge. Pure: data in, Markdown out. Only what renders the same on
 * GitHub and GitLab is used: headings, tables, blockquotes, fences, <details>.
 */

export const COMMENT_MARKER = "<!-- gitops-runner:plan -->";
export const APPLY_MARKER = "<!-- gitops-runner:apply -->";

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
  /** Link to a run in the dashboard. */
  readonly runUrl?: (runId: string) => string;
  /** Said before the table, e.g. that the policy file widens a permission. Plain text. */
  readonly notices?: readonly string[];
  /** The branch is behind the default branch for an affected stack. */
  readonly stale?: boolean;
  /** Markdown blocks shown after the table (policy checks, environments), each already escaped. */
  readonly extraSections?: readonly string[];
}

export interface ApplyCommentInput {
  readonly report: CommandReport;
  readonly mergeSha: string;
  readonly runUrl?: (runId: string) => string;
  /** Stacks whose merge plan differs from the pull request's plan. */
  readonly planDiffers?: readonly string[];
  /** A newer commit applied instead of the merge commit. */
  readonly coalescedInto?: string;
}

/** Below this, a part could not hold a stack's heading and a few lines. */
const MIN_COMMENT_LENGTH = 1000;
const DESCRIPTION_LIMIT = 140;
/** The apply comment is not split: long texts in it are cut and the run link says where the rest is. */
const APPLY_ERROR_LIMIT = 2000;
const APPLY_RESOURCE_LIMIT = 50;
const WAITS = "waits for the producer's apply";
const TABLE_HEAD = ["Stack", "Add", "Change", "Destroy", "Status"];
/** Per column: numbers align right. */
const TABLE_ALIGN: readonly ("left" | "right")[] = ["left", "right", "right", "right", "left"];

/** How the header counts each status, in this order. */
const COUNTED: readonly (readonly [StackStatus, string])[] = [
  ["changes", "with changes"],
  ["applied", "applied"],
  ["no-changes", "unchanged"],
  ["drifted", "drifted"],
  ["corrected", "corrected"],
  ["pending", "waiting for the producer's apply"],
  ["blocked", "blocked"],
  ["failed", "failed"],
];

// --- The plan comment ----------------------------------------------------------------

/**
 * One or more comment bodies, each at most `maxLength` characters (UTF-16 code
 * units, which never undercounts), each starting with COMMENT_MARKER and with
 * its fences and <details> balanced. When split, every part says "part i of n".
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
  return paginateComment(
    sections,
    maxLength,
    (part, parts) => `_Part ${part} of ${parts} of the plan for ${code(short(input.headSha))}_`,
  );
}

function planHeader(input: PlanCommentInput): Section {
  const writer = new SectionWriter();
  writer.write(`### gitops-runner plan for ${code(short(input.headSha))}`, "");
  const base = input.baseSha === undefined ? "" : ` against base ${code(short(input.baseSha))}`;
  writer.write(
    countsLine(input.report.stacks, {
      head: (count) => `**${count} ${plural(count, "stack")} planned**${base}`,
      none: `No stack was planned${base}.`,
      notRun: "not planned",
    }),
  );
  const notices = (input.notices ?? []).map((notice) => notice.replace(/\r\n?/g, "\n").trim());
  if (notices.length > 0 || input.stale) writer.write("");
  notices.forEach((notice, index) => {
    if (index > 0) writer.write(">");
    const [first = "", ...rest] = notice.split("\n");
    writer.write(`> ${escapeText(first)}`);
    if (rest.length > 0) {
      writer.write(">");
      fenced(writer, rest.join("\n"), "", "> ");
    }
  });
  if (input.stale) {
    if (notices.length > 0) writer.write(">");
    writer.write(
      "> **Stale:** this branch is behind the default branch for an affected stack, so the plan after " +
        "the merge may differ. Merge the default branch into it or rebase it to plan again.",
    );
  }
  return writer.lines;
}

interface CountsWording {
  readonly head: (count: number) => string;
  readonly none: string;
  /** For the stacks left out because a dependency failed. */
  readonly notRun: string;
}

/** "**3 stacks planned** against base `abc1234`: 2 with changes, 1 failed; 1 needs approval to destroy." */
function countsLine(stacks: readonly StackReport[], wording: CountsWording): string {
  const run = stacks.filter((stack) => stack.status !== "skipped");
  const counts = COUNTED.flatMap(([status, label]) => {
    const count = run.filter((stack) => stack.status === status).length;
    return count > 0 ? [`${count} ${label}`] : [];
  });
  const wouldBlock = run.filter((stack) => stack.wouldBlock).length;
  const dependencyFailed = stacks.filter((stack) => stack.skippedForFailure).length;
  const extras = [
    ...(wouldBlock > 0 ? [`${wouldBlock} ${wouldBlock === 1 ? "needs" : "need"} approval to destroy`] : []),
    ...(dependencyFailed > 0 ? [`${dependencyFailed} ${wording.notRun} because a dependency failed`] : []),
  ];
  if (run.length === 0 && extras.length === 0) return wording.none;
  const head = wording.head(run.length);
  const told = [counts.join(", "), ...extras].filter((text) => text.length > 0).join("; ");
  return `${head}${told.length > 0 ? `: ${told}` : ""}.`;
}

function planTable(stacks: readonly StackReport[], runUrl: PlanCommentInput["runUrl"]): Section {
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

/**
 * The table's lines (head, delimiter, rows): a row per stack that ran, and per
 * stack left out because a dependency failed; none when there is no such stack.
 */
function stackTable(stacks: readonly StackReport[], runUrl: PlanCommentInput["runUrl"]): string[] {
  const rows = stacks
    .filter((stack) => stack.status !== "skipped" || stack.skippedForFailure)
    .map((stack) => {
      const url = stack.runId !== null && runUrl ? runUrl(stack.runId) : undefined;
      const name =
        url === undefined ? escapeText(stack.name) : `[${escapeText(stack.name)}](${linkTarget(url)})`;
      const { add, change, destroy, replace } = stack.summary;
      const numbers = hasPlan(stack)
        ? [withReplace(add, replace), String(change), withReplace(destroy, replace)]
        : ["—", "—", "—"];
      return [name, ...numbers, escapeText(statusText(stack))];
    });
  return rows.length > 0 ? alignedTable(TABLE_HEAD, TABLE_ALIGN, rows) : [];
}

/**
 * A Markdown table with each column padded to one width, as Biome's Markdown
 * formatter writes it: the goldens stay as rendered, and the raw text (an
 * e-mail notification) reads as a table too.
 */
function alignedTable(
  head: readonly string[],
  align: readonly ("left" | "right")[],
  rows: readonly (readonly string[])[],
): string[] {
  const widths = head.map((title, column) =>
    rows.reduce((widest, row) => Math.max(widest, width(row[column] ?? "")), Math.max(3, width(title))),
  );
  const line = (cells: readonly string[]) => {
    const padded = widths.map((size, column) => {
      const cell = cells[column] ?? "";
      const padding = " ".repeat(size - width(cell));
      return align[column] === "right" ? `${padding}${cell}` : `${cell}${padding}`;
    });
    return `| ${padded.join(" | ")} |`;
  };
  const delimiter = widths.map((size, column) =>
    align[column] === "right" ? `${"-".repeat(size - 1)}:` : `:${"-".repeat(size - 1)}`,
  );
  return [line(head), `| ${delimiter.join(" | ")} |`, ...rows.map(line)];
}

/** Characters as a reader counts them (code points). */
function width(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** "Not affected: a, b (unchanged since abc1234); c (not named with --stack)." */
function notAffected(stacks: readonly StackReport[]): string | undefined {
  const groups = new Map<string, string[]>();
  for (const stack of stacks) {
    if (stack.status !== "skipped" || stack.skippedForFailure) continue;
    const reason = shortenShas(stack.reason ?? "");
    groups.set(reason, [...(groups.get(reason) ?? []), stack.name]);
  }
  if (groups.size === 0) return undefined;
  const told = [...groups].map(([reason, names]) => {
    const list = names.map(escapeText).join(", ");
    return reason.length > 0 ? `${list} (${escapeText(reason)})` : list;
  });
  return `Not affected: ${told.join("; ")}.`;
}

/** The <details> of a stack that ran; none for an unchanged stack with nothing to show. */
function stackDetails(
  stack: StackReport,
  changes: string,
  runUrl: PlanCommentInput["runUrl"],
): Section | undefined {
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
 * The status words of PRODUCT.md, with what the word alone does not say: a
 * destroying plan that will need approval, a plan that waits for its producer.
 */
function statusText(stack: StackReport): string {
  if (stack.skippedForFailure) return `skipped — ${stack.reason ?? "a dependency failed"}`;
  const notes = [
    ...(stack.wouldBlock ? ["needs approval to destroy"] : []),
    ...(stack.provisional || stack.status === "pending" ? [WAITS] : []),
    ...(stack.status === "blocked" && stack.reason !== undefined ? [stack.reason] : []),
  ];
  return notes.length > 0 ? `${stack.status} — ${notes.join("; ")}` : stack.status;
}

/** Terraform's wording for a resource's change. */
function describeActions(actions: readonly string[]): string {
  switch (actions.join(",")) {
    case "create":
      return "will be created";
    case "update":
      return "will be updated in-place";
    case "delete":
      return "will be destroyed";
    case "delete,create":
      return "will be replaced (delete, create)";
    case "create,delete":
      return "will be replaced (create, delete)";
    case "read":
      return "will be read";
    case "forget":
      return "will be removed from the state, not destroyed";
    // The plan lists a no-op resource only when it is imported.
    case "no-op":
      return "will be imported";
    default:
      return `will change (${actions.join(", ")})`;
  }
}

/**
 * Terraform indents its change markers; GitHub and GitLab colour a ```diff line
 * by its first character. So the marker moves to the start of the line, the
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

// --- The apply comment ---------------------------------------------------------------

/** The result of the apply after merge, with what to do next for each failed or blocked stack. */
export function renderApplyComment(input: ApplyCommentInput): string {
  const { report, runUrl } = input;
  const applied = input.coalescedInto ?? input.mergeSha;
  const lines = [APPLY_MARKER, `### gitops-runner apply of ${code(short(applied))}`, ""];
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
  const differs = input.planDiffers ?? [];
  if (differs.length > 0) {
    notes.push(
      `> The plan at the merge commit differs from this pull request's plan for ${differs.map(escapeText).join(", ")}: ` +
        "see what was applied below.",
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
  for (const stack of report.stacks) {
    if (differs.includes(stack.name) && stack.resources.length > 0)
      lines.push("", ...appliedResources(stack));
  }
  return lines.join("\n");
}

/** What a failed or blocked stack needs from people. */
function nextStep(stack: StackReport, runUrl: ApplyCommentInput["runUrl"]): string[] {
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

function appliedResources(stack: StackReport): string[] {
  const shown = stack.resources.slice(0, APPLY_RESOURCE_LIMIT);
  const more = stack.resources.length - shown.length;
  return [
    `<details><summary>${escapeHtml(`${stack.name}: what the merge commit's plan changed`)}</summary>`,
    "",
    ...shown.map((resource) => `- ${code(resource.address)} ${describeActions(resource.actions)}`),
    ...(more > 0 ? [`- and ${more} more (see the run)`] : []),
    "",
    "</details>",
  ];
}

// --- The commit status -----------------------------------------------------------------

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

// --- Splitting into comments ---------------------------------------------------------

/**
 * A construct a split may fall inside (a fence, a <details>, a table): closed
 * at the end of one comment and reopened at the start of the next.
 */
interface Frame {
  readonly reopen: readonly string[];
  readonly close: readonly string[];
}

interface Line {
  readonly text: string;
  /** The frames open after this line. */
  readonly frames: readonly Frame[];
  /** The line introduces what follows (a summary, a fence's opening): no part ends with it. */
  readonly lead: boolean;
}

/** Lines that belong together (the header, one stack): comments are split between sections where they can. */
type Section = readonly Line[];

class SectionWriter {
  readonly lines: Line[] = [];
  #frames: readonly Frame[] = [];

  /** Adds lines; a text with newlines is several lines. */
  write(...texts: readonly string[]): void {
    this.#add(texts, false);
  }

  lead(...texts: readonly string[]): void {
    this.#add(texts, true);
  }

  open(frame: Frame, ...texts: readonly string[]): void {
    this.#frames = [...this.#frames, frame];
    this.lead(...texts);
  }

  close(): void {
    const frame = this.#frames.at(-1);
    if (frame === undefined) throw new Error("SectionWriter.close: no frame is open");
    this.#frames = this.#frames.slice(0, -1);
    const last = this.lines.at(-1);
    if (frame.close.length === 0) {
      // Nothing marks the end (a table): the frame ends with the last line, so
      // a split right after it does not reopen the frame for nothing.
      if (last !== undefined) this.lines[this.lines.length - 1] = { ...last, frames: this.#frames };
      return;
    }
    this.write(...(last?.text === "" && frame.close[0] === "" ? frame.close.slice(1) : frame.close));
  }

  #add(texts: readonly string[], lead: boolean): void {
    for (const text of texts) {
      for (const line of text.split("\n")) this.lines.push({ text: line, frames: this.#frames, lead });
    }
  }
}

/** Writes `content` in a fence that no line of it can end; `prefix` is "> " inside a blockquote. */
function fenced(writer: SectionWriter, content: string, info: string, prefix = ""): void {
  const ticks = fenceTicks(content);
  writer.open(
    { reopen: [`${prefix}${ticks}${info}`], close: [`${prefix}${ticks}`] },
    `${prefix}${ticks}${info}`,
  );
  writer.write(...content.split("\n").map((line) => `${prefix}${line}`));
  writer.close();
}

/**
 * The comment bodies: the marker, then (when there are several) the part
 * line, then the sections packed greedily. The part line's length depends on
 * the number of parts, so room is reserved for the widest one of that many digits.
 */
function paginateComment(
  sections: readonly Section[],
  maxLength: number,
  partLine: (part: number, parts: number) => string,
): string[] {
  const room = maxLength - COMMENT_MARKER.length - 1;
  const whole = paginate(sections, room);
  if (whole.length === 1) return whole.map((body) => [COMMENT_MARKER, ...body].join("\n"));
  for (let digits = String(whole.length).length; ; digits++) {
    const widest = 10 ** digits - 1;
    const parts = paginate(sections, room - partLine(widest, widest).length - 2);
    if (String(parts.length).length <= digits) {
      return parts.map((body, index) =>
        [COMMENT_MARKER, partLine(index + 1, parts.length), "", ...body].join("\n"),
      );
    }
  }
}

/**
 * Packs lines into parts whose text (lines joined by newlines) stays within
 * `capacity`. Each line is added only when it still fits with the closing
 * lines of every frame open after it, so a part can always be closed. A
 * section that does not fit where it would start opens a new part, unless it
 * does not fit a part of its own either and a quarter of the current part is
 * still free; a line longer than a whole part is cut.
 */
function paginate(sections: readonly Section[], capacity: number): string[][] {
  const parts: string[][] = [];
  let reopened: readonly Frame[] = [];
  let body: Line[] = [];
  let used = 0;

  const start = (frames: readonly Frame[]) => {
    reopened = frames;
    body = [];
    used = cost(frames.flatMap((frame) => frame.reopen));
  };
  const finish = (carry: boolean) => {
    const lastPlain = body.findLastIndex((line) => !line.lead);
    const carried = carry ? body.slice(lastPlain + 1) : [];
    const kept = body.slice(0, body.length - carried.length);
    const frames = kept.at(-1)?.frames ?? reopened;
    const texts = [...reopened.flatMap((frame) => frame.reopen), ...kept.map((line) => line.text)];
    while (texts.at(-1) === "") texts.pop();
    parts.push([...texts, ...closing(frames)]);
    start(frames);
    for (const line of carried) place(line);
  };
  const place = (line: Line) => {
    let text = line.text;
    for (;;) {
      const free = capacity - used - cost(closing(line.frames)) - 1;
      if (text.length <= free) {
        body.push({ ...line, text });
        used += text.length + 1;
        return;
      }
      if (body.some((added) => !added.lead)) {
        finish(true);
        continue;
      }
      const cut = cutIndex(text, free);
      if (cut <= 0)
        throw new RangeError(`a comment of ${capacity} characters cannot hold this plan's structure`);
      body.push({ ...line, text: text.slice(0, cut), lead: false });
      used += cut + 1;
      text = text.slice(cut);
    }
  };

  start([]);
  for (const section of sections) {
    if (body.length > 0) {
      const size = cost(section.map((line) => line.text)) + 1;
      if (used + size > capacity && (size <= capacity || capacity - used < capacity / 4)) finish(false);
      else place({ text: "", frames: [], lead: true });
    }
    for (const line of section) place(line);
  }
  finish(false);
  return parts;
}

function closing(frames: readonly Frame[]): string[] {
  return frames.toReversed().flatMap((frame) => frame.close);
}

/** Characters the lines take, each with its newline. */
function cost(lines: readonly string[]): number {
  return lines.reduce((sum, line) => sum + line.length + 1, 0);
}

/** At most `max`, never between the halves of a surrogate pair. */
function cutIndex(text: string, max: number): number {
  const code = text.charCodeAt(max - 1);
  return code >= 0xd800 && code <= 0xdbff ? max - 1 : max;
}

// --- Markdown ------------------------------------------------------------------------

/**
 * Plain text inline (also in a table cell): Markdown's and HTML's special
 * characters escaped, on one line. Table cells get no code spans, where GFM
 * would still end the cell at a pipe.
 */
export function escapeText(text: string): string {
  return text.replace(/\s*\r?\n\s*/g, " ").replace(/[\\`*_[\]<>|~&#]/g, "\\$&");
}

/** Text inside an HTML element such as <summary>, where Markdown is not read. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (char) => HTML_ENTITIES[char] ?? char);
}

const HTML_ENTITIES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
};

export function code(text: string): string {
  const flat = text.replace(/\r?\n/g, " ");
  const ticks = "`".repeat(longestBacktickRun(flat) + 1);
  const pad = flat.startsWith("`") || flat.endsWith("`") ? " " : "";
  return `${ticks}${pad}${flat}${pad}${ticks}`;
}

function fenceTicks(content: string): string {
  return "`".repeat(Math.max(3, longestBacktickRun(content) + 1));
}

function longestBacktickRun(text: string): number {
  let longest = 0;
  for (const match of text.matchAll(/`+/g)) longest = Math.max(longest, match[0].length);
  return longest;
}

/** A link destination with nothing in it that ends a Markdown link early. */
function linkTarget(url: string): string {
  return url.replace(/[\s()<>]/g, (char) =>
    char === "(" ? "%28" : char === ")" ? "%29" : encodeURIComponent(char),
  );
}

// --- Small helpers -------------------------------------------------------------------

/** Statuses whose numbers come from a plan; a failed or waiting stack has none. */
function hasPlan(stack: StackReport): boolean {
  return stack.status !== "failed" && stack.status !== "pending" && stack.status !== "skipped";
}

function countsText(stack: StackReport): string {
  const { add, change, destroy, replace } = stack.summary;
  return `+${add} ~${change} -${destroy}${replace > 0 ? ` (${replace} replaced)` : ""}`;
}

function withReplace(count: number, replace: number): string {
  return replace > 0 ? `${count} (${replace} replace)` : String(count);
}

function short(sha: string): string {
  return sha.slice(0, 7);
}

/** Full commit hashes (SHA-1 or SHA-256) in a reason, shortened to 7 characters. */
function shortenShas(text: string): string {
  return text.replace(/\b([0-9a-f]{7})[0-9a-f]{33}(?:[0-9a-f]{24})?\b/g, "$1");
}

function plural(count: number, word: string): string {
  return count === 1 ? word : `${word}s`;
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
