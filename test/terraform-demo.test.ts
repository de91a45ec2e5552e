import { access, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { LocalStateBackend, STATE_OVERRIDE_FILE, stateFile } from "../src/state/local-state.ts";
import { summarize } from "../src/terraform/plan-json.ts";
import { engines, repoRoot, synthExample, tempDir, terraformCli } from "./support/toolchain.ts";

describe.each(engines())("the demo stack on %s", (binary) => {
  it("inits, plans to a saved file, shows it as JSON, applies it, and then has nothing to do", async () => {
    const work = await tempDir("demo");
    const location = { dataDir: path.join(work, "data"), repoId: "example-0000", appDir: "stacks/demo" };
    const [demo] = (await synthExample("demo", path.join(work, "out"))).stacks;
    if (!demo) throw new Error("the demo app has no stack");
    const state = (await new LocalStateBackend(location).prepare(demo.dir, demo.name))?.where;
    expect(state).toBe(
      path.join(work, "data", "state", "example-0000", "stacks/demo", "demo", "terraform.tfstate"),
    );
    expect(JSON.parse(await readFile(path.join(demo.dir, STATE_OVERRIDE_FILE), "utf8"))).toEqual({
      terraform: { backend: { local: { path: state } } },
    });

    const terraform = await terraformCli(binary);
    await terraform.init(demo.dir);
    const engine = await terraform.engine();
    expect(engine.engine).toBe(path.basename(binary) === "tofu" ? "tofu" : "terraform");
    expect(engine.version).toMatch(/^1\.\d+\.\d+$/);

    const planFile = path.join(work, "demo.tfplan");
    const plan = await terraform.plan(demo.dir, planFile);
    expect(plan.hasChanges).toBe(true);
    expect((await stat(planFile)).mode & 0o777).toBe(0o600);

    const { plan: planJson } = await terraform.show(demo.dir, planFile);
    expect(summarize(planJson)).toEqual({ add: 2, change: 0, destroy: 0, replace: 0, import: 0 });
    expect(planJson.resource_changes?.map((change) => [change.address, change.change.actions])).toEqual([
      ["terraform_data.release", ["create"]],
      ["terraform_data.settings", ["create"]],
    ]);

    const applied = await terraform.apply(demo.dir, planFile);
    expect(applied).toContain("Apply complete! Resources: 2 added, 0 changed, 0 destroyed.");

    const stored = JSON.parse(await readFile(stateFile(location, "demo"), "utf8"));
    expect(stored.resources.map((resource: { name: string }) => resource.name).sort()).toEqual([
      "release",
      "settings",
    ]);
    await expect(access(path.join(repoRoot, "stacks", "demo", "terraform.demo.tfstate"))).rejects.toThrow();

    const again = await terraform.plan(demo.dir, path.join(work, "again.tfplan"));
    expect(again.hasChanges).toBe(false);
  });
});
