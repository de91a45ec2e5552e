import { RunnerError } from "../errors.ts";
import type { PullRequests } from "../forge/port.ts";
import { appKey, type EngineContext, stackKey } from "./context.ts";

export interface RollbackOptions {
  readonly stack: string;
  /** A commit (or a ref to one) at which the stack was applied. */
  readonly to: string;
  /** Who asked: a token's name or a user, written in the commit and the pull request. */
  readonly requestedBy?: string;
}

export interface RollbackResult {
  readonly stack: string;
  /** The commit restored. */
  readonly to: string;
  readonly branch: string;
  /** The new commit on the branch, on top of the default branch's head. */
  readonly commit: string;
  readonly base: string;
  /** Other stacks whose configuration the restored files change too, where known. */
  readonly alsoChanges: readonly string[];
  readonly pullRequest?: { readonly number: number; readonly url: string };
}

const AUTHOR = { name: "gitops-runner", email: "gitops-runner@users.noreply.invalid" };

/**
 * Rollback the GitOps way: a branch with one commit that restores the app's
 * files to what produced the stack's applied state at a commit, pushed to the
 * repository, and a pull request from it when a forge is configured. The
 * runner applies nothing here: the pull request is planned, reviewed and
 * merged like any other. Refused for a commit never applied to the stack.
 */
export async function rollbackCommand(
  context: EngineContext,
  options: RollbackOptions,
  pullRequests?: Pick<PullRequests, "create">,
): Promise<RollbackResult> {
  const { repository } = context;
  await repository.fetch();
  const to = await repository.resolve(options.to);
  const applied = await context.store.lastSuccessfulApply(stackKey(context, options.stack), { commit: to });
  if (!applied) {
    throw new RunnerError(
      "COMMIT_NOT_APPLIED",
      `stack ${options.stack} was never applied at ${to}; gitops-runner audit --stack ${options.stack} lists the commits it was`,
    );
  }
  const base = await repository.defaultBranch();
  const head = await repository.resolve(base);
  const alsoChanges = await otherStacksChanged(context, options.stack, head, to);
  const where = context.appDir === "" ? "the repository's files" : `the files of ${context.appDir}/`;
  const requested = options.requestedBy ? `\n\nRequested-by: ${options.requestedBy}` : "";
  const title = `Roll back ${options.stack} to ${to.slice(0, 7)}`;
  const body = [
    `Restores ${where} to commit ${to}, which stack ${options.stack} was applied at on ${applied.at} (run ${applied.runId}).`,
    ...(alsoChanges.length > 0
      ? [`The restored files change the configuration of ${alsoChanges.join(", ")} too.`]
      : []),
    "Once merged, the runner plans and applies it like any other change.",
  ].join("\n\n");
  const commit = await repository.restoreCommit({
    base: head,
    from: to,
    dir: context.appDir,
    message: `${title}\n\n${body}${requested}\n`,
    author: AUTHOR,
  });
  if (!commit) {
    throw new RunnerError(
      "NOTHING_TO_ROLL_BACK",
      `${where} at ${base} (${head.slice(0, 7)}) are already as they were at ${to}`,
    );
  }
  const branch = `gitops-runner/rollback-${options.stack}-${to.slice(0, 7)}-${stamp()}`;
  await repository.pushBranch(commit, branch);
  context.logger.info({ stack: options.stack, to, branch, commit }, "rollback branch pushed");
  const opened = pullRequests
    ? await pullRequests.create({ head: branch, base, title, body: `${body}${requested}` })
    : undefined;
  return {
    stack: options.stack,
    to,
    branch,
    commit,
    base,
    alsoChanges,
    ...(opened ? { pullRequest: { number: opened.number, url: opened.url } } : {}),
  };
}

/** Stacks other than `stack` whose synthesized hash differs between the two commits, when both are known. */
async function otherStacksChanged(
  context: EngineContext,
  stack: string,
  head: string,
  to: string,
): Promise<string[]> {
  const [now, then] = await Promise.all([
    context.store.getSnapshot(appKey(context), head),
    context.store.getSnapshot(appKey(context), to),
  ]);
  if (!now || !then) return [];
  const before = new Map(then.stacks.map((candidate) => [candidate.name, candidate.hash]));
  return now.stacks
    .filter((candidate) => candidate.name !== stack && before.get(candidate.name) !== candidate.hash)
    .map((candidate) => candidate.name);
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
}
