import { RunnerError } from "../errors.ts";
import type { Snapshot } from "../store/records.ts";
import { appKey, type EngineContext } from "./context.ts";
import { EMPTY_SUMMARY } from "./report.ts";
import { APP, recordedRun } from "./stack-run.ts";
import { type SynthesizedApp, synthesizeCommit } from "./synthesized-app.ts";

/** Fetches, then resolves a ref (default: the default branch) to a commit. */
export async function resolveCommit(context: EngineContext, ref: string | undefined): Promise<string> {
  await context.repository.fetch();
  return context.repository.resolve(ref ?? (await context.repository.defaultBranch()));
}

/**
 * Synthesizes a commit, recorded as a synth run, and stores its snapshot
 * (stacks, dependencies, hashes, policies) so that no one synthesizes it again
 * only to learn those. A failure is recorded as a failed synth run, then raised.
 */
export async function synthesizeRecorded(context: EngineContext, commit: string): Promise<SynthesizedApp> {
  let app: SynthesizedApp | undefined;
  let failure: unknown;
  await recordedRun(context, "synth", APP, commit, async (scope) => {
    try {
      app = await scope.step("synth", () => synthesizeCommit(context, commit));
    } catch (error) {
      failure = error;
      throw error;
    }
    return {
      report: { status: "no-changes", summary: EMPTY_SUMMARY, resources: [] },
      outcome: { status: "succeeded", result: "synthesized" },
    };
  });
  if (!app) throw failure;
  await context.store.saveSnapshot(snapshotOf(context, app));
  return app;
}

export function snapshotOf(context: EngineContext, app: SynthesizedApp): Omit<Snapshot, "synthesizedAt"> {
  return {
    ...appKey(context),
    commit: app.commit,
    stacks: app.stacks.map((stack) => ({
      name: stack.name,
      dependencies: stack.dependencies,
      hash: stack.hash,
      policy: app.policy.forStack(stack.name),
      ...(stack.environment ? { environment: stack.environment } : {}),
      ...(stack.promotionHash ? { promotionHash: stack.promotionHash } : {}),
    })),
    ...(app.policy.file ? { policyFile: app.policy.file } : {}),
  };
}

/** A commit's snapshot: from the records when it was synthesized before, else by synthesizing it. */
export async function commitSnapshot(context: EngineContext, commit: string): Promise<Snapshot> {
  const known = await context.store.getSnapshot(appKey(context), commit);
  if (known) return known;
  const app = await synthesizeRecorded(context, commit);
  await app.dispose();
  return { ...snapshotOf(context, app), synthesizedAt: new Date().toISOString() };
}

/**
 * The shared start of plan and apply: fetch, resolve the ref, synthesize the
 * commit (recorded), refuse unknown --stack names, run `work`, and remove the
 * checkout whatever happens.
 */
export async function withSynthesizedCommit<T>(
  context: EngineContext,
  ref: string | undefined,
  selected: readonly string[],
  work: (app: SynthesizedApp) => Promise<T>,
): Promise<T> {
  const commit = await resolveCommit(context, ref);
  const app = await synthesizeRecorded(context, commit);
  try {
    checkStackNames(
      app.stacks.map((stack) => stack.name),
      selected,
    );
    return await work(app);
  } finally {
    await app.dispose();
  }
}

/** An unknown --stack name fails the command before any work. */
export function checkStackNames(known: Iterable<string>, selected: readonly string[]): void {
  const names = new Set(known);
  const unknown = selected.filter((name) => !names.has(name));
  if (unknown.length > 0) {
    throw new RunnerError(
      "STACK_UNKNOWN",
      `unknown stack ${unknown.map((name) => `"${name}"`).join(", ")} (the app has: ${[...names].sort().join(", ") || "no stacks"})`,
    );
  }
}
