import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { setTimeout as delay } from "node:timers/promises";
import { describe, expect, it, onTestFinished } from "vitest";
import { parsePolicy } from "../src/policy/policy.ts";
import { migrate, SCHEMA_VERSION } from "../src/store/migrations.ts";
import { PostgresDriver } from "../src/store/postgres-driver.ts";
import type { AuditEntry, NewEvent } from "../src/store/records.ts";
import type { SqlDriver } from "../src/store/sql.ts";
import { SqlStore } from "../src/store/sql-store.ts";
import { SqliteDriver } from "../src/store/sqlite-driver.ts";
import { usePostgres } from "./support/postgres.ts";

/**
 * The store's own suite, run unchanged against the embedded SQLite file and
 * against a real PostgreSQL server.
 */
const postgres = usePostgres();
let databases = 0;

interface Engine {
  readonly name: string;
  /** A fresh, empty database; `again` opens a second connection to the same one. */
  open(): Promise<{ driver: () => Promise<SqlDriver> }>;
}

const engines: Engine[] = [
  {
    name: "SQLite",
    async open() {
      const dir = await mkdtemp(path.join(tmpdir(), "gitops-runner-store-"));
      onTestFinished(() => rm(dir, { recursive: true, force: true }));
      return { driver: async () => new SqliteDriver(path.join(dir, "runner.db")) };
    },
  },
  {
    name: "PostgreSQL",
    async open() {
      const url = await postgres().createDatabase(`store_${++databases}`);
      return { driver: () => PostgresDriver.connect(url) };
    },
  },
];

const app = { repoId: "infra-0123abcd", appDir: "" };
const scope = "infra-0123abcd/_";
const key = (stack: string) => ({ ...app, stack });

async function opened(engine: Engine) {
  const database = await engine.open();
  const connect = async () => {
    const driver = await database.driver();
    await migrate(driver);
    const store = new SqlStore(driver);
    onTestFinished(() => store.close());
    return store;
  };
  return { store: await connect(), connect, database };
}

function event(id: string, fields: Partial<NewEvent> = {}): NewEvent {
  return { id, kind: "poll", source: "test", lane: "poll", ...fields };
}

