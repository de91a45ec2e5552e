import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { runCli } from "./support/cli.ts";
import { startFakeGitHub } from "./support/fake-github.ts";
import { dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";

/** The stored (redacted) plan of a run. */
function storedPlan(data: string, runId: string): any {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    const row = db.prepare("SELECT plan FROM runs WHERE id = ?").get(runId) as { plan: string };
    return JSON.parse(row.plan);
  } finally {
    db.close();
  }
}

async function release(repo: TestRepo, version: string, replicas: number): Promise<string> {
  const file = path.join(repo.dir, "main.ts");
  const source = await readFile(file, "utf8");
  await repo.write(
    "main.ts",
    source
      .replace(/version: "[^"]+"/, `version: "${version}"`)
      .replace(/replicas: \d+/, `replicas: ${replicas}`),
  );
  return repo.commit(`Release ${version}`);
}

describe("rollback by revert", () => {
  it("pushes a branch restoring the demo as applied two applies ago, whose plan brings back the earlier values", async () => {
    const repo = await TestRepo.fromExample("demo");
    const data = await dataDir();
    const cli = (...args: string[]) => runCli([...args, "--repo", repo.dir, "--data-dir", data]);
    const first = await repo.head();
    expect((await cli("apply")).code).toBe(0);
    await release(repo, "2.0.0", 5);
    expect((await cli("apply")).code).toBe(0);
    await repo.write("NOTES.md", "Nothing to apply here.\n");
    const notes = await repo.commit("Notes");

    const refused = await cli("rollback", "--stack", "demo", "--to", notes, "--json");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`stack demo was never applied at ${notes}`);
    const unknown = await cli("rollback", "--stack", "demo", "--to", "no-such-ref");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('has no ref or commit "no-such-ref"');

    const rolled = await cli("rollback", "--stack", "demo", "--to", first.slice(0, 10), "--json");
    expect(rolled.code).toBe(0);
    expect(rolled.json).toMatchObject({ stack: "demo", to: first, base: "main", alsoChanges: [] });
    expect(rolled.json).not.toHaveProperty("pullRequest");
    const { branch, commit } = rolled.json;
    expect(branch).toMatch(/^gitops-runner\/rollback-demo-[0-9a-f]{7}-\d{8}-\d{6}$/);
    expect((await repo.git("rev-parse", `refs/heads/${branch}`)).trim()).toBe(commit);
    // One commit on top of main, restoring the app's files; main itself is untouched and nothing was applied.
    expect((await repo.git("rev-parse", `${commit}^`)).trim()).toBe(notes);
    expect(await repo.git("show", `${branch}:main.ts`)).toContain('version: "1.0.0"');
    expect(await repo.git("log", "-1", "--format=%an%n%B", branch)).toContain(
      "gitops-runner\nRoll back demo to",
    );
    expect((await repo.git("rev-parse", "main")).trim()).toBe(notes);
    const text = await cli("rollback", "--stack", "demo", "--to", first);
    expect(text.stdout).toContain(
      "no forge is configured: open a pull request from gitops-runner/rollback-demo-",
    );

    const planned = await cli("plan", "--ref", branch, "--json");
    expect(planned.code).toBe(2);
    const demo = planned.json.stacks.find((stack: { name: string }) => stack.name === "demo");
    expect(demo.status).toBe("changes");
    const changes = storedPlan(data, demo.runId).resource_changes;
    const releaseChange = changes.find(
      (change: { address: string }) => change.address === "terraform_data.release",
    );
    expect(releaseChange.change.before.input).toMatchObject({ version: "2.0.0" });
    expect(releaseChange.change.after.input).toMatchObject({ version: "1.0.0" });
    const settings = changes.find(
      (change: { address: string }) => change.address === "terraform_data.settings",
    );
    expect(settings.change.after.input).toMatchObject({ replicas: 2 });
  });

  it("opens a pull request through the forge from the API, naming the token that asked", async () => {
    const repo = await TestRepo.fromExample("demo");
    const data = await dataDir();
    const branchSha = (branch: string) => {
      try {
        return execFileSync("git", ["rev-parse", `refs/heads/${branch}`], { cwd: repo.dir })
          .toString()
          .trim();
      } catch {
        return undefined;
      }
    };
    const forge = await startFakeGitHub({ owner: "acme", repo: "infra", token: "forge-token-1", branchSha });
    onTestFinished(() => forge.close());
    const config = await writeServeConfig(data, {
      repository: { url: repo.dir },
      pollIntervalSeconds: 3600,
      apiTokens: [{ name: "release-bot", tokenEnv: "RELEASE_TOKEN" }],
      forge: { type: "github", owner: "acme", repo: "infra", baseUrl: forge.url, tokenEnv: "FORGE_TOKEN" },
    });
    const served = await startServe(config, {
      FORGE_TOKEN: "forge-token-1",
      RELEASE_TOKEN: "release-token-0123",
    });
    const first = await repo.head();
    const appliedAt = async (commit: string) =>
      vi.waitFor(
        async () => expect((await served.json("/api/stacks")).stacks[0]?.lastAppliedCommit).toBe(commit),
        { timeout: 90_000, interval: 250 },
      );
    await appliedAt(first);
    const second = await release(repo, "2.0.0", 5);
    expect((await served.api("/api/apply", { method: "POST" })).status).toBe(202);
    await appliedAt(second);

    const post = (to: string) =>
      served.api("/api/stacks/demo/rollback", {
        method: "POST",
        token: "release-token-0123",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ to }),
      });
    const refused = await post("0".repeat(40));
    expect(refused.status).toBe(404);
    expect(((await refused.json()) as any).error.code).toBe("GIT_REF_UNKNOWN");
    const answered = await post(first);
    expect(answered.status).toBe(201);
    const result: any = await answered.json();
    expect(result).toMatchObject({ stack: "demo", to: first, base: "main", pullRequest: { number: 1 } });
    expect(forge.pullRequests()).toEqual([
      expect.objectContaining({
        number: 1,
        headRef: result.branch,
        headSha: result.commit,
        baseRef: "main",
        title: `Roll back demo to ${first.slice(0, 7)}`,
        body: expect.stringContaining("Requested-by: token release-bot"),
      }),
    ]);
    expect(result.pullRequest.url).toBe(forge.pullRequestUrl(1));
    const again = await post(second);
    expect(again.status).toBe(409);
    expect(((await again.json()) as any).error.code).toBe("NOTHING_TO_ROLL_BACK");
    forge.assertNoUnexpected();
  });
});
