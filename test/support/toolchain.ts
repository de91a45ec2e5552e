import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { onTestFinished } from "vitest";
import { SETUP_PROVIDER_MIRROR } from "../../src/install-root.ts";
import { noSandbox } from "../../src/process/sandbox.ts";
import { type SynthResult, synthEnvironment, synthesize } from "../../src/synth/synthesize.ts";
import { TerraformCli } from "../../src/terraform/cli.ts";
import { prepareCliConfig } from "../../src/terraform/cli-config-disk.ts";

export const repoRoot = path.resolve(import.meta.dirname, "../..");

/** The engines scripts/setup.sh provided: the pinned tofu first, then a terraform found on the machine. */
export function engines(): string[] {
  const list = (process.env.GITOPS_RUNNER_TEST_ENGINES ?? "").split(":").filter(Boolean);
  if (list.length === 0)
    throw new Error("GITOPS_RUNNER_TEST_ENGINES is not set: run the tests with `npm test`");
  return list;
}

export function primaryEngine(): string {
  return engines()[0] as string;
}

/** Where the runner's own CLI configurations of the tests' direct engine calls are kept, as in a data directory. */
const sharedCliConfigDir = path.join(tmpdir(), "gitops-runner-test-cli-config");

let engineEnv: Promise<Record<string, string>> | undefined;

/**
 * The environment the runner gives the engine from this checkout: its
 * TF_CLI_CONFIG_FILE resolved the runner's way from the test's own environment
 * (the set-up's provider mirror, unless the environment names an existing file).
 */
export function terraformEnv(): Promise<Record<string, string>> {
  engineEnv ??= prepareCliConfig({
    configured: undefined,
    envFile: process.env.TF_CLI_CONFIG_FILE,
    setupMirror: SETUP_PROVIDER_MIRROR,
    dataDir: sharedCliConfigDir,
    logger: pino({ level: "silent" }),
  }).then(({ env }) => {
    const picked: Record<string, string> = { ...env };
    for (const name of ["PATH", "HOME"] as const) {
      const value = process.env[name];
      if (value !== undefined) picked[name] = value;
    }
    return picked;
  });
  return engineEnv;
}

export async function terraformCli(binary: string): Promise<TerraformCli> {
  return new TerraformCli({ binary, env: await terraformEnv(), timeoutMs: 300_000, lockTimeout: "0s" });
}

/** A temporary folder removed when the current test ends. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `gitops-runner-${prefix}-`));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function synthExample(app: "demo" | "aws", outDir: string): Promise<SynthResult> {
  return synthesize({
    appDir: path.join(repoRoot, "stacks", app),
    outDir,
    env: synthEnvironment(process.env),
    timeoutMs: 120_000,
    maxOldSpaceMb: 1024,
    sandbox: noSandbox,
  });
}

/** The variables a runner started by a test inherits from the test's own environment. */
export function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [
    "PATH",
    "HOME",
    "TF_CLI_CONFIG_FILE",
    "GITOPS_RUNNER_TERRAFORM",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
  ]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}
