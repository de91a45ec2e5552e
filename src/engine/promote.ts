import { counterpartOf, environmentOf } from "../domain/environments.ts";
import { RunnerError } from "../errors.ts";
import { commitSnapshot, resolveCommit } from "./commit.ts";
import type { EngineContext } from "./context.ts";
import { planCommand, skipped } from "./plan.ts";
import type { CommandReport, StackReport } from "./report.ts";

export interface PromoteOptions {
  readonly from: string;
  readonly to: string;
}

/**
 * Plans what promotion would change: each stack of the `to` environment
 * planned at the commit its counterpart in `from` last applied, so the plan
 * shows what `to` would become to run what `from` runs. Applies nothing.
 */
export async function promoteCommand(
  context: EngineContext,
  options: PromoteOptions,
): Promise<CommandReport> {
  const names = context.environments.map((environment) => environment.name);
  const from = names.indexOf(options.from);
  const to = names.indexOf(options.to);
  if (from === -1 || to === -1) {
    const unknown = from === -1 ? options.from : options.to;
    throw new RunnerError(
      "USAGE",
      `no environment "${unknown}" in the configuration (environments: ${names.join(", ") || "none"})`,
    );
  }
  if (from >= to) {
    throw new RunnerError(
      "USAGE",
      `${options.from} does not come before ${options.to}: promotion goes ${names.join(" → ")}`,
    );
  }
  const head = await resolveCommit(context, undefined);
  const snapshot = await commitSnapshot(context, head);
  const targets = snapshot.stacks.filter((stack) => stack.environment === options.to);
  const byCommit = new Map<string, string[]>();
  const unpromotable: StackReport[] = [];
  for (const stack of targets) {
    const member = environmentOf(context.environments, context.appDir, stack.name);
    const counterpart =
      member && counterpartOf(context.environments, member, context.appDir, stack.name, from);
    const record = counterpart
      ? await context.store.getStack({
          repoId: context.repoId,
          appDir: counterpart.appDir,
          stack: counterpart.stack,
        })
      : undefined;
    const commit = record?.lastApplyStatus === "succeeded" ? record.lastAppliedCommit : undefined;
    if (!counterpart || !commit) {
      const why = counterpart
        ? `${options.from} has not applied ${counterpart.stack}`
        : `no counterpart in ${options.from}`;
      unpromotable.push(skipped(stack.name, head, why));
      continue;
    }
    byCommit.set(commit, [...(byCommit.get(commit) ?? []), stack.name]);
  }
  const planned: StackReport[] = [];
  for (const [commit, stacks] of byCommit) {
    const report = await planCommand(context, { ref: commit, stacks });
    planned.push(...report.stacks.filter((stack) => stacks.includes(stack.name)));
  }
  const order = new Map(targets.map((stack, index) => [stack.name, index]));
  const stacks = [...planned, ...unpromotable].sort(
    (a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0),
  );
  const commits = [...byCommit.keys()];
  return { commit: commits.length === 1 ? (commits[0] as string) : head, stacks };
}
