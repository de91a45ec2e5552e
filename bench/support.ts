/**
 * Shared pieces of the benchmarks: flags, a measured child process (wall time
 * and, through GNU time, peak RSS), a generated repository of terraform_data
 * stacks, the gitops-runner command, synthesis and tofu as a plain user runs
 * them, and printing. Benchmarks are scripts: they read the process
 * environment here, once, and pass explicit environments to every child.
 */
import { randomUUID } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import {
  access,
  constants,
  cp,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { z } from "zod";

export const repoRoot = path.resolve(import.meta.dirname, "..");

type Env = Readonly<Record<string, string>>;

function pick(names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of names) {
    const value = process.env[name];
    if (value !== undefined) picked[name] = value;
  }
  return picked;
}

/**
 * What every child starts from. NODE_EXTRA_CA_CERTS and the proxies stay:
 * behind a TLS-inspecting proxy npm under Node 24 stalls for minutes without them.
 */
export const baseEnv: Env = pick([
  "PATH",
  "HOME",
  "LANG",
  "TMPDIR",
  "TF_CLI_CONFIG_FILE",
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
]);

/**
 * The environment the runner gives tofu, so that the baseline runs the engine
 * the same way: a TF_CLI_CONFIG_FILE naming a file that does not exist is
 * dropped, as the runner drops it.
 */
export const tofuEnv: Env = {
  ...pick(["PATH", "HOME", "TF_PLUGIN_CACHE_DIR", "SSL_CERT_FILE"]),
  ...(process.env.TF_CLI_CONFIG_FILE && existsSync(process.env.TF_CLI_CONFIG_FILE)
    ? { TF_CLI_CONFIG_FILE: process.env.TF_CLI_CONFIG_FILE }
    : {}),
  TF_IN_AUTOMATION: "1",
  TF_INPUT: "0",
};

// --- flags -----------------------------------------------------------------

/** Parses `--name N` flags, each a positive integer with a default. */
export function intFlags<K extends string>(
  argv: readonly string[],
  defaults: Readonly<Record<K, number>>,
): Record<K, number> {
  const options: Record<string, { type: "string" }> = {};
  for (const name of Object.keys(defaults)) options[name] = { type: "string" };
  const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
  const flags: Record<K, number> = { ...defaults };
  for (const [name, value] of Object.entries(values)) {
    const number = Number(value);
    if (!Number.isInteger(number) || number < 1) {
      throw new Error(`--${name} takes a positive integer, not "${String(value)}"`);
    }
    flags[name as K] = number;
  }
  return flags;
}

// --- measured child processes --------------------------------------------------

const GNU_TIME = "/usr/bin/time";

export interface Measured {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly wallMs: number;
  /** Max RSS of the largest single process of the command's tree (GNU time %M); undefined without GNU time. */
  readonly peakRssKb: number | undefined;
}

export interface RunOptions {
  readonly cwd: string;
  /** The complete environment of the child; nothing else is inherited. */
  readonly env: Env;
  readonly okExitCodes?: readonly number[];
  readonly timeoutMs?: number;
}

let gnuTimeFound: Promise<boolean> | undefined;
/** Where GNU time writes its figures: the benchmark's temporary folder once there is one. */
let scratchDir = os.tmpdir();

/** Whether /usr/bin/time is GNU time, which can report a child's peak RSS. */
export function hasGnuTime(): Promise<boolean> {
  gnuTimeFound ??= (async () => {
    try {
      await access(GNU_TIME, constants.X_OK);
      const { stdout, stderr } = await execa(GNU_TIME, ["--version"], { reject: false });
      return `${String(stdout)}${String(stderr)}`.includes("GNU");
    } catch {
      return false;
    }
  })();
  return gnuTimeFound;
}

