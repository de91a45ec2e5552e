import type { Logger } from "pino";
import { applyCommand } from "../engine/apply.ts";
import { appKey, type EngineContext } from "../engine/context.ts";
import { driftCommand } from "../engine/drift.ts";
import { planCommand } from "../engine/plan.ts";
import type { CommandReport, StackReport } from "../engine/report.ts";
import { RunnerError } from "../errors.ts";
import type { Notification, NotificationKind, Notifier } from "../notify/notifier.ts";
import type { AppKey, EventRecord, PullRequestRecord, RunRecord, WatchedBranch } from "../store/records.ts";
import type { EventQueue } from "./events.ts";
import { eventOrigin, type PullRequestDirectory, pullRequestOrigin } from "./origin.ts";
import type { PullRequestFlow } from "./pull-requests.ts";

/** What the handlers read and write besides the queue; declared here, where they are used. */
export interface HandlerRecords {
  getRun(id: string): Promise<RunRecord | undefined>;
  getWatchedBranch(app: AppKey, branch: string): Promise<WatchedBranch | undefined>;
  recordPoll(app: AppKey, branch: string): Promise<void>;
  advanceHead(app: AppKey, branch: string, head: string): Promise<boolean>;
  getPullRequest(repoId: string, number: number): Promise<PullRequestRecord | undefined>;
  pullRequestForMergeCommit(repoId: string, sha: string): Promise<PullRequestRecord | undefined>;
  recordPlannedHead(repoId: string, number: number, head: string): Promise<void>;
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
  /** Queues a plan of a pull request's head in place of any queued one. */
  readonly replanPullRequest: (
    pr: { number: number; headSha: string; fromFork: boolean },
    source: string,
    options: { readonly replaceSameHead: boolean },
  ) => Promise<void>;
  readonly onRunFinished: NonNullable<EngineContext["onRunFinished"]>;
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

  async handle(event: EventRecord, signal: AbortSignal, log: Logger): Promise<"done" | "superseded"> {
    const context: EngineContext = {
      ...this.#options.context,
      trigger: event.source,
      origin: eventOrigin(event),
      signal,
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
        const report = await applyCommand(await this.#withMergedPullRequest(context, event.commit), {
          ...(event.commit ? { ref: event.commit } : {}),
          stacks: only,
          allowDestroy: false,
          honourAutoApply: true,
        });
        await this.#afterApply(report);
        return "done";
      }
      case "approve": {
        const runId = String(event.payload?.runId);
        const run = await this.#options.records.getRun(runId);
        if (!run) throw new RunnerError("RUN_NOT_FOUND", `no run ${runId}`);
        const report = await applyCommand(await this.#withMergedPullRequest(context, event.commit), {
          ...(event.commit ? { ref: event.commit } : {}),
          stacks: only,
          allowDestroy: true,
          approval: { runId, resources: run.resources ?? [] },
        });
        await this.#afterApply(report);
        return "done";
      }
      case "plan":
      case "recheck":
        await planCommand(context, { stacks: only });
        return "done";
      case "drift": {
        const head = await this.#knownHead(context);
        const report = await driftCommand(context, {
          stacks: only,
          correct: "policy",
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
    const branch = this.#options.branch ?? (await repository.defaultBranch());
    const head = await repository.resolve(branch);
    await this.#options.records.recordPoll(app, branch);
    const flow = this.#options.pullRequests;
    if (this.#options.pollPullRequests && flow) {
      for (const open of await flow.openPullRequests()) {
        const known = await this.#options.records.getPullRequest(app.repoId, open.number);
        if (known?.plannedHead === open.headSha) continue;
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

  /** The followed branch's head as last polled, so a drift check need not fetch. */
  async #knownHead(context: EngineContext): Promise<string | undefined> {
    const branch = this.#options.branch ?? (await context.repository.defaultBranch());
    return (await this.#options.records.getWatchedBranch(appKey(context), branch))?.headSha;
  }

  async #planPullRequest(context: EngineContext, event: EventRecord): Promise<"done" | "superseded"> {
    const flow = this.#options.pullRequests;
    if (!flow || event.pr === undefined || !event.commit) return "done";
    const known = await this.#options.records.getPullRequest(context.repoId, event.pr);
    if (known && (known.state !== "open" || known.headSha !== event.commit)) return "superseded";
    await flow.plan({ ...context, review: true }, event.pr, event.commit, event.payload?.fromFork === true);
    if (context.signal?.aborted) return "superseded";
    await this.#options.records.recordPlannedHead(context.repoId, event.pr, event.commit);
    return "done";
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

  async #afterApply(report: CommandReport): Promise<void> {
    const flow = this.#options.pullRequests;
    if (flow) {
      const pr = await this.#options.records.pullRequestForMergeCommit(
        this.#options.context.repoId,
        report.commit,
      );
      if (pr) await flow.applied(pr.number, report, report.commit);
      // Open pull requests were planned against what was applied before: plan them again.
      if (report.stacks.some((stack) => stack.status === "applied")) {
        for (const open of await flow.openPullRequests()) {
          await this.#options.replanPullRequest(open, "after-apply", { replaceSameHead: true });
        }
      }
    }
    for (const stack of report.stacks) {
      if (stack.status === "failed") this.#notify("apply-failed", stack, stack.error?.message ?? "failed");
      if (stack.status === "blocked") this.#notify("run-blocked", stack, stack.reason ?? "blocked");
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

function driftSummary(stack: StackReport): string {
  if (stack.status === "corrected") return `drift corrected (${stack.resources.length} resource(s))`;
  return stack.resources
    .map((resource) => `${resource.address}: ${resource.drift?.join(", ") || resource.actions.join("/")}`)
    .join("; ");
}
