/**
 * `gitops-runner apply` of N stacks against the same work done by hand:
 * synthesize once, then `tofu init` + `plan -out` + `apply planfile` per stack,
 * at the same parallelism. Target: at most 1.0x of the baseline (no overhead).
 */
import path from "node:path";
import {
  baselineCheckout,
  cachedNodeModules,
  createRepo,
  engineBinary,
  expectStatuses,
  freshDataDir,
  generatedSpec,
  gitopsRunner,
  intFlags,
  type Measured,
  out,
  percent,
  pool,
  printHeader,
  printTable,
  progress,
  runMain,
  SAMPLE_COLUMNS,
  Samples,
  sequence,
  synthesizeApp,
  tempRoot,
  tofu,
  tofuInit,
  writeRunnerConfig,
} from "./support.ts";

const USAGE =
  "usage: node bench/apply-30.ts [--stacks N (30)] [--resources N (3)] [--parallelism N (4)] [--runs N (1)]";
const TARGET_OVERHEAD_PERCENT = 0;

runMain(USAGE, async () => {
  const flags = intFlags(process.argv.slice(2), { stacks: 30, resources: 3, parallelism: 4, runs: 1 });
  const engine = await engineBinary();
  await printHeader(
    `apply-${flags.stacks}: gitops-runner apply vs a plain tofu init/plan/apply loop, ${flags.stacks} stacks x ${flags.resources} terraform_data, parallelism ${flags.parallelism}`,
    engine,
    [
      "measured: (a) the whole `gitops-runner apply` command (git mirror, checkout, link of the cached",
      "  dependencies, synth, hashing, per stack init/version/plan/show/apply, records) on a fresh data dir",
      "  and fresh state, with the dependency cache warmed beforehand (the cold install is shown apart);",
      "  (b) `node main.ts` with CDKTF_OUTDIR once in a clone with the same node_modules, then per stack",
      "  init + plan -out + apply planfile in a node pool of the same size, each stack with its own state.",
      "  Runner and baseline alternate within each run.",
    ],
  );

  const root = await tempRoot("apply");
  try {
    const repo = path.join(root.dir, "repo");
    const sharedCache = path.join(root.dir, "dependency-cache");
    const config = path.join(root.dir, "runner.json");
    progress(`generating a repository of ${flags.stacks} stacks`);
    await createRepo(repo, generatedSpec(flags.stacks, flags.resources));
    await writeRunnerConfig(config, engine, flags.parallelism);
    const common = ["--repo", repo, "--config", config, "--json"];

    const coldSynth = new Samples("runner: synth, cold dependency cache (npm ci + synth)");
    const warmSynth = new Samples("runner: synth, warm dependency cache");
    const warmUp = await freshDataDir(path.join(root.dir, "data-warm-up"), sharedCache);
    progress("warming the dependency cache (runner synth, cold)");
    coldSynth.add(await gitopsRunner(["synth", ...common, "--data-dir", warmUp], root.dir));
    progress("runner synth, warm");
    warmSynth.add(await gitopsRunner(["synth", ...common, "--data-dir", warmUp], root.dir));

    const checkout = path.join(root.dir, "checkout");
    await baselineCheckout(repo, checkout, await cachedNodeModules(sharedCache));

    const runner = new Samples(`(a) runner: apply ${flags.stacks} stacks, fresh state, warm cache`);
    const baselineSynth = new Samples("(b) baseline: synthesize once (node main.ts)");
    const baselineLoop = new Samples(
      `(b) baseline: init + plan -out + apply, ${flags.parallelism} at a time`,
    );
    const baselineTotal = new Samples("(b) baseline: total");

    const runRunner = async (index: number) => {
      progress(`run ${index + 1}/${flags.runs}: runner apply`);
      const dataDir = await freshDataDir(path.join(root.dir, `data-${index}`), sharedCache);
      const measured = await gitopsRunner(["apply", ...common, "--data-dir", dataDir], root.dir);
      expectStatuses(measured, "runner apply", () => "applied");
      runner.add(measured);
    };
    const runBaseline = async (index: number) => {
      progress(`run ${index + 1}/${flags.runs}: baseline synth + loop`);
      const started = performance.now();
      const synth = await synthesizeApp(checkout, path.join(root.dir, `baseline-${index}`));
      const loopStarted = performance.now();
      const steps = await pool(synth.stacks, flags.parallelism, async (stack): Promise<Measured[]> => {
        const init = await tofuInit(engine, stack.dir, path.join(stack.dir, "terraform.tfstate"));
        const plan = await tofu(engine, stack.dir, ["plan", "-out=tfplan"]);
        const apply = await tofu(engine, stack.dir, ["apply", "tfplan"]);
        return [init, plan, apply];
      });
      const finished = performance.now();
      if (synth.stacks.length !== flags.stacks) {
        throw new Error(`baseline synthesized ${synth.stacks.length} stacks, expected ${flags.stacks}`);
      }
      baselineSynth.add(synth.measured);
      baselineLoop.add(sequence(steps.flat(), finished - loopStarted));
      baselineTotal.add(sequence([synth.measured, ...steps.flat()], finished - started));
    };
    for (let index = 0; index < flags.runs; index++) {
      // Alternate the order, so that neither side always runs on a warmer machine.
      if (index % 2 === 0) {
        await runRunner(index);
        await runBaseline(index);
      } else {
        await runBaseline(index);
        await runRunner(index);
      }
    }

    out("\n");
    printTable(SAMPLE_COLUMNS, [
      coldSynth.row(),
      warmSynth.row(),
      runner.row(),
      baselineSynth.row(),
      baselineLoop.row(),
      baselineTotal.row(),
    ]);
    const overhead = (runner.wallMs / baselineTotal.wallMs - 1) * 100;
    const overLoop = (runner.wallMs / baselineLoop.wallMs - 1) * 100;
    out(
      `\nrunner overhead vs baseline total (medians): ${percent(overhead)} ` +
        `(${(runner.wallMs / baselineTotal.wallMs).toFixed(2)}x; target at most 1.0x: ${overhead <= TARGET_OVERHEAD_PERCENT ? "met" : "NOT met"})\n` +
        `runner overhead vs the tofu loop alone:      ${percent(overLoop)}\n` +
        `dependency install (cold minus warm synth):  ${((coldSynth.wallMs - warmSynth.wallMs) / 1000).toFixed(2)} s, not in (a)\n`,
    );
  } finally {
    await root.remove();
  }
});
