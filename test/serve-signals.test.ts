import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { dataDir, TestRepo } from "./support/repo.ts";
import { writeServeConfig } from "./support/serve.ts";
import { inheritedEnv, repoRoot } from "./support/toolchain.ts";

describe("gitops-runner serve and signals", () => {
  it("drains and exits 0 on a SIGTERM sent the moment it logs that it listens", async () => {
    const repo = await TestRepo.create({ web: { site: { input: { replicas: 1 } } } });
    // The signal races the runner's next instructions; a few tries make a lost race show.
    for (let attempt = 0; attempt < 3; attempt++) {
      const data = await dataDir();
      const config = await writeServeConfig(data, { repository: { url: repo.dir } });
      const child = spawn(
        process.execPath,
        [path.join(repoRoot, "bin", "gitops-runner.js"), "serve", "--config", config],
        {
          env: { ...inheritedEnv(), GITOPS_RUNNER_API_TOKEN: "test-write-token-0123456789" },
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      const exited = once(child, "exit");
      let logs = "";
      let signalled = false;
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (chunk: string) => {
        logs += chunk;
        if (!signalled && logs.includes('"msg":"listening"')) signalled = child.kill("SIGTERM");
      });
      const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
      expect({ code, signal }, logs).toEqual({ code: 0, signal: null });
      expect(logs).toContain('"msg":"stopped"');
    }
  });
});
