import { dependentsOf } from "../domain/graph.ts";
import { type PolicyInForce, policyInForce } from "../domain/stack-policy.ts";
import { stackLockPrefix } from "../engine/context.ts";
import type { StackPolicy } from "../policy/policy.ts";
import type {
  AppKey,
  RunSummary,
  Snapshot,
  StackOverride,
  StackRecord,
  WatchedBranch,
} from "../store/records.ts";
import type { PolicyView, StackDetail, StackState, StackView } from "./api.ts";
import { nextDriftCheck } from "./schedule.ts";

/** What the stack views read; declared here, where they are built. */
export interface ViewRecords {
  latestWatchedBranch(app: AppKey): Promise<WatchedBranch | undefined>;
  getSnapshot(app: AppKey, commit: string): Promise<Snapshot | undefined>;
  listStacks(app: AppKey): Promise<StackRecord[]>;
  locksWithPrefix(prefix: string): Promise<Map<string, string>>;
  latestRunIds(app: AppKey, stacks: readonly string[]): Promise<Map<string, string>>;
  stackOverrides(app: AppKey): Promise<Map<string, StackOverride>>;
  listRuns(filter: AppKey & { stack?: string; kind?: "drift"; limit: number }): Promise<RunSummary[]>;
}

export interface StackFacts {
  readonly record?: StackRecord;
  /** The stack is in the app at the followed branch's head (undefined: that head is not known). */
  readonly inApp?: boolean;
  readonly policy?: StackPolicy;
  readonly locked: boolean;
  /** The stack's synthesized folder at the head differs from the one last applied (or a producer's does). */
  readonly changedAtHead: boolean;
}

/** A stack's state word, from what is known of it. Pure. */
export function stackState(facts: StackFacts): StackState {
  const { record } = facts;
  if (facts.policy?.suspended) return "suspended";
  if (facts.inApp === false) return "orphaned";
  if (facts.locked) return "applying";
  if (record?.lastApplyStatus === "failed") return "failed";
  if (record?.lastApplyStatus === "blocked") return "blocked";
  if (!record?.lastAppliedCommit) return "pending";
  if (record.driftStatus === "drifted") return "drifted";
  return facts.changedAtHead ? "pending" : "in-sync";
}

/** What every view of the app's stacks is built from: a fixed number of queries. */
interface AppFacts {
  readonly snapshot?: Snapshot;
  readonly stored: ReadonlyMap<string, StackRecord>;
  readonly locks: ReadonlyMap<string, string>;
  readonly overrides: ReadonlyMap<string, StackOverride>;
  readonly names: readonly string[];
  readonly latest: ReadonlyMap<string, string>;
  readonly pending: ReadonlySet<string>;
}

async function appFacts(records: ViewRecords, app: AppKey): Promise<AppFacts> {
  const head = (await records.latestWatchedBranch(app))?.headSha;
  const snapshot = head ? await records.getSnapshot(app, head) : undefined;
  const stored = new Map((await records.listStacks(app)).map((record) => [record.stack, record]));
  const locks = await records.locksWithPrefix(stackLockPrefix(app));
  const overrides = await records.stackOverrides(app);
  const names = [
    ...new Set([...(snapshot?.stacks.map((stack) => stack.name) ?? []), ...stored.keys()]),
  ].sort();
  const latest = await records.latestRunIds(app, names);
  const changed = new Set(
    snapshot?.stacks
      .filter((stack) => stored.get(stack.name)?.lastAppliedHash !== stack.hash)
      .map((stack) => stack.name),
  );
  const pending = snapshot
    ? new Set([...changed, ...dependentsOf(snapshot.stacks, changed)])
    : new Set<string>();
  return {
    ...(snapshot ? { snapshot } : {}),
    stored,
    locks,
    overrides,
    names,
    latest,
    pending,
  };
}

function inForceOf(facts: AppFacts, name: string): PolicyInForce | undefined {
  const synthesized = facts.snapshot?.stacks.find((stack) => stack.name === name);
  return synthesized ? policyInForce(synthesized.policy, facts.overrides.get(name)) : undefined;
}

