import type { Logger } from "pino";
import { z } from "zod";
import { dependentsOf } from "../domain/graph.ts";
import { type ApplyOptions, applyCommand } from "../engine/apply.ts";
import { appKey, type EngineContext } from "../engine/context.ts";
import { driftCommand } from "../engine/drift.ts";
import { planCommand } from "../engine/plan.ts";
import type { CommandReport, StackReport } from "../engine/report.ts";
import { isRunnerError, RunnerError } from "../errors.ts";
import type { Notification, NotificationKind } from "../notify/notification.ts";
import type { Notifier } from "../notify/notifier.ts";
import type {
  AppKey,
  EventRecord,
  PullRequestPlan,
  PullRequestRecord,
  RunRecord,
  Snapshot,
  WatchedBranch,
} from "../store/records.ts";
import type { EventQueue } from "./events.ts";
import { eventOrigin, type PullRequestDirectory, pullRequestOrigin } from "./origin.ts";
import { type PullRequestFlow, sameCommit } from "./pull-requests.ts";

/** What the handlers read and write besides the queue; declared here, where they are used. */
export interface HandlerRecords {
  getRun(id: string): Promise<RunRecord | undefined>;
  getWatchedBranch(app: AppKey, branch: string): Promise<WatchedBranch | undefined>;
  recordPoll(app: AppKey, branch: string): Promise<void>;
  advanceHead(app: AppKey, branch: string, head: string): Promise<boolean>;
  getPullRequest(repoId: string, number: number): Promise<PullRequestRecord | undefined>;
  savePullRequest(repoId: string, pr: Omit<PullRequestRecord, "updatedAt" | "plannedHead">): Promise<void>;
  pullRequestForMergeCommit(repoId: string, sha: string): Promise<PullRequestRecord | undefined>;
  recordPlannedHead(repoId: string, number: number, head: string): Promise<void>;
  pullRequestPlans(app: AppKey, pr: number, commit: string): Promise<PullRequestPlan[]>;
  getSnapshot(app: AppKey, commit: string): Promise<Snapshot | undefined>;
}

export interface HandlerOptions {
  readonly context: EngineContext;
  readonly records: HandlerRecords;
  readonly queue: EventQueue;
  readonly scope: string;
  readonly notifier: Notifier;
  /** The branch to follow; the remote's default branch when unset. */
  readonly branch?: string;
  readonly repository: string;
  readonly publicUrl?: string;
  readonly pullRequests?: PullRequestFlow;
  /** The forge's pull requests, to record who wrote, merged and approved what is applied. */
  readonly pullRequestDirectory?: PullRequestDirectory;
  /** Without forge webhooks, each poll lists open pull requests and plans new heads. */
  readonly pollPullRequests: boolean;
  /** Queues an event (with its lane) and wakes the workers. */
  readonly enqueue: (event: Omit<EventRecord, "id" | "status" | "createdAt" | "lane">) => Promise<unknown>;
  /** Queues a plan of a pull request's head, unless one of that head is queued (or, without replaceSameHead, running). */
  readonly replanPullRequest: (
    pr: { number: number; headSha: string },
    source: string,
    options: { readonly replaceSameHead: boolean },
  ) => Promise<void>;
  /** Cancels the running plans of a pull request but `keep`, here or on another replica. */
  readonly cancelOtherPlans: (pr: number, keep: string, reason: string) => Promise<void>;
  readonly onRunFinished: NonNullable<EngineContext["onRunFinished"]>;
  /** Whether applies and drift corrections may start now (not frozen, inside a maintenance window). */
  readonly mayApply: () => Promise<boolean>;
}

/**
 * What each kind of event does: the engine's workflows, and what follows them
 * (the pull request's comment, notifications, plans of open pull requests).
 */
export class EventHandlers {
  readonly #options: HandlerOptions;

  constructor(options: HandlerOptions) {
    this.#options = options;
  }

