/**
 * The runner's drift sweep of 100 applied terraform_data stacks against
 * `xargs -P<same parallelism>` of a raw `init` + `plan -detailed-exitcode` in
 * copies of the same applied folders. Target: at most 1.2x.
 */
import path from "node:path";
import { driftSweep } from "./drift-sweep.ts";
import {
  createRepo,
  engineBinary,
  generatedSpec,
  intFlags,
  printHeader,
  runMain,
  tempRoot,
} from "./support.ts";

const USAGE =
  "usage: node bench/drift-100.ts [--stacks N (100)] [--resources N (3)] [--parallelism N (4)] [--runs N (3)]";

runMain(USAGE, async () => {
  const flags = intFlags(process.argv.slice(2), { stacks: 100, resources: 3, parallelism: 4, runs: 3 });
  const engine = await engineBinary();
  await printHeader(
    `drift-${flags.stacks}: a drift sweep of ${flags.stacks} applied stacks x ${flags.resources} terraform_data, parallelism ${flags.parallelism}`,
    engine,
    [
      "measured: (a) the whole `gitops-runner drift` command (git fetch, the head's stored snapshot, per stack",
      "  a copy of the applied folder, init, plan -detailed-exitcode with refresh, and show -json only for changes,",
      "  records); (b) xargs -P of `init` + `plan -detailed-exitcode` in copies made beforehand (not timed).",
      "  Runner and baseline alternate within each run.",
    ],
  );
  const root = await tempRoot("drift");
  try {
    const repo = path.join(root.dir, "repo");
    await createRepo(repo, generatedSpec(flags.stacks, flags.resources));
    await driftSweep({
      root: root.dir,
      repo,
      engine,
      parallelism: flags.parallelism,
      runs: flags.runs,
      env: {},
      stacks: flags.stacks,
      target: 1.2,
    });
  } finally {
    await root.remove();
  }
});
