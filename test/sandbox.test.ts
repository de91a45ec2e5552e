import { chmod, glob, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import pino from "pino";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { exec } from "../src/process/exec.ts";
import { createSandbox } from "../src/process/sandbox.ts";
import { runCli } from "./support/cli.ts";
import { startFakeGitHub } from "./support/fake-github.ts";
import { githubForgeConfig } from "./support/github-deliveries.ts";
import { dataDir, TestRepo } from "./support/repo.ts";
import { READ_TOKEN, startServe, WRITE_TOKEN, writeServeConfig } from "./support/serve.ts";
import { tempDir } from "./support/toolchain.ts";

/** Values the runner holds that an app must never see. */
const SECRETS = {
  TEST_WEBHOOK_SECRET: "generic-webhook-secret-5f1e",
  TEST_FORGE_TOKEN: "forge-token-9a7c",
  TEST_FORGE_WEBHOOK_SECRET: "forge-webhook-secret-3d2b",
  TEST_SLACK_URL: "http://127.0.0.1:9/slack-url-secret-77e0",
  TEST_NOTIFY_SECRET: "notify-secret-c4a1",
  AWS_SECRET_ACCESS_KEY: "aws-secret-access-key-0b6d",
  TF_VAR_password: "tf-var-password-e8f3",
};
/** What synthesis may see: the allow-listed variables, what the runner sets for the app, and the shell's PWD. */
const SYNTH_ENV = [
  "PATH",
  "HOME",
  "LANG",
  "LC_ALL",
  "TZ",
  "TMPDIR",
  "SSL_CERT_FILE",
  "NODE_EXTRA_CA_CERTS",
  "TERRAFORM_BINARY_NAME",
  "CDKTF_OUTDIR",
  "CDKTF_CONTEXT_JSON",
  "NODE_OPTIONS",
  "CI",
  "CHECKPOINT_DISABLE",
  "GITOPS_RUNNER_ENGINE_VERSION",
  "PWD",
];
/** Only in the runner's configuration file. */
const CONFIG_SECRET = "config-file-secret-1c9d";
/** Only in a file in the data directory. */
const DATA_SECRET = "data-dir-secret-6e2a";

/**
 * main.ts of an app that, while it is synthesized, looks for the runner:
 * every process's environ and command line (its parent's first), the
 * configuration file and the data directory. What it finds becomes a stack
 * output, which the runner keeps in the applied stack folder.
 */
function snoopingApp(paths: { config: string; data: string }): string {
  return `import { readdirSync, readFileSync } from "node:fs";
import { App, DataResource, TerraformOutput, TerraformStack } from "cdktf";

const read = (file) => {
  try {
    return { file, text: readFileSync(file, "latin1") };
  } catch (error) {
    return { file, error: error.code };
  }
};
const list = (dir) => {
  try {
    return { dir, entries: readdirSync(dir) };
  } catch (error) {
    return { dir, error: error.code };
  }
};
const pids = readdirSync("/proc").filter((name) => /^\\d+$/.test(name));
const found = {
  self: String(process.pid),
  env: process.env,
  processes: pids.map((pid) => ({
    pid,
    cmdline: read("/proc/" + pid + "/cmdline").text?.split("\\0").join(" ").trim(),
    environ: read("/proc/" + pid + "/environ"),
  })),
  parent: read("/proc/" + process.ppid + "/environ"),
  config: read(${JSON.stringify(paths.config)}),
  data: list(${JSON.stringify(paths.data)}),
  files: ["runner.db", "api-token"].map((name) => read(${JSON.stringify(paths.data)} + "/" + name)),
};

const app = new App();
const stack = new TerraformStack(app, "snoop");
new DataResource(stack, "marker", { input: { purpose: "synthesized" } });
// Base64, so that nothing another process holds (a "\${" in a command line) reads as a template.
new TerraformOutput(stack, "found", { value: Buffer.from(JSON.stringify(found)).toString("base64") });
app.synth();
`;
}

interface Found {
  self: string;
  env: Record<string, string>;
  processes: { pid: string; cmdline?: string; environ: { text?: string; error?: string } }[];
  parent: { text?: string; error?: string };
  config: { text?: string; error?: string };
  data: { entries?: string[]; error?: string };
  files: { file: string; text?: string; error?: string }[];
}

/** The secrets found in `text`: named, so that a failure does not print everything the app read. */
function leaked(text: string): string[] {
  return [...Object.values(SECRETS), WRITE_TOKEN, READ_TOKEN, CONFIG_SECRET, DATA_SECRET].filter((secret) =>
    text.includes(secret),
  );
}

/** Log entries of the sandbox's choice at start. */
function aboutTheSandbox(entry: Record<string, unknown>): boolean {
  return /^synthesis (is not isolated|and dependency installs run in a bubblewrap sandbox)/.test(
    String(entry.msg),
  );
}

/** The output the app wrote, from the applied folder the runner keeps for drift checks. */
async function appliedFinding(data: string): Promise<{ raw: string; found: Found }> {
  const files: string[] = [];
  for await (const file of glob(path.join(data, "applied", "*", "_", "snoop", "cdk.tf.json")))
    files.push(file);
  expect(files).toHaveLength(1);
  const synthesized = JSON.parse(await readFile(files[0] as string, "utf8"));
  const raw = Buffer.from(synthesized.output.found.value as string, "base64").toString();
  return { raw, found: JSON.parse(raw) as Found };
}

/** A repository whose app snoops, told where the runner's configuration and data directory are. */
async function snoopingSetup() {
  const data = await dataDir();
  const config = path.join(data, "runner.json");
  const repo = await TestRepo.create({});
  await repo.write("main.ts", snoopingApp({ config, data }));
  await repo.commit("An app that looks for the runner");
  return { data, config, repo };
}

describe("the sandbox of synthesis and dependency installs", () => {
  it("shows an app synthesized by serve none of the runner's secrets, files or processes", async () => {
    const { data, config, repo } = await snoopingSetup();
    const forge = await startFakeGitHub({ owner: "acme", repo: "infra", token: SECRETS.TEST_FORGE_TOKEN });
    onTestFinished(() => forge.close());
    await writeFile(path.join(data, "api-token"), DATA_SECRET, { mode: 0o600 });
    await writeServeConfig(data, {
      repository: { url: repo.dir },
      pollIntervalSeconds: 3600,
      webhooks: { generic: { secretEnv: "TEST_WEBHOOK_SECRET" } },
      notifications: [
        { type: "slack", urlEnv: "TEST_SLACK_URL" },
        { type: "webhook", url: "http://127.0.0.1:9/notify", secretEnv: "TEST_NOTIFY_SECRET" },
      ],
      forge: githubForgeConfig(forge.url, {
        token: "TEST_FORGE_TOKEN",
        webhookSecret: "TEST_FORGE_WEBHOOK_SECRET",
      }),
      env: { GITOPS_RUNNER_TEST_MARKER: CONFIG_SECRET },
    });
    const served = await startServe(config, SECRETS);
    await vi.waitFor(
      async () =>
        expect((await served.json("/api/stacks")).stacks).toEqual([
          expect.objectContaining({ name: "snoop", lastAppliedCommit: await repo.head() }),
        ]),
      { timeout: 120_000, interval: 200 },
    );
    expect(served.logs.filter(aboutTheSandbox)).toEqual([
      expect.objectContaining({
        level: 30,
        msg: "synthesis and dependency installs run in a bubblewrap sandbox",
      }),
    ]);
    expect(await served.stop()).toBe(0);

    const { raw, found } = await appliedFinding(data);
    expect(leaked(raw)).toEqual([]);
    // The app did look: it saw its own environment, and processes of its own.
    expect(found.env.CDKTF_OUTDIR).toMatch(/\/out$/);
    expect(found.processes.map((process) => process.pid)).toContain(found.self);
    // Only the sandbox's processes (bwrap's, the shell's, Node's); none of the runner's.
    expect(found.processes.length).toBeLessThanOrEqual(3);
    for (const process of found.processes) {
      expect(process.cmdline).toMatch(
        /^(\S*bwrap --unshare-pid |\/bin\/sh -c node main\.ts$|node main\.ts$)/,
      );
    }
    // Every environment it could read, its parent's included, holds the allow-listed variables only.
    const environs = found.processes.map((process) => process.environ.text ?? "");
    expect(environs).toContain(found.parent.text);
    for (const environ of environs) {
      const names = environ
        .split("\0")
        .filter(Boolean)
        .map((entry) => entry.split("=")[0]);
      expect(names.filter((name) => !SYNTH_ENV.includes(name as string))).toEqual([]);
    }
    expect(found.config.error).toBe("ENOENT");
    // Of the data directory, only the checkout's work folder and the app's installed dependencies.
    expect(found.data.entries?.sort()).toEqual(["cache", "work"]);
    expect(found.files.map((file) => file.error)).toEqual(["ENOENT", "ENOENT"]);
  });

  it("warns once and still synthesizes when bubblewrap cannot start; the app then sees the runner", async () => {
    const { data, config, repo } = await snoopingSetup();
    await writeFile(config, JSON.stringify({ bwrap: path.join(data, "no-such-bwrap") }));

    const result = await runCli(
      ["apply", "--repo", repo.dir, "--data-dir", data, "--config", config, "--json"],
      {
        ...SECRETS,
      },
    );

    expect(result.code, result.stderr).toBe(0);
    expect(result.json.stacks).toEqual([expect.objectContaining({ name: "snoop", status: "applied" })]);
    const logged = result.stderr
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(logged.filter(aboutTheSandbox)).toEqual([
      expect.objectContaining({
        level: 40,
        msg: expect.stringMatching(/^synthesis is not isolated: /),
        problem: `${path.join(data, "no-such-bwrap")} is not an executable file or on PATH`,
      }),
    ]);
    // What the sandbox prevents: unsandboxed, the same app reads the runner's environment and configuration.
    const { raw, found } = await appliedFinding(data);
    expect(leaked(raw)).toEqual(
      expect.arrayContaining([SECRETS.AWS_SECRET_ACCESS_KEY, SECRETS.TF_VAR_password]),
    );
    expect(found.config.text).toContain(path.join(data, "no-such-bwrap"));
    expect(found.files.find((file) => file.file.endsWith("runner.db"))?.error).toBeUndefined();
  });

  it("falls back, with the reason, when bubblewrap is there but fails its trial start", async () => {
    const dir = await tempDir("sandbox-broken-bwrap");
    const bwrap = path.join(dir, "bwrap");
    await writeFile(bwrap, "#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n");
    await chmod(bwrap, 0o755);
    const logged: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => logged.push(JSON.parse(line)) });

    const sandbox = await createSandbox({
      bwrap,
      searchPath: process.env.PATH ?? "",
      readOnly: [],
      hidden: [],
      logger,
    });

    expect(sandbox.kind).toBe("none");
    expect(logged).toEqual([
      expect.objectContaining({
        level: 40,
        bwrap,
        msg: expect.stringMatching(/^synthesis is not isolated: /),
        problem: expect.stringContaining("bwrap: No permissions to create a new namespace"),
      }),
    ]);
  });

  it("hides the configuration file and data directory even inside a folder it shows, and shows the rest read-only", async () => {
    const shared = await tempDir("sandbox-shown");
    const hiddenDir = path.join(shared, "data");
    const work = path.join(hiddenDir, "work");
    await mkdir(work, { recursive: true });
    await writeFile(path.join(shared, "runner.json"), CONFIG_SECRET);
    await writeFile(path.join(shared, "readme"), "shown\n");
    await writeFile(path.join(hiddenDir, "runner.db"), DATA_SECRET);
    const sandbox = await createSandbox({
      bwrap: "bwrap",
      searchPath: process.env.PATH ?? "",
      readOnly: [shared],
      hidden: [path.join(shared, "runner.json"), hiddenDir],
      logger: pino({ level: "silent" }),
    });
    expect(sandbox.kind).toBe("bubblewrap");

    const script = [
      `cat ${shared}/readme`,
      `cat ${shared}/runner.json`,
      "echo ---",
      `ls ${hiddenDir}`,
      `echo written > ${work}/result`,
      `echo changed > ${shared}/readme || echo read-only`,
    ].join("; ");
    const command = sandbox.command({
      file: "/bin/sh",
      args: ["-c", script],
      env: { PATH: process.env.PATH ?? "" },
      cwd: work,
      readWrite: [work],
      readOnly: [],
    });
    const result = await exec(command.file, command.args, {
      step: "test",
      cwd: work,
      env: command.env,
      timeoutMs: 30_000,
    });

    expect(result.stdout.split("\n")).toEqual(["shown", "---", "work", "read-only", ""]);
    expect(await readFile(path.join(work, "result"), "utf8")).toBe("written\n");
    expect(await readFile(path.join(shared, "readme"), "utf8")).toBe("shown\n");
  });
});