function viewOf(facts: AppFacts, app: AppKey, name: string, jitterPercent: number): StackView {
  const record = facts.stored.get(name);
  const synthesized = facts.snapshot?.stacks.find((stack) => stack.name === name);
  const policy = inForceOf(facts, name)?.policy;
  const pending = facts.pending.has(name);
  const state = stackState({
    ...(record ? { record } : {}),
    ...(facts.snapshot ? { inApp: synthesized !== undefined } : {}),
    ...(policy ? { policy } : {}),
    locked: facts.locks.has(`${stackLockPrefix(app)}${name}`),
    changedAtHead: pending,
  });
  const runId = facts.latest.get(name);
  const checkedFrom = record?.driftCheckedAt ?? record?.lastAppliedAt;
  const nextCheck =
    policy && checkedFrom && policy.drift !== "off" && !policy.suspended
      ? nextDriftCheck(
          name,
          policy.driftSchedule,
          { lastCheckedAt: new Date(checkedFrom), failures: record?.driftFailures ?? 0 },
          jitterPercent,
        )
      : undefined;
  return {
    name,
    state,
    dependencies: synthesized?.dependencies ?? [],
    ...(record?.lastAppliedCommit ? { lastAppliedCommit: record.lastAppliedCommit } : {}),
    ...(record?.lastAppliedAt ? { lastAppliedAt: record.lastAppliedAt } : {}),
    ...(record?.driftCheckedAt ? { driftCheckedAt: record.driftCheckedAt } : {}),
    ...(record?.driftStatus ? { driftStatus: record.driftStatus } : {}),
    ...(runId ? { lastRunId: runId } : {}),
    pending,
    ...(nextCheck ? { nextDriftCheckAt: nextCheck.toISOString() } : {}),
  };
}

/**
 * Every stack of the app at the followed branch's head and every stack with
 * records, from stored records alone (complete after a restart before any
 * poll), a fixed number of queries whatever the history's length.
 */
export async function stackViews(
  records: ViewRecords,
  app: AppKey,
  jitterPercent: number,
): Promise<StackView[]> {
  const facts = await appFacts(records, app);
  return facts.names.map((name) => viewOf(facts, app, name, jitterPercent));
}

/** One stack with its dependents, policy in force and where it comes from, lock and current drift. */
export async function stackDetail(
  records: ViewRecords,
  app: AppKey,
  name: string,
  jitterPercent: number,
): Promise<StackDetail | undefined> {
  const facts = await appFacts(records, app);
  if (!facts.names.includes(name)) return undefined;
  const view = viewOf(facts, app, name, jitterPercent);
  const inForce = inForceOf(facts, name);
  const override = facts.overrides.get(name);
  const lockHolder = facts.locks.get(`${stackLockPrefix(app)}${name}`);
  const snapshot = facts.snapshot;
  const dependents = snapshot
    ? snapshot.stacks.filter((stack) => stack.dependencies.includes(name)).map((stack) => stack.name)
    : [];
  const lastDrift =
    view.driftStatus === "drifted"
      ? (await records.listRuns({ ...app, stack: name, kind: "drift", limit: 1 }))[0]
      : undefined;
  return {
    ...view,
    dependents,
    ...(inForce ? { policy: policyView(inForce.policy) } : {}),
    policySource: {
      ...(snapshot?.policyFile ? { file: snapshot.policyFile } : {}),
      ...(snapshot ? { commit: snapshot.commit } : {}),
      ...(override ? { override } : {}),
    },
    ...(lockHolder ? { lockHolder } : {}),
    ...(lastDrift
      ? {
          drift: {
            runId: lastDrift.id,
            checkedAt: lastDrift.endedAt ?? lastDrift.startedAt,
            resources: lastDrift.resources ?? [],
          },
        }
      : {}),
  };
}

function policyView(policy: StackPolicy): PolicyView {
  return {
    allowDestroy: policy.allowDestroy,
    drift: policy.drift,
    driftSchedule: policy.driftSchedule.text,
    autoApply: policy.autoApply,
    suspended: policy.suspended,
    ...(policy.renamedFrom ? { renamedFrom: policy.renamedFrom } : {}),
  };
}
