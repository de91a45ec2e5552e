import { readdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "./support/cli.ts";
import { tempDir } from "./support/toolchain.ts";

/** The TypeScript modules Node stripped itself (`stripped`) or read from its compile cache (`cached`), from its debug lines. */
function strippedModules(stderr: string): { stripped: number; cached: number } {
  const lines = stderr.split("\n");
  return {
    stripped: lines.filter((line) => /no transpile cache for StrippedTypeScript /.test(line)).length,
    cached: lines.filter((line) => /retrieving transpile cache for StrippedTypeScript .*success/.test(line))
      .length,
  };
}

describe("Node's compile cache for the runner's sources", () => {
  it("fills the user's cache folder on a first run, and a later run reads every module from it", async () => {
    const cacheHome = await tempDir("compile-cache-");
    const env = { XDG_CACHE_HOME: cacheHome, NODE_COMPILE_CACHE: "", NODE_DEBUG_NATIVE: "COMPILE_CACHE" };

    const first = await runCli(["--help"], env);
    expect(first.code).toBe(0);
    const written = strippedModules(first.stderr);
    expect(written.stripped).toBeGreaterThan(10);
    expect(written.cached).toBe(0);
    expect(await readdir(path.join(cacheHome, "gitops-runner", "node-compile-cache"))).toHaveLength(1);

    const later = await runCli(["--help"], env);
    expect(later.code).toBe(0);
    expect(later.stdout).toBe(first.stdout);
    expect(strippedModules(later.stderr)).toEqual({ stripped: 0, cached: written.stripped });
  });

  it("runs as before, and says nothing of it, where the cache folder cannot be made", async () => {
    const blocked = path.join(await tempDir("compile-cache-"), "not-a-folder");
    await writeFile(blocked, "");

    const result = await runCli(["--help"], { XDG_CACHE_HOME: blocked, NODE_COMPILE_CACHE: "" });

    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage:\n/);
    expect(result.stderr).toBe("");
  });
});
