import { cp, readFile, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { isRunnerError } from "../src/errors.ts";
import { noSandbox } from "../src/process/sandbox.ts";
import { synthEnvironment, synthesize } from "../src/synth/synthesize.ts";
import { repoRoot, synthExample, tempDir } from "./support/toolchain.ts";

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
    await cp(path.join(repoRoot, "stacks", "demo"), app, { recursive: true });
    await writeFile(path.join(app, "main.ts"), 'const release: number = "one";\nenum Broken { A }\n');
    // Resolve cdktf from the example stacks' dependencies, as a checkout would have them.
    await symlink(path.join(repoRoot, "stacks", "node_modules"), path.join(app, "node_modules"));

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
