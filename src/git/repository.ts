import { access, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { type SimpleGit, simpleGit } from "simple-git";
import { RunnerError } from "../errors.ts";

/**
 * The runner's view of a watched repository: a bare mirror in the data
 * directory, fetched on demand, from which commits are checked out into
 * throw-away working trees.
 */
export interface Repository {
  /** Fetches every branch of the remote into the mirror. */
  fetch(): Promise<void>;
  /** The remote's default branch, e.g. "main". */
  defaultBranch(): Promise<string>;
  /** A ref (branch, tag, commit) to its full commit SHA. */
  resolve(ref: string): Promise<string>;
  mergeBase(a: string, b: string): Promise<string | undefined>;
  /** Whether `ancestor` is `descendant` or one of its ancestors. */
  isAncestor(ancestor: string, descendant: string): Promise<boolean>;
  /** The commit's author as git records it: "Name <email>". */
  commitAuthor(commit: string): Promise<string>;
  /**
   * A new commit on top of `base` whose folder `dir` ("" for every file) is as
   * it was at `from`; undefined when it is so already. Nothing is checked out.
   */
  restoreCommit(request: {
    readonly base: string;
    readonly from: string;
    readonly dir: string;
    readonly message: string;
    readonly author: { readonly name: string; readonly email: string };
  }): Promise<string | undefined>;
  /** Pushes a commit to a new branch of the remote. */
  pushBranch(commit: string, branch: string): Promise<void>;
  /** Checks a commit out into `dir`; returns a function that removes it. */
  checkout(commit: string, dir: string): Promise<() => Promise<void>>;
  /** Forgets checkouts whose folders are gone (a process that died left them registered). */
  pruneCheckouts(): Promise<void>;
}

export interface GitRepositoryOptions {
  readonly url: string;
  readonly mirrorDir: string;
  readonly timeoutMs: number;
  /** The environment git runs with; nothing else is inherited. */
  readonly env: Readonly<Record<string, string>>;
}

export async function openRepository(options: GitRepositoryOptions): Promise<GitRepository> {
  const repository = new GitRepository(options);
  await repository.ensureMirror();
  return repository;
}

export class GitRepository implements Repository {
  readonly #options: GitRepositoryOptions;
  #mirror: SimpleGit | undefined;
  /** Commands that change the mirror run one at a time: workers share it. */
  #changing: Promise<unknown> = Promise.resolve();

  constructor(options: GitRepositoryOptions) {
    this.#options = options;
  }

  async ensureMirror(): Promise<void> {
    const { url, mirrorDir } = this.#options;
    if (await isBareRepository(mirrorDir)) return;
    await rm(mirrorDir, { recursive: true, force: true });
    await mkdir(path.dirname(mirrorDir), { recursive: true });
    try {
      await this.#client(path.dirname(mirrorDir)).clone(url, mirrorDir, ["--mirror", "--quiet"]);
    } catch (error) {
      await rm(mirrorDir, { recursive: true, force: true });
      throw new RunnerError("GIT_UNREACHABLE", `git: cannot clone ${url}: ${firstLine(error)}`, {
        cause: error,
      });
    }
  }

  async fetch(): Promise<void> {
    try {
      await this.#serially(() => this.#git.fetch(["--prune", "--quiet", "origin"]));
    } catch (error) {
      throw new RunnerError(
        "GIT_UNREACHABLE",
        `git: cannot fetch ${this.#options.url}: ${firstLine(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  async defaultBranch(): Promise<string> {
    const head = (await this.#raw(["symbolic-ref", "HEAD"])).trim();
    return head.replace(/^refs\/heads\//, "");
  }

  async resolve(ref: string): Promise<string> {
    let resolved = "";
    let failure: unknown;
    try {
      resolved = (await this.#git.raw(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`])).trim();
    } catch (error) {
      failure = error;
    }
    // With --quiet, git says nothing when the ref is unknown: simple-git then reports no error, only no output.
    if (resolved === "") {
      throw new RunnerError("GIT_REF_UNKNOWN", `git: ${this.#options.url} has no ref or commit "${ref}"`, {
        cause: failure,
      });
    }
    return resolved;
  }

  async mergeBase(a: string, b: string): Promise<string | undefined> {
    try {
      return (await this.#git.raw(["merge-base", a, b])).trim() || undefined;
    } catch {
      return undefined;
    }
  }

  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    // `merge-base --is-ancestor` answers by exit code alone, which simple-git
    // does not report without stderr; the merge base of an ancestor is itself.
    const [a, base] = await Promise.all([this.resolve(ancestor), this.mergeBase(ancestor, descendant)]);
    return base === a;
  }

  async commitAuthor(commit: string): Promise<string> {
    return (await this.#raw(["log", "-1", "--format=%an <%ae>", commit, "--"])).trim();
  }

  async restoreCommit(request: {
    readonly base: string;
    readonly from: string;
    readonly dir: string;
    readonly message: string;
    readonly author: { readonly name: string; readonly email: string };
  }): Promise<string | undefined> {
    const index = path.join(this.#options.mirrorDir, `restore-${process.pid}-${Date.now()}.index`);
    const git = this.#client(this.#options.mirrorDir, {
      GIT_INDEX_FILE: index,
      GIT_AUTHOR_NAME: request.author.name,
      GIT_AUTHOR_EMAIL: request.author.email,
      GIT_COMMITTER_NAME: request.author.name,
      GIT_COMMITTER_EMAIL: request.author.email,
    });
    const run = async (args: string[]) => {
      try {
        return (await git.raw(args)).trim();
      } catch (error) {
        throw new RunnerError("GIT_FAILED", `git ${args[0]}: ${firstLine(error)}`, { cause: error });
      }
    };
    try {
      if (request.dir === "") {
        await run(["read-tree", request.from]);
      } else {
        await run(["read-tree", request.base]);
        await run(["rm", "-r", "--cached", "--quiet", "--ignore-unmatch", "--", request.dir]);
        const tree = await run(["rev-parse", "--verify", "--quiet", `${request.from}:${request.dir}`]);
        await run(["read-tree", `--prefix=${request.dir}/`, tree]);
      }
      const tree = await run(["write-tree"]);
      if (tree === (await run(["rev-parse", `${request.base}^{tree}`]))) return undefined;
      return await run(["commit-tree", tree, "-p", request.base, "-m", request.message]);
    } finally {
      await rm(index, { force: true });
    }
  }

  async pushBranch(commit: string, branch: string): Promise<void> {
    try {
      // The remote by its address: the mirror's own remote pushes every ref, and takes no refspec.
      await this.#git.raw(["push", "--quiet", this.#options.url, `${commit}:refs/heads/${branch}`]);
    } catch (error) {
      throw new RunnerError(
        "GIT_UNREACHABLE",
        `git: cannot push ${branch} to ${this.#options.url}: ${firstLine(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  async checkout(commit: string, dir: string): Promise<() => Promise<void>> {
    await mkdir(path.dirname(dir), { recursive: true });
    await this.#serially(() => this.#raw(["worktree", "add", "--detach", "--force", dir, commit]));
    return async () => {
      await rm(dir, { recursive: true, force: true });
      await this.pruneCheckouts();
    };
  }

  async pruneCheckouts(): Promise<void> {
    await this.#serially(() => this.#raw(["worktree", "prune"]));
  }

  #serially<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#changing.then(work, work);
    this.#changing = result.catch(() => undefined);
    return result;
  }

  async #raw(args: string[]): Promise<string> {
    try {
      return await this.#git.raw(args);
    } catch (error) {
      throw new RunnerError("GIT_FAILED", `git ${args[0]}: ${firstLine(error)}`, { cause: error });
    }
  }

  get #git(): SimpleGit {
    this.#mirror ??= this.#client(this.#options.mirrorDir);
    return this.#mirror;
  }

  #client(baseDir: string, extra: Readonly<Record<string, string>> = {}): SimpleGit {
    const env = { ...this.#options.env, ...extra };
    return simpleGit({
      baseDir,
      timeout: { block: this.#options.timeoutMs },
      allowEnvironment: Object.keys(env),
      // The environment is the operator's (the composition root picks it), never a
      // repository's: git settings given there, through GIT_CONFIG_COUNT and its entries
      // or GIT_CONFIG_GLOBAL/SYSTEM, are theirs to make, URL rewrites included.
      unsafe: { allowUnsafeConfigEnvCount: true, allowUnsafeConfigPaths: true, allowUnsafeUrlRewrite: true },
    }).env(env);
  }
}

async function isBareRepository(dir: string): Promise<boolean> {
  try {
    await access(path.join(dir, "HEAD"));
    await access(path.join(dir, "objects"));
    return true;
  } catch {
    return false;
  }
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return (
    message
      .split("\n")
      .map((line) => line.trim())
      .find((line) => line.length > 0) ?? "unknown error"
  );
}
