import { dependentsOf } from "../domain/graph.ts";
import { stackLockPrefix } from "../engine/context.ts";
import type { StackPolicy } from "../policy/policy.ts";
import type { AppKey, Snapshot, StackRecord, WatchedBranch } from "../store/records.ts";
import type { StackState, StackView } from "./api.ts";

/** What the stack views read; declared here, where they are built. */
export interface ViewRecords {
  latestWatchedBranch(app: AppKey): Promise<WatchedBranch | undefined>;
  getSnapshot(app: AppKey, commit: string): Promise<Snapshot | undefined>;
  listStacks(app: AppKey): Promise<StackRecord[]>;
  locksWithPrefix(prefix: string): Promise<Map<string, string>>;
  latestRunIds(app: AppKey, stacks: readonly string[]): Promise<Map<string, string>>;
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

/**
 * Every stack of the app at the followed branch's head and every stack with
 * records, from stored records alone (complete after a restart before any
 * poll), a fixed number of queries whatever the history's length.
 */
export async function stackViews(records: ViewRecords, app: AppKey): Promise<StackView[]> {
  const head = (await records.latestWatchedBranch(app))?.headSha;
  const snapshot = head ? await records.getSnapshot(app, head) : undefined;
  const stored = new Map((await records.listStacks(app)).map((record) => [record.stack, record]));
  const locks = await records.locksWithPrefix(stackLockPrefix(app));
  const inApp = new Map(snapshot?.stacks.map((stack) => [stack.name, stack]));
  const names = [...new Set([...inApp.keys(), ...stored.keys()])].sort();
  const latest = await records.latestRunIds(app, names);

  const changed = new Set(
    snapshot?.stacks
      .filter((stack) => stored.get(stack.name)?.lastAppliedHash !== stack.hash)
      .map((stack) => stack.name),
  );
  const pending = snapshot ? new Set([...changed, ...dependentsOf(snapshot.stacks, changed)]) : new Set();

  return names.map((name) => {
    const record = stored.get(name);
    const synthesized = inApp.get(name);
    const state = stackState({
      ...(record ? { record } : {}),
      ...(snapshot ? { inApp: synthesized !== undefined } : {}),
      ...(synthesized ? { policy: synthesized.policy } : {}),
      locked: locks.has(`${stackLockPrefix(app)}${name}`),
      changedAtHead: pending.has(name),
    });
    const runId = latest.get(name);
    return {
      name,
      state,
      dependencies: synthesized?.dependencies ?? [],
      ...(record?.lastAppliedCommit ? { lastAppliedCommit: record.lastAppliedCommit } : {}),
      ...(record?.lastAppliedAt ? { lastAppliedAt: record.lastAppliedAt } : {}),
      ...(record?.driftCheckedAt ? { driftCheckedAt: record.driftCheckedAt } : {}),
      ...(record?.driftStatus ? { driftStatus: record.driftStatus } : {}),
      ...(runId ? { lastRunId: runId } : {}),
    };
  });
}
