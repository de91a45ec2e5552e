/**
 * Synthesis of this repository's example apps (stacks/demo, stacks/aws) the
 * way the runner does it, `node main.ts` with CDKTF_OUTDIR, beside
 * `cdktf synth` of cdktf-cli when it can be installed here.
 */
import { cp, mkdir, readFile, realpath, rename, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import {
  baseEnv,
  engineBinary,
  exists,
  intFlags,
  type Measured,
  out,
  printHeader,
  printTable,
  progress,
  repoRoot,
  run,
  runMain,
  SAMPLE_COLUMNS,
  Samples,
  tail,
  tempRoot,
} from "./support.ts";

const USAGE = "usage: node bench/synth.ts [--runs N (3)]";
const CDKTF_CLI_VERSION = "0.21.0";
const APPS = ["demo", "aws"] as const;
const COMPLETE_MARKER = ".bench-complete";

runMain(USAGE, async () => {
  const flags = intFlags(process.argv.slice(2), { runs: 3 });
  const stacksDir = path.join(repoRoot, "stacks");
  if (!(await exists(path.join(stacksDir, "node_modules", "cdktf")))) {
    throw new Error(`${stacksDir}/node_modules is not installed: run \`npm run setup\` first`);
  }
  await printHeader(
    `synth: the example apps (stacks/${APPS.join(", stacks/")}) synthesized as the runner does it vs cdktf-cli ${CDKTF_CLI_VERSION}`,
    await engineBinary().catch(() => undefined),
    [
      "the engine takes no part in synthesis; it is named for comparison with the other benchmarks.",
      "measured: the runner's way, `node main.ts` with CDKTF_OUTDIR (the app command of cdktf.json, no CLI);",
      '  cdktf-cli: `cdktf synth --app "node main.ts" --output DIR --check-code-maker-output=false` (the apps',
      "  use prebuilt providers, no .gen) with CI=1 CHECKPOINT_DISABLE=1 DISABLE_VERSION_CHECK=1.",
      "  Both run on a copy of the app beside stacks/node_modules, into a fresh output folder, alternating,",
      "  after one warm-up run each that is not counted.",
    ],
  );

  const root = await tempRoot("synth");
  try {
    // A copy of the apps, so that nothing a tool writes lands in this repository.
    const appsDir = path.join(root.dir, "stacks");
    await mkdir(appsDir);
    await cp(path.join(stacksDir, "package.json"), path.join(appsDir, "package.json"));
    await symlink(path.join(stacksDir, "node_modules"), path.join(appsDir, "node_modules"), "dir");
    for (const app of APPS) await cp(path.join(stacksDir, app), path.join(appsDir, app), { recursive: true });
    let output = 0;
    const outDir = () => path.join(root.dir, `out-${output++}`);

    const cli = await cdktfCli(CDKTF_CLI_VERSION, path.join(appsDir, "demo"), outDir);
    out(
      "problem" in cli
        ? `cdktf-cli ${CDKTF_CLI_VERSION} is not measured: ${cli.problem}\n\n`
        : `${cli.description}\n\n`,
    );

    const rows: string[][] = [];
    const ratios: string[] = [];
    for (const app of APPS) {
      const appDir = path.join(appsDir, app);
      const context = await appContext(appDir);
      const runner = new Samples(`${app}: node main.ts (runner)`);
      const cdktf = new Samples(`${app}: cdktf synth (cdktf-cli)`);
      const synthWith = async (tool: "runner" | "cdktf") => {
        if (tool === "runner") return synthWithNode(appDir, outDir(), context);
        return "problem" in cli ? undefined : synthWithCli(cli.command, appDir, outDir());
      };
      progress(`${app}: warm-up, not counted`);
      await synthWith("runner");
      await synthWith("cdktf");
      for (let index = 0; index < flags.runs; index++) {
        progress(`${app}: run ${index + 1}/${flags.runs}`);
        const order = index % 2 === 0 ? (["runner", "cdktf"] as const) : (["cdktf", "runner"] as const);
        for (const tool of order) {
          const measured = await synthWith(tool);
          if (measured) (tool === "runner" ? runner : cdktf).add(measured);
        }
      }
      rows.push(runner.row());
      if (!("problem" in cli)) {
        rows.push(cdktf.row());
        ratios.push(
          `${app}: cdktf-cli takes ${(cdktf.wallMs / runner.wallMs).toFixed(2)}x the wall time of node main.ts`,
        );
      }
    }
    out("\n");
    printTable(SAMPLE_COLUMNS, rows);
    if (ratios.length > 0) out(`\n${ratios.join("\n")}\n`);
  } finally {
    await root.remove();
  }
});

/** The runner's synthesis: the app command with CDKTF_OUTDIR and the context of cdktf.json. */
async function synthWithNode(appDir: string, outDir: string, context: string): Promise<Measured> {
  await mkdir(outDir);
  const measured = await run("node", ["main.ts"], {
    cwd: appDir,
    env: { ...baseEnv, CDKTF_OUTDIR: outDir, CDKTF_CONTEXT_JSON: context, CI: "1", CHECKPOINT_DISABLE: "1" },
  });
  await expectManifest(outDir, "node main.ts");
  return measured;
}

async function synthWithCli(
  [node, script]: readonly [string, string],
  appDir: string,
  outDir: string,
): Promise<Measured> {
  // The apps use prebuilt provider packages, so there is no .gen for cdktf-cli to check.
  const args = ["synth", "--app", "node main.ts", "--output", outDir, "--check-code-maker-output=false"];
  const measured = await run(node, [script, ...args], {
    cwd: appDir,
    env: CLI_ENV,
  });
  await expectManifest(outDir, "cdktf synth");
  return measured;
}

async function expectManifest(outDir: string, what: string): Promise<void> {
  if (!(await exists(path.join(outDir, "manifest.json")))) {
    throw new Error(`${what} wrote no manifest.json into ${outDir}`);
  }
}

async function appContext(appDir: string): Promise<string> {
  const config = z
    .looseObject({ context: z.record(z.string(), z.unknown()).optional() })
    .parse(JSON.parse(await readFile(path.join(appDir, "cdktf.json"), "utf8")));
  return JSON.stringify(config.context ?? {});
}

type CdktfCli =
  | {
      /** The Node binary and the CLI's script; the app it spawns still runs on PATH's node. */
      readonly command: readonly [string, string];
      readonly description: string;
    }
  | { readonly problem: string };

const CLI_ENV = { ...baseEnv, CI: "1", CHECKPOINT_DISABLE: "1", DISABLE_VERSION_CHECK: "1" };

/**
 * cdktf-cli, installed (once) and run by the first Node on this machine that
 * synthesizes `probeApp` with it; `cdktf --version` does not load everything.
 */
async function cdktfCli(version: string, probeApp: string, outDir: () => string): Promise<CdktfCli> {
  const installed = await installCdktfCli(version);
  if ("problem" in installed) return installed;
  const script = await realpath(installed.bin);
  const installNote = installed.installMs
    ? `installed now in ${(installed.installMs / 1000).toFixed(1)} s`
    : "installed earlier";
  // npm builds its native addon (node-pty) against npm's nodedir headers, which
  // may be another Node's than the one on PATH; then only that Node loads it.
  const failures: string[] = [];
  for (const node of await nodeBinaries()) {
    try {
      await synthWithCli([node, script], probeApp, outDir());
      const nodeVersion = (await run(node, ["--version"], { cwd: os.tmpdir(), env: baseEnv })).stdout.trim();
      const failed = failures.length > 0 ? `; it does not load on ${failures.join("; ")}` : "";
      return {
        command: [node, script],
        description: `cdktf-cli ${version} at ${installed.bin} (${installNote}), run by ${node} ${nodeVersion}${failed}`,
      };
    } catch (error) {
      failures.push(`${node}: ${firstError(error)}`);
    }
  }
  return { problem: `it installs (${installNote}) but no Node here runs it:\n  ${failures.join("\n  ")}` };
}

/** Every distinct node on PATH, then the system's. */
async function nodeBinaries(): Promise<string[]> {
  const candidates = [
    ...(process.env.PATH ?? "").split(":").map((dir) => path.join(dir, "node")),
    "/usr/local/bin/node",
    "/usr/bin/node",
  ];
  const found = new Map<string, string>();
  for (const candidate of candidates) {
    const real = await realpath(candidate).catch(() => undefined);
    if (real && !found.has(real)) found.set(real, candidate);
  }
  return [...found.values()];
}

/** Why a Node could not run the CLI, in one line. */
function firstError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const abis = [...message.matchAll(/NODE_MODULE_VERSION (\d+)/g)].map((match) => match[1]);
  if (abis.length === 2) {
    return `its native addon (node-pty) was built for NODE_MODULE_VERSION ${abis[0]}, this Node needs ${abis[1]}`;
  }
  const lines = message.split("\n").map((line) => line.trim());
  return lines.find((line) => /^(\w*Error\b|ERROR\b)/.test(line)) ?? lines[0] ?? "";
}

