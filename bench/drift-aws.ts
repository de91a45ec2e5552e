/**
 * The runner's drift sweep of 6 AWS-provider stacks on moto (an AWS API
 * emulator on loopback) against `xargs -P<same parallelism>` of a raw `init` +
 * `plan -detailed-exitcode` in copies of the same applied folders. Here the
 * provider's start-up dominates: skipping `show -json` for plans without
 * changes is what brings the runner to the baseline. Target: at most 1.1x.
 */
import { cp, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { startMoto } from "../test/support/moto.ts";
import { driftSweep } from "./drift-sweep.ts";
import {
  commitAll,
  engineBinary,
  git,
  intFlags,
  printHeader,
  repoRoot,
  runMain,
  tempRoot,
} from "./support.ts";

const USAGE = "usage: node bench/drift-aws.ts [--stacks N (6)] [--parallelism N (4)] [--runs N (3)]";

/** One stack per queue, each with its own AWS provider, as the example stacks write it. */
function awsApp(stacks: number): string {
  const lines = [
    'import { AwsProvider } from "@cdktf/provider-aws/lib/provider/index.js";',
    'import { SqsQueue } from "@cdktf/provider-aws/lib/sqs-queue/index.js";',
    'import { App, TerraformStack } from "cdktf";',
    "const app = new App();",
  ];
  for (let index = 0; index < stacks; index++) {
    lines.push(
      `{ const stack = new TerraformStack(app, "queues-${index}"); new AwsProvider(stack, "aws", { region: "us-east-1" });`,
      `  new SqsQueue(stack, "jobs", { name: "bench-jobs-${index}", visibilityTimeoutSeconds: 30 }); }`,
    );
  }
  lines.push("app.synth();", "");
  return lines.join("\n");
}

runMain(USAGE, async () => {
  const flags = intFlags(process.argv.slice(2), { stacks: 6, parallelism: 4, runs: 3 });
  const motoServer = process.env.GITOPS_RUNNER_TEST_MOTO_SERVER;
  if (!motoServer) throw new Error("no moto: run it through `bash scripts/run.sh` after `npm run setup`");
  const engine = await engineBinary();
  await printHeader(
    `drift-aws: a drift sweep of ${flags.stacks} AWS stacks (one SQS queue each) on moto, parallelism ${flags.parallelism}`,
    engine,
    [
      "measured: (a) the whole `gitops-runner drift` command; (b) xargs -P of `init` + `plan -detailed-exitcode`",
      "  in copies of the same applied folders, with the provider from the same mirror. Alternating.",
    ],
  );
  const moto = await startMoto(motoServer);
  const root = await tempRoot("drift-aws");
  try {
    const repo = path.join(root.dir, "repo");
    await mkdir(repo, { recursive: true });
    await git(repo, "init", "--quiet", "--initial-branch=main");
    await git(repo, "config", "user.email", "bench@example.invalid");
    await git(repo, "config", "user.name", "Benchmark");
    for (const file of ["package.json", "package-lock.json"]) {
      await cp(path.join(repoRoot, "stacks", file), path.join(repo, file));
    }
    await writeFile(
      path.join(repo, "cdktf.json"),
      JSON.stringify({ language: "typescript", app: "node main.ts" }),
    );
    await writeFile(path.join(repo, "main.ts"), awsApp(flags.stacks));
    await commitAll(repo, "Queues");
    await driftSweep({
      root: root.dir,
      repo,
      engine,
      parallelism: flags.parallelism,
      runs: flags.runs,
      env: {
        AWS_ACCESS_KEY_ID: "testing",
        AWS_SECRET_ACCESS_KEY: "testing",
        AWS_REGION: "us-east-1",
        AWS_ENDPOINT_URL: moto.endpoint,
      },
      stacks: flags.stacks,
      target: 1.1,
    });
  } finally {
    await root.remove();
    await moto.stop();
  }
});
