import { describe, expect, it, onTestFinished, vi } from "vitest";
import { startFakeGitHub } from "./support/fake-github.ts";
import { deliverGitHub, githubForgeConfig, githubPullRequest } from "./support/github-deliveries.ts";
import { dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";

/** A stack whose resource shows which of two variables Terraform was given (each defaults to "unset"). */
function appReading(size: number): string {
  return [
    'import { App, DataResource, TerraformStack, TerraformVariable } from "cdktf";',
    "const app = new App();",
    'const stack = new TerraformStack(app, "web");',
    'const applyOnly = new TerraformVariable(stack, "apply_only", { type: "string", default: "unset" });',
    'const planOnly = new TerraformVariable(stack, "plan_only", { type: "string", default: "unset" });',
    `new DataResource(stack, "seen", { input: { size: ${size}, apply: applyOnly.stringValue, plan: planOnly.stringValue } });`,
    "app.synth();",
    "",
  ].join("\n");
}

interface Run {
  id: string;
  kind: string;
  trigger: string;
  plan?: { resource_changes?: { change: { after?: { input?: Record<string, unknown> } } }[] };
}

describe("credentials of plans", () => {
  it("gives a pull request's plan the plan credentials only, never the apply credentials", async () => {
    const data = await dataDir();
    const repo = await TestRepo.create({});
    await repo.write("main.ts", appReading(1));
    await repo.commit("A stack that shows its variables");
    const secret = "forge-webhook-secret";
    const token = "forge-token-abc123";
    const forge = await startFakeGitHub({ owner: "acme", repo: "infra", token });
    onTestFinished(() => forge.close());
    const served = await startServe(
      await writeServeConfig(data, {
        repository: { url: repo.dir },
        pollIntervalSeconds: 3600,
        stacks: {
          web: {
            env: { TF_VAR_apply_only: "apply-credential-9f2c" },
            planEnv: { TF_VAR_plan_only: "plan-credential-41ab" },
          },
        },
        forge: githubForgeConfig(forge.url),
      }),
      { TEST_FORGE_TOKEN: token, TEST_FORGE_SECRET: secret },
    );
    const inputOf = async (run: Run) => {
      const detail = await served.json<Run>(`/api/runs/${run.id}`);
      return detail.plan?.resource_changes?.[0]?.change.after?.input;
    };
    // The apply of main: apply credentials only (values the runner injects show as "(redacted)").
    const apply = await vi.waitFor(
      async () => {
        const { runs } = await served.json<{ runs: Run[] }>("/api/runs?kind=apply&status=succeeded");
        expect(runs).toHaveLength(1);
        return runs[0] as Run;
      },
      { timeout: 90_000, interval: 250 },
    );
    expect(await inputOf(apply)).toEqual({ size: 1, apply: "(redacted)", plan: "unset" });

    await repo.checkout("bigger", true);
    await repo.write("main.ts", appReading(2));
    const head = await repo.commit("Bigger");
    forge.addPullRequest({ number: 2, headSha: head, headRef: "bigger" });
    const payload = githubPullRequest("opened", 2, head);
    await deliverGitHub(served.url, secret, { event: "pull_request", id: "pr-2", payload });
    const plan = await vi.waitFor(
      async () => {
        const { runs } = await served.json<{ runs: Run[] }>("/api/runs?kind=plan&status=succeeded");
        expect(runs).toHaveLength(1);
        return runs[0] as Run;
      },
      { timeout: 90_000, interval: 250 },
    );
    expect(await inputOf(plan)).toEqual({ size: 2, apply: "unset", plan: "(redacted)" });
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});
