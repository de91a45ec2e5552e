/**
 * `gitops-runner plan --ref BRANCH` where BRANCH changes one of N applied
 * stacks, against what a user would do for that one stack: synthesize the app
 * once, then init + plan it alone. Target: at most 1.5x the baseline.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  appSource,
  baselineCheckout,
  cachedNodeModules,
  commitAll,
  createRepo,
  engineBinary,
  expectStatuses,
  freshDataDir,
  generatedSpec,
  git,
  gitopsRunner,
  intFlags,
  out,
  printHeader,
  printTable,
  progress,
  runMain,
  SAMPLE_COLUMNS,
  Samples,
  type SynthesizedStack,
  sequence,
  stackName,
  synthesizeApp,
  tempRoot,
  tofu,
  tofuInit,
  writeRunnerConfig,
} from "./support.ts";

const USAGE =
  "usage: node bench/plan-one-of-30.ts [--stacks N (30)] [--resources N (3)] [--parallelism N (4)] [--runs N (3)]";
const TARGET_RATIO = 1.5;
const BRANCH = "bench-change";

runMain(USAGE, async () => {
  const flags = intFlags(process.argv.slice(2), { stacks: 30, resources: 3, parallelism: 4, runs: 3 });
  const engine = await engineBinary();
  const changed = stackName(0);
  await printHeader(
    `plan-one-of-${flags.stacks}: gitops-runner plan of a branch changing 1 of ${flags.stacks} applied stacks vs synth + init + plan of that stack alone`,
    engine,
    [
      `measured: (a) the whole \`gitops-runner plan --ref ${BRANCH}\` command on the data dir that applied main`,
      "  (warm dependency cache, git mirror and state in place); (b) `node main.ts` with CDKTF_OUTDIR in a",
      `  clone at ${BRANCH} with the same node_modules, then init + plan -out of ${changed} alone against`,
      "  its own state from an apply of main. Runner and baseline alternate within each run.",
    ],
  );

  const root = await tempRoot("plan");
  try {
    const repo = path.join(root.dir, "repo");
    const sharedCache = path.join(root.dir, "dependency-cache");
    const config = path.join(root.dir, "runner.json");
    const spec = generatedSpec(flags.stacks, flags.resources);
    progress(`generating a repository of ${flags.stacks} stacks`);
    await createRepo(repo, spec);
    await writeRunnerConfig(config, engine, flags.parallelism);
    const common = ["--repo", repo, "--config", config, "--data-dir"];
    const dataDir = await freshDataDir(path.join(root.dir, "data"), sharedCache);

    progress(`setup: runner apply of main (${flags.stacks} stacks, cold dependency cache)`);
    const setupApply = new Samples("setup: runner apply of main, cold dependency cache");
    const applied = await gitopsRunner(["apply", ...common, dataDir, "--json"], root.dir);
    expectStatuses(applied, "runner apply of main", () => "applied");
    setupApply.add(applied);

    const changedSpec = structuredClone(spec);
    const changedStack = changedSpec[changed];
    if (changedStack?.["item-0"] === undefined) throw new Error(`${changed} has no item-0`);
    changedStack["item-0"] = { ...changedStack["item-0"], value: "v2" };
    await git(repo, "checkout", "--quiet", "-b", BRANCH);
    await writeFile(path.join(repo, "main.ts"), appSource(changedSpec));
    await commitAll(repo, `Change ${changed}`);
    await git(repo, "checkout", "--quiet", "main");

    progress(`setup: baseline apply of ${changed} at main`);
    const checkout = path.join(root.dir, "checkout");
    await baselineCheckout(repo, checkout, await cachedNodeModules(sharedCache));
    const stateFile = path.join(root.dir, "baseline-state", "terraform.tfstate");
    await mkdir(path.dirname(stateFile), { recursive: true });
    const mainStack = findStack((await synthesizeApp(checkout, path.join(root.dir, "baseline-main"))).stacks);
    await tofuInit(engine, mainStack.dir, stateFile);
    await tofu(engine, mainStack.dir, ["plan", "-out=tfplan"]);
    await tofu(engine, mainStack.dir, ["apply", "tfplan"]);
    await git(checkout, "checkout", "--quiet", BRANCH);

    const runner = new Samples(`(a) runner: plan --ref ${BRANCH}`);
    const baselineSynth = new Samples("(b) baseline: synthesize once (node main.ts)");
    const baselinePlan = new Samples(`(b) baseline: init + plan -out of ${changed}`);
    const baselineTotal = new Samples("(b) baseline: total");

    const runRunner = async (index: number) => {
      progress(`run ${index + 1}/${flags.runs}: runner plan`);
      // Exit code 2: a stack has changes.
      const measured = await gitopsRunner(
        ["plan", ...common, dataDir, "--ref", BRANCH, "--json"],
        root.dir,
        [2],
      );
      expectStatuses(measured, "runner plan", (name) => (name === changed ? "changes" : "skipped"));
      runner.add(measured);
    };
    const runBaseline = async (index: number) => {
      progress(`run ${index + 1}/${flags.runs}: baseline synth + init + plan`);
      const started = performance.now();
      const synth = await synthesizeApp(checkout, path.join(root.dir, `baseline-${index}`));
      const planStarted = performance.now();
      const stack = findStack(synth.stacks);
      const init = await tofuInit(engine, stack.dir, stateFile);
      // Exit code 2 of -detailed-exitcode: the change is seen, as the runner sees it.
      const plan = await tofu(engine, stack.dir, ["plan", "-detailed-exitcode", "-out=tfplan"], [2]);
      const finished = performance.now();
      baselineSynth.add(synth.measured);
      baselinePlan.add(sequence([init, plan], finished - planStarted));
      baselineTotal.add(sequence([synth.measured, init, plan], finished - started));
    };
    for (let index = 0; index < flags.runs; index++) {
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
      setupApply.row(),
      runner.row(),
      baselineSynth.row(),
      baselinePlan.row(),
      baselineTotal.row(),
    ]);
    const ratio = runner.wallMs / baselineTotal.wallMs;
    out(
      `\nrunner / baseline total (medians): ${ratio.toFixed(2)}x ` +
        `(target at most ${TARGET_RATIO}x: ${ratio <= TARGET_RATIO ? "met" : "NOT met"})\n`,
    );
  } finally {
    await root.remove();
  }

  function findStack(stacks: readonly SynthesizedStack[]): SynthesizedStack {
    const stack = stacks.find((candidate) => candidate.name === changed);
    if (!stack) throw new Error(`the synthesized app has no stack ${changed}`);
    return stack;
  }
});