describe.each(engines)("the store on $name", (engine) => {
  describe("schema", () => {
    it("migrates a new database to the newest version, and opening it again changes nothing", async () => {
      const database = await engine.open();
      const first = await database.driver();
      expect(await migrate(first)).toEqual({ from: 0, to: SCHEMA_VERSION });
      await first.close();
      const second = await database.driver();
      expect(await migrate(second)).toEqual({ from: SCHEMA_VERSION, to: SCHEMA_VERSION });
      const versions = await second.all<{ version: number }>(
        "SELECT version FROM schema_migrations ORDER BY version",
      );
      expect(versions.map((row) => Number(row.version))).toEqual(
        Array.from({ length: SCHEMA_VERSION }, (_, index) => index + 1),
      );
      await second.close();
    });

    it("refuses a database written by a newer runner, and changes nothing in it", async () => {
      const database = await engine.open();
      const driver = await database.driver();
      await migrate(driver);
      await driver.run("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)", [
        SCHEMA_VERSION + 1,
        "from the future",
        new Date().toISOString(),
      ]);
      await expect(migrate(driver)).rejects.toMatchObject({
        code: "STORE_SCHEMA_NEWER",
        message: expect.stringContaining(`schema is version ${SCHEMA_VERSION + 1}`),
      });
      const count = await driver.get<{ n: number }>("SELECT count(*) AS n FROM schema_migrations");
      expect(Number(count?.n)).toBe(SCHEMA_VERSION + 1);
      await driver.close();
    });
  });

  describe("runs", () => {
    it("keeps a run's log as it grows and its outcome, and lists runs newest first without logs", async () => {
      const { store } = await opened(engine);
      for (const [index, id] of ["r1", "r2", "r3"].entries()) {
        await store.startRun({
          id,
          kind: index === 2 ? "drift" : "apply",
          ...key("web"),
          commit: "c1",
          trigger: "test",
        });
        await delay(2);
      }
      await store.appendRunLog("r1", "==> init\nok\n");
      await store.appendRunLog("r1", "==> plan\n1 to add\n");
      expect((await store.getRun("r1"))?.log).toBe("==> init\nok\n==> plan\n1 to add\n");
      await store.finishRun("r1", {
        status: "succeeded",
        result: "applied",
        summary: { add: 1, change: 0, destroy: 0, replace: 0, import: 0 },
        resources: [{ address: "terraform_data.a", actions: ["create"] }],
        plan: { format_version: "1.2" },
        engine: "tofu",
        engineVersion: "1.12.6",
        providers: {},
      });
      const run = await store.getRun("r1");
      expect(run).toMatchObject({
        status: "succeeded",
        result: "applied",
        summary: { add: 1 },
        engine: "tofu",
      });
      expect(run?.log).toContain("1 to add");

      const listed = await store.listRuns({ ...app, limit: 2 });
      expect(listed.map((candidate) => candidate.id)).toEqual(["r3", "r2"]);
      expect(listed[0]).not.toHaveProperty("log");
      expect(listed[0]).not.toHaveProperty("plan");
      expect((await store.listRuns({ ...app, kind: "apply", limit: 10 })).map((r) => r.id)).toEqual([
        "r2",
        "r1",
      ]);
      expect((await store.listRuns({ ...app, status: "succeeded", limit: 10 })).map((r) => r.id)).toEqual([
        "r1",
      ]);
      expect(await store.latestRunIds(app, ["web", "other"])).toEqual(new Map([["web", "r3"]]));
    });
  });

  describe("what a run page and the queue read", () => {
    it("keeps a run's steps and a cancel asked of it, and lists the runs of events", async () => {
      const { store } = await opened(engine);
      const started = [
        ["r1", "apply", "web", "e1"],
        ["r2", "apply", "db", "e1"],
        ["r3", "plan", "db", "e2"],
      ] as const;
      for (const [id, kind, stack, eventId] of started) {
        await store.startRun({ id, kind, ...key(stack), commit: "c1", trigger: "t", eventId });
      }
      const steps = [
        {
          name: "init",
          startedAt: "2026-01-01T00:00:00.000Z",
          endedAt: "2026-01-01T00:00:01.000Z",
          status: "succeeded",
        },
        { name: "apply", startedAt: "2026-01-01T00:00:02.000Z", status: "running" },
      ] as const;
      await store.recordSteps("r1", steps);
      await store.recordRunCancel("r1", {
        requestedAt: "2026-01-01T00:00:03.000Z",
        force: true,
        step: "apply",
      });

      expect(await store.getRun("r1")).toMatchObject({
        steps,
        cancel: { force: true, step: "apply" },
        eventId: "e1",
      });
      const ofEvents = await store.runsOfEvents(["e1"]);
      expect(ofEvents.map((run) => run.id).sort()).toEqual(["r1", "r2"]);
      expect(ofEvents.find((run) => run.id === "r1")?.steps).toEqual(steps);
      expect(ofEvents[0]).not.toHaveProperty("log");
      expect(await store.runsOfEvents([])).toEqual([]);
    });

    it("reads a log from an offset on, in characters, with the run's status", async () => {
      const { store } = await opened(engine);
      await store.startRun({ id: "r1", kind: "apply", ...key("web"), commit: "c1", trigger: "t" });
      expect(await store.runLogSince("r1", 0)).toEqual({ text: "", offset: 0, status: "running" });
      await store.appendRunLog("r1", "==> init\nčeká ✓\n");
      const first = await store.runLogSince("r1", 0);
      expect(first).toEqual({ text: "==> init\nčeká ✓\n", offset: 16, status: "running" });
      await store.appendRunLog("r1", "==> plan\n");
      expect(await store.runLogSince("r1", first?.offset ?? -1)).toEqual({
        text: "==> plan\n",
        offset: 25,
        status: "running",
      });
      await store.finishRun("r1", { status: "cancelled", result: "failed" });
      expect(await store.runLogSince("r1", 25)).toEqual({ text: "", offset: 25, status: "cancelled" });
      expect(await store.runLogSince("nope", 0)).toBeUndefined();
    });

    it("prunes ended runs older than the cut-off, but keeps each stack's last successful apply and last drift check", async () => {
      const { store, database } = await opened(engine);
      const sql = await database.driver();
      onTestFinished(() => sql.close());
      const startedAt = (id: string, at: string) =>
        sql.run("UPDATE runs SET started_at = ? WHERE id = ?", [at, id]);
      const runs: [string, "apply" | "drift" | "plan", string, string, "succeeded" | "failed" | "running"][] =
        [
          ["old-apply", "apply", "web", "2025-01-01T00:00:00.000Z", "succeeded"],
          ["last-apply", "apply", "web", "2025-02-01T00:00:00.000Z", "succeeded"],
          ["failed-apply", "apply", "web", "2025-03-01T00:00:00.000Z", "failed"],
          ["old-drift", "drift", "web", "2025-01-02T00:00:00.000Z", "succeeded"],
          ["last-drift", "drift", "web", "2025-02-02T00:00:00.000Z", "failed"],
          ["old-plan", "plan", "web", "2025-01-03T00:00:00.000Z", "succeeded"],
          ["still-running", "plan", "web", "2025-01-04T00:00:00.000Z", "running"],
          ["db-apply", "apply", "db", "2025-01-05T00:00:00.000Z", "succeeded"],
          ["new-plan", "plan", "db", "2026-06-01T00:00:00.000Z", "succeeded"],
        ];
      for (const [id, kind, stack, at, status] of runs) {
        await store.startRun({ id, kind, ...key(stack), commit: "c", trigger: "t" });
        if (status !== "running") await store.finishRun(id, { status, result: status });
        await startedAt(id, at);
      }
      await store.startRun({
        id: "other-app",
        kind: "plan",
        repoId: "other",
        appDir: "",
        stack: "x",
        commit: "c",
        trigger: "t",
      });
      await store.finishRun("other-app", { status: "succeeded", result: "no-changes" });
      await startedAt("other-app", "2025-01-01T00:00:00.000Z");

      expect(await store.pruneRuns(app, "2026-01-01T00:00:00.000Z")).toBe(4);
      const left = (await store.listRuns({ ...app, limit: 100 })).map((run) => run.id).sort();
      expect(left).toEqual(["db-apply", "last-apply", "last-drift", "new-plan", "still-running"]);
      expect(await store.getRun("other-app")).toBeDefined();
    });
  });

  describe("suspensions and freezes", () => {
    it("keeps a stack's suspension or resumption until it is cleared", async () => {
      const { store } = await opened(engine);
      expect(await store.stackOverrides(app)).toEqual(new Map());
      await store.setStackOverride(key("web"), { suspended: true, reason: "incident 42" });
      await store.setStackOverride(key("db"), { suspended: false });
      await store.setStackOverride({ repoId: "other", appDir: "", stack: "web" }, { suspended: true });
      const overrides = await store.stackOverrides(app);
      expect([...overrides.keys()]).toEqual(["db", "web"]);
      expect(overrides.get("web")).toEqual({
        suspended: true,
        reason: "incident 42",
        updatedAt: expect.stringMatching(/^\d{4}-/),
      });
      expect(overrides.get("db")).toEqual({ suspended: false, updatedAt: expect.any(String) });
      await store.setStackOverride(key("web"), { suspended: false });
      expect((await store.stackOverrides(app)).get("web")).toEqual({
        suspended: false,
        updatedAt: expect.any(String),
      });
      await store.clearStackOverride(key("web"));
      expect([...(await store.stackOverrides(app)).keys()]).toEqual(["db"]);
    });

    it("freezes an app's applies with a reason and an optional end, replaces a freeze, and lifts it once", async () => {
      const { store } = await opened(engine);
      expect(await store.getFreeze(app)).toBeUndefined();
      const frozen = await store.setFreeze(app, { reason: "release week" });
      expect(frozen).toEqual({ reason: "release week", since: expect.stringMatching(/^\d{4}-/) });
      await store.setFreeze(app, { reason: "incident", until: "2030-01-01T00:00:00.000Z" });
      expect(await store.getFreeze(app)).toMatchObject({
        reason: "incident",
        until: "2030-01-01T00:00:00.000Z",
      });
      expect(await store.getFreeze({ repoId: "other", appDir: "" })).toBeUndefined();
      expect(await store.clearFreeze(app)).toBe(true);
      expect(await store.clearFreeze(app)).toBe(false);
      expect(await store.getFreeze(app)).toBeUndefined();
    });
  });

  describe("stacks and snapshots", () => {
    it("records applies, problems and drift, counting failed checks until one succeeds", async () => {
      const { store } = await opened(engine);
      await store.recordApplied(key("web"), "c1", "h1");
      await store.recordApplyProblem(key("db"), "blocked");
      await store.recordDrift(key("web"), { status: "failed" });
      await store.recordDrift(key("web"), { status: "failed" });
      expect(await store.getStack(key("web"))).toMatchObject({
        lastAppliedCommit: "c1",
        lastAppliedHash: "h1",
        lastApplyStatus: "succeeded",
        driftFailures: 2,
      });
      await store.recordDrift(key("web"), { status: "drifted", fingerprint: "f1" });
      expect(await store.getStack(key("web"))).toMatchObject({
        driftStatus: "drifted",
        driftFingerprint: "f1",
        driftFailures: 0,
      });
      expect((await store.listStacks(app)).map((record) => [record.stack, record.lastApplyStatus])).toEqual([
        ["db", "blocked"],
        ["web", "succeeded"],
      ]);
    });

    it("keeps a synthesized commit's stacks, dependencies, hashes and policies", async () => {
      const { store } = await opened(engine);
      const policy = parsePolicy(
        "gitops-runner.policy.json",
        '{"web":{"drift":"correct","driftSchedule":"10s"}}',
      );
      await store.saveSnapshot({
        ...app,
        commit: "c1",
        stacks: [
          { name: "net", dependencies: [], hash: "h-net", policy: policy.forStack("net") },
          { name: "web", dependencies: ["net"], hash: "h-web", policy: policy.forStack("web") },
        ],
        policyFile: "gitops-runner.policy.json",
      });
      const snapshot = await store.getSnapshot(app, "c1");
      expect(snapshot?.stacks[1]).toEqual({
        name: "web",
        dependencies: ["net"],
        hash: "h-web",
        policy: policy.forStack("web"),
      });
      expect(snapshot?.policyFile).toBe("gitops-runner.policy.json");
      expect(await store.getSnapshot(app, "c2")).toBeUndefined();
    });
  });

  describe("the watched branch and pull requests", () => {
    it("moves the branch head once per new commit, for whichever caller gets there first", async () => {
      const { store, connect } = await opened(engine);
      const other = await connect();
      const moves = await Promise.all([
        store.advanceHead(app, "main", "c1"),
        other.advanceHead(app, "main", "c1"),
      ]);
      expect(moves.filter(Boolean)).toHaveLength(1);
      expect(await store.advanceHead(app, "main", "c1")).toBe(false);
      expect(await store.advanceHead(app, "main", "c2")).toBe(true);
      expect(await store.getWatchedBranch(app, "main")).toMatchObject({ branch: "main", headSha: "c2" });
      await store.resetHead(app);
      expect(await store.advanceHead(app, "main", "c2")).toBe(true);
    });

    it("keeps pull requests, finds one by its merge commit, and remembers the head last planned", async () => {
      const { store } = await opened(engine);
      await store.savePullRequest(app.repoId, {
        number: 7,
        state: "open",
        headSha: "h1",
        fromFork: false,
        baseRef: "main",
      });
      await store.recordPlannedHead(app.repoId, 7, "h1");
      await store.savePullRequest(app.repoId, {
        number: 7,
        state: "merged",
        headSha: "h1",
        fromFork: false,
        mergeCommitSha: "m1",
      });
      expect(await store.pullRequestForMergeCommit(app.repoId, "m1")).toMatchObject({
        number: 7,
        state: "merged",
        baseRef: "main",
        plannedHead: "h1",
        fromFork: false,
      });
      expect(await store.getPullRequest(app.repoId, 8)).toBeUndefined();
    });

    it("finds a pull request's plan at a commit, the newest run per stack, and keeps an apply's review", async () => {
      const { store } = await opened(engine);
      const plan = async (
        id: string,
        stack: string,
        commit: string,
        pr: number | undefined,
        status: "succeeded" | "failed",
        address?: string,
      ) => {
        await store.startRun({
          id,
          kind: "plan",
          ...key(stack),
          commit,
          trigger: "test",
          ...(pr ? { pr } : {}),
        });
        await store.finishRun(id, {
          status,
          result: status === "failed" ? "failed" : "changes",
          resources: address ? [{ address, actions: ["create"] }] : [],
        });
        await delay(2);
      };
      await plan("p1", "network", "h1", 7, "succeeded", "terraform_data.old");
      await plan("p2", "network", "h1", 7, "succeeded", "terraform_data.new");
      await plan("p3", "service", "h1", 7, "failed");
      await plan("p4", "dns", "h0", 7, "succeeded", "terraform_data.earlier");
      await plan("p5", "dns", "h1", 8, "succeeded", "terraform_data.other");
      await plan("p6", "dns", "h1", undefined, "succeeded", "terraform_data.branch");
      expect(await store.pullRequestPlans(app, 7, "h1")).toEqual([
        {
          stack: "network",
          runId: "p2",
          status: "succeeded",
          resources: [{ address: "terraform_data.new", actions: ["create"] }],
        },
        { stack: "service", runId: "p3", status: "failed", resources: [] },
      ]);
      expect(await store.pullRequestPlans(app, 9, "h1")).toEqual([]);

      await store.startRun({ id: "a1", kind: "apply", ...key("network"), commit: "m1", trigger: "test" });
      const review = {
        pr: 7,
        comparison: {
          kind: "differs" as const,
          notReviewed: false,
          differences: [{ kind: "added" as const, address: "terraform_data.more", actions: ["create"] }],
        },
      };
      await store.finishRun("a1", { status: "blocked", result: "blocked", review });
      expect((await store.getRun("a1"))?.review).toEqual(review);
      expect((await store.listRuns({ ...app, kind: "apply", limit: 1 }))[0]?.review).toEqual(review);
    });
  });

  describe("events", () => {
    it("accepts a delivery id once, and hands out events oldest first, one at a time per lane", async () => {
      const { store } = await opened(engine);
      expect(
        await store.enqueue(scope, event("e1", { lane: "apply", kind: "apply", deliveryId: "d1" })),
      ).toEqual({
        id: "e1",
        duplicate: false,
      });
      expect(
        await store.enqueue(scope, event("e1b", { lane: "apply", kind: "apply", deliveryId: "d1" })),
      ).toEqual({
        id: "e1",
        duplicate: true,
      });
      await store.enqueue(scope, event("e2", { lane: "apply", kind: "apply" }));
      await store.enqueue(scope, event("e3", { lane: "drift:web", kind: "drift", stack: "web" }));
      await store.enqueue("another/_", event("x1"));

      const first = await store.claimEvent(scope, "w1", 30_000);
      expect(first?.id).toBe("e1");
      // e2 shares e1's lane: the next claim skips to the drift check.
      expect((await store.claimEvent(scope, "w2", 30_000))?.id).toBe("e3");
      expect(await store.claimEvent(scope, "w3", 30_000)).toBeUndefined();
      expect(await store.countQueued(scope)).toBe(1);
      expect((await store.newerQueued(scope, "apply", "e1")).map((candidate) => candidate.id)).toEqual([
        "e2",
      ]);
      await store.finishEvent("e1", "done");
      expect((await store.claimEvent(scope, "w1", 30_000))?.id).toBe("e2");
      expect((await store.listOpenEvents(scope, 10)).map((open) => `${open.id} ${open.status}`)).toEqual([
        "e2 running",
        "e3 running",
      ]);
    });

    it("gives each event to one of many workers claiming at once", async () => {
      const { store, connect } = await opened(engine);
      const stores = [store, await connect(), await connect()];
      for (let index = 0; index < 30; index++) {
        await store.enqueue(
          scope,
          event(`e${index}`, { lane: `plan:s${index % 10}`, kind: "plan", stack: `s${index % 10}` }),
        );
      }
      const claimed: string[] = [];
      await Promise.all(
        stores.flatMap((candidate, storeIndex) =>
          [0, 1, 2].map(async (worker) => {
            for (;;) {
              const next = await candidate.claimEvent(scope, `s${storeIndex}w${worker}`, 30_000);
              if (!next) {
                if ((await candidate.countQueued(scope)) === 0) return;
                continue;
              }
              claimed.push(next.id);
              await candidate.finishEvent(next.id, "done");
            }
          }),
        ),
      );
      expect(claimed.sort()).toEqual(Array.from({ length: 30 }, (_, index) => `e${index}`).sort());
    });

    it("renews a lease, reports a cancel asked for, and tells a holder that lost its lease", async () => {
      const { store } = await opened(engine);
      await store.enqueue(scope, event("p1", { kind: "pr-plan", lane: "pr:4", pr: 4 }));
      await store.enqueue(scope, event("p2", { kind: "pr-plan", lane: "pr:4", pr: 4 }));
      await store.claimEvent(scope, "w1", 30_000);
      expect(await store.renewEvent("p1", "w1", 30_000)).toEqual({});
      expect(await store.supersedeQueued(scope, "pr-plan", 4, "none")).toBe(1);
      expect(await store.requestCancel(scope, "pr-plan", 4, "a newer head was pushed")).toEqual(["p1"]);
      expect(await store.renewEvent("p1", "w1", 30_000)).toEqual({ cancelReason: "a newer head was pushed" });
      expect(await store.renewEvent("p1", "someone-else", 30_000)).toBeUndefined();
      expect((await store.getEvent("p2"))?.status).toBe("superseded");
    });

    it("holds the lanes it is told to hold, e.g. applies while frozen", async () => {
      const { store } = await opened(engine);
      await store.enqueue(scope, event("a1", { lane: "apply", kind: "apply" }));
      await store.enqueue(scope, event("p1", { lane: "plan:web", kind: "plan", stack: "web" }));
      expect((await store.claimEvent(scope, "w1", 30_000, ["apply"]))?.id).toBe("p1");
      expect(await store.claimEvent(scope, "w2", 30_000, ["apply"])).toBeUndefined();
      expect((await store.claimEvent(scope, "w2", 30_000))?.id).toBe("a1");
    });

    it("drops a queued event, asks a running one to cancel (forced or not), and prunes ended ones", async () => {
      const { store } = await opened(engine);
      await store.enqueue(scope, event("run", { lane: "apply", kind: "apply" }));
      await store.enqueue(scope, event("wait", { lane: "apply", kind: "apply" }));
      await store.claimEvent(scope, "w1", 30_000);
      expect(await store.cancelQueuedEvent(scope, "run", "asked")).toBe(false);
      expect(await store.cancelQueuedEvent("another/_", "wait", "asked")).toBe(false);
      expect(await store.cancelQueuedEvent(scope, "wait", "cancelled through the API")).toBe(true);
      expect(await store.getEvent("wait")).toMatchObject({
        status: "cancelled",
        error: "cancelled through the API",
      });
      expect(await store.requestEventCancel(scope, "wait", "late", false)).toBe(false);
      expect(await store.requestEventCancel(scope, "run", "cancelled through the API", true)).toBe(true);
      expect(await store.renewEvent("run", "w1", 30_000)).toEqual({
        cancelReason: "cancelled through the API",
        cancelForce: true,
      });
      expect(await store.pruneEvents(scope, "2000-01-01T00:00:00.000Z")).toBe(0);
      expect(await store.pruneEvents(scope, "2999-01-01T00:00:00.000Z")).toBe(1);
      expect(await store.getEvent("wait")).toBeUndefined();
      expect(await store.getEvent("run")).toBeDefined();
    });

    it("interrupts abandoned events and their runs: every one, or only those whose lease expired", async () => {
      const { store } = await opened(engine);
      await store.enqueue(scope, event("live", { lane: "apply", kind: "apply" }));
      await store.enqueue(scope, event("dead", { lane: "drift:web", kind: "drift", stack: "web" }));
      await store.claimEvent(scope, "w-live", 60_000);
      await store.claimEvent(scope, "w-dead", 1);
      await store.startRun({
        id: "run-live",
        kind: "apply",
        ...key("db"),
        commit: "c",
        trigger: "t",
        eventId: "live",
      });
      await store.startRun({
        id: "run-dead",
        kind: "drift",
        ...key("web"),
        commit: "c",
        trigger: "t",
        eventId: "dead",
      });
      await store.recordProcess("run-dead", 4242);
      await delay(20);

      const expired = await store.interruptAbandoned(scope, app, { all: false });
      expect(expired.events.map((abandoned) => abandoned.id)).toEqual(["dead"]);
      expect(expired.runs.map((run) => [run.id, run.status])).toEqual([["run-dead", "interrupted"]]);
      expect(await store.runProcess("run-dead")).toMatchObject({ pgid: 4242 });
      expect((await store.getRun("run-live"))?.status).toBe("running");

      const all = await store.interruptAbandoned(scope, app, { all: true });
      expect(all.events.map((abandoned) => abandoned.id)).toEqual(["live"]);
      expect((await store.getRun("run-live"))?.status).toBe("interrupted");
      expect((await store.getEvent("live"))?.status).toBe("interrupted");
    });
  });

  describe("locks", () => {
    it("gives a lock to one holder until it is released or its lease (on the database's clock) expires", async () => {
      const { store, connect } = await opened(engine);
      const other = await connect();
      const results = await Promise.all([
        store.acquireLock("stack:a", "h1:1:run x", 60_000),
        other.acquireLock("stack:a", "h2:2:run y", 60_000),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
      const holder = await store.lockHolder("stack:a");
      expect(holder === "h1:1:run x" || holder === "h2:2:run y").toBe(true);
      expect(await store.renewLock("stack:a", holder as string, 60_000)).toBe(true);
      expect(await store.renewLock("stack:a", "nobody", 60_000)).toBe(false);

      await store.acquireLock("stack:b", "h3:3:run z", 1);
      await delay(20);
      expect(await store.lockHolder("stack:b")).toBeUndefined();
      expect(await other.acquireLock("stack:b", "h4:4:run w", 60_000)).toBe(true);
      expect(await store.locksWithPrefix("stack:")).toEqual(
        new Map([
          ["stack:a", holder],
          ["stack:b", "h4:4:run w"],
        ]),
      );
      expect(await store.releaseLocksHeldBy("h4:4:")).toBe(1);
      await store.releaseLock("stack:a", holder as string);
      expect(await store.locksWithPrefix("stack:")).toEqual(new Map());
    });
  });

  describe("applied folders", () => {
    it("keeps one archive per stack, replaced by the next", async () => {
      const { store } = await opened(engine);
      await store.saveAppliedConfig(key("web"), "c1", new Uint8Array([1, 2, 3]));
      await store.saveAppliedConfig(key("web"), "c2", new Uint8Array([4, 5]));
      expect(await store.loadAppliedConfig(key("web"))).toEqual({
        commit: "c2",
        archive: new Uint8Array([4, 5]),
      });
      expect(await store.loadAppliedConfig(key("db"))).toBeUndefined();
    });
  });

  describe("the audit trail", () => {
    const summary = { add: 1, change: 0, destroy: 0, replace: 0, import: 0 };
    const entry = (runId: string, stack: string, fields: Partial<Omit<AuditEntry, "at">> = {}) => ({
      runId,
      ...key(stack),
      kind: "apply" as const,
      commit: "c1",
      result: "applied" as const,
      trigger: "poll",
      origin: {},
      summary,
      resources: [{ address: "terraform_data.a", actions: ["create" as const] }],
      ...fields,
    });

    it("keeps who and what triggered each applied change, lists it by stack and time, and keeps one entry per run", async () => {
      const { store } = await opened(engine);
      const origin = {
        deliveryId: "d-1",
        pullRequest: {
          number: 7,
          url: "https://forge.example/pr/7",
          author: "ana",
          mergedBy: "bo",
          approvers: ["cy", "di"],
        },
      };
      await store.recordAudit(entry("a1", "web", { origin, commitAuthor: "Ana <ana@example.com>" }));
      await delay(5);
      const between = new Date().toISOString();
      await delay(5);
      await store.recordAudit(entry("a2", "db", { commit: "c2", result: "failed", error: "boom" }));
      await store.recordAudit(entry("a2", "db", { commit: "c3" }));
      await store.recordAudit(entry("a3", "web", { commit: "c2", environment: "dev", promotionHash: "p2" }));

      const all = await store.listAudit({ ...app, limit: 10 });
      expect(all.map((candidate) => candidate.runId)).toEqual(["a3", "a2", "a1"]);
      expect(all[1]).toMatchObject({ commit: "c2", result: "failed", error: "boom" });
      expect(all[2]).toMatchObject({
        origin,
        commitAuthor: "Ana <ana@example.com>",
        summary,
        trigger: "poll",
      });
      expect((await store.listAudit({ ...app, stack: "web", limit: 10 })).map((e) => e.runId)).toEqual([
        "a3",
        "a1",
      ]);
      expect((await store.listAudit({ ...app, since: between, limit: 10 })).map((e) => e.runId)).toEqual([
        "a3",
        "a2",
      ]);
      expect((await store.listAudit({ ...app, until: between, limit: 10 })).map((e) => e.runId)).toEqual([
        "a1",
      ]);
      expect(await store.listAudit({ repoId: app.repoId, appDir: "other", limit: 10 })).toEqual([]);
    });

    it("finds a stack's successful apply of a commit or of a configuration's promotion hash", async () => {
      const { store } = await opened(engine);
      await store.recordAudit(
        entry("a1", "web-dev", { commit: "c1", promotionHash: "p1", result: "failed" }),
      );
      expect(await store.lastSuccessfulApply(key("web-dev"), { promotionHash: "p1" })).toBeUndefined();
      await store.recordAudit(
        entry("a2", "web-dev", { commit: "c2", promotionHash: "p1", result: "no-changes" }),
      );
      expect(await store.lastSuccessfulApply(key("web-dev"), { promotionHash: "p1" })).toMatchObject({
        runId: "a2",
        commit: "c2",
      });
      expect(await store.lastSuccessfulApply(key("web-dev"), { commit: "c2" })).toMatchObject({
        runId: "a2",
      });
      expect(await store.lastSuccessfulApply(key("web-dev"), { commit: "c1" })).toBeUndefined();
      expect(await store.lastSuccessfulApply(key("web-prod"), { promotionHash: "p1" })).toBeUndefined();
    });

    it("keeps a run's origin and the violations its policy checks found", async () => {
      const { store } = await opened(engine);
      await store.startRun({
        id: "r1",
        kind: "plan",
        ...key("web"),
        commit: "c1",
        trigger: "webhook:pull_request:opened",
        origin: { deliveryId: "d-9", pullRequest: { number: 9 } },
      });
      const violations = [{ check: "tags", address: "aws_s3_bucket.b", message: "no owner tag" }];
      await store.finishRun("r1", { status: "succeeded", result: "changes", violations });
      expect(await store.getRun("r1")).toMatchObject({
        pr: 9,
        origin: { deliveryId: "d-9", pullRequest: { number: 9 } },
        violations,
      });
      expect((await store.listRuns({ ...app, limit: 1 }))[0]).toMatchObject({ pr: 9, violations });
    });
  });
});

describe("the embedded store's file", () => {
  it("upgrades a file written before numbered migrations (schema 1 in user_version)", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "gitops-runner-store-"));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, "runner.db");
    const legacy = new DatabaseSync(file);
    legacy.exec(`CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, repo_id TEXT NOT NULL, app_dir TEXT NOT NULL,
      stack TEXT NOT NULL, commit_sha TEXT NOT NULL, trigger TEXT NOT NULL, pr INTEGER, status TEXT NOT NULL, result TEXT,
      started_at TEXT NOT NULL, ended_at TEXT, summary TEXT, resources TEXT, plan TEXT, log TEXT, engine TEXT,
      engine_version TEXT, providers TEXT, error_code TEXT, error_message TEXT, pgid INTEGER);
      CREATE TABLE stacks (repo_id TEXT NOT NULL, app_dir TEXT NOT NULL, name TEXT NOT NULL, last_applied_commit TEXT,
      last_applied_hash TEXT, last_applied_at TEXT, last_apply_status TEXT, drift_status TEXT, drift_fingerprint TEXT,
      drift_checked_at TEXT, PRIMARY KEY (repo_id, app_dir, name));
      CREATE TABLE commit_hashes (repo_id TEXT NOT NULL, app_dir TEXT NOT NULL, commit_sha TEXT NOT NULL, hashes TEXT NOT NULL,
      PRIMARY KEY (repo_id, app_dir, commit_sha));
      CREATE TABLE events (id TEXT PRIMARY KEY, kind TEXT NOT NULL, stack TEXT, commit_sha TEXT, payload TEXT, source TEXT NOT NULL,
      delivery_id TEXT UNIQUE, pr INTEGER, status TEXT NOT NULL, created_at TEXT NOT NULL, claimed_by TEXT, finished_at TEXT, error TEXT);
      CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE locks (key TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
      INSERT INTO stacks (repo_id, app_dir, name, last_applied_commit, last_applied_hash, last_apply_status)
        VALUES ('infra-0123abcd', '', 'web', 'c1', 'h1', 'succeeded');
      PRAGMA user_version = 1;`);
    legacy.close();

    const driver = new SqliteDriver(file);
    expect(await migrate(driver)).toEqual({ from: 1, to: SCHEMA_VERSION });
    const store = new SqlStore(driver);
    expect(await store.getStack(key("web"))).toMatchObject({ lastAppliedCommit: "c1", driftFailures: 0 });
    await store.close();
  });
});
