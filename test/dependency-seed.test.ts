import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRunnerError } from "../src/errors.ts";
import { createSandbox, type Sandbox } from "../src/process/sandbox.ts";
import { installDependencies } from "../src/synth/dependencies.ts";
import { synthEnvironment, synthesize } from "../src/synth/synthesize.ts";
import { inheritedEnv, repoRoot, tempDir } from "./support/toolchain.ts";

const run = promisify(execFile);
const demo = path.join(repoRoot, "stacks", "demo");

/** The sandbox the runner installs and synthesizes in. */
function sandbox(): Promise<Sandbox> {
  return createSandbox({
    bwrap: "bwrap",
    searchPath: process.env.PATH ?? "",
    readOnly: [],
    hidden: [],
    logger: pino({ level: "silent" }),
  });
}

/** npm with no registry it can reach and an empty cache of its own: any install fails. */
async function offlineEnv(): Promise<Record<string, string>> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    npm_config_registry: "http://127.0.0.1:9/",
    npm_config_cache: await tempDir("npm-cache"),
    npm_config_fetch_retries: "0",
  };
}

/** A checkout holding a copy of the demo app (without its node_modules) at stacks/demo. */
async function demoCheckout(): Promise<string> {
  const checkout = await tempDir("checkout");
  await cp(demo, path.join(checkout, "stacks", "demo"), {
    recursive: true,
    filter: (source) => path.basename(source) !== "node_modules",
  });
  return checkout;
}

describe("dependencies installed ahead of time (a seed, as the image carries)", () => {
  let seed: string;
  let entry: string;

  beforeAll(async () => {
    // Built as the image build builds it: the seed script runs the runner's own installer.
    seed = await mkdtemp(path.join(tmpdir(), "gitops-runner-seed-test-"));
    const { stdout } = await run(
      process.execPath,
      [path.join(repoRoot, "runner", "seed-dependencies.ts"), seed, demo],
      { env: inheritedEnv() },
    );
    const entries = await readdir(seed);
    expect(entries).toHaveLength(1);
    entry = entries[0] as string;
    expect(stdout).toBe(`seeded ${demo}: ${path.join(seed, entry)}\n`);
  }, 300_000);
  afterAll(() => rm(seed, { recursive: true, force: true }));

  it("links the app to the seed's entry for its lockfile, with no registry and nothing written to the cache", async () => {
    const checkout = await demoCheckout();
    const appDir = path.join(checkout, "stacks", "demo");
    const cache = await tempDir("cache");
    const box = await sandbox();
    expect(box.kind).toBe("bubblewrap");

    const installed = await installDependencies(checkout, appDir, {
      cacheDir: cache,
      seedDir: seed,
      env: await offlineEnv(),
      timeoutMs: 60_000,
      allowInstallScripts: false,
      sandbox: box,
    });

    // The demo's own package.json is the nearest one, so its own small lockfile is the key.
    expect(installed).toEqual({
      packageDir: "stacks/demo",
      lockfileHash: entry,
      cached: true,
      cacheEntry: path.join(seed, entry),
    });
    expect(await realpath(path.join(appDir, "node_modules"))).toBe(path.join(seed, entry, "node_modules"));
    expect(await readdir(cache)).toEqual([]);
    // Synthesis reads the seed's entry, as the runner shows it in the sandbox.
    const synth = await synthesize({
      appDir,
      outDir: path.join(checkout, "out"),
      env: synthEnvironment(process.env),
      timeoutMs: 60_000,
      maxOldSpaceMb: 512,
      sandbox: box,
      readWrite: [checkout],
      readOnly: [installed.cacheEntry ?? ""],
    });
    expect(synth.stacks.map((stack) => stack.name)).toEqual(["demo"]);
  });

  it("runs npm for a lockfile the seed has no entry for, and leaves the seed as it was", async () => {
    const checkout = await demoCheckout();
    const appDir = path.join(checkout, "stacks", "demo");
    const lockfile = path.join(appDir, "package-lock.json");
    const lock = JSON.parse(await readFile(lockfile, "utf8"));
    await writeFile(lockfile, JSON.stringify({ ...lock, name: "another-app" }, null, 2));
    const cache = path.join(await tempDir("cache"), "npm");
    await mkdir(cache);

    const error = await installDependencies(checkout, appDir, {
      cacheDir: cache,
      seedDir: seed,
      env: await offlineEnv(),
      timeoutMs: 60_000,
      allowInstallScripts: false,
      sandbox: await sandbox(),
    }).catch((caught: unknown) => caught);

    expect(isRunnerError(error, "DEPENDENCIES_FAILED")).toBe(true);
    expect((error as Error).message).toContain("npm ci for stacks/demo/package-lock.json failed");
    expect(await readdir(seed)).toEqual([entry]);
    expect(await readdir(cache)).toEqual([]);
  });
});
