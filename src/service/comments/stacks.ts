import type { StackReport, StackStatus } from "../../engine/report.ts";
import { escapeText, linkTarget } from "../../markdown/escape.ts";
import { alignedTable } from "../../markdown/table.ts";

/** What the plan and the apply comments say alike of the stacks of a report. */

export type RunUrl = (runId: string) => string;

export const WAITS = "waits for the producer's apply";
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

export interface CountsWording {
  readonly head: (count: number) => string;
  readonly none: string;
  /** For the stacks left out because a dependency failed. */
  readonly notRun: string;
}

/** "**3 stacks planned** against base `abc1234`: 2 with changes, 1 failed; 1 needs approval to destroy." */
export function countsLine(stacks: readonly StackReport[], wording: CountsWording): string {
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

/**
 * The table's lines (head, delimiter, rows): a row per stack that ran, and per
 * stack left out because a dependency failed; none when there is no such stack.
 */
export function stackTable(stacks: readonly StackReport[], runUrl: RunUrl | undefined): string[] {
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

/** "Not affected: a, b (unchanged since abc1234); c (not named with --stack)." */
export function notAffected(stacks: readonly StackReport[]): string | undefined {
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
export function describeActions(actions: readonly string[]): string {
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

/** Statuses whose numbers come from a plan; a failed or waiting stack has none. */
export function hasPlan(stack: StackReport): boolean {
  return stack.status !== "failed" && stack.status !== "pending" && stack.status !== "skipped";
}

export function countsText(stack: StackReport): string {
  const { add, change, destroy, replace } = stack.summary;
  return `+${add} ~${change} -${destroy}${replace > 0 ? ` (${replace} replaced)` : ""}`;
}

function withReplace(count: number, replace: number): string {
  return replace > 0 ? `${count} (${replace} replace)` : String(count);
}

export function short(sha: string): string {
  return sha.slice(0, 7);
}

/** Full commit hashes (SHA-1 or SHA-256) in a reason, shortened to 7 characters. */
function shortenShas(text: string): string {
  return text.replace(/\b([0-9a-f]{7})[0-9a-f]{33}(?:[0-9a-f]{24})?\b/g, "$1");
}

export function plural(count: number, word: string): string {
  return count === 1 ? word : `${word}s`;
}
