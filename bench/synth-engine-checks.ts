/**
 * The runner's synthesis of 100 stacks of 3 terraform_data resources, for
 * each of which cdktf checks the engine's version: with cdktf running
 * `<engine> version` every time, with the runner's preload answering from
 * the version it knows, and that way in the bubblewrap sandbox.
 */
import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import pino from "pino";
import { createSandbox, noSandbox, type Sandbox } from "../src/process/sandbox.ts";
import { synthEnvironment, synthesize } from "../src/synth/synthesize.ts";
import { type Engine, TerraformCli } from "../src/terraform/cli.ts";
import {
  appSource,
  baseEnv,
  engineBinary,
  exists,
  generatedSpec,
  intFlags,
  out,
  printHeader,
  printTable,
  progress,
  repoRoot,
  runMain,
  SAMPLE_COLUMNS,
  Samples,
  tempRoot,
  tofuEnv,
} from "./support.ts";

const USAGE =
  "usage: node bench/synth-engine-checks.ts [--runs N (3)] [--stacks N (100)] [--resources N (3)]";

interface Variant {
  readonly label: string;
  readonly engine?: Engine;
  readonly sandbox: Sandbox;
}

runMain(USAGE, async () => {
  const flags = intFlags(process.argv.slice(2), { runs: 3, stacks: 100, resources: 3 });
  const nodeModules = path.join(repoRoot, "stacks", "node_modules");
  if (!(await exists(path.join(nodeModules, "cdktf")))) {
    throw new Error(`${nodeModules} is not installed: run \`npm run setup\` first`);
  }
  const binary = await engineBinary();
  await printHeader(
    `synth: ${flags.stacks} stacks of ${flags.resources} terraform_data resources, cdktf's engine version checks`,
    binary,
    [
      "measured: the runner's synthesize() (`node main.ts` through /bin/sh, manifest read and checked), wall time;",
      "  cdktf checks the engine's version once per terraform_data resource. The variants alternate, after one",
      "  warm-up run each that is not counted. Peak RSS is not measured here: synthesize() starts the app itself.",
    ],
  );

  const root = await tempRoot("synth-engine-checks");
  try {
    const appDir = path.join(root.dir, "app");
    await mkdir(appDir);
    await writeFile(path.join(appDir, "package.json"), JSON.stringify({ type: "module", private: true }));
    await writeFile(path.join(appDir, "cdktf.json"), JSON.stringify({ app: "node main.ts" }));
    await writeFile(path.join(appDir, "main.ts"), appSource(generatedSpec(flags.stacks, flags.resources)));
    await symlink(nodeModules, path.join(appDir, "node_modules"), "dir");

    const engine = await new TerraformCli({
      binary,
      env: tofuEnv,
      timeoutMs: 60_000,
      lockTimeout: "0s",
    }).engine();
    const logger = pino({ level: "warn" }, pino.destination(2));
    const bubblewrap = await createSandbox({
      bwrap: "bwrap",
      searchPath: baseEnv.PATH ?? "",
      readOnly: [binary],
      hidden: [],
      logger,
    });
    const variants: Variant[] = [
      { label: "cdktf runs `<engine> version` per resource", sandbox: noSandbox },
      { label: "the runner's version, preloaded", engine, sandbox: noSandbox },
    ];
    if (bubblewrap.kind === "bubblewrap") {
      variants.push({
        label: "preloaded, in bubblewrap (as the runner runs it)",
        engine,
        sandbox: bubblewrap,
      });
    } else {
      out("bubblewrap cannot start here: the sandboxed variant is not measured\n\n");
    }

    let output = 0;
    const synth = async (variant: Variant) => {
      const outDir = path.join(root.dir, `out-${output++}`);
      const started = performance.now();
      const result = await synthesize({
        appDir,
        outDir,
        env: { ...synthEnvironment(baseEnv), TERRAFORM_BINARY_NAME: binary },
        timeoutMs: 600_000,
        maxOldSpaceMb: 4096,
        sandbox: variant.sandbox,
        readOnly: [nodeModules],
        ...(variant.engine ? { engine: variant.engine } : {}),
      });
      if (result.stacks.length !== flags.stacks) {
        throw new Error(`${variant.label}: ${result.stacks.length} stacks, expected ${flags.stacks}`);
      }
      return { wallMs: performance.now() - started, peakRssKb: undefined };
    };

    const samples = variants.map((variant) => new Samples(variant.label));
    for (const variant of variants) {
      progress(`${variant.label}: warm-up, not counted`);
      await synth(variant);
    }
    for (let index = 0; index < flags.runs; index++) {
      progress(`run ${index + 1}/${flags.runs}`);
      // Rotate the order, so that no variant always runs first.
      for (let offset = 0; offset < variants.length; offset++) {
        const which = (index + offset) % variants.length;
        samples[which]?.add(await synth(variants[which] as Variant));
      }
    }
    out("\n");
    // Without the peak RSS column.
    printTable(
      SAMPLE_COLUMNS.slice(0, -1),
      samples.map((sample) => sample.row().slice(0, -1)),
    );
    const [before, ...after] = samples;
    if (before) {
      out(
        `\n${after.map((sample) => `${sample.label}: ${(before.wallMs / sample.wallMs).toFixed(1)}x faster than cdktf's own checks`).join("\n")}\n`,
      );
    }
  } finally {
    await root.remove();
  }
});
