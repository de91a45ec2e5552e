import { access, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import { runCli } from "./support/cli.ts";
import { type AppSpec, dataDir, TestRepo } from "./support/repo.ts";

const threeStacks: AppSpec = {
  network: { vpc: { input: { cidr: "10.0.0.0/16" } } },
  service: { api: { input: { replicas: 2 }, reads: "network.vpc" } },
  batch: { worker: { input: { schedule: "hourly" } } },
};

function statuses(json: { stacks: { name: string; status: string }[] }): Record<string, string> {
  return Object.fromEntries(json.stacks.map((stack) => [stack.name, stack.status]));
}

function runsIn(data: string): { kind: string; stack: string; status: string }[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return db.prepare("SELECT kind, stack, status FROM runs ORDER BY rowid").all() as {
      kind: string;
      stack: string;
      status: string;
    }[];
  } finally {
    db.close();
  }
}

async function stateResources(data: string, stack: string): Promise<string[]> {
  const repoState = path.join(data, "state");
  const [repoId] = await readdir(repoState);
  const state = JSON.parse(
    await readFile(path.join(repoState, repoId ?? "", "_", stack, "terraform.tfstate"), "utf8"),
  );
  return state.resources
    .filter((resource: { mode: string }) => resource.mode === "managed")
    .map((resource: { type: string; name: string }) => `${resource.type}.${resource.name}`);
}

