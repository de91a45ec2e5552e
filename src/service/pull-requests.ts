import type { Logger } from "pino";
import type { EngineContext } from "../engine/context.ts";
import { planCommand } from "../engine/plan.ts";
import type { CommandReport } from "../engine/report.ts";
import { isRunnerError } from "../errors.ts";
import type { Command } from "../forge/events.ts";
import type { Account, CommitState, Forge, PullRequest } from "../forge/port.ts";
import { renderApplyComment, type StackReview } from "./comments/apply-comment.ts";
import { COMMAND_HELP, commandReply } from "./comments/command-replies.ts";
import type { CommentMarkers } from "./comments/markers.ts";
import { appliedSinceNotice, renderPlanComment, type StackPlanDetail } from "./comments/plan-comment.ts";
import { statusDescription } from "./comments/status.ts";
import { environmentSection, failsPlanGates, policySection } from "./plan-gates.ts";
import { reviewFacts } from "./review-facts.ts";

/** How this runner names itself on the forge; two runners on one repository differ in each. */
export interface RunnerIdentity {
  readonly markers: CommentMarkers;
  readonly planStatus: string;
  readonly applyStatus: string;
}

export interface PullRequestOptions {
  readonly forge: Forge;
  readonly allowForks: boolean;
  readonly identity: RunnerIdentity;
  readonly runUrl?: (runId: string) => string;
}

export interface PlanRequest {
  /** The pull request as the forge reports it now. */
  readonly pullRequest: PullRequest;
  /** Plan these stacks (a comment command), or the affected ones when empty. */
  readonly stacks: readonly string[];
  /** The followed branch, whose head the plan is compared with. */
  readonly branch: string;
}

export type PlanOutcome =
  | { readonly kind: "posted"; readonly commit: string }
  /** A newer head (or a cancel) came first: nothing was posted. */
  | { readonly kind: "superseded" };

/** What a comment command comes to: plan (these stacks), or nothing more. */
export type CommandAnswer =
  | { readonly kind: "plan"; readonly stacks: readonly string[] }
  | { readonly kind: "done" };

export interface CommandRequest {
  readonly commentId: string;
  readonly author: Account;
  readonly command: Command;
}

/**
 * The review loop against the forge: plan a pull request's head and keep one
 * comment (split only when over the forge's limit) and a commit status on it;
 * after a merge, tell the pull request how the apply went and whether it was
 * what was reviewed. Only comments this runner's own account wrote, carrying
 * its marker, are ever edited.
 */
export class PullRequestFlow {
  readonly #options: PullRequestOptions;
  readonly #log: Logger;
  #self: Promise<string | undefined> | undefined;
  /** Learnt from a comment it wrote, where the forge does not say who the token is (Bitbucket access tokens). */
  #learnt: string | undefined;

  constructor(options: PullRequestOptions, logger: Logger) {
    this.#options = options;
    this.#log = logger;
  }

  /** The pull request as it is now. */
  current(number: number): Promise<PullRequest> {
    return this.#options.forge.pullRequests.get(number);
  }

  openPullRequests(): Promise<PullRequest[]> {
    return this.#options.forge.pullRequests.listOpen();
  }

