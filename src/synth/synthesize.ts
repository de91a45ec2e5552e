import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isRunnerError, RunnerError } from "../errors.ts";
import { exec, execFailureOutput } from "../process/exec.ts";
import type { Sandbox } from "../process/sandbox.ts";
import type { Engine } from "../terraform/cli.ts";
import { readCdktfConfig } from "./cdktf-config.ts";
import { type Manifest, readManifest } from "./manifest.ts";

export interface SynthOptions {
  /** The folder holding cdktf.json. */
  readonly appDir: string;
  /** An empty folder for the output (CDKTF_OUTDIR). */
  readonly outDir: string;
  /** The allow-listed environment for the app; see synthEnvironment. */
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** Where output is captured while the command runs (see ExecOptions.tempDir). */
  readonly tempDir?: string;
  /** Heap cap for the app's Node process, through NODE_OPTIONS. */
  readonly maxOldSpaceMb: number;
  /** Runs the app: it sees the system, Node, the folders below and nothing else of the runner's. */
  readonly sandbox: Sandbox;
  /** Folders the app may change besides outDir, e.g. the checkout. */
  readonly readWrite?: readonly string[];
  /** Folders the app may read, e.g. its installed dependencies. */
  readonly readOnly?: readonly string[];
  /** The engine TERRAFORM_BINARY_NAME names: cdktf's version checks get its version without running it. */
  readonly engine?: Engine;
  readonly signal?: AbortSignal;
}

export interface SynthesizedStack {
  readonly name: string;
  readonly dependencies: readonly string[];
  /** Absolute path of the folder Terraform runs in. */
  readonly dir: string;
}

export interface SynthResult {
  readonly manifest: Manifest;
  readonly stacks: readonly SynthesizedStack[];
  readonly durationMs: number;
}

/** Answers cdktf's `<engine> version` calls in the app's Node processes; see the file. */
const ENGINE_VERSION_PRELOAD = fileURLToPath(new URL("./engine-version-preload.cjs", import.meta.url));

/** Variables the app may see from the runner's own environment. */
const INHERITED = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"] as const;

export function synthEnvironment(from: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of INHERITED) {
    const value = from[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * Runs the `app` command of cdktf.json, the way cdktf-cli does but without it:
 * a shell line (by definition of the file) with CDKTF_OUTDIR set, then reads
 * and checks manifest.json. Works for cdktf and its fork cdktn.
 */
export async function synthesize(options: SynthOptions): Promise<SynthResult> {
  const config = await readCdktfConfig(options.appDir);
  await mkdir(options.outDir, { recursive: true });
  const env: Record<string, string> = {
    ...options.env,
    CDKTF_OUTDIR: options.outDir,
    CDKTF_CONTEXT_JSON: JSON.stringify(config.context ?? {}),
    NODE_OPTIONS: `--max-old-space-size=${options.maxOldSpaceMb}`,
    CI: "1",
    CHECKPOINT_DISABLE: "1",
  };
  if (options.engine) {
    env.NODE_OPTIONS += ` --require ${JSON.stringify(ENGINE_VERSION_PRELOAD)}`;
    env.GITOPS_RUNNER_ENGINE_VERSION = `${options.engine.engine === "tofu" ? "OpenTofu" : "Terraform"} v${options.engine.version}`;
  }
  const command = options.sandbox.command({
    file: "/bin/sh",
    args: ["-c", config.app],
    env,
    cwd: options.appDir,
    readWrite: [options.appDir, options.outDir, ...(options.readWrite ?? [])],
    readOnly: [ENGINE_VERSION_PRELOAD, ...(options.readOnly ?? [])],
  });

  let durationMs: number;
  try {
    const result = await exec(command.file, command.args, {
      step: "synth",
      cwd: options.appDir,
      env: command.env,
      timeoutMs: options.timeoutMs,
      ...(options.tempDir ? { tempDir: options.tempDir } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    durationMs = result.durationMs;
  } catch (error) {
    if (isRunnerError(error, "EXEC_FAILED")) {
      const output = execFailureOutput(error);
      const message = (output?.stderr || output?.stdout || error.message).trim();
      throw new RunnerError("SYNTH_FAILED", `synth: the app command "${config.app}" failed:\n${message}`, {
        cause: error,
      });
    }
    throw error;
  }

  const manifest = await readManifest(options.outDir);
  const errors = Object.values(manifest.stacks).flatMap((stack) =>
    stack.annotations
      .filter((annotation) => annotation.level === "@cdktf/error")
      .map((annotation) => `stack ${stack.name}: ${annotation.constructPath}: ${annotation.message}`),
  );
  if (errors.length > 0) {
    throw new RunnerError("SYNTH_FAILED", `synth: the app reported errors:\n${errors.join("\n")}`);
  }

  const stacks = Object.values(manifest.stacks).map((stack) => ({
    name: stack.name,
    dependencies: stack.dependencies,
    dir: path.resolve(options.outDir, stack.workingDirectory),
  }));
  return { manifest, stacks, durationMs };
}