describe("gitops-runner apply and plan on a repository of several stacks", () => {
  it("applies every stack in dependency order, keeps state in the data directory, then has nothing to plan", async () => {
    const repo = await TestRepo.create(threeStacks);
    const data = await dataDir();

    const applied = await runCli(["apply", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(applied.stderr).not.toContain('"level":50');
    expect(applied.code).toBe(0);
    expect(applied.json.commit).toBe(await repo.head());
    expect(statuses(applied.json)).toEqual({ network: "applied", service: "applied", batch: "applied" });
    expect(applied.json.stacks.find((stack: { name: string }) => stack.name === "service").summary).toEqual({
      add: 1,
      change: 0,
      destroy: 0,
      replace: 0,
      import: 0,
    });

    const applyRuns = runsIn(data).filter((run) => run.kind === "apply");
    expect(applyRuns.map((run) => run.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect(applyRuns.findIndex((run) => run.stack === "network")).toBeLessThan(
      applyRuns.findIndex((run) => run.stack === "service"),
    );
    expect(await stateResources(data, "service")).toEqual(["terraform_data.api"]);
    await expect(access(path.join(repo.dir, "terraform.service.tfstate"))).rejects.toThrow();
    expect(await readdir(path.join(data, "work"))).toEqual([]);

    const plan = await runCli(["plan", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(plan.code).toBe(0);
    expect(statuses(plan.json)).toEqual({ network: "skipped", service: "skipped", batch: "skipped" });
    expect(plan.json.stacks[0].reason).toBe(`unchanged since ${await repo.head()}`);
  });

  it("plans only the changed stack and its dependents on a branch, against the merge base", async () => {
    const repo = await TestRepo.create(threeStacks);
    const data = await dataDir();
    expect((await runCli(["apply", "--repo", repo.dir, "--data-dir", data])).code).toBe(0);

    await repo.checkout("widen-network", true);
    await repo.setApp({ ...threeStacks, network: { vpc: { input: { cidr: "10.0.0.0/8" } } } });
    await repo.commit("Widen the network");

    const plan = await runCli([
      "plan",
      "--repo",
      repo.dir,
      "--ref",
      "widen-network",
      "--data-dir",
      data,
      "--json",
    ]);
    expect(plan.code).toBe(2);
    // service reads network's applied outputs, which do not change until network is applied.
    expect(statuses(plan.json)).toEqual({ network: "changes", service: "no-changes", batch: "skipped" });
    const byName = Object.fromEntries(plan.json.stacks.map((stack: { name: string }) => [stack.name, stack]));
    expect(byName.network.summary).toEqual({ add: 0, change: 1, destroy: 0, replace: 0, import: 0 });
    expect(byName.network.resources).toEqual([{ address: "terraform_data.vpc", actions: ["update"] }]);
    expect(byName.network.wouldBlock).toBeUndefined();
    expect(byName.service.provisional).toBe(true);
    expect(byName.batch.reason).toMatch(/^unchanged since [0-9a-f]{40}$/);
  });

  it("reports a commit that does not synthesize as failed at the synth step, changing nothing", async () => {
    const repo = await TestRepo.create(threeStacks);
    const data = await dataDir();
    expect((await runCli(["apply", "--repo", repo.dir, "--data-dir", data])).code).toBe(0);
    const before = await stateResources(data, "network");
    const runsBefore = runsIn(data).length;

    await repo.write("main.ts", 'import { App } from "cdktf";\nconst app = new App(;\n');
    await repo.commit("Break the app");

    for (const command of ["plan", "apply"]) {
      const result = await runCli([command, "--repo", repo.dir, "--data-dir", data, "--json"]);
      expect(result.code).toBe(1);
      expect(result.json.error.code).toBe("SYNTH_FAILED");
      expect(result.stderr).toContain(
        `gitops-runner ${command}: app: synth: the app command "node main.ts" failed`,
      );
      expect(result.stderr).toContain("SyntaxError");
    }
    expect(await stateResources(data, "network")).toEqual(before);
    const newRuns = runsIn(data).slice(runsBefore);
    expect(newRuns).toEqual([
      { kind: "synth", stack: "*", status: "failed" },
      { kind: "synth", stack: "*", status: "failed" },
    ]);
  });

  it("blocks a plan that destroys a resource (exit 3) until --allow-destroy approves it", async () => {
    const repo = await TestRepo.create({
      storage: { logs: { input: { days: 30 } }, archive: { input: { days: 365 } } },
    });
    const data = await dataDir();
    expect((await runCli(["apply", "--repo", repo.dir, "--data-dir", data])).code).toBe(0);

    await repo.setApp({ storage: { logs: { input: { days: 30 } } } });
    await repo.commit("Drop the archive");

    const blocked = await runCli(["apply", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(blocked.code).toBe(3);
    expect(blocked.json.stacks[0].status).toBe("blocked");
    expect(blocked.json.stacks[0].reason).toContain("terraform_data.archive");
    expect(await stateResources(data, "storage")).toEqual(["terraform_data.archive", "terraform_data.logs"]);

    const approved = await runCli([
      "apply",
      "--repo",
      repo.dir,
      "--data-dir",
      data,
      "--allow-destroy",
      "--json",
    ]);
    expect(approved.code).toBe(0);
    expect(approved.json.stacks[0]).toMatchObject({ status: "applied", summary: { destroy: 1 } });
    expect(await stateResources(data, "storage")).toEqual(["terraform_data.logs"]);
  });

  it("lets one of two simultaneous applies on one data directory through and refuses the other before any work", async () => {
    const repo = await TestRepo.create({ queue: { jobs: { input: { size: 1 }, slowCreate: 3 } } });
    const data = await dataDir();
    // Warm the dependency cache so that both processes reach the stack at about the same time.
    expect((await runCli(["synth", "--repo", repo.dir, "--data-dir", data])).code).toBe(0);

    const results = await Promise.all([
      runCli(["apply", "--repo", repo.dir, "--data-dir", data, "--json"]),
      runCli(["apply", "--repo", repo.dir, "--data-dir", data, "--json"]),
    ]);
    const winner = results.find((result) => result.code === 0);
    const loser = results.find((result) => result.code !== 0);
    expect(winner?.json.stacks[0].status).toBe("applied");
    expect(loser?.code).toBe(1);
    expect(loser?.json).toMatchObject({ commit: null, stacks: [], error: { code: "DATA_DIR_IN_USE" } });
    expect(loser?.json.error.message).toMatch(
      new RegExp(
        `^data directory ${data} is in use by another gitops-runner process \\(pid \\d+, cli apply, since `,
      ),
    );
    expect(await stateResources(data, "queue")).toEqual(["terraform_data.jobs"]);

    const after = await runCli([
      "plan",
      "--repo",
      repo.dir,
      "--data-dir",
      data,
      "--stack",
      "queue",
      "--json",
    ]);
    expect(after.code).toBe(0);
    expect(after.json.stacks[0].status).toBe("no-changes");
  });
});

describe("CDK Terrain", () => {
  it("synthesizes, applies and plans an app written with cdktn, the fork of cdktf", async () => {
    const repo = await TestRepo.create(threeStacks, { framework: "cdktn" });
    const data = await dataDir();
    const synth = await runCli(["synth", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(synth.code).toBe(0);
    expect(
      synth.json.stacks.map((stack: { name: string; status: string }) => [stack.name, stack.status]),
    ).toEqual([
      ["batch", "synthesized"],
      ["network", "synthesized"],
      ["service", "synthesized"],
    ]);
    expect(
      synth.json.stacks.find((stack: { name: string }) => stack.name === "service").dependencies,
    ).toEqual(["network"]);
    const applied = await runCli(["apply", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(applied.code).toBe(0);
    expect(statuses(applied.json)).toEqual({ network: "applied", service: "applied", batch: "applied" });
    expect((await runCli(["plan", "--repo", repo.dir, "--data-dir", data])).code).toBe(0);
  });
});

describe("usage", () => {
  it("prints the usage on stdout for --help, -h and help; on stderr, with exit 1, for an unknown command", async () => {
    for (const asked of ["--help", "-h", "help"]) {
      const result = await runCli([asked]);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^Usage:\n {2}gitops-runner serve /);
      expect(result.stderr).toBe("");
    }
    const wrong = await runCli(["plna"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toBe("");
    expect(wrong.stderr).toMatch(/^gitops-runner: unknown command "plna"\nUsage:\n/);
  });
});

describe("bad input", () => {
  it("refuses an unknown stack name before any work", async () => {
    const repo = await TestRepo.create(threeStacks);
    const data = await dataDir();
    const result = await runCli([
      "plan",
      "--repo",
      repo.dir,
      "--data-dir",
      data,
      "--stack",
      "netwrok",
      "--json",
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('unknown stack "netwrok" (the app has: batch, network, service)');
    expect(runsIn(data).filter((run) => run.kind !== "synth")).toEqual([]);
  });

  it("names a missing cdktf.json", async () => {
    const repo = await TestRepo.create(threeStacks);
    await repo.remove("cdktf.json");
    await repo.commit("Remove cdktf.json");
    const result = await runCli(["synth", "--repo", repo.dir, "--data-dir", await dataDir()]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cdktf\.json: cannot be read \(is this the app directory\?\)/);
  });

  it("names the field of a malformed manifest", async () => {
    const repo = await TestRepo.create(threeStacks);
    await repo.write(
      "main.ts",
      'import { mkdirSync, writeFileSync } from "node:fs";\nmkdirSync(process.env.CDKTF_OUTDIR, { recursive: true });\nwriteFileSync(process.env.CDKTF_OUTDIR + "/manifest.json", JSON.stringify({ version: "0.21.0", stacks: { web: { name: 7 } } }));\n',
    );
    await repo.commit("Write a broken manifest");
    const result = await runCli(["plan", "--repo", repo.dir, "--data-dir", await dataDir()]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/manifest\.json: stacks\.web\.name: /);
  });

  it("names the file and field of a malformed policy", async () => {
    const repo = await TestRepo.create(threeStacks);
    await repo.write("gitops-runner.policy.json", JSON.stringify({ network: { allowDestory: true } }));
    await repo.commit("Add a policy with a typo");
    const result = await runCli(["apply", "--repo", repo.dir, "--data-dir", await dataDir()]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("gitops-runner.policy.json: network.allowDestory: unrecognized key");
  });

  it("says which repository cannot be reached", async () => {
    const missing = path.join(await dataDir(), "no-such-repository");
    const result = await runCli(["plan", "--repo", missing, "--data-dir", await dataDir(), "--json"]);
    expect(result.code).toBe(1);
    expect(result.json.error.code).toBe("GIT_UNREACHABLE");
    expect(result.stderr).toContain(`git: cannot clone ${missing}`);
  });
});
