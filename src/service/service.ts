import type { Logger } from "pino";
import type { MaintenanceWindow } from "../domain/apply-gate.ts";
import { policyInForce } from "../domain/stack-policy.ts";
import { appKey, dependencyCacheDir, type EngineContext, stackKey, stackLockKey } from "../engine/context.ts";
import { processHolderPrefix } from "../engine/lock.ts";
import { type RollbackResult, rollbackCommand } from "../engine/rollback.ts";
import { RunnerError } from "../errors.ts";
import type { ForgeEvent } from "../forge/events.ts";
import type { Notifier } from "../notify/notifier.ts";
import type {
  AppKey,
  AuditEntry,
  AuditFilter,
  EventKind,
  PullRequestRecord,
  RunLogChunk,
  RunRecord,
  RunSummary,
  Snapshot,
  StackKey,
  StackRecord,
  WatchedBranch,
} from "../store/records.ts";
import type {
  Accepted,
  ApplyGateView,
  AuditQuery,
  CancelResult,
  QueueEntry,
  Readiness,
  RunFilter,
  ServiceApi,
  StackDetail,
  StackView,
  TriggerRequest,
} from "./api.ts";
import { type EventQueue, laneOf, scopeOf } from "./events.ts";
import { EventHandlers, type HandlerRecords } from "./handlers.ts";
import { Health } from "./health.ts";
import { Housekeeping, type HousekeepingRecords } from "./housekeeping.ts";
import { ServiceMetrics } from "./metrics.ts";
import { type OperationRecords, Operations } from "./operations.ts";
import type { PullRequestDirectory } from "./origin.ts";
import type { PullRequestFlow } from "./pull-requests.ts";
import { type RecoveryRecords, recoverAbandoned } from "./recovery.ts";
import { dueDriftChecks } from "./schedule.ts";
import { stackDetail, stackViews, type ViewRecords } from "./views.ts";
import { WorkerPool } from "./workers.ts";

/** Everything the service reads and writes; the SQL store provides it. */
export interface ServiceRecords
  extends EventQueue,
    HandlerRecords,
    ViewRecords,
    RecoveryRecords,
    OperationRecords,
    HousekeepingRecords {
  readonly dialect: "sqlite" | "postgres";
  ping(): Promise<void>;
  listRuns(
    filter: Omit<import("../store/records.ts").RunFilter, "repoId" | "appDir"> & AppKey,
  ): Promise<RunSummary[]>;
  getStack(key: StackKey): Promise<StackRecord | undefined>;
  savePullRequest(repoId: string, pr: Omit<PullRequestRecord, "updatedAt" | "plannedHead">): Promise<void>;
  acquireLock(key: string, holder: string, leaseMs: number): Promise<boolean>;
  renewLock(key: string, holder: string, leaseMs: number): Promise<boolean>;
  releaseLock(key: string, holder: string): Promise<void>;
  lockHolder(key: string): Promise<string | undefined>;
  latestWatchedBranch(app: AppKey): Promise<WatchedBranch | undefined>;
  getSnapshot(app: AppKey, commit: string): Promise<Snapshot | undefined>;
  listAudit(filter: AuditFilter): Promise<AuditEntry[]>;
  runLogSince(id: string, offset: number): Promise<RunLogChunk | undefined>;
}

export interface ServiceOptions {
  /** The engine context for the watched repository; each event gets a copy with its trigger. */
  readonly context: EngineContext;
  readonly records: ServiceRecords;
  readonly notifier: Notifier;
  readonly logger: Logger;
  /** The branch to follow; the remote's default branch when unset. */
  readonly branch?: string;
  readonly repository: string;
  readonly workers: number;
  readonly pollIntervalMs: number;
  readonly driftTickMs: number;
  readonly driftJitterPercent: number;
  readonly shutdownGraceMs: number;
  /** Leases of events and of leadership: a dead replica's work is taken over after this long. */
  readonly leaseMs: number;
  readonly minFreeBytes: number;
  readonly publicUrl?: string;
  readonly newId: () => string;
  /** Plans pull requests and reports applies on them, when a forge is configured. */
  readonly pullRequests?: PullRequestFlow;
  /** The forge's pull requests, for the people the audit trail records. */
  readonly pullRequestDirectory?: PullRequestDirectory;
  /** Without forge webhooks, each poll lists open pull requests and plans new heads. */
  readonly pollPullRequests?: boolean;
  /** Applies and drift corrections start only inside one of these; none: at any time. */
  readonly maintenanceWindows?: readonly MaintenanceWindow[];
  /** Runs and ended events older than this many days are pruned. */
  readonly retentionDays: number;
  /** The dependency cache is trimmed under this size. */
  readonly cacheMaxBytes: number;
}