/** Runs a command to completion: wall time from spawn to exit, and peak RSS when GNU time is there. */
export async function run(file: string, args: readonly string[], options: RunOptions): Promise<Measured> {
  const timeFile = (await hasGnuTime()) ? path.join(scratchDir, `${randomUUID()}.time`) : undefined;
  const [command, commandArgs] = timeFile
    ? [GNU_TIME, ["-f", "%M", "-o", timeFile, file, ...args]]
    : [file, [...args]];
  const started = performance.now();
  const result = await execa(command, commandArgs, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: false,
    reject: false,
    stdin: "ignore",
    timeout: options.timeoutMs ?? 30 * 60_000,
    maxBuffer: 256 * 1024 * 1024,
  });
  const wallMs = performance.now() - started;
  let peakRssKb: number | undefined;
  if (timeFile) {
    // GNU time writes "Command exited with non-zero status N" first when the command fails.
    const lines = (await readFile(timeFile, "utf8").catch(() => "")).trim().split("\n");
    const kb = Number(lines.at(-1));
    peakRssKb = Number.isFinite(kb) && kb > 0 ? kb : undefined;
    await rm(timeFile, { force: true });
  }
  const stdout = String(result.stdout);
  const stderr = String(result.stderr);
  const exitCode = result.exitCode ?? -1;
  if (!(options.okExitCodes ?? [0]).includes(exitCode)) {
    throw new Error(
      `${[file, ...args].join(" ")} (in ${options.cwd}) exited with ${result.signal ?? exitCode}:\n${tail(stderr || stdout)}`,
    );
  }
  return { exitCode, stdout, stderr, wallMs, peakRssKb };
}

export function tail(text: string, lines = 20): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** Runs `work` over `items`, at most `limit` at a time; results in the order of the items. */
export async function pool<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// --- temporary folders -----------------------------------------------------------

export interface TempRoot {
  readonly dir: string;
  remove(): Promise<void>;
}

