import type { Logger } from "pino";
import type { EngineContext } from "../engine/context.ts";
import { planCommand } from "../engine/plan.ts";
import type { CommandReport } from "../engine/report.ts";
import { isRunnerError } from "../errors.ts";
import type { CommitState, Forge } from "../forge/forge.ts";
import { environmentSection, failsPlanGates, policySection } from "./plan-gates.ts";
import { renderApplyComment } from "./comments/apply-comment.ts";
import { commentMarkers } from "./comments/markers.ts";
import { renderPlanComment, type StackPlanDetail } from "./comments/plan-comment.ts";
import { statusDescription } from "./comments/status.ts";

const { plan: COMMENT_MARKER, apply: APPLY_MARKER } = commentMarkers();

export const PLAN_STATUS = "gitops-runner/plan";
export const APPLY_STATUS = "gitops-runner/apply";

export interface PullRequestOptions {
  readonly forge: Forge;
  readonly allowForks: boolean;
  readonly runUrl?: (runId: string) => string;
}

/**
 * The review loop: plan a pull request's head and keep one comment (split only
 * when over the forge's limit) and a commit status on it; after a merge, tell
 * the pull request how the apply went.
 */
export class PullRequestFlow {
  readonly #options: PullRequestOptions;
  readonly #log: Logger;

  constructor(options: PullRequestOptions, logger: Logger) {
    this.#options = options;
    this.#log = logger;
  }

  async plan(context: EngineContext, number: number, head: string, fromFork: boolean): Promise<void> {
    const { forge } = this.#options;
    const runUrl = this.#options.runUrl;
    await this.#status(head, PLAN_STATUS, "pending", "planning the affected stacks");
    if (fromFork && !this.#options.allowForks) {
      await this.#upsert(number, COMMENT_MARKER, [
        `${COMMENT_MARKER}\n### gitops-runner\n\nThis pull request comes from a fork, so it was not synthesized or planned: the operator has not allowed plans of fork pull requests. A maintainer can push the branch to this repository to have it planned.\n`,
      ]);
      await this.#status(head, PLAN_STATUS, "error", "fork pull requests are not planned here");
      return;
    }

    let report: CommandReport;
    const notices: string[] = [];
    try {
      report = await planCommand(context, { ref: head, stacks: [] });
    } catch (error) {
      if (context.signal?.aborted) return;
      if (!isRunnerError(error)) throw error;
      report = { commit: head, stacks: [] };
      notices.push(`The plan failed before any stack: ${error.message}`);
    }
    // A newer head of this pull request cancelled this plan: it tells the story instead.
    if (context.signal?.aborted) return;

    const details = planDetails(report);
    const extraSections = [policySection(report), environmentSection(report)].filter(
      (section) => section !== undefined,
    );
    const bodies = renderPlanComment(
      { report, headSha: head, details, notices, extraSections, ...(runUrl ? { runUrl } : {}) },
      forge.maxCommentLength,
    );
    await this.#upsert(number, COMMENT_MARKER, bodies);
    const failed =
      notices.length > 0 ||
      failsPlanGates(report) ||
      report.stacks.some(
        (stack) =>
          stack.status === "failed" || stack.skippedForFailure || (stack.wouldBlock && !stack.provisional),
      );
    await this.#status(head, PLAN_STATUS, failed ? "failure" : "success", statusDescription(report));
  }

  /** After the merge commit's apply: a comment on the merged pull request and a status on the commit. */
  async applied(number: number, report: CommandReport, mergeSha: string): Promise<void> {
    const runUrl = this.#options.runUrl;
    await this.#upsert(number, APPLY_MARKER, [
      renderApplyComment({ report, mergeSha, ...(runUrl ? { runUrl } : {}) }),
    ]);
    const failed = report.stacks.some((stack) => stack.status === "failed" || stack.skippedForFailure);
    const blocked = report.stacks.some((stack) => stack.status === "blocked");
    await this.#status(
      mergeSha,
      APPLY_STATUS,
      failed || blocked ? "failure" : "success",
      statusDescription(report),
    );
  }

  /** A merged pull request whose commit was not applied because a newer one was. */
  async coalesced(number: number, mergeSha: string, newer: string): Promise<void> {
    await this.#upsert(number, APPLY_MARKER, [
      renderApplyComment({ report: { commit: mergeSha, stacks: [] }, mergeSha, coalescedInto: newer }),
    ]);
  }

  /** The open pull requests, for planning them again after an apply. */
  async openPullRequests(): Promise<{ number: number; headSha: string; fromFork: boolean }[]> {
    return (await this.#options.forge.pullRequests.listOpen()).map((pr) => ({
      number: pr.number,
      headSha: pr.headSha,
      fromFork: pr.fromFork,
    }));
  }

  /** Updates the comments carrying the marker in place, adds parts, removes extra ones. */
  async #upsert(number: number, marker: string, bodies: readonly string[]): Promise<void> {
    const { comments } = this.#options.forge;
    const existing = (await comments.findByMarker(number, marker)).filter((comment) =>
      comment.body.startsWith(marker),
    );
    for (const [index, body] of bodies.entries()) {
      const current = existing[index];
      if (current) {
        if (current.body !== body) await comments.update(number, current.id, body);
      } else {
        await comments.create(number, body);
      }
    }
    for (const extra of existing.slice(bodies.length)) await comments.remove(number, extra.id);
  }

  async #status(sha: string, context: string, state: CommitState, description: string): Promise<void> {
    try {
      await this.#options.forge.statuses.set(sha, { context, state, description });
    } catch (error) {
      this.#log.warn({ err: error, sha, context }, "commit status not set");
    }
  }
}

/** The human plan of each stack that ran, as Terraform printed it, from the changes on. */
function planDetails(report: CommandReport): StackPlanDetail[] {
  return report.stacks
    .filter((stack) => stack.runId)
    .map((stack) => ({ name: stack.name, changes: changesOf(stack.planText ?? "") }));
}

function changesOf(text: string): string {
  const starts = ["Terraform will perform", "OpenTofu will perform"]
    .map((marker) => text.indexOf(marker))
    .filter((index) => index >= 0);
  return text.slice(starts.length > 0 ? Math.min(...starts) : 0).trim();
}