const HOUSEKEEPING_MS = 10 * 60 * 1000;

/**
 * The long-running runner, as small parts over the store: triggers (poll,
 * webhooks, the API, drift schedules) persist events; a pool of workers claims
 * and runs them; one replica at a time (the leader) runs the timers; views
 * read stored records only.
 */
export class RunnerService implements ServiceApi {
  readonly #options: ServiceOptions;
  readonly #records: ServiceRecords;
  readonly #log: Logger;
  readonly #app: AppKey;
  readonly #scope: string;
  readonly #metrics: ServiceMetrics;
  readonly #health: Health;
  readonly #workers: WorkerPool;
  readonly #operations: Operations;
  readonly #housekeeping: Housekeeping;
  readonly #timers: NodeJS.Timeout[] = [];
  /** Timer work under way, awaited on stop so that none of it outlives the store. */
  readonly #ticks = new Set<Promise<void>>();
  readonly #leaderKey: string;
  readonly #holder = `${processHolderPrefix()}service`;
  #leader = false;
  #recovered = false;
  #stopping = false;

  constructor(options: ServiceOptions) {
    this.#options = options;
    this.#records = options.records;
    this.#log = options.logger;
    this.#app = appKey(options.context);
    this.#scope = scopeOf(this.#app);
    this.#leaderKey = `leader:${this.#scope}`;
    this.#health = new Health(
      options.context.dataDir,
      options.minFreeBytes,
      () => options.records.ping(),
      options.logger,
    );
    this.#housekeeping = new Housekeeping({
      records: options.records,
      app: this.#app,
      scope: this.#scope,
      dataDir: options.context.dataDir,
      cacheDir: dependencyCacheDir(options.context.dataDir),
      retentionDays: options.retentionDays,
      cacheMaxBytes: options.cacheMaxBytes,
      logger: options.logger,
    });
    this.#metrics = new ServiceMetrics({
      dataDirBytes: () => this.#housekeeping.dataDirBytes(),
      queueDepth: () => this.#records.countQueued(this.#scope),
      stacksDrifted: async () =>
        (await this.#records.listStacks(this.#app)).filter((record) => record.driftStatus === "drifted")
          .length,
      secondsSinceLastPoll: async () => {
        const polled = (await this.#records.latestWatchedBranch(this.#app))?.polledAt;
        return polled ? (Date.now() - Date.parse(polled)) / 1000 : undefined;
      },
    });
    this.#operations = new Operations({
      records: options.records,
      app: this.#app,
      scope: this.#scope,
      windows: options.maintenanceWindows ?? [],
      cancelRunning: (eventId, reason, force) => this.#workers.cancel([eventId], reason, force),
      wake: () => this.#workers.wake(),
      logger: options.logger,
    });
    const handlers = new EventHandlers({
      context: options.context,
      records: options.records,
      queue: options.records,
      scope: this.#scope,
      notifier: options.notifier,
      ...(options.branch ? { branch: options.branch } : {}),
      repository: options.repository,
      ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
      ...(options.pullRequests ? { pullRequests: options.pullRequests } : {}),
      ...(options.pullRequestDirectory ? { pullRequestDirectory: options.pullRequestDirectory } : {}),
      pollPullRequests: options.pollPullRequests === true,
      enqueue: (event) => this.#enqueue(event),
      replanPullRequest: (pr, source, options) => this.#replanPullRequest(pr, source, options),
      cancelOtherPlans: (pr, keep, reason) => this.#cancelRunningPlans(pr, reason, keep),
      onRunFinished: (run) => this.#metrics.runFinished(run.kind, run.status, run.durationMs),
      mayApply: async () => (await this.#operations.gate()).kind === "open",
    });
    this.#workers = new WorkerPool({
      queue: options.records,
      scope: this.#scope,
      workers: options.workers,
      logger: options.logger,
      handle: (event, signals, log) => handlers.handle(event, signals, log),
      heldLanes: () => this.#operations.heldLanes(),
      mayWork: () => this.#recovered && this.#health.mayWork(),
      onStoreHealth: (error) => this.#health.storeHealth(error),
      redact: options.context.redact,
      idlePollMs: options.records.dialect === "postgres" ? 1000 : 5000,
      leaseMs: options.leaseMs,
    });
  }

  /** Recovers from a crash, then starts the workers and the timers. */
  async start(): Promise<void> {
    await this.#health.check();
    this.#every(2000, () => this.#health.check());
    this.#workers.start();
    await this.#recover(this.#options.records.dialect === "sqlite");
    this.#recovered = true;
    await this.#lead();
    if (this.#leader) await this.#enqueueOnce("poll", undefined, "start");
    this.#every(Math.max(1000, this.#options.leaseMs / 3), () => this.#lead());
    this.#every(this.#options.pollIntervalMs, () =>
      this.#whenLeading(() => this.#enqueueOnce("poll", undefined, "poll")),
    );
    this.#every(this.#options.driftTickMs, () => this.#whenLeading(() => this.#scheduleDrift()));
    // Each replica trims its own cache; the records are pruned once, by the leader.
    this.#every(HOUSEKEEPING_MS, () => this.#housekeep(), { now: true });
    if (this.#options.records.dialect === "postgres") {
      this.#every(this.#options.leaseMs, () => this.#whenLeading(() => this.#recover(false)));
    }
  }

  /** Stops taking work, lets running events finish within the grace period, then cancels them. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const timer of this.#timers) clearInterval(timer);
    await Promise.all(this.#ticks);
    await this.#workers.stop(this.#options.shutdownGraceMs);
    if (this.#leader) await this.#records.releaseLock(this.#leaderKey, this.#holder).catch(() => undefined);
  }

  // --- ServiceApi ---------------------------------------------------------------

  async readiness(): Promise<Readiness> {
    const store = await this.#records.ping().then(
      () => true,
      () => false,
    );
    const polled = store && (await this.#records.latestWatchedBranch(this.#app))?.polledAt !== undefined;
    const health = this.#health.checks();
    const checks = {
      store: store && health.store,
      dataDir: health.dataDir,
      recovered: this.#recovered,
      repository: polled,
    };
    return { ready: Object.values(checks).every(Boolean) && !this.#stopping, checks };
  }

  listStacks(): Promise<StackView[]> {
    return stackViews(this.#records, this.#app, this.#options.driftJitterPercent);
  }

  getStack(name: string): Promise<StackDetail | undefined> {
    return stackDetail(this.#records, this.#app, name, this.#options.driftJitterPercent);
  }

  runLog(id: string, offset: number): Promise<RunLogChunk | undefined> {
    return this.#records.runLogSince(id, offset);
  }

  queue(): Promise<{ readonly events: readonly QueueEntry[]; readonly applies: ApplyGateView }> {
    return this.#operations.queue();
  }

  cancel(id: string, options: { readonly force: boolean }): Promise<CancelResult> {
    return this.#operations.cancel(id, options.force);
  }

  async suspend(stack: string, reason?: string): Promise<StackDetail> {
    await this.#checkStack(stack);
    await this.#operations.suspend(stack, reason);
    return this.#requireStack(stack);
  }

  async resume(stack: string): Promise<StackDetail> {
    await this.#checkStack(stack);
    const head = (await this.#records.latestWatchedBranch(this.#app))?.headSha;
    const snapshot = head ? await this.#records.getSnapshot(this.#app, head) : undefined;
    const filePolicy = snapshot?.stacks.find((candidate) => candidate.name === stack)?.policy;
    await this.#operations.resume(stack, filePolicy?.suspended === true);
    const detail = await this.#requireStack(stack);
    // What was merged while it was suspended is applied now.
    if (detail.state === "pending") await this.#enqueue({ kind: "apply", stack, source: "api:resume" });
    return detail;
  }

  applyGate(): Promise<ApplyGateView> {
    return this.#operations.gateView();
  }

  freeze(request: { readonly reason: string; readonly until?: string }): Promise<ApplyGateView> {
    return this.#operations.freeze(request);
  }

  unfreeze(): Promise<ApplyGateView> {
    return this.#operations.unfreeze();
  }

  listRuns(filter: RunFilter): Promise<RunSummary[]> {
    return this.#records.listRuns({
      ...this.#app,
      ...(filter.stack ? { stack: filter.stack } : {}),
      ...(filter.kind ? { kind: filter.kind } : {}),
      ...(filter.status ? { status: filter.status } : {}),
      limit: Math.min(filter.limit ?? 100, 1000),
    });
  }

  getRun(id: string): Promise<RunRecord | undefined> {
    return this.#records.getRun(id);
  }

  async trigger(request: TriggerRequest): Promise<Accepted> {
    if (request.stack !== undefined) await this.#checkStack(request.stack);
    return this.#enqueue({
      kind: request.kind,
      ...(request.stack ? { stack: request.stack } : {}),
      ...(request.tokenName ? { payload: { tokenName: request.tokenName } } : {}),
      source: "api",
    });
  }

  listAudit(filter: AuditQuery): Promise<AuditEntry[]> {
    return this.#records.listAudit({
      ...this.#app,
      ...(filter.stack ? { stack: filter.stack } : {}),
      ...(filter.since ? { since: filter.since } : {}),
      ...(filter.until ? { until: filter.until } : {}),
      limit: Math.min(filter.limit ?? 100, 1000),
    });
  }

  /**
   * Answered at once rather than queued: it applies nothing, and the person
   * asking wants the branch and the pull request. The repository's mirror is
   * shared with the workers, which git's own locks and the mirror's queue of
   * changing commands keep consistent.
   */
  async rollback(request: { stack: string; to: string; tokenName?: string }): Promise<RollbackResult> {
    await this.#checkStack(request.stack);
    const context: EngineContext = {
      ...this.#options.context,
      trigger: "api",
      ...(request.tokenName ? { origin: { tokenName: request.tokenName } } : {}),
      logger: this.#log,
    };
    return rollbackCommand(
      context,
      {
        stack: request.stack,
        to: request.to,
        ...(request.tokenName ? { requestedBy: `token ${request.tokenName}` } : {}),
      },
      this.#options.pullRequestDirectory,
    );
  }

  async approve(runId: string, tokenName?: string): Promise<Accepted> {
    const run = await this.#records.getRun(runId);
    if (!run) throw new RunnerError("RUN_NOT_FOUND", `no run ${runId}`);
    if (run.status !== "blocked" || run.kind !== "apply") {
      throw new RunnerError(
        "RUN_NOT_BLOCKED",
        `run ${runId} is ${run.status} (${run.kind}), not a blocked apply`,
      );
    }
    const record = await this.#records.getStack(stackKey(this.#options.context, run.stack));
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
      payload: { runId, ...(tokenName ? { tokenName } : {}) },
      source: "api",
    });
  }

  async releaseLock(stack: string): Promise<{ readonly released: boolean }> {
    await this.#checkStack(stack);
    const key = stackLockKey(this.#app, stack);
    const holder = await this.#records.lockHolder(key);
    if (holder === undefined) return { released: false };
    await this.#records.releaseLock(key, holder);
    this.#log.warn({ stack, holder }, "lock released by an operator");
    return { released: true };
  }

  async requestPoll(source: string, deliveryId: string): Promise<Accepted> {
    return this.#coalescedPoll(`webhook:${source}`, deliveryId);
  }

  /**
   * Persists a forge delivery as an event; a repeated delivery id returns at
   * once, before anything else happens. A plan event does not cancel other
   * plans here: the delivery may be late or out of order, and only the worker,
   * which asks the forge for the pull request's head, knows.
   */
  async forgeEvent(event: ForgeEvent, deliveryId: string): Promise<Accepted> {
    switch (event.kind) {
      case "push":
        return this.#coalescedPoll("webhook:push", deliveryId);
      case "command": {
        const { commentId, author, command } = event;
        return this.#enqueue({
          kind: "pr-plan",
          pr: event.number,
          payload: { command: { commentId, author, command } },
          source: "webhook:comment",
          deliveryId,
        });
      }
      case "pull_request":
        break;
    }
    const source = `webhook:pull_request:${event.action}`;
    switch (event.action) {
      case "opened":
      case "updated":
      case "reopened":
        return this.#enqueue({
          kind: "pr-plan",
          pr: event.number,
          commit: event.headSha,
          source,
          deliveryId,
        });
      case "closed":
      case "merged": {
        const accepted = await this.#enqueue({ kind: "poll", pr: event.number, source, deliveryId });
        if (accepted.duplicate) return accepted;
        await this.#records.savePullRequest(this.#app.repoId, {
          number: event.number,
          state: event.action,
          headSha: event.headSha,
          fromFork: event.fromFork,
          ...(event.mergeSha ? { mergeCommitSha: event.mergeSha } : {}),
        });
        await this.#records.supersedeQueued(this.#scope, "pr-plan", event.number);
        await this.#cancelRunningPlans(event.number, `the pull request was ${event.action}`);
        return accepted;
      }
    }
  }

  async metrics(): Promise<{ readonly contentType: string; readonly body: string }> {
    return { contentType: this.#metrics.registry.contentType, body: await this.#metrics.registry.metrics() };
  }

  // --- triggers -------------------------------------------------------------------

  async #enqueue(event: {
    kind: EventKind;
    stack?: string;
    commit?: string;
    payload?: Readonly<Record<string, unknown>>;
    source: string;
    deliveryId?: string;
    pr?: number;
  }): Promise<Accepted> {
    const accepted = await this.#records.enqueue(this.#scope, {
      id: this.#options.newId(),
      ...event,
      lane: laneOf(event.kind, event.stack, event.pr, event.commit),
    });
    if (!accepted.duplicate) this.#workers.wake();
    return { eventId: accepted.id, duplicate: accepted.duplicate };
  }

  /** A poll asked for while one is queued already is that one: a burst of webhooks fetches once. */
  async #coalescedPoll(source: string, deliveryId: string): Promise<Accepted> {
    const queued = await this.#records.openEvent(this.#scope, "poll", undefined, ["queued"]);
    if (queued) return { eventId: queued.id, duplicate: false };
    return this.#enqueue({ kind: "poll", source, deliveryId });
  }

  async #enqueueOnce(kind: "poll" | "drift", stack: string | undefined, source: string): Promise<void> {
    if (await this.#records.openEvent(this.#scope, kind, stack)) return;
    await this.#enqueue({ kind, ...(stack ? { stack } : {}), source });
  }

  /**
   * Queues a plan of a pull request's head. One of the same head already
   * queued will do; one running stands too, unless the baseline moved (after
   * an apply), when it is cancelled for the new one.
   */
  async #replanPullRequest(
    pr: { number: number; headSha: string },
    source: string,
    options: { readonly replaceSameHead: boolean },
  ): Promise<void> {
    const open = await this.#records.openPullRequestEvent(this.#scope, "pr-plan", pr.number);
    if (open?.commit === pr.headSha && (open.status === "queued" || !options.replaceSameHead)) return;
    const accepted = await this.#enqueue({ kind: "pr-plan", pr: pr.number, commit: pr.headSha, source });
    if (options.replaceSameHead)
      await this.#cancelRunningPlans(pr.number, "a newer plan was queued", accepted.eventId);
  }

  /** Cancels running plans of a pull request but `keep`, here or on another replica. */
  async #cancelRunningPlans(pr: number, reason: string, keep?: string): Promise<void> {
    const running = await this.#records.requestCancel(this.#scope, "pr-plan", pr, reason, keep);
    this.#workers.cancel(running, reason);
  }

  // --- leadership, timers, recovery -----------------------------------------------

  /** Takes or renews the leadership lease: one replica at a time runs the timers. */
  async #lead(): Promise<void> {
    try {
      const leading = this.#leader
        ? await this.#records.renewLock(this.#leaderKey, this.#holder, this.#options.leaseMs)
        : await this.#records.acquireLock(this.#leaderKey, this.#holder, this.#options.leaseMs);
      if (leading !== this.#leader)
        this.#log.info({ leader: leading }, leading ? "leading: running the timers" : "no longer leading");
      this.#leader = leading;
    } catch (error) {
      this.#health.storeHealth(error);
      this.#leader = false;
    }
  }

  async #whenLeading(work: () => Promise<void>): Promise<void> {
    if (this.#leader && this.#recovered && this.#health.mayWork()) await work();
  }

  async #recover(exclusive: boolean): Promise<void> {
    const { stacks } = await recoverAbandoned({
      queue: this.#records,
      records: this.#records,
      scope: this.#scope,
      app: this.#app,
      exclusive,
      logger: this.#log,
    });
    for (const stack of stacks) await this.#enqueue({ kind: "recheck", stack, source: "recovery" });
  }

  async #scheduleDrift(): Promise<void> {
    const head = (await this.#records.latestWatchedBranch(this.#app))?.headSha;
    const snapshot = head ? await this.#records.getSnapshot(this.#app, head) : undefined;
    if (!snapshot) return;
    const overrides = await this.#records.stackOverrides(this.#app);
    const policies = new Map(
      snapshot.stacks.map((stack) => [
        stack.name,
        policyInForce(stack.policy, overrides.get(stack.name)).policy,
      ]),
    );
    const records = (await this.#records.listStacks(this.#app)).filter((record) => record.lastAppliedCommit);
    const locks = await this.#records.locksWithPrefix(stackLockKey(this.#app, ""));
    const open = new Set(
      (await this.#records.listOpenEvents(this.#scope, 10_000))
        .filter((event) => event.kind === "drift")
        .map((event) => event.stack ?? "*"),
    );
    const candidates = records.flatMap((record) => {
      const policy = policies.get(record.stack);
      if (!policy) return [];
      return [
        {
          stack: record.stack,
          policy,
          lastCheckedAt: new Date(record.driftCheckedAt ?? record.lastAppliedAt ?? Date.now()),
          failures: record.driftFailures,
          locked: locks.has(stackLockKey(this.#app, record.stack)),
          queued: open.has(record.stack),
        },
      ];
    });
    for (const stack of dueDriftChecks(candidates, new Date(), this.#options.driftJitterPercent)) {
      await this.#enqueue({ kind: "drift", stack, source: "schedule" });
    }
  }

  async #housekeep(): Promise<void> {
    await this.#housekeeping.trimCache();
    await this.#whenLeading(() => this.#housekeeping.prune());
  }

  #every(ms: number, tick: () => Promise<void>, options: { readonly now?: boolean } = {}): void {
    let busy = false;
    const run = () => {
      if (busy) return;
      busy = true;
      const ticking: Promise<void> = tick()
        .catch((error: unknown) => this.#log.error({ err: error }, "timer failed"))
        .finally(() => {
          busy = false;
          this.#ticks.delete(ticking);
        });
      this.#ticks.add(ticking);
    };
    const timer = setInterval(run, ms);
    timer.unref();
    this.#timers.push(timer);
    if (options.now) run();
  }

  async #requireStack(stack: string): Promise<StackDetail> {
    const detail = await this.getStack(stack);
    if (!detail) throw new RunnerError("STACK_UNKNOWN", `unknown stack "${stack}"`);
    return detail;
  }

  async #checkStack(stack: string): Promise<void> {
    const views = await this.listStacks();
    if (!views.some((view) => view.name === stack)) {
      throw new RunnerError(
        "STACK_UNKNOWN",
        `unknown stack "${stack}" (known: ${views.map((view) => view.name).join(", ") || "none yet"})`,
      );
    }
  }
}