/**
 * Installs cdktf-cli once per version into the temporary folder and keeps it
 * there (written beside and renamed into place, so an interrupted install is
 * never taken for a complete one).
 */
async function installCdktfCli(
  version: string,
): Promise<{ readonly bin: string; readonly installMs?: number } | { readonly problem: string }> {
  const dir = path.join(os.tmpdir(), `gitops-runner-bench-cdktf-cli-${version}`);
  const bin = path.join(dir, "node_modules", ".bin", "cdktf");
  if (await exists(path.join(dir, COMPLETE_MARKER))) return { bin };
  const staging = `${dir}.${process.pid}.partial`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  progress(`installing cdktf-cli ${version} into ${dir} (once)`);
  try {
    const install = await run(
      "npm",
      ["install", "--prefix", staging, `cdktf-cli@${version}`, "--no-audit", "--no-fund", "--loglevel=error"],
      { cwd: staging, env: baseEnv, timeoutMs: 15 * 60_000 },
    ).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
    if (install instanceof Error) return { problem: `npm install failed: ${install.message}` };
    if (!(await exists(path.join(staging, "node_modules", ".bin", "cdktf")))) {
      return { problem: `npm install left no cdktf command:\n${tail(install.stderr)}` };
    }
    await writeFile(path.join(staging, COMPLETE_MARKER), "");
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
    return { bin, installMs: install.wallMs };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
