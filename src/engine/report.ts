import type { ReviewComparison } from "../domain/review.ts";
import type { Violation } from "../store/records.ts";
import type { PlanSummary } from "../terraform/plan-json.ts";
import type { StackEnvironment } from "./promotion.ts";

/** A stack's result, as the CLI's JSON and the PR table show it. */
export type StackStatus =
  | "no-changes"
  | "changes"
  | "applied"
  | "drifted"
  | "corrected"
  | "blocked"
  | "pending"
  | "skipped"
  | "failed";

export interface ResourceReport {
  readonly address: string;
  readonly actions: readonly string[];
  readonly drift?: readonly string[];
}

export interface StackReport {
  readonly name: string;
  readonly commit: string;
  readonly status: StackStatus;
  readonly reason?: string;
  readonly pending?: boolean;
  /** The plan destroys without the policy's permission: its apply would stop for approval. */
  readonly wouldBlock?: boolean;
  readonly provisional?: boolean;
  /** What the policy checks found in the plan (any blocks the apply; the JSON says wouldBlock). */
  readonly violations?: readonly Violation[];
  /** The stack's environment and what promotion says of it (a block is wouldBlock in the JSON). */
  readonly environment?: StackEnvironment;
  readonly summary: PlanSummary;
  readonly resources: readonly ResourceReport[];
  /** The recorded run; null for a stack that did not run (skipped). */
  readonly runId: string | null;
  readonly error?: { readonly code: string; readonly message: string };
  /** Set when a dependency failed, which fails the command like the dependency itself. */
  readonly skippedForFailure?: boolean;
  /** For drift checks: what to tell people, once per drift (not part of the CLI's JSON). */
  readonly driftEvent?: "found" | "changed" | "corrected";
  /** Terraform's own text of the plan, for people to read (a PR comment; not part of the CLI's JSON). */
  readonly planText?: string;
  /** An apply of a merged pull request: its plan against the one reviewed there (not part of the CLI's JSON). */
  readonly review?: ReviewComparison;
}

export interface CommandReport {
  readonly commit: string;
  readonly stacks: readonly StackReport[];
}

/** A plan whose apply the policy checks or the promotion rule would stop. */
function gated(stack: StackReport): boolean {
  if (stack.status !== "changes") return false;
  return (stack.violations?.length ?? 0) > 0 || stack.environment?.promotion.kind === "blocked";
}

export const EMPTY_SUMMARY: PlanSummary = { add: 0, change: 0, destroy: 0, replace: 0, import: 0 };

/**
 * 1 if any stack failed or was skipped because a dependency failed; else 3 if
 * any is blocked; else 2 if any has changes or drifted; else 0.
 */
export function exitCode(report: CommandReport): 0 | 1 | 2 | 3 {
  const statuses = report.stacks.map((stack) => stack.status);
  if (statuses.includes("failed") || report.stacks.some((stack) => stack.skippedForFailure)) return 1;
  if (statuses.includes("blocked")) return 3;
  if (statuses.includes("changes") || statuses.includes("drifted")) return 2;
  return 0;
}

/** The JSON document `--json` prints: the contract's fields only, in its order. */
export function toJson(report: CommandReport): unknown {
  return {
    commit: report.commit,
    stacks: report.stacks.map((stack) => ({
      name: stack.name,
      commit: stack.commit,
      status: stack.status,
      ...(stack.reason !== undefined ? { reason: stack.reason } : {}),
      ...(stack.pending !== undefined ? { pending: stack.pending } : {}),
      ...(stack.wouldBlock !== undefined || gated(stack)
        ? { wouldBlock: stack.wouldBlock === true || gated(stack) }
        : {}),
      ...(stack.provisional !== undefined ? { provisional: stack.provisional } : {}),
      summary: stack.summary,
      resources: stack.resources,
      runId: stack.runId,
      ...(stack.error !== undefined ? { error: stack.error } : {}),
    })),
  };
}
