import { createHash, randomUUID } from "node:crypto";
import { lstat, mkdir, readFile, rename, rm, symlink, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { isRunnerError, RunnerError } from "../errors.ts";
import { exists } from "../fs.ts";
import { exec, execFailureOutput } from "../process/exec.ts";
import type { Sandbox } from "../process/sandbox.ts";
import { verifyInstall } from "./verify-install.ts";

export interface DependencyOptions {
  /** Where installed node_modules are kept, one folder per lockfile hash. */
  readonly cacheDir: string;
  /**
   * A read-only folder of entries installed ahead of time and keyed as in
   * cacheDir, e.g. an image's, built with this same function. A lockfile the
   * cache lacks is looked up there before npm runs, and used in place.
   */
  readonly seedDir?: string;
  /** The allow-listed environment npm runs with. */
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** Where output is captured while the command runs (see ExecOptions.tempDir). */
  readonly tempDir?: string;
  /** Install scripts are off unless the operator turns them on. */
  readonly allowInstallScripts: boolean;
  /** Runs npm: it sees the system, Node, npm's own cache and configuration and the folder it fills. */
  readonly sandbox: Sandbox;
  readonly signal?: AbortSignal;
}

export interface InstalledDependencies {
  /** The folder holding package.json, relative to the checkout; undefined when the app has none. */
  readonly packageDir?: string;
  readonly lockfileHash?: string;
  /** True when the install came from the cache. */
  readonly cached: boolean;
  /** The cache entry the checkout's node_modules links to: what synthesis reads. */
  readonly cacheEntry?: string;
}

/** Written last into a cache entry: only a complete install is used (or trimmed). */
export const COMPLETE_MARKER = ".gitops-runner-complete";

/**
 * Installs an app's npm dependencies once per lockfile: `npm ci` into a cache
 * folder keyed by the lockfile's hash, then a link from the checkout to it.
 * The nearest package.json from the app folder up to the checkout root counts.
 */
export async function installDependencies(
  checkoutDir: string,
  appDir: string,
  options: DependencyOptions,
): Promise<InstalledDependencies> {
  const packageDir = await nearestPackageDir(checkoutDir, appDir);
  if (packageDir === undefined) return { cached: true };
  const relative = path.relative(checkoutDir, packageDir) || ".";

  const lockfile = path.join(packageDir, "package-lock.json");
  let lock: Buffer;
  try {
    lock = await readFile(lockfile);
  } catch (error) {
    throw new RunnerError(
      "DEPENDENCIES_FAILED",
      `dependencies: ${path.join(relative, "package.json")} has no package-lock.json beside it; the runner installs with npm ci, which needs one`,
      { cause: error },
    );
  }
  const manifest = await readFile(path.join(packageDir, "package.json"));
  const hash = createHash("sha256")
    .update(lock)
    .update(options.allowInstallScripts ? "scripts" : "no-scripts")
    .digest("hex")
    .slice(0, 24);
  const cached = path.join(options.cacheDir, hash);

  const hit = await exists(path.join(cached, COMPLETE_MARKER));
  const seeded = hit ? undefined : await seededEntry(options.seedDir, hash);
  if (seeded === undefined) {
    if (!hit) await installInto(cached, manifest, lock, relative, options);
    const now = new Date();
    await utimes(cached, now, now); // Last use, for trimming the cache least-recently-used first.
  }

  const link = path.join(packageDir, "node_modules");
  if (await lstat(link).catch(() => undefined)) await rm(link, { recursive: true, force: true });
  const entry = seeded ?? cached;
  await symlink(path.join(entry, "node_modules"), link, "dir");
  return { packageDir: relative, lockfileHash: hash, cached: hit || seeded !== undefined, cacheEntry: entry };
}

/** The seed's complete entry for a lockfile hash, if it has one. */
async function seededEntry(seedDir: string | undefined, hash: string): Promise<string | undefined> {
  if (seedDir === undefined) return undefined;
  const entry = path.join(seedDir, hash);
  return (await exists(path.join(entry, COMPLETE_MARKER))) ? entry : undefined;
}

async function installInto(
  target: string,
  manifest: Buffer,
  lock: Buffer,
  relative: string,
  options: DependencyOptions,
): Promise<void> {
  // Install beside the target and rename into place, so a crash or a
  // concurrent install never leaves a half-filled cache entry behind.
  const staging = `${target}.${randomUUID()}.partial`;
  await mkdir(staging, { recursive: true });
  try {
    await writeFile(path.join(staging, "package.json"), manifest);
    await writeFile(path.join(staging, "package-lock.json"), lock);
    const args = ["ci", "--no-audit", "--no-fund", "--loglevel=error"];
    if (!options.allowInstallScripts) args.push("--ignore-scripts");
    const npm = await npmOwnFiles(options.env);
    const command = options.sandbox.command({
      file: "npm",
      args,
      cwd: staging,
      env: npm.env,
      readWrite: [staging, ...npm.readWrite],
      readOnly: npm.readOnly,
    });
    await exec(command.file, command.args, {
      step: "dependencies",
      cwd: staging,
      env: command.env,
      timeoutMs: options.timeoutMs,
      ...(options.tempDir ? { tempDir: options.tempDir } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const broken = await verifyInstall(staging);
    if (broken !== undefined) {
      throw new RunnerError(
        "DEPENDENCIES_FAILED",
        `dependencies: npm ci for ${path.join(relative, "package-lock.json")} left a broken install (is the disk full?): ${broken}`,
      );
    }
    await writeFile(path.join(staging, COMPLETE_MARKER), "");
    await rename(staging, target).catch(async (error: NodeJS.ErrnoException) => {
      // Another run installed the same lockfile first; its copy serves.
      if (error.code !== "ENOTEMPTY" && error.code !== "EEXIST") throw error;
    });
  } catch (error) {
    if (isRunnerError(error, "EXEC_FAILED")) {
      const output = execFailureOutput(error);
      throw new RunnerError(
        "DEPENDENCIES_FAILED",
        `dependencies: npm ci for ${path.join(relative, "package-lock.json")} failed:\n${(output?.stderr || error.message).trim()}`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * npm's download cache and user configuration (a private registry and its
 * credentials), where npm finds them under the runner's HOME, named
 * explicitly so that npm in a sandbox with a HOME of its own still uses them.
 */
async function npmOwnFiles(env: Readonly<Record<string, string>>) {
  if (!env.HOME) return { env, readWrite: [], readOnly: [] };
  const cache = path.join(env.HOME, ".npm");
  const userconfig = path.join(env.HOME, ".npmrc");
  const hasCache = await mkdir(cache, { recursive: true }).then(
    () => true,
    () => false,
  );
  const hasConfig = await exists(userconfig);
  return {
    env: {
      ...env,
      ...(hasCache ? { npm_config_cache: cache } : {}),
      ...(hasConfig ? { npm_config_userconfig: userconfig } : {}),
    },
    readWrite: hasCache ? [cache] : [],
    readOnly: hasConfig ? [userconfig] : [],
  };
}

async function nearestPackageDir(checkoutDir: string, appDir: string): Promise<string | undefined> {
  let dir = appDir;
  for (;;) {
    if (await exists(path.join(dir, "package.json"))) return dir;
    if (path.resolve(dir) === path.resolve(checkoutDir)) return undefined;
    dir = path.dirname(dir);
  }
}