  async plan(context: EngineContext, request: PlanRequest): Promise<PlanOutcome> {
    const { forge, identity } = this.#options;
    const pr = request.pullRequest;
    await this.#status(pr.headSha, identity.planStatus, "pending", "planning the affected stacks");
    if (pr.fromFork && !this.#options.allowForks) {
      await this.#upsert(pr.number, identity.markers.plan, [
        `${identity.markers.plan}\n### gitops-runner\n\nThis pull request comes from a fork, so it was not synthesized or planned: the operator has not allowed plans of fork pull requests. A maintainer can push the branch to this repository to have it planned.\n`,
      ]);
      await this.#status(pr.headSha, identity.planStatus, "error", "fork pull requests are not planned here");
      return { kind: "posted", commit: pr.headSha };
    }

    let report: CommandReport;
    const notices: string[] = [];
    try {
      report = await planCommand(context, { ref: pr.headSha, stacks: request.stacks });
    } catch (error) {
      if (context.signal?.aborted) return { kind: "superseded" };
      if (!isRunnerError(error)) throw error;
      report = { commit: pr.headSha, stacks: [] };
      notices.push(`The plan failed before any stack: ${error.message}`);
    }
    if (context.signal?.aborted) return { kind: "superseded" };
    const facts = await reviewFacts(context, report, request.branch);
    // A push while this plan ran makes it an old head's plan: the new head's tells the story.
    const now = await forge.pullRequests.get(pr.number);
    if (now.state !== "open" || !sameCommit(now.headSha, pr.headSha) || context.signal?.aborted) {
      return { kind: "superseded" };
    }

    const runUrl = this.#options.runUrl;
    const extraSections = [policySection(report), environmentSection(report)].filter(
      (section) => section !== undefined,
    );
    const bodies = renderPlanComment(
      {
        report,
        headSha: report.commit,
        details: planDetails(report),
        marker: identity.markers.plan,
        notices,
        widened: facts.widened,
        stale: facts.stale,
        extraSections,
        ...(runUrl ? { runUrl } : {}),
      },
      forge.maxCommentLength,
    );
    await this.#upsert(pr.number, identity.markers.plan, bodies);
    const failed =
      notices.length > 0 ||
      failsPlanGates(report) ||
      report.stacks.some(
        (stack) =>
          stack.status === "failed" || stack.skippedForFailure || (stack.wouldBlock && !stack.provisional),
      );
    await this.#status(
      report.commit,
      identity.planStatus,
      failed ? "failure" : "success",
      statusDescription(report),
    );
    return { kind: "posted", commit: report.commit };
  }

  /** After the merge commit's apply: a comment on the merged pull request and a status on the commit. */
  async applied(number: number, report: CommandReport, mergeSha: string): Promise<void> {
    const { identity, runUrl } = this.#options;
    const review: StackReview[] = report.stacks.flatMap((stack) =>
      stack.review?.kind === "differs" ? [{ stack: stack.name, comparison: stack.review }] : [],
    );
    await this.#upsert(number, identity.markers.apply, [
      renderApplyComment({
        report,
        mergeSha,
        marker: identity.markers.apply,
        review,
        ...(runUrl ? { runUrl } : {}),
      }),
    ]);
    const failed = report.stacks.some((stack) => stack.status === "failed" || stack.skippedForFailure);
    const blocked = report.stacks.some((stack) => stack.status === "blocked");
    await this.#status(
      mergeSha,
      identity.applyStatus,
      failed || blocked ? "failure" : "success",
      statusDescription(report),
    );
  }

  /** A merged pull request whose commit was not applied because a newer one was. */
  async coalesced(number: number, mergeSha: string, newer: string): Promise<void> {
    const marker = this.#options.identity.markers.apply;
    await this.#upsert(number, marker, [
      renderApplyComment({
        report: { commit: mergeSha, stacks: [] },
        mergeSha,
        marker,
        coalescedInto: newer,
      }),
    ]);
  }

  /**
   * Marks the plan comment out of date: an apply changed stacks it planned.
   * The plan that follows replaces the comment.
   */
  async markStale(number: number, stacks: readonly string[], applied: string): Promise<void> {
    const marker = this.#options.identity.markers.plan;
    const [first] = await this.#ownComments(number, marker);
    if (!first) return;
    const notice = appliedSinceNotice(stacks, applied);
    if (first.body.includes(notice)) return;
    const [line, ...rest] = first.body.split("\n");
    await this.#options.forge.comments.update(number, first.id, [line, notice, "", ...rest].join("\n"));
  }

  /**
   * Answers a comment command: the runner's own comments are ignored, and
   * only people with write access may ask. The forge's permission decides.
   */
  async answer(number: number, request: CommandRequest): Promise<CommandAnswer> {
    const { comments, accounts } = this.#options.forge;
    const self = await this.#identity();
    if (self !== undefined && request.author.name === self) return { kind: "done" };
    let allowed: boolean;
    try {
      allowed = await accounts.canWrite(request.author);
    } catch (error) {
      this.#log.warn({ err: error, pr: number, author: request.author.name }, "permission not read");
      await this.#reply(number, request.commentId, commandReply("unchecked"));
      return { kind: "done" };
    }
    if (!allowed) {
      await this.#reply(number, request.commentId, commandReply("refused"));
      return { kind: "done" };
    }
    if (request.command.action === "help") {
      await this.#reply(number, request.commentId, COMMAND_HELP);
      return { kind: "done" };
    }
    if (comments.react) await comments.react(number, request.commentId);
    else await this.#reply(number, request.commentId, commandReply("accepted", request.command.stacks));
    return { kind: "plan", stacks: request.command.stacks };
  }

  async #reply(number: number, commentId: string, body: string): Promise<void> {
    const created = await this.#options.forge.comments.create(number, body);
    this.#learnt ??= created.author || undefined;
    this.#log.info({ pr: number, commentId }, "command answered");
  }

  /** The account the runner writes as: configured, asked of the forge once, or learnt from its own comment. */
  async #identity(): Promise<string | undefined> {
    this.#self ??= this.#options.forge.accounts.self().catch((error: unknown) => {
      this.#self = undefined;
      throw error;
    });
    return (await this.#self) ?? this.#learnt;
  }

  /** This runner's comments carrying the marker, oldest first: another author's never count. */
  async #ownComments(number: number, marker: string) {
    const self = await this.#identity();
    if (self === undefined) return [];
    return (await this.#options.forge.comments.list(number)).filter(
      (comment) => comment.author === self && comment.body.startsWith(marker),
    );
  }

  /** Updates the runner's comments carrying the marker in place, adds parts, removes extra ones. */
  async #upsert(number: number, marker: string, bodies: readonly string[]): Promise<void> {
    const { comments } = this.#options.forge;
    const existing = await this.#ownComments(number, marker);
    for (const [index, body] of bodies.entries()) {
      const current = existing[index];
      if (current) {
        if (current.body !== body) await comments.update(number, current.id, body);
      } else {
        const created = await comments.create(number, body);
        this.#learnt ??= created.author || undefined;
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

/** Whether two commit hashes name one commit: equal, or one abbreviates the other (Bitbucket). */
export function sameCommit(a: string, b: string): boolean {
  const [short, long] = a.length <= b.length ? [a, b] : [b, a];
  return short.length >= 7 && long.startsWith(short);
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
