import type { RollbackResult } from "../engine/rollback.ts";
import type { AuditEntry } from "../store/records.ts";
import { counts } from "./render.ts";

const HEADER = ["WHEN", "STACK", "RESULT", "COMMIT", "PULL REQUEST", "WHO", "CHANGES"];

/** The audit trail as people read it: a row per applied change, newest first. */
export function renderAudit(entries: readonly AuditEntry[]): string {
  if (entries.length === 0) return "no applied changes recorded\n";
  const rows = [HEADER, ...entries.map(auditRow)];
  const widths = HEADER.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length)));
  return `${rows
    .map((row) =>
      row
        .map((cell, column) => (column < HEADER.length - 1 ? cell.padEnd(widths[column] ?? 0) : cell))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

function auditRow(entry: AuditEntry): string[] {
  const pr = entry.origin.pullRequest;
  return [
    entry.at.replace(/\.\d+Z$/, "Z"),
    entry.stack,
    entry.result,
    entry.commit.slice(0, 12),
    pr ? `#${pr.number}` : "",
    who(entry),
    `${counts(entry.summary)}${entry.resources.length > 0 ? ` ${entry.resources.map((resource) => resource.address).join(", ")}` : ""}`,
  ];
}

/** Who asked, most specific first: the pull request's people, the token, the user, the commit's author. */
function who(entry: AuditEntry): string {
  const pr = entry.origin.pullRequest;
  const people = [
    pr?.author ? `by ${pr.author}` : "",
    pr?.mergedBy ? `merged by ${pr.mergedBy}` : "",
    pr?.approvers?.length ? `approved by ${pr.approvers.join(", ")}` : "",
    entry.origin.tokenName ? `token ${entry.origin.tokenName}` : "",
    entry.origin.user ? `user ${entry.origin.user}` : "",
  ].filter(Boolean);
  if (people.length > 0) return people.join(", ");
  return entry.commitAuthor ? `author ${entry.commitAuthor}` : entry.trigger;
}

/** What a rollback did, for people: the branch, and the pull request or what to do next. */
export function renderRollback(result: RollbackResult): string {
  const lines = [
    `rollback of ${result.stack} to ${result.to.slice(0, 12)}: pushed branch ${result.branch} (commit ${result.commit.slice(0, 12)})`,
    result.pullRequest
      ? `opened pull request #${result.pullRequest.number}: ${result.pullRequest.url}`
      : `no forge is configured: open a pull request from ${result.branch} into ${result.base}`,
    ...(result.alsoChanges.length > 0 ? [`it also changes: ${result.alsoChanges.join(", ")}`] : []),
  ];
  return `${lines.join("\n")}\n`;
}
