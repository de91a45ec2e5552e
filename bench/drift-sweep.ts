/**
 * A drift sweep of applied stacks, side by side with the same work done by
 * hand: the runner's `gitops-runner drift` over every applied stack against
 * `xargs -P<parallelism>` of a raw `init` + `plan -detailed-exitcode` in copies
 * of the same applied folders, on the same state. Shared by bench/drift-100.ts
 * (terraform_data) and bench/drift-aws.ts (AWS provider on moto).
 */
import { cp, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  baseEnv,
  expectStatuses,
  freshDataDir,
  gitopsRunner,
  type Measured,
  out,
  printTable,
  progress,
  run,
  SAMPLE_COLUMNS,
  Samples,
  tofuEnv,
} from "./support.ts";

export interface SweepOptions {
  readonly root: string;
  readonly repo: string;
  readonly engine: string;
  readonly parallelism: number;
  readonly runs: number;
  /** Variables both sides get (e.g. credentials and the endpoint of an AWS emulator). */
  readonly env: Readonly<Record<string, string>>;
  readonly stacks: number;
  readonly target: number;
}

export async function driftSweep(options: SweepOptions): Promise<void> {
  const { root, repo, engine } = options;
  const config = path.join(root, "runner.json");
  await writeFile(config, JSON.stringify({ engine, parallelism: options.parallelism, env: options.env }));
  const data = await freshDataDir(path.join(root, "data"), path.join(root, "dependency-cache"));
  const common = ["--repo", repo, "--config", config, "--data-dir", data, "--json"];
  const env = { ...baseEnv, ...options.env };

  progress(`applying ${options.stacks} stacks once (not measured)`);
  expectStatuses(await gitopsRunner(["apply", ...common], root, [0], env), "runner apply", () => "applied");

  // The baseline plans the very folders the runner kept, on the very state files.
  const [repoId] = await readdir(path.join(data, "applied"));
  if (!repoId) throw new Error("the runner kept no applied folders");
  const applied = path.join(data, "applied", repoId, "_");
  const stacks = (await readdir(applied)).filter((name) => !name.endsWith(".partial"));
  const cliConfig = await runnerCliConfig(data);
  const engineEnv = { ...tofuEnv, ...options.env, ...(cliConfig ? { TF_CLI_CONFIG_FILE: cliConfig } : {}) };
  const check = path.join(root, "check.sh");
  await writeFile(
    check,
    [
      "#!/bin/sh",
      "# One stack's drift check by hand: init on its state, then plan with refresh.",
      'cd "$1" || exit 1',
      `"${engine}" init -input=false -no-color -backend-config=path="$(cat STATE_PATH)" >/dev/null || exit 1`,
      `"${engine}" plan -input=false -no-color -detailed-exitcode -lock-timeout=30s >/dev/null`,
      'code=$?; [ "$code" -eq 0 ] || [ "$code" -eq 2 ]',
      "",
    ].join("\n"),
  );

  const runner = new Samples(`(a) runner: gitops-runner drift of ${stacks.length} stacks`);
  const baseline = new Samples(`(b) baseline: xargs -P${options.parallelism} init + plan -detailed-exitcode`);
  const sweepRunner = async (index: number) => {
    progress(`run ${index + 1}/${options.runs}: runner drift`);
    const measured = await gitopsRunner(["drift", ...common], root, [0], env);
    expectStatuses(measured, "runner drift", () => "no-changes");
    runner.add(measured);
  };
  const sweepBaseline = async (index: number) => {
    progress(`run ${index + 1}/${options.runs}: baseline, fresh copies of the applied folders`);
    const copies = path.join(root, `baseline-${index}`);
    await rm(copies, { recursive: true, force: true });
    for (const stack of stacks) {
      const dir = path.join(copies, stack);
      await mkdir(dir, { recursive: true });
      await cp(path.join(applied, stack), dir, { recursive: true });
      await writeFile(
        path.join(dir, "STATE_PATH"),
        path.join(data, "state", repoId, "_", stack, "terraform.tfstate"),
      );
    }
    const list = stacks.map((stack) => path.join(copies, stack)).join("\n");
    const measured: Measured = await run(
      "sh",
      ["-c", `printf '%s\\n' "$LIST" | xargs -P ${options.parallelism} -n 1 sh "${check}"`],
      { cwd: root, env: { ...engineEnv, LIST: list } },
    );
    baseline.add(measured);
  };
  for (let index = 0; index < options.runs; index++) {
    // Alternate the order, so that neither side always runs on a warmer machine.
    if (index % 2 === 0) {
      await sweepRunner(index);
      await sweepBaseline(index);
    } else {
      await sweepBaseline(index);
      await sweepRunner(index);
    }
  }

  out("\n");
  printTable(SAMPLE_COLUMNS, [runner.row(), baseline.row()]);
  const ratio = runner.wallMs / baseline.wallMs;
  out(
    `\nrunner / baseline (medians): ${ratio.toFixed(2)}x ` +
      `(target at most ${options.target.toFixed(1)}x: ${ratio <= options.target ? "met" : "NOT met"})\n`,
  );
}

/** The engine CLI configuration the runner wrote for a provider mirror, if any, so both sides use it. */
async function runnerCliConfig(data: string): Promise<string | undefined> {
  const folder = path.join(data, "cli-config");
  const keys = await readdir(folder).catch(() => [] as string[]);
  return keys[0] ? path.join(folder, keys[0], "terraformrc") : undefined;
}
