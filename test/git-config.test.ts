import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { runCli } from "./support/cli.ts";
import { type AppSpec, dataDir, TestRepo } from "./support/repo.ts";
import { tempDir } from "./support/toolchain.ts";

const run = promisify(execFile);

const oneStack: AppSpec = { web: { site: { input: { replicas: 1 } } } };

/** Git settings reach the git the runner starts through GIT_CONFIG_* in its environment. */
describe("git settings from the environment", () => {
  it("plans a repository owned by another user once a global git configuration names it safe", async () => {
    const repo = await TestRepo.create(oneStack);
    const head = await repo.head();
    // As a bind mount into a container shows it: files owned by a uid that is not the runner's.
    await run("chown", ["-R", "12345:12345", repo.dir]);

    const refused = await runCli(["plan", "--repo", repo.dir, "--data-dir", await dataDir(), "--json"]);
    expect(refused.code).toBe(1);
    expect(refused.json.error.code).toBe("GIT_UNREACHABLE");
    expect(refused.json.error.message).toContain("detected dubious ownership");

    // For a repository on a local path, git drops GIT_CONFIG_COUNT and -c settings from the
    // upload-pack it starts, so safe.directory must come from a global or system file.
    const config = path.join(await tempDir("gitconfig"), "gitconfig");
    await writeFile(config, `[safe]\n\tdirectory = ${path.join(repo.dir, ".git")}\n`);
    const planned = await runCli(["plan", "--repo", repo.dir, "--data-dir", await dataDir(), "--json"], {
      GIT_CONFIG_GLOBAL: config,
    });
    expect(planned.stderr).not.toContain("dubious ownership");
    expect(planned.code).toBe(2);
    expect(planned.json.commit).toBe(head);
    expect(planned.json.stacks.map((stack: { name: string; status: string }) => stack.status)).toEqual([
      "changes",
    ]);
  });

  it("passes GIT_CONFIG_COUNT with its numbered keys and values to git", async () => {
    const repo = await TestRepo.create(oneStack);
    const address = "https://forge.invalid/platform/infra.git";
    const settings = {
      GIT_CONFIG_COUNT: "1",
      GIT_CONFIG_KEY_0: `url.${repo.dir}.insteadOf`,
      GIT_CONFIG_VALUE_0: address,
    };

    const synthesized = await runCli(
      ["synth", "--repo", address, "--data-dir", await dataDir(), "--json"],
      settings,
    );
    expect(synthesized.json.error).toBeUndefined();
    expect(synthesized.code).toBe(0);
    expect(synthesized.json.commit).toBe(await repo.head());
    expect(synthesized.json.stacks.map((stack: { name: string }) => stack.name)).toEqual(["web"]);
  });
});