  async handle(
    event: EventRecord,
    signals: { readonly signal: AbortSignal; readonly applySignal: AbortSignal },
    log: Logger,
  ): Promise<"done" | "superseded"> {
    const context: EngineContext = {
      ...this.#options.context,
      trigger: event.source,
      origin: eventOrigin(event),
      signal: signals.signal,
      applySignal: signals.applySignal,
      logger: log,
      eventId: event.id,
      onRunFinished: this.#options.onRunFinished,
    };
    const only = event.stack ? [event.stack] : [];
    switch (event.kind) {
      case "poll":
        await this.#poll(context, event);
        return "done";
      case "apply": {
        const newest = (await this.#options.queue.newerQueued(this.#options.scope, "apply", event.id))
          .filter((candidate) => candidate.stack === event.stack)
          .at(-1);
        if (newest) {
          log.info({ commit: event.commit, newer: newest.commit }, "apply coalesced into a newer commit");
          await this.#coalesced(event, newest);
          return "superseded";
        }
        const reviewed = await this.#reviewedPlans(event.commit);
        const report = await applyCommand(await this.#withMergedPullRequest(context, event.commit), {
          ...(event.commit ? { ref: event.commit } : {}),
          stacks: only,
          allowDestroy: false,
          honourAutoApply: true,
          ...(reviewed ? { reviewed } : {}),
        });
        await this.#afterApply(context, report);
        return "done";
      }
      case "approve": {
        const runId = String(event.payload?.runId);
        const run = await this.#options.records.getRun(runId);
        if (!run) throw new RunnerError("RUN_NOT_FOUND", `no run ${runId}`);
        const reviewed = await this.#reviewedPlans(event.commit);
        const report = await applyCommand(await this.#withMergedPullRequest(context, event.commit), {
          ...(event.commit ? { ref: event.commit } : {}),
          stacks: only,
          allowDestroy: true,
          approval: { runId, resources: run.resources ?? [] },
          ...(reviewed ? { reviewed } : {}),
        });
        await this.#afterApply(context, report);
        return "done";
      }
      case "plan":
      case "recheck":
        await planCommand(context, { stacks: only });
        return "done";
      case "drift": {
        const head = await this.#knownHead(context);
        // While applies wait (frozen, outside a window), drift is checked and reported, not corrected.
        const mayCorrect = await this.#options.mayApply();
        if (!mayCorrect) log.info("drift corrections wait: applies may not start now");
        const report = await driftCommand(context, {
          stacks: only,
          correct: mayCorrect ? "policy" : "none",
          ...(head ? { head } : {}),
        });
        await this.#afterDrift(report);
        return "done";
      }
      case "pr-plan":
        return this.#planPullRequest(context, event);
    }
  }

  /** The context with the pull request whose merge made the commit, and its people, in its origin. */
  async #withMergedPullRequest(context: EngineContext, commit: string | undefined): Promise<EngineContext> {
    if (!commit) return context;
    const pr = await this.#options.records.pullRequestForMergeCommit(context.repoId, commit);
    if (!pr) return context;
    const pullRequest = await pullRequestOrigin(
      this.#options.pullRequestDirectory,
      pr.number,
      pr.url ? { url: pr.url } : {},
      context.logger,
    );
    return { ...context, origin: { ...context.origin, pullRequest } };
  }

  async #poll(context: EngineContext, event: EventRecord): Promise<void> {
    const { repository } = context;
    const app = appKey(context);
    await repository.fetch();
    const branch = await this.#branch(context);
    const head = await repository.resolve(branch);
    await this.#options.records.recordPoll(app, branch);
    if (event.pr !== undefined) await this.#resolveMergeCommit(context, event.pr);
    const flow = this.#options.pullRequests;
    if (this.#options.pollPullRequests && flow) {
      for (const open of await flow.openPullRequests()) {
        if (open.baseRef !== branch) continue;
        const known = await this.#options.records.getPullRequest(app.repoId, open.number);
        if (known?.plannedHead && sameCommit(known.plannedHead, open.headSha)) continue;
        await this.#options.replanPullRequest(open, "poll", { replaceSameHead: false });
      }
    }
    if (await this.#options.records.advanceHead(app, branch, head)) {
      // The delivery that asked for this poll is the apply's too, for the audit trail.
      const deliveryId = event.deliveryId;
      await this.#options.enqueue({
        kind: "apply",
        commit: head,
        source: context.trigger,
        ...(deliveryId ? { payload: { deliveryId } } : {}),
      });
    }
  }

  /** A merge commit the forge named by a short hash (Bitbucket), made whole once fetched. */
  async #resolveMergeCommit(context: EngineContext, number: number): Promise<void> {
    const known = await this.#options.records.getPullRequest(context.repoId, number);
    const merge = known?.mergeCommitSha;
    if (!known || !merge || merge.length >= 40) return;
    try {
      const { updatedAt: _updated, plannedHead: _planned, ...record } = known;
      await this.#options.records.savePullRequest(context.repoId, {
        ...record,
        mergeCommitSha: await context.repository.resolve(merge),
      });
    } catch (error) {
      if (!isRunnerError(error)) throw error;
      context.logger.warn({ pr: number, merge }, "the merge commit is not in the repository");
    }
  }

  async #branch(context: EngineContext): Promise<string> {
    return this.#options.branch ?? (await context.repository.defaultBranch());
  }

  /** The followed branch's head as last polled, so a drift check need not fetch. */
  async #knownHead(context: EngineContext): Promise<string | undefined> {
    const branch = await this.#branch(context);
    return (await this.#options.records.getWatchedBranch(appKey(context), branch))?.headSha;
  }

  /**
   * Plans a pull request's head as the forge reports it now: a delivery that
   * arrives late or out of order (an older head) is superseded, never planned
   * over a newer one; pull requests into other branches are not planned.
   */
  async #planPullRequest(context: EngineContext, event: EventRecord): Promise<"done" | "superseded"> {
    const flow = this.#options.pullRequests;
    if (!flow || event.pr === undefined) return "done";
    const { records } = this.#options;
    const log = context.logger.child({ pr: event.pr });
    const payload = planPayload.parse(event.payload ?? {});
    const pr = await flow.current(event.pr);
    const known = await records.getPullRequest(context.repoId, pr.number);
    await records.savePullRequest(context.repoId, {
      number: pr.number,
      state: pr.state,
      headSha: pr.headSha,
      baseRef: pr.baseRef,
      fromFork: pr.fromFork,
      url: pr.url,
      ...(pr.mergeCommitSha ? { mergeCommitSha: pr.mergeCommitSha } : {}),
    });
    if (pr.state !== "open") return "superseded";
    const branch = await this.#branch(context);
    if (pr.baseRef !== branch) {
      log.info({ base: pr.baseRef, branch }, "pull request into another branch: not planned");
      return "done";
    }
    if (event.commit && !sameCommit(event.commit, pr.headSha)) {
      log.info(
        { commit: event.commit, head: pr.headSha },
        "not the pull request's head any more: not planned",
      );
      return "superseded";
    }
    // A repeated sync (Gitea sends one after opening, Bitbucket on every edit) of a head already planned.
    const repeated = event.source === "webhook:pull_request:updated" && known?.plannedHead !== undefined;
    if (repeated && sameCommit(known.plannedHead ?? "", pr.headSha)) return "superseded";
    let stacks: readonly string[] = [];
    if (payload.command) {
      const answer = await flow.answer(pr.number, payload.command);
      if (answer.kind === "done") return "done";
      stacks = answer.stacks;
    }
    // This head is the current one: plans of other heads, or of this one against an older baseline, stop.
    await this.#options.cancelOtherPlans(pr.number, event.id, "a plan of the current head started");
    const outcome = await flow.plan(
      { ...context, review: true, pullRequest: pr.number },
      { pullRequest: pr, stacks, branch },
    );
    if (outcome.kind === "superseded" || context.signal?.aborted) return "superseded";
    await records.recordPlannedHead(context.repoId, pr.number, outcome.commit);
    return "done";
  }

  /** The plans reviewed on the pull request merged as `commit`, per stack, for the apply to compare with. */
  async #reviewedPlans(commit: string | undefined): Promise<ApplyOptions["reviewed"]> {
    if (!this.#options.pullRequests || !commit) return undefined;
    const { records, context } = this.#options;
    const pr = await records.pullRequestForMergeCommit(context.repoId, commit);
    if (!pr) return undefined;
    const plans = pr.plannedHead
      ? await records.pullRequestPlans(appKey(context), pr.number, pr.plannedHead)
      : [];
    return {
      pr: pr.number,
      // A stack whose plan failed there was not reviewed.
      plans: new Map(
        plans.filter((plan) => plan.status === "succeeded").map((plan) => [plan.stack, plan.resources]),
      ),
    };
  }

  async #coalesced(event: EventRecord, newest: EventRecord): Promise<void> {
    const flow = this.#options.pullRequests;
    if (!flow || !event.commit || !newest.commit) return;
    const pr = await this.#options.records.pullRequestForMergeCommit(
      this.#options.context.repoId,
      event.commit,
    );
    if (pr) await flow.coalesced(pr.number, event.commit, newest.commit);
  }

  async #afterApply(context: EngineContext, report: CommandReport): Promise<void> {
    const flow = this.#options.pullRequests;
    if (flow) {
      const { records } = this.#options;
      const pr = await records.pullRequestForMergeCommit(context.repoId, report.commit);
      if (pr) await flow.applied(pr.number, report, report.commit);
      await this.#replanAfterApply(context, flow, report);
    }
    for (const stack of report.stacks) {
      // A cancel is a person's choice, not a failure to tell the channel about.
      const cancelled = stack.error?.code === "EXEC_CANCELLED";
      if (stack.status === "failed" && !cancelled)
        this.#notify("apply-failed", stack, stack.error?.message ?? "failed");
      if (stack.status === "blocked") this.#notify("run-blocked", stack, stack.reason ?? "blocked");
    }
  }

  /**
   * Open pull requests whose plan covers a stack just applied (or one reading
   * it) were planned against what was applied before: their comment is marked
   * stale, and they are planned again. Others' plans still hold.
   */
  async #replanAfterApply(
    context: EngineContext,
    flow: PullRequestFlow,
    report: CommandReport,
  ): Promise<void> {
    const applied = new Set(
      report.stacks.filter((stack) => stack.status === "applied").map((stack) => stack.name),
    );
    if (applied.size === 0) return;
    const app = appKey(context);
    const { records } = this.#options;
    const snapshot = await records.getSnapshot(app, report.commit);
    const moved = new Set([...applied, ...dependentsOf(snapshot?.stacks ?? [], applied)]);
    const branch = await this.#branch(context);
    for (const open of await flow.openPullRequests()) {
      if (open.baseRef !== branch) continue;
      const planned = (await records.getPullRequest(app.repoId, open.number))?.plannedHead;
      if (planned) {
        const plans = await records.pullRequestPlans(app, open.number, planned);
        const touched = plans.map((plan) => plan.stack).filter((stack) => moved.has(stack));
        if (touched.length === 0) continue;
        await flow.markStale(open.number, touched, report.commit);
      }
      await this.#options.replanPullRequest(open, "after-apply", { replaceSameHead: true });
    }
  }

  async #afterDrift(report: CommandReport): Promise<void> {
    const kinds = { found: "drift-found", changed: "drift-changed", corrected: "drift-corrected" } as const;
    for (const stack of report.stacks) {
      if (stack.driftEvent !== undefined) this.#notify(kinds[stack.driftEvent], stack, driftSummary(stack));
    }
  }

  #notify(kind: NotificationKind, stack: StackReport, summary: string): void {
    const { publicUrl } = this.#options;
    const notification: Notification = {
      kind,
      repository: this.#options.repository,
      stack: stack.name,
      commit: stack.commit,
      runId: stack.runId ?? "",
      summary,
      resources: stack.resources,
      at: new Date().toISOString(),
      ...(publicUrl && stack.runId ? { url: new URL(`runs/${stack.runId}`, publicUrl).toString() } : {}),
    };
    this.#options.notifier.notify(notification);
  }
}

/** What a pull request's plan event carries: a comment command, when it came from one. */
const planPayload = z.object({
  command: z
    .object({
      commentId: z.string(),
      author: z.object({ name: z.string(), id: z.string().exactOptional() }),
      command: z.discriminatedUnion("action", [
        z.object({ action: z.literal("plan"), stacks: z.array(z.string()) }),
        z.object({ action: z.literal("help"), asked: z.string() }),
      ]),
    })
    .optional(),
});

function driftSummary(stack: StackReport): string {
  if (stack.status === "corrected") return `drift corrected (${stack.resources.length} resource(s))`;
  return stack.resources
    .map((resource) => `${resource.address}: ${resource.drift?.join(", ") || resource.actions.join("/")}`)
    .join("; ");
}
