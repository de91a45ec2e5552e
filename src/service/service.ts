import type { Logger } from "pino";
import { applyCommand } from "../engine/apply.ts";
import { type EngineContext, stackLockKey } from "../engine/context.ts";
import { driftCommand } from "../engine/drift.ts";
import { planCommand } from "../engine/plan.ts";
import type { CommandReport, StackReport } from "../engine/report.ts";
import { isRunnerError, RunnerError } from "../errors.ts";
import type { ForgeEvent } from "../forge/webhooks.ts";
import type { Notification, NotificationKind, Notifier } from "../notify/notifier.ts";
import type { Policy } from "../policy/policy.ts";
import type { EventRecord, RunRecord, StackRecord, Store } from "../store/store.ts";
import type {
  Accepted,
  Readiness,
  RunFilter,
  ServiceApi,
  StackState,
  StackView,
  TriggerRequest,
} from "./api.ts";
import { ServiceMetrics } from "./metrics.ts";
import type { PullRequestFlow } from "./pull-requests.ts";
import { recoverInterruptedRuns } from "./recovery.ts";
import { nextDriftCheck } from "./schedule.ts";

export interface ServiceOptions {
  /** The engine context for the watched repository; each event gets a copy with its trigger. */
  readonly context: EngineContext;
  readonly store: Store;
  readonly notifier: Notifier;
  readonly logger: Logger;
  /** The branch to follow; the remote's default branch when unset. */
  readonly branch?: string;
  readonly repository: string;
  readonly pollIntervalMs: number;
  readonly driftTickMs: number;
  readonly driftJitterPercent: number;
  readonly shutdownGraceMs: number;
  readonly publicUrl?: string;
  readonly newId: () => string;
  /** Plans pull requests and reports applies on them, when a forge is configured. */
  readonly pullRequests?: PullRequestFlow;
  /** Without forge webhooks, each poll lists open pull requests and plans new heads. */
  readonly pollPullRequests?: boolean;
}

const LAST_SEEN = "last-seen-commit";
const LAST_POLL = "last-successful-poll";
const HOLDER = `worker-${process.pid}`;
/** kv keys: the pull request a merge commit came from; the head last planned per pull request. */
const PR_FOR_COMMIT = "pr-for-commit:";
const PR_HEAD = "pr-head:";

/**
 * The long-running runner: triggers are persisted as events before anything
 * acts on them; one worker claims them in order and runs the engine's
 * workflows; timers add poll and drift events.
 */