/** One temporary folder for everything a benchmark writes; removed at the end, or on Ctrl-C. */
export async function tempRoot(name: string): Promise<TempRoot> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `gitops-runner-bench-${name}-`));
  scratchDir = dir;
  const onSignal = (signal: NodeJS.Signals) => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return {
    dir,
    async remove() {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      scratchDir = os.tmpdir();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

// --- the generated repository -------------------------------------------------------

/** Stack name to resource name to the resource's input; the shape of test/support/repo.ts, without cross-stack reads. */
export type AppSpec = Record<string, Record<string, Record<string, unknown>>>;

/** main.ts of a cdktf app with one TerraformStack of terraform_data resources per key of the spec. */
export function appSource(spec: AppSpec): string {
  const lines = ['import { App, DataResource, TerraformStack } from "cdktf";', "", "const app = new App();"];
  const identifier = (prefix: string, name: string) => `${prefix}_${name}`.replace(/[^A-Za-z0-9_]/g, "_");
  for (const [stack, resources] of Object.entries(spec)) {
    const stackVar = identifier("s", stack);
    lines.push(`const ${stackVar} = new TerraformStack(app, ${JSON.stringify(stack)});`);
    for (const [name, input] of Object.entries(resources)) {
      lines.push(
        `new DataResource(${stackVar}, ${JSON.stringify(name)}, { input: ${JSON.stringify(input)} });`,
      );
    }
  }
  lines.push("app.synth();", "");
  return lines.join("\n");
}

export function stackName(index: number): string {
  return `stack-${String(index).padStart(2, "0")}`;
}

/** `stacks` independent stacks of `resources` terraform_data resources each. */
export function generatedSpec(stacks: number, resources: number): AppSpec {
  const spec: AppSpec = {};
  for (let s = 0; s < stacks; s++) {
    const stack: Record<string, Record<string, unknown>> = {};
    for (let r = 0; r < resources; r++) stack[`item-${r}`] = { stack: stackName(s), index: r, value: "v1" };
    spec[stackName(s)] = stack;
  }
  return spec;
}

export async function git(dir: string, ...args: string[]): Promise<string> {
  return (await run("git", args, { cwd: dir, env: baseEnv })).stdout;
}

/** A git repository (branch main) holding the cdktf app at its root, as test/support/repo.ts makes them. */
export async function createRepo(dir: string, spec: AppSpec): Promise<void> {
  await mkdir(dir, { recursive: true });
  await git(dir, "init", "--quiet", "--initial-branch=main");
  await git(dir, "config", "user.email", "bench@example.invalid");
  await git(dir, "config", "user.name", "Benchmark");
  await cp(path.join(repoRoot, "test", "fixtures", "cdktf-app"), dir, { recursive: true });
  await writeFile(
    path.join(dir, "cdktf.json"),
    JSON.stringify({ language: "typescript", app: "node main.ts" }),
  );
  await writeFile(path.join(dir, "main.ts"), appSource(spec));
  await commitAll(dir, "Generated stacks");
}

export async function commitAll(dir: string, message: string): Promise<void> {
  await git(dir, "add", "--all");
  await git(dir, "commit", "--quiet", "-m", message);
}

// --- the runner ----------------------------------------------------------------------

/** A runner configuration file naming the engine (the one the baseline uses) and the parallelism. */
export async function writeRunnerConfig(file: string, engine: string, parallelism: number): Promise<void> {
  await writeFile(file, `${JSON.stringify({ engine, parallelism }, null, 2)}\n`);
}

/**
 * A fresh data directory whose dependency cache is `sharedCache`: the runner
 * keys entries by lockfile hash, so one warm-up install serves every data dir.
 */
export async function freshDataDir(dir: string, sharedCache: string): Promise<string> {
  await mkdir(sharedCache, { recursive: true });
  await mkdir(path.join(dir, "cache"), { recursive: true });
  await symlink(sharedCache, path.join(dir, "cache", "npm"), "dir");
  return dir;
}

/** Runs `gitops-runner ARGS` as a user would (node bin/gitops-runner.js), logs at warn. */
export function gitopsRunner(
  args: readonly string[],
  cwd: string,
  okExitCodes: readonly number[] = [0],
  env: Env = baseEnv,
): Promise<Measured> {
  return run(process.execPath, [path.join(repoRoot, "bin", "gitops-runner.js"), ...args], {
    cwd,
    env: { ...env, GITOPS_RUNNER_LOG_LEVEL: "warn" },
    okExitCodes,
  });
}

const reportSchema = z.object({
  stacks: z.array(
    z.object({
      name: z.string(),
      status: z.string(),
      error: z.object({ message: z.string() }).optional(),
    }),
  ),
});

/** Stack name to status from a `--json` report; fails on anything unexpected so no broken run is timed. */
export function stackStatuses(measured: Measured): Map<string, string> {
  const report = reportSchema.parse(JSON.parse(measured.stdout));
  return new Map(report.stacks.map((stack) => [stack.name, stack.status]));
}

export function expectStatuses(measured: Measured, what: string, expected: (name: string) => string): void {
  const wrong = [...stackStatuses(measured)].filter(([name, status]) => status !== expected(name));
  if (wrong.length > 0) {
    throw new Error(
      `${what}: unexpected stack statuses: ${wrong.map(([name, status]) => `${name}=${status}`).join(", ")}\n${tail(measured.stderr)}`,
    );
  }
}

/**
 * The node_modules the runner installed into the shared cache, so that the
 * baseline synthesizes with exactly the same dependencies.
 */
export async function cachedNodeModules(sharedCache: string): Promise<string> {
  for (const entry of await readdir(sharedCache, { withFileTypes: true })) {
    const candidate = path.join(sharedCache, entry.name, "node_modules");
    if (entry.isDirectory() && !entry.name.endsWith(".partial") && (await exists(candidate)))
      return candidate;
  }
  throw new Error(`no installed node_modules in ${sharedCache}; did the warm-up run install them?`);
}

// --- the baseline: synthesis and tofu as a user runs them ---------------------------------

/** A clone of the repository with the installed node_modules linked in, ready for `node main.ts`. */
export async function baselineCheckout(repo: string, dir: string, nodeModules: string): Promise<void> {
  await run("git", ["clone", "--quiet", repo, dir], { cwd: path.dirname(dir), env: baseEnv });
  await symlink(nodeModules, path.join(dir, "node_modules"), "dir");
}

const manifestSchema = z.object({
  stacks: z.record(z.string(), z.object({ name: z.string(), workingDirectory: z.string() })),
});

export interface SynthesizedStack {
  readonly name: string;
  readonly dir: string;
}

/** `CDKTF_OUTDIR=outDir node main.ts` in the app folder; the stacks it wrote. */
export async function synthesizeApp(
  appDir: string,
  outDir: string,
): Promise<{ measured: Measured; stacks: SynthesizedStack[] }> {
  await mkdir(outDir, { recursive: true });
  const measured = await run("node", ["main.ts"], { cwd: appDir, env: { ...baseEnv, CDKTF_OUTDIR: outDir } });
  const manifest = manifestSchema.parse(
    JSON.parse(await readFile(path.join(outDir, "manifest.json"), "utf8")),
  );
  const stacks = Object.values(manifest.stacks).map((stack) => ({
    name: stack.name,
    dir: path.resolve(outDir, stack.workingDirectory),
  }));
  return { measured, stacks };
}

/** One tofu command in a stack folder, as the runner runs it (-input=false -no-color, automation env). */
export function tofu(
  engine: string,
  dir: string,
  args: readonly string[],
  okExitCodes: readonly number[] = [0],
): Promise<Measured> {
  const [command, ...rest] = args;
  return run(engine, [command ?? "", "-input=false", "-no-color", ...rest], {
    cwd: dir,
    env: tofuEnv,
    okExitCodes,
  });
}

/** `init` with the local state at `stateFile` instead of the path cdktf wrote (the synth's folder). */
export function tofuInit(engine: string, dir: string, stateFile: string): Promise<Measured> {
  return tofu(engine, dir, ["init", `-backend-config=path=${stateFile}`]);
}

/** The wall time of steps run one after another, and the largest peak RSS among them. */
export function sequence(steps: readonly Measured[], wallMs: number): Pick<Measured, "wallMs" | "peakRssKb"> {
  const peaks = steps.map((step) => step.peakRssKb).filter((kb): kb is number => kb !== undefined);
  return { wallMs, peakRssKb: peaks.length > 0 ? Math.max(...peaks) : undefined };
}

// --- the engine and the machine --------------------------------------------------------

/** The engine binary: GITOPS_RUNNER_TERRAFORM (set by .toolchain/env.sh), else tofu on PATH. */
export async function engineBinary(): Promise<string> {
  const name = process.env.GITOPS_RUNNER_TERRAFORM || "tofu";
  const candidates = name.includes("/")
    ? [path.resolve(name)]
    : (process.env.PATH ?? "").split(":").map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this folder.
    }
  }
  throw new Error(`no ${name} on PATH: run \`source .toolchain/env.sh\` (after npm run setup) first`);
}

