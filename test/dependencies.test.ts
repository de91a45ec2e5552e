import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pino from "pino";
import { describe, expect, it, onTestFinished } from "vitest";
import { isRunnerError } from "../src/errors.ts";
import { createSandbox } from "../src/process/sandbox.ts";
import { installDependencies } from "../src/synth/dependencies.ts";
import { synthEnvironment } from "../src/synth/synthesize.ts";
import { verifyInstall } from "../src/synth/verify-install.ts";
import { repoRoot, tempDir } from "./support/toolchain.ts";

const run = promisify(execFile);

/** A tmpfs of `size` at a new folder, unmounted and removed when the test ends (this needs root). */
async function smallDisk(size: string): Promise<{ dir: string; resize(size: string): Promise<void> }> {
  const root = await mkdtemp(path.join(tmpdir(), "gitops-runner-small-disk-"));
  const dir = path.join(root, "disk");
  await mkdir(dir);
  await run("mount", ["-t", "tmpfs", "-o", `size=${size}`, "gitops-runner-test", dir]);
  onTestFinished(async () => {
    await run("umount", [dir]);
    await rm(root, { recursive: true, force: true });
  });
  return { dir, resize: async (bigger) => void (await run("mount", ["-o", `remount,size=${bigger}`, dir])) };
}

describe("the dependency cache", () => {
  it("keeps out an install that a full disk broke, and installs once space returns", async () => {
    // The example app's node_modules takes about 19 MB.
    const disk = await smallDisk("6m");
    const checkout = await tempDir("checkout");
    await cp(path.join(repoRoot, "test", "fixtures", "cdktf-app"), checkout, { recursive: true });
    const env: Record<string, string> = synthEnvironment(process.env);
    for (const name of ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE"]) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    const options = {
      cacheDir: disk.dir,
      env,
      timeoutMs: 300_000,
      allowInstallScripts: false,
      sandbox: await createSandbox({
        bwrap: "bwrap",
        searchPath: process.env.PATH ?? "",
        readOnly: [],
        hidden: [],
        logger: pino({ level: "silent" }),
      }),
    };

    // npm ci exits 0 here although it could not write most files; the check after it catches that.
    const error = await installDependencies(checkout, checkout, options).catch((caught: unknown) => caught);
    expect(isRunnerError(error, "DEPENDENCIES_FAILED")).toBe(true);
    expect((error as Error).message).toMatch(
      /^dependencies: npm ci for package-lock\.json left a broken install \(is the disk full\?\): node_modules\/\S+package\.json: (empty|not valid JSON)$/,
    );
    expect(await readdir(disk.dir)).toEqual([]);

    await disk.resize("256m");
    const installed = await installDependencies(checkout, checkout, options);
    expect(installed.cached).toBe(false);
    expect(await readdir(disk.dir)).toEqual([installed.lockfileHash]);
    const cdktf = path.join(checkout, "node_modules", "cdktf", "package.json");
    expect(JSON.parse(await readFile(cdktf, "utf8")).version).toBe("0.21.0");
    expect((await installDependencies(checkout, checkout, options)).cached).toBe(true);
  });
});

describe("checking an install against its lockfile", () => {
  async function install(lock: Record<string, unknown>, files: Record<string, string>): Promise<string> {
    const dir = await tempDir("verify-install");
    await writeFile(
      path.join(dir, "package-lock.json"),
      JSON.stringify({ lockfileVersion: 3, packages: lock }),
    );
    for (const [file, text] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
      await writeFile(path.join(dir, file), text);
    }
    return dir;
  }

  it("accepts every locked package at its version, and skips links, workspace sources and absent optional ones", async () => {
    const dir = await install(
      {
        "": { name: "app" },
        "node_modules/a": { version: "1.0.0" },
        "node_modules/a/node_modules/b": { version: "2.0.0" },
        "node_modules/local": { resolved: "packages/local", link: true },
        "packages/local": { version: "0.0.1" },
        "node_modules/fsevents": { version: "2.3.3", optional: true, os: ["darwin"] },
      },
      {
        "node_modules/a/package.json": '{"name":"a","version":"1.0.0"}',
        "node_modules/a/node_modules/b/package.json": '{"name":"b","version":"2.0.0"}',
      },
    );
    expect(await verifyInstall(dir)).toBeUndefined();
  });

  it("names the first package that is missing, empty, malformed or at another version", async () => {
    const lock = { "node_modules/a": { version: "1.0.0" }, "node_modules/b": { version: "2.0.0" } };
    const a = '{"name":"a","version":"1.0.0"}';
    expect(await verifyInstall(await install(lock, { "node_modules/a/package.json": a }))).toBe(
      "node_modules/b: not installed",
    );
    expect(
      await verifyInstall(
        await install(lock, { "node_modules/a/package.json": a, "node_modules/b/package.json": "" }),
      ),
    ).toBe("node_modules/b/package.json: empty");
    expect(
      await verifyInstall(
        await install(lock, { "node_modules/a/package.json": a, "node_modules/b/package.json": '{"name":' }),
      ),
    ).toBe("node_modules/b/package.json: not valid JSON");
    expect(
      await verifyInstall(
        await install(lock, {
          "node_modules/a/package.json": a,
          "node_modules/b/package.json": '{"name":"b","version":"1.9.0"}',
        }),
      ),
    ).toBe("node_modules/b/package.json: version 1.9.0, the lockfile says 2.0.0");
  });
});