export class RunnerService implements ServiceApi {
  readonly #metrics: ServiceMetrics;
  readonly #options: ServiceOptions;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #timers: NodeJS.Timeout[] = [];
  #wake: (() => void) | undefined;
  /** The running plan of each pull request, so that a newer head cancels it. */
  readonly #prPlans = new Map<number, { head: string; controller: AbortController }>();
  #worker: Promise<void> | undefined;
  #stopping = false;
  /** The app's stacks and policy as last synthesized, for views and schedules. */
  #known: { stacks: Map<string, readonly string[]>; policy: Policy | undefined } = {
    stacks: new Map(),
    policy: undefined,
  };

  constructor(options: ServiceOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#log = options.logger;
    this.#metrics = new ServiceMetrics({
      queueDepth: () => this.#store.countQueued(),
      stacksDrifted: async () =>
        (await this.#stackRecords()).filter((record) => record.driftStatus === "drifted").length,
      secondsSinceLastPoll: async () => {
        const last = await this.#store.getValue(LAST_POLL);
        return last ? (Date.now() - Date.parse(last)) / 1000 : undefined;
      },
    });
  }

  /** Recovers from a crash, then starts the worker and the timers. */
  async start(): Promise<void> {
    const rechecks = await recoverInterruptedRuns(this.#store, this.#log);
    for (const stack of rechecks) await this.#enqueue({ kind: "recheck", stack, source: "recovery" });
    // An interrupted apply never recorded its commit: let the first poll apply the head again.
    if (rechecks.length > 0) await this.#store.setValue(LAST_SEEN, "");
    await this.#enqueue({ kind: "poll", source: "start" });
    this.#every(this.#options.pollIntervalMs, () => this.#enqueueOnce("poll", undefined, "poll"));
    this.#every(this.#options.driftTickMs, () => this.#scheduleDrift());
    this.#worker = this.#work();
  }

  /** Stops taking work, lets the running event finish within the grace period, then cancels it. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const timer of this.#timers) clearInterval(timer);
    this.#wake?.();
    const grace = setTimeout(
      () => this.#abort.abort(new Error("shutting down")),
      this.#options.shutdownGraceMs,
    );
    await this.#worker;
    clearTimeout(grace);
  }

  // --- ServiceApi ---------------------------------------------------------------

  async readiness(): Promise<Readiness> {
    const store = await this.#store.countQueued().then(
      () => true,
      () => false,
    );
    const polled = (await this.#store.getValue(LAST_POLL)) !== undefined;
    return { ready: store && polled && !this.#stopping, checks: { store, repository: polled } };
  }

  async listStacks(): Promise<StackView[]> {
    const records = new Map((await this.#stackRecords()).map((record) => [record.stack, record]));
    const names = new Set([...this.#known.stacks.keys(), ...records.keys()]);
    const views: StackView[] = [];
    for (const name of [...names].sort()) {
      const record = records.get(name);
      const lastRun = await this.#newestRun(name);
      views.push({
        name,
        state: await this.#stateOf(name, record),
        dependencies: this.#known.stacks.get(name) ?? [],
        ...(record?.lastAppliedCommit ? { lastAppliedCommit: record.lastAppliedCommit } : {}),
        ...(record?.lastAppliedAt ? { lastAppliedAt: record.lastAppliedAt } : {}),
        ...(record?.driftCheckedAt ? { driftCheckedAt: record.driftCheckedAt } : {}),
        ...(lastRun ? { lastRunId: lastRun.id } : {}),
      });
    }
    return views;
  }

  async listRuns(filter: RunFilter): Promise<RunRecord[]> {
    const runs = await this.#store.listRuns({
      ...this.#key(),
      ...(filter.stack ? { stack: filter.stack } : {}),
      ...(filter.kind ? { kind: filter.kind } : {}),
    });
    return runs
      .filter((run) => !filter.status || run.status === filter.status)
      .reverse()
      .slice(0, Math.min(filter.limit ?? 100, 1000));
  }

  getRun(id: string): Promise<RunRecord | undefined> {
    return this.#store.getRun(id);
  }

  async trigger(request: TriggerRequest): Promise<Accepted> {
    if (request.stack !== undefined) await this.#checkStack(request.stack);
    return this.#enqueue({
      kind: request.kind,
      ...(request.stack ? { stack: request.stack } : {}),
      source: "api",
    });
  }

  async approve(runId: string): Promise<Accepted> {
    const run = await this.#store.getRun(runId);
    if (!run) throw new RunnerError("RUN_NOT_FOUND", `no run ${runId}`);
    if (run.status !== "blocked" || run.kind !== "apply") {
      throw new RunnerError(
        "RUN_NOT_BLOCKED",
        `run ${runId} is ${run.status} (${run.kind}), not a blocked apply`,
      );
    }
    const record = await this.#store.getStack({ ...this.#key(), stack: run.stack });
    if (record?.lastApplyStatus !== "blocked") {
      throw new RunnerError(
        "RUN_NOT_BLOCKED",
        `stack ${run.stack} is no longer blocked (run ${runId} was settled)`,
      );
    }
    return this.#enqueue({
      kind: "approve",
      stack: run.stack,
      commit: run.commit,
      payload: { runId },
      source: "api",
    });
  }

  async releaseLock(stack: string): Promise<{ readonly released: boolean }> {
    await this.#checkStack(stack);
    const key = stackLockKey(this.#options.context, stack);
    const holder = await this.#store.lockHolder(key);
    if (holder === undefined) return { released: false };
    await this.#store.releaseLock(key, holder);
    this.#log.warn({ stack, holder }, "lock released by an operator");
    return { released: true };
  }

  async requestPoll(source: string, deliveryId: string): Promise<Accepted> {
    return this.#joinOrQueuePoll(`webhook:${source}`, deliveryId);
  }

  async forgeEvent(event: ForgeEvent, deliveryId: string): Promise<Accepted> {
    if (event.kind === "push") return this.#joinOrQueuePoll("webhook:push", deliveryId);
    const source = `webhook:pull_request:${event.action}`;
    switch (event.action) {
      case "opened":
      case "updated":
      case "reopened": {
        // A new head replaces queued plans of the older one and cancels a running one.
        await this.#store.supersedeQueued("pr-plan", event.number);
        const running = this.#prPlans.get(event.number);
        if (running && running.head !== event.headSha)
          running.controller.abort(new Error("a newer head was pushed"));
        return this.#enqueue({
          kind: "pr-plan",
          pr: event.number,
          commit: event.headSha,
          payload: { fromFork: event.fromFork },
          source,
          deliveryId,
        });
      }
      case "closed": {
        await this.#store.supersedeQueued("pr-plan", event.number);
        this.#prPlans.get(event.number)?.controller.abort(new Error("the pull request was closed"));
        return this.#enqueue({ kind: "poll", pr: event.number, source, deliveryId });
      }
      case "merged": {
        await this.#store.supersedeQueued("pr-plan", event.number);
        if (event.mergeSha)
          await this.#store.setValue(`${PR_FOR_COMMIT}${event.mergeSha}`, String(event.number));
        return this.#enqueue({ kind: "poll", pr: event.number, source, deliveryId });
      }
    }
  }

  async metrics(): Promise<{ readonly contentType: string; readonly body: string }> {
    return { contentType: this.#metrics.registry.contentType, body: await this.#metrics.registry.metrics() };
  }

  // --- the worker -------------------------------------------------------------

  async #work(): Promise<void> {
    while (!this.#stopping) {
      const event = await this.#store.claimEvent(HOLDER);
      if (!event) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        continue;
      }
      const log = this.#log.child({ eventId: event.id, event: event.kind, stack: event.stack });
      try {
        await this.#process(event, log);
        await this.#store.finishEvent(event.id, "done");
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (isRunnerError(error)) log.warn({ code: error.code, message }, "event failed");
        else log.error({ err: error }, "event failed");
        await this.#store.finishEvent(event.id, "failed", message);
      }
    }
  }

  async #process(event: EventRecord, log: Logger): Promise<void> {
    const context: EngineContext = {
      ...this.#options.context,
      trigger: event.source,
      signal: this.#abort.signal,
      logger: log,
      onRunFinished: (run) => this.#metrics.runFinished(run.kind, run.status, run.durationMs),
      onSynthesized: (commit, stacks, policy) => this.#learnApp(commit, stacks, policy),
    };
    const only = event.stack ? [event.stack] : [];
    switch (event.kind) {
      case "poll":
        return this.#poll(context);
      case "apply": {
        const newer = (await this.#store.newerQueued("apply", event.id)).filter(
          (candidate) => candidate.stack === event.stack,
        );
        const newest = newer.at(-1);
        if (newest) {
          log.info({ commit: event.commit, newer: newest.commit }, "apply coalesced into a newer commit");
          await this.#store.finishEvent(event.id, "superseded");
          const pr = event.commit ? await this.#store.getValue(`${PR_FOR_COMMIT}${event.commit}`) : undefined;
          if (pr && event.commit && newest.commit) {
            await this.#options.pullRequests?.coalesced(Number(pr), event.commit, newest.commit);
          }
          return;
        }
        const report = await applyCommand(context, {
          ...(event.commit ? { ref: event.commit } : {}),
          stacks: only,
          allowDestroy: false,
          honourAutoApply: true,
        });
        return this.#afterApply(report);
      }
      case "approve": {
        const runId = String(event.payload?.runId);
        const run = await this.#store.getRun(runId);
        if (!run) throw new RunnerError("RUN_NOT_FOUND", `no run ${runId}`);
        const report = await applyCommand(context, {
          ...(event.commit ? { ref: event.commit } : {}),
          stacks: only,
          allowDestroy: true,
          approval: { runId, resources: run.resources ?? [] },
        });
        return this.#afterApply(report);
      }
      case "plan":
      case "recheck":
        await planCommand(context, { stacks: only });
        return;
      case "drift": {
        const report = await driftCommand(context, { stacks: only, correct: "policy" });
        return this.#afterDrift(report);
      }
      case "pr-plan":
        return this.#planPullRequest(context, event);
    }
  }

  async #poll(context: EngineContext): Promise<void> {
    const { repository } = context;
    await repository.fetch();
    const head = await repository.resolve(this.#options.branch ?? (await repository.defaultBranch()));
    await this.#store.setValue(LAST_POLL, new Date().toISOString());
    if (this.#options.pollPullRequests && this.#options.pullRequests) {
      for (const open of await this.#options.pullRequests.openPullRequests()) {
        if ((await this.#store.getValue(`${PR_HEAD}${open.number}`)) === open.headSha) continue;
        await this.#replacePullRequestPlan(open, "poll");
      }
    }
    if ((await this.#store.getValue(LAST_SEEN)) === head) return;
    await this.#store.setValue(LAST_SEEN, head);
    await this.#enqueue({ kind: "apply", commit: head, source: context.trigger });
  }

  async #planPullRequest(context: EngineContext, event: EventRecord): Promise<void> {
    const flow = this.#options.pullRequests;
    if (!flow || event.pr === undefined || !event.commit) return;
    const controller = new AbortController();
    this.#prPlans.set(event.pr, { head: event.commit, controller });
    try {
      await flow.plan(
        { ...context, signal: AbortSignal.any([this.#abort.signal, controller.signal]) },
        event.pr,
        event.commit,
        event.payload?.fromFork === true,
      );
      await this.#store.setValue(`${PR_HEAD}${event.pr}`, event.commit);
    } finally {
      if (this.#prPlans.get(event.pr)?.controller === controller) this.#prPlans.delete(event.pr);
    }
  }

  /** Queues a plan of a pull request's head in place of any queued one. */
  async #replacePullRequestPlan(
    open: { number: number; headSha: string; fromFork: boolean },
    source: string,
  ): Promise<void> {
    await this.#store.supersedeQueued("pr-plan", open.number);
    await this.#enqueue({
      kind: "pr-plan",
      pr: open.number,
      commit: open.headSha,
      payload: { fromFork: open.fromFork },
      source,
    });
  }

  async #afterApply(report: CommandReport): Promise<void> {
    const flow = this.#options.pullRequests;
    if (flow) {
      const pr = await this.#store.getValue(`${PR_FOR_COMMIT}${report.commit}`);
      if (pr) await flow.applied(Number(pr), report, report.commit);
      // Open pull requests were planned against what was applied before: plan them again.
      if (report.stacks.some((stack) => stack.status === "applied")) {
        for (const open of await flow.openPullRequests()) {
          await this.#replacePullRequestPlan(open, "after-apply");
        }
      }
    }
    for (const stack of report.stacks) {
      if (stack.status === "failed")
        await this.#notify("apply-failed", stack, stack.error?.message ?? "failed");
      if (stack.status === "blocked") await this.#notify("run-blocked", stack, stack.reason ?? "blocked");
    }
  }

  async #afterDrift(report: CommandReport): Promise<void> {
    for (const stack of report.stacks) {
      if (stack.driftEvent === undefined) continue;
      const kind = { found: "drift-found", changed: "drift-changed", corrected: "drift-corrected" } as const;
      await this.#notify(kind[stack.driftEvent], stack, driftSummary(stack));
    }
  }

  async #notify(kind: NotificationKind, stack: StackReport, summary: string): Promise<void> {
    const notification: Notification = {
      kind,
      repository: this.#options.repository,
      stack: stack.name,
      commit: stack.commit,
      runId: stack.runId ?? "",
      summary,
      resources: stack.resources,
      at: new Date().toISOString(),
      ...(this.#options.publicUrl && stack.runId
        ? { url: new URL(`runs/${stack.runId}`, this.#options.publicUrl).toString() }
        : {}),
    };
    this.#options.notifier.notify(notification);
  }

  // --- drift schedules --------------------------------------------------------

  async #scheduleDrift(): Promise<void> {
    const policy = this.#known.policy;
    if (!policy) return;
    const now = Date.now();
    for (const record of await this.#stackRecords()) {
      if (!record.lastAppliedCommit || !this.#known.stacks.has(record.stack)) continue;
      const stackPolicy = policy.forStack(record.stack);
      if (stackPolicy.drift === "off" || stackPolicy.suspended) continue;
      if (await this.#store.lockHolder(stackLockKey(this.#options.context, record.stack))) continue;
      const runs = await this.#store.listRuns({ ...this.#key(), stack: record.stack, kind: "drift" });
      let failures = 0;
      for (const run of [...runs].reverse()) {
        if (run.status !== "failed" && run.status !== "errored") break;
        failures++;
      }
      const last = record.driftCheckedAt ?? record.lastAppliedAt ?? new Date(now).toISOString();
      const due = nextDriftCheck(
        record.stack,
        stackPolicy.driftSchedule,
        { lastCheckedAt: new Date(last), failures },
        this.#options.driftJitterPercent,
      );
      if (due.getTime() <= now) await this.#enqueueOnce("drift", record.stack, "schedule");
    }
  }

  // --- helpers ----------------------------------------------------------------

  /** Keeps the stacks and policy of the followed branch's head, as the engine synthesizes it. */
  async #learnApp(
    commit: string,
    stacks: ReadonlyMap<string, readonly string[]>,
    policy: Policy,
  ): Promise<void> {
    if ((await this.#store.getValue(LAST_SEEN)) === commit) this.#known = { stacks: new Map(stacks), policy };
  }

  async #enqueue(event: Omit<Parameters<Store["enqueue"]>[0], "id">): Promise<Accepted> {
    const accepted = await this.#store.enqueue({ id: this.#options.newId(), ...event });
    if (!accepted.duplicate) this.#wake?.();
    return { eventId: accepted.id, duplicate: accepted.duplicate };
  }

  /**
   * A webhook's poll joins one already queued: that poll has not fetched yet, so it will
   * see what the webhook announced. A running poll may have fetched already: not joined.
   */
  async #joinOrQueuePoll(source: string, deliveryId: string): Promise<Accepted> {
    const queued = await this.#store.queuedEventId("poll");
    if (queued !== undefined) return { eventId: queued, duplicate: false };
    return this.#enqueue({ kind: "poll", source, deliveryId });
  }

  async #enqueueOnce(kind: "poll" | "drift", stack: string | undefined, source: string): Promise<void> {
    if (await this.#store.hasOpenEvent(kind, stack)) return;
    await this.#enqueue({ kind, ...(stack ? { stack } : {}), source });
  }

  #every(ms: number, tick: () => Promise<void>): void {
    const timer = setInterval(() => {
      tick().catch((error: unknown) => this.#log.error({ err: error }, "timer failed"));
    }, ms);
    timer.unref();
    this.#timers.push(timer);
  }

  async #checkStack(stack: string): Promise<void> {
    const records = await this.#stackRecords();
    if (!this.#known.stacks.has(stack) && !records.some((record) => record.stack === stack)) {
      const known = [...new Set([...this.#known.stacks.keys(), ...records.map((r) => r.stack)])].sort();
      throw new RunnerError(
        "STACK_UNKNOWN",
        `unknown stack "${stack}" (known: ${known.join(", ") || "none yet"})`,
      );
    }
  }

  async #stateOf(stack: string, record: StackRecord | undefined): Promise<StackState> {
    const policy = this.#known.policy?.forStack(stack);
    if (policy?.suspended) return "suspended";
    if (this.#known.stacks.size > 0 && !this.#known.stacks.has(stack)) return "orphaned";
    if (await this.#store.lockHolder(stackLockKey(this.#options.context, stack))) return "applying";
    if (record?.lastApplyStatus === "failed") return "failed";
    if (record?.lastApplyStatus === "blocked") return "blocked";
    if (!record?.lastAppliedCommit) return "pending";
    if (record.driftStatus === "drifted") return "drifted";
    const head = await this.#store.getValue(LAST_SEEN);
    if (!head || head === record.lastAppliedCommit) return "in-sync";
    const hashes = await this.#store.getCommitHashes(this.#key().repoId, this.#key().appDir, head);
    return hashes === undefined || hashes[stack] !== record.lastAppliedHash ? "pending" : "in-sync";
  }

  async #newestRun(stack: string): Promise<RunRecord | undefined> {
    const runs = await this.#store.listRuns({ ...this.#key(), stack });
    return runs.at(-1);
  }

  #stackRecords() {
    return this.#store.listStacks(this.#key().repoId, this.#key().appDir);
  }

  #key(): { repoId: string; appDir: string } {
    return { repoId: this.#options.context.repoId, appDir: this.#options.context.appDir };
  }
}

function driftSummary(stack: StackReport): string {
  if (stack.status === "corrected") return `drift corrected (${stack.resources.length} resource(s))`;
  return stack.resources
    .map((resource) => `${resource.address}: ${resource.drift?.join(", ") || resource.actions.join("/")}`)
    .join("; ");
}