/** The header every benchmark prints: what is compared, engine, Node, machine. */
export async function printHeader(title: string, engine: string | undefined, notes: readonly string[]) {
  const lines = [`== ${title} ==`];
  if (engine) {
    const version = await run(engine, ["version"], { cwd: repoRoot, env: tofuEnv });
    lines.push(`engine: ${version.stdout.split("\n")[0]?.trim()} (${engine})`);
  } else {
    lines.push("engine: none found (no GITOPS_RUNNER_TERRAFORM, no tofu on PATH)");
  }
  const cpus = os.cpus();
  lines.push(
    `node ${process.version}; machine: ${os.platform()} ${os.arch()}, ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? "unknown"}), ` +
      `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, load average ${os
        .loadavg()
        .map((load) => load.toFixed(2))
        .join(" ")} at start`,
  );
  lines.push(
    (await hasGnuTime())
      ? "peak RSS: GNU time %M, the largest single process of the command's tree (not a sum)"
      : `peak RSS: not measured (${GNU_TIME} is missing or not GNU time)`,
  );
  for (const note of notes) lines.push(note);
  out(`${lines.join("\n")}\n\n`);
}

// --- figures ------------------------------------------------------------------------------

export function out(text: string): void {
  process.stdout.write(text);
}

/** Progress on stderr, so stdout holds only the figures. */
export function progress(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Wall times and peak RSS of one measured thing over the runs. */
export class Samples {
  readonly label: string;
  readonly #wallMs: number[] = [];
  readonly #rssKb: number[] = [];

  constructor(label: string) {
    this.label = label;
  }

  add(measured: Pick<Measured, "wallMs" | "peakRssKb">): void {
    this.#wallMs.push(measured.wallMs);
    if (measured.peakRssKb !== undefined) this.#rssKb.push(measured.peakRssKb);
  }

  get wallMs(): number {
    return median(this.#wallMs);
  }

  row(): string[] {
    const seconds = (ms: number) => (ms / 1000).toFixed(2);
    return [
      this.label,
      seconds(this.wallMs),
      seconds(Math.min(...this.#wallMs)),
      seconds(Math.max(...this.#wallMs)),
      String(this.#wallMs.length),
      this.#rssKb.length > 0 ? (median(this.#rssKb) / 1024).toFixed(0) : "-",
    ];
  }
}

export const SAMPLE_COLUMNS = ["", "wall s (median)", "min", "max", "runs", "peak RSS MB (median)"];

/** A plain table: first column left-aligned, the others right-aligned. */
export function printTable(headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) =>
        column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0),
      )
      .join("  ")
      .trimEnd();
  out(`${[line(headers), ...rows.map(line)].join("\n")}\n`);
}

export function percent(value: number): string {
  return `${value >= 0 ? "+" : ""}${value.toFixed(1)}%`;
}

/** Runs a benchmark's main; prints the error and exits 1 if it throws. */
export function runMain(usage: string, main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    console.error(`bench: ${error instanceof Error ? error.message : String(error)}\n${usage}`);
    process.exitCode = 1;
  });
}
