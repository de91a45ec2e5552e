import { chmod, cp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { isRunnerError } from "../src/errors.ts";
import { createSandbox, noSandbox } from "../src/process/sandbox.ts";
import { synthEnvironment, synthesize } from "../src/synth/synthesize.ts";
import type { Engine } from "../src/terraform/cli.ts";
import { primaryEngine, repoRoot, synthExample, tempDir, terraformCli } from "./support/toolchain.ts";

type Json = Record<string, any>;

async function stackJson(outDir: string, stack: string): Promise<Json> {
  return JSON.parse(await readFile(path.join(outDir, "stacks", stack, "cdk.tf.json"), "utf8"));
}

describe("synthesizing the example stacks", () => {
  it("synthesizes the demo app into one stack of built-in terraform_data resources", async () => {
    const out = await tempDir("synth-demo");
    const result = await synthExample("demo", out);

    expect(result.stacks.map((stack) => stack.name)).toEqual(["demo"]);
    const demo = await stackJson(out, "demo");
    expect(Object.keys(demo.resource)).toEqual(["terraform_data"]);
    expect(demo.resource.terraform_data.release.input).toEqual({ channel: "stable", version: "1.0.0" });
    expect(demo.resource.terraform_data.settings.triggers_replace).toEqual({
      release: "${terraform_data.release.id}",
    });
    expect(Object.keys(demo.output).sort()).toEqual(["release_id", "settings_digest"]);
    expect(demo.terraform.required_providers).toBeUndefined();
  });

  it("synthesizes the AWS app: bucket, queues, IAM, and a cross-stack dependency", async () => {
    const out = await tempDir("synth-aws");
    const result = await synthExample("aws", out);

    const byName = Object.fromEntries(result.stacks.map((stack) => [stack.name, stack]));
    expect(Object.keys(byName).sort()).toEqual(["access", "messaging", "storage"]);
    expect(byName.access?.dependencies).toEqual(["storage"]);
    expect(byName.storage?.dependencies).toEqual([]);
    expect(byName.storage?.dir).toBe(path.join(out, "stacks", "storage"));

    const storage = await stackJson(out, "storage");
    expect(storage.terraform.required_providers.aws).toEqual({ source: "aws", version: "5.100.0" });
    expect(storage.provider.aws[0].region).toBe("us-east-1");
    const bucket = storage.resource.aws_s3_bucket.artifacts;
    expect(bucket.bucket_prefix).toBe("gitops-runner-artifacts-");
    expect(bucket.tags).toEqual({ purpose: "build-artifacts", retention: "90d" });
    expect(storage.resource.aws_s3_bucket_versioning["artifacts-versioning"]).toMatchObject({
      bucket: "${aws_s3_bucket.artifacts.id}",
      versioning_configuration: { status: "Enabled" },
    });

    const messaging = await stackJson(out, "messaging");
    expect(Object.keys(messaging.resource.aws_sqs_queue).sort()).toEqual(["jobs", "jobs-dlq"]);
    expect(messaging.resource.aws_sqs_queue.jobs.redrive_policy).toContain("aws_sqs_queue.jobs-dlq.arn");

    const access = await stackJson(out, "access");
    expect(Object.keys(access.resource).sort()).toEqual([
      "aws_iam_policy",
      "aws_iam_role",
      "aws_iam_role_policy_attachment",
    ]);
    expect(access.data.terraform_remote_state["cross-stack-reference-input-storage"].backend).toBe("local");
    expect(access.resource.aws_iam_policy["upload-artifacts"].policy).toContain(
      "data.terraform_remote_state.cross-stack-reference-input-storage.outputs",
    );
  });

  it("reports an app that does not compile with the app's own message, naming the synth step", async () => {
    const app = await tempDir("synth-broken");
    const demo = path.join(repoRoot, "stacks", "demo");
    await cp(demo, app, { recursive: true, filter: (source) => path.basename(source) !== "node_modules" });
    await writeFile(path.join(app, "main.ts"), 'const release: number = "one";\nenum Broken { A }\n');
    // Resolve cdktf from the demo's own dependencies, as a checkout would have them.
    await symlink(path.join(demo, "node_modules"), path.join(app, "node_modules"));

    const error = await synthesize({
      appDir: app,
      outDir: path.join(app, "out"),
      env: synthEnvironment(process.env),
      timeoutMs: 60_000,
      maxOldSpaceMb: 512,
      sandbox: noSandbox,
    }).catch((caught: unknown) => caught);

    expect(isRunnerError(error, "SYNTH_FAILED")).toBe(true);
    expect((error as Error).message).toMatch(/^synth: the app command "node main.ts" failed:/);
    expect((error as Error).message).toContain("TypeScript enum is not supported in strip-only mode");
  });

  it("refuses a folder without cdktf.json, naming the file", async () => {
    const app = await tempDir("synth-missing");
    const error = await synthesize({
      appDir: app,
      outDir: path.join(app, "out"),
      env: {},
      timeoutMs: 10_000,
      maxOldSpaceMb: 256,
      sandbox: noSandbox,
    }).catch((caught: unknown) => caught);

    expect(isRunnerError(error, "SYNTH_CONFIG_INVALID")).toBe(true);
    expect((error as Error).message).toBe(
      `${path.join(app, "cdktf.json")}: cannot be read (is this the app directory?)`,
    );
  });

  it("names the field of a malformed manifest", async () => {
    const app = await tempDir("synth-manifest");
    await writeFile(path.join(app, "cdktf.json"), JSON.stringify({ app: "node app.mjs" }));
    await writeFile(
      path.join(app, "app.mjs"),
      `import { mkdirSync, writeFileSync } from "node:fs";
mkdirSync(process.env.CDKTF_OUTDIR, { recursive: true });
writeFileSync(process.env.CDKTF_OUTDIR + "/manifest.json", JSON.stringify({ version: "0.21.0", stacks: { web: { name: "web" } } }));
`,
    );

    const error = await synthesize({
      appDir: app,
      outDir: path.join(app, "out"),
      env: synthEnvironment(process.env),
      timeoutMs: 10_000,
      maxOldSpaceMb: 256,
      sandbox: noSandbox,
    }).catch((caught: unknown) => caught);

    expect(isRunnerError(error, "SYNTH_MANIFEST_INVALID")).toBe(true);
    expect((error as Error).message).toContain("manifest.json: stacks.web.dependencies: ");
  });
});

describe("cdktf's engine version checks", () => {
  const RESOURCES = 30;

  /**
   * An app of many terraform_data resources (cdktf checks the engine's version
   * for each) that also runs a command of its own, and an engine stand-in
   * that counts its calls in the app folder before it runs the real engine.
   */
  async function countingSetup() {
    const app = await tempDir("synth-version-checks");
    const engine = primaryEngine();
    const counting = path.join(app, "engine");
    const calls = path.join(app, "engine-calls");
    await writeFile(counting, `#!/bin/sh\necho "$*" >> ${calls}\nexec ${engine} "$@"\n`);
    await chmod(counting, 0o755);
    await writeFile(path.join(app, "cdktf.json"), JSON.stringify({ app: "node main.ts" }));
    await writeFile(
      path.join(app, "main.ts"),
      `import { execSync } from "node:child_process";
import { App, DataResource, TerraformOutput, TerraformStack } from "cdktf";
const app = new App();
const stack = new TerraformStack(app, "many");
for (let index = 0; index < ${RESOURCES}; index++) new DataResource(stack, "item-" + index, { input: { index } });
new TerraformOutput(stack, "own-command", { value: execSync("echo untouched", { encoding: "utf8" }).trim() });
app.synth();
`,
    );
    const nodeModules = path.join(repoRoot, "stacks", "node_modules");
    await symlink(nodeModules, path.join(app, "node_modules"));
    const sandbox = await createSandbox({
      bwrap: "bwrap",
      searchPath: process.env.PATH ?? "",
      readOnly: [counting, engine],
      hidden: [],
      logger: pino({ level: "silent" }),
    });
    expect(sandbox.kind).toBe("bubblewrap");
    let run = 0;
    const synth = async (known?: Engine) => {
      await rm(calls, { force: true });
      const outDir = path.join(app, `out-${run++}`);
      const result = await synthesize({
        appDir: app,
        outDir,
        env: { ...synthEnvironment(process.env), TERRAFORM_BINARY_NAME: counting },
        timeoutMs: 120_000,
        maxOldSpaceMb: 1024,
        sandbox,
        readOnly: [nodeModules],
        ...(known ? { engine: known } : {}),
      });
      const calledWith = (await readFile(calls, "utf8").catch(() => "")).split("\n").filter(Boolean);
      return { result, calledWith, stack: await stackJson(outDir, "many") };
    };
    return { synth, engine: await (await terraformCli(engine)).engine() };
  }

  it("runs the engine once per resource unless the runner gives the version it knows; other commands run", async () => {
    const { synth, engine } = await countingSetup();

    const unknown = await synth();
    expect(unknown.calledWith).toEqual(Array.from({ length: RESOURCES }, () => "version"));

    const known = await synth(engine);
    expect(known.calledWith).toEqual([]);
    expect(Object.keys(known.stack.resource.terraform_data)).toHaveLength(RESOURCES);
    expect(known.stack.output["own-command"].value).toBe("untouched");
    expect(known.stack).toEqual(unknown.stack);
  });

  it("gives cdktf the version itself: an engine too old for terraform_data fails the synth", async () => {
    const { synth, engine } = await countingSetup();

    const error = await synth({ ...engine, version: "1.3.9" }).catch((caught: unknown) => caught);

    expect(isRunnerError(error, "SYNTH_FAILED")).toBe(true);
    expect((error as Error).message).toContain("version 1.3.9 is lower than the required version >=1.4");
  });
});
