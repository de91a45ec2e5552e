/**
 * The CI recipes in docs/ci, run the way the CI systems run them: each job's
 * shell lines exactly as the recipe writes them, with the recipe's own
 * variables, and only the values the CI system provides (commit, default
 * branch, the checkout) taken from a local repository. The steps that install
 * gitops-runner and OpenTofu are not run: the test puts this checkout's
 * runner on PATH as `npm install --global` would, and the engine is the
 * test's own. The data directory is kept from job to job, as on a runner
 * whose data directory outlives jobs.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { type AppSpec, dataDir, TestRepo } from "./support/repo.ts";
import { inheritedEnv, repoRoot, tempDir } from "./support/toolchain.ts";

const run = promisify(execFile);

type Event = "pull_request" | "push";

interface Job {
  readonly event: Event;
  /** The commit the CI system runs the job for. */
  readonly commit: string;
  /** The branch it belongs to (the pull request's source branch, or the default branch). */
  readonly branch: string;
}

interface JobRun {
  readonly code: number;
  readonly output: string;
  /** The runner's JSON document the job wrote (plan.json or apply.json). */
  readonly document: any;
}

/** One CI system: reads its recipe, and turns a job into a checkout and shell lines. */
interface Recipe {
  readonly name: string;
  /** The checkout the CI system makes: which refs it fetches; it leaves the commit detached. */
  readonly fetched: (job: Job) => string[];
  /** The shell, the environment and the script of the job, from the recipe. */
  readonly job: (
    job: Job,
    context: CiContext,
  ) => { shell: string[]; env: Record<string, string>; script: string };
}

interface CiContext {
  readonly workspace: string;
  readonly dataDir: string;
}

const DEFAULT_BRANCH = "main";

/** `${{ expression }}` to its value, for the expressions the workflow may use; any other one fails the test. */
function githubExpressions(job: Job, context: CiContext): Record<string, string> {
  return {
    "github.event.repository.default_branch": DEFAULT_BRANCH,
    "vars.GITOPS_RUNNER_DATA_DIR || '/tmp/gitops-runner'": context.dataDir,
    ...(job.event === "pull_request"
      ? { "github.event.pull_request.head.sha": job.commit }
      : { "github.sha": job.commit }),
  };
}

function substitute(text: string, expressions: Record<string, string>): string {
  return text.replaceAll(/\$\{\{\s*(.*?)\s*\}\}/g, (_, expression: string) => {
    const value = expressions[expression];
    if (value === undefined) throw new Error(`the test does not provide \${{ ${expression} }}`);
    return value;
  });
}

const github: Recipe = {
  name: "GitHub Actions",
  // actions/checkout with fetch-depth 0: every branch as a remote-tracking ref, then the commit.
  fetched: () => ["+refs/heads/*:refs/remotes/origin/*"],
  job(job, context) {
    const workflow = parse(readRecipe("github-actions.yml"));
    expect(Object.keys(workflow.on)).toEqual(["pull_request", "push"]);
    expect(workflow.defaults.run.shell).toBe("bash");
    const steps: { id?: string; if?: string; env?: Record<string, string>; run?: string }[] =
      workflow.jobs["gitops-runner"].steps;
    const step = (id: string) => {
      const found = steps.find((candidate) => candidate.id === id);
      if (!found?.run) throw new Error(`the workflow has no step "${id}" that runs a command`);
      return found;
    };
    const command = step(job.event === "pull_request" ? "plan" : "apply");
    expect(command.if).toBe(`github.event_name == '${job.event}'`);
    const expressions = githubExpressions(job, context);
    const env = Object.fromEntries(
      Object.entries({ ...workflow.env, ...command.env }).map(([name, value]) => [
        name,
        substitute(String(value), expressions),
      ]),
    );
    const script = [step("repository"), command]
      .map((chosen) => substitute(chosen.run ?? "", expressions))
      .join("\n");
    // What `shell: bash` runs.
    return { shell: ["bash", "--noprofile", "--norc", "-eo", "pipefail"], env, script };
  },
};

const gitlab: Recipe = {
  name: "GitLab CI/CD",
  // GitLab fetches the pipeline's own ref only, then checks the commit out detached.
  fetched: (job) => [`+refs/heads/${job.branch}:refs/remotes/origin/${job.branch}`],
  job(job, context) {
    const config = parse(readRecipe("gitlab-ci.yml"));
    const definition = config[job.event === "pull_request" ? "gitops-runner-plan" : "gitops-runner-apply"];
    expect(definition.extends).toBe(".gitops-runner");
    expect(definition.rules[0].if).toMatch(
      job.event === "pull_request"
        ? /^\$CI_PIPELINE_SOURCE == "merge_request_event"/
        : /^\$CI_PIPELINE_SOURCE == "push" && \$CI_COMMIT_BRANCH == \$CI_DEFAULT_BRANCH$/,
    );
    const variables: Record<string, string> = {};
    for (const [name, value] of Object.entries<string | { value: string; expand?: boolean }>(
      config.variables,
    )) {
      const literal = typeof value === "object" && value.expand === false;
      const text = typeof value === "object" ? value.value : String(value);
      // GitLab would expand references in the value; the recipe has none to expand.
      if (!literal && text.includes("$")) throw new Error(`variable ${name} needs expansion`);
      variables[name] = text;
    }
    const env = {
      ...variables,
      // A CI/CD variable of the project overrides the file's.
      GITOPS_RUNNER_DATA_DIR: context.dataDir,
      CI_COMMIT_SHA: job.commit,
      CI_DEFAULT_BRANCH: DEFAULT_BRANCH,
      CI_PROJECT_DIR: context.workspace,
      CI_PIPELINE_SOURCE: job.event === "pull_request" ? "merge_request_event" : "push",
      ...(job.event === "push" ? { CI_COMMIT_BRANCH: job.branch } : {}),
    };
    // The script's entries, anchors flattened as GitLab does.
    const script = (definition.script as unknown[]).flat(10).join("\n");
    // GitLab's bash runs the job's lines under -e and pipefail.
    return { shell: ["bash", "--noprofile", "--norc", "-eo", "pipefail"], env, script };
  },
};

function readRecipe(file: string): string {
  return readFileSync(path.join(repoRoot, "docs", "ci", file), "utf8");
}

/** Runs one CI job: a fresh checkout in the same workspace folder, then the job's shell lines there. */
async function runJob(recipe: Recipe, origin: TestRepo, job: Job, context: CiContext): Promise<JobRun> {
  const { workspace } = context;
  await rm(workspace, { recursive: true, force: true });
  await mkdir(workspace, { recursive: true });
  const git = (...args: string[]) => run("git", args, { cwd: workspace });
  await git("init", "--quiet");
  await git("remote", "add", "origin", origin.dir);
  await git("fetch", "--quiet", "origin", ...recipe.fetched(job));
  await git("checkout", "--quiet", "--detach", job.commit);

  const { shell, env, script } = recipe.job(job, context);
  const provided = { ...inheritedEnv(), ...env, PATH: `${await runnerOnPath()}:${process.env.PATH}` };
  for (const [, name] of script.matchAll(/\$\{?([A-Z][A-Z0-9_]*)/g)) {
    if (name && !(name in provided)) throw new Error(`the job uses $${name}, which nothing provides`);
  }
  const scriptFile = path.join(await tempDir("ci-job"), "script.sh");
  await writeFile(scriptFile, script);
  const [command, ...args] = shell as [string, ...string[]];
  const result = await new Promise<{ code: number; output: string }>((resolve) => {
    execFile(command, [...args, scriptFile], { cwd: workspace, env: provided }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
  const file = path.join(workspace, job.event === "pull_request" ? "plan.json" : "apply.json");
  const document = JSON.parse(await readFile(file, "utf8"));
  return { ...result, document };
}

/** A folder with `gitops-runner` linked to this checkout's bin, as `npm install --global <checkout>` links it. */
async function runnerOnPath(): Promise<string> {
  const bin = await tempDir("ci-bin");
  await symlink(path.join(repoRoot, "bin", "gitops-runner.js"), path.join(bin, "gitops-runner"));
  return bin;
}

const statuses = (document: { stacks: { name: string; status: string }[] }) =>
  Object.fromEntries(document.stacks.map((stack) => [stack.name, stack.status]));

const app: AppSpec = {
  network: { vpc: { input: { cidr: "10.0.0.0/16" } } },
  batch: { worker: { input: { schedule: "hourly" } }, archive: { input: { days: 365 } } },
};

describe.each([github, gitlab])("the $name recipe", (recipe) => {
  it("applies the default branch, passes a plan with changes, and fails on a failing stack or a destroy", async () => {
    const origin = await TestRepo.create(app);
    const root = await tempDir("ci");
    const context: CiContext = { workspace: path.join(root, "builds", "infra"), dataDir: await dataDir() };
    const pullRequest = async (branch: string, spec: AppSpec) => {
      await origin.checkout(DEFAULT_BRANCH);
      await origin.checkout(branch, true);
      await origin.setApp(spec);
      const commit = await origin.commit(`Change ${branch}`);
      await origin.checkout(DEFAULT_BRANCH);
      return runJob(recipe, origin, { event: "pull_request", commit, branch }, context);
    };
    const merge = async (branch: string) => {
      await origin.git("merge", "--quiet", "--no-ff", "-m", `Merge ${branch}`, branch);
      const commit = await origin.head();
      return runJob(recipe, origin, { event: "push", commit, branch: DEFAULT_BRANCH }, context);
    };

    // The first job is a pull request's: the runner's mirror of the checkout starts from a
    // commit that is not the default branch's.
    const widened: AppSpec = { ...app, network: { vpc: { input: { cidr: "10.0.0.0/8" } } } };
    const widen = await pullRequest("widen", widened);
    expect(widen.code, widen.output).toBe(0);
    expect(statuses(widen.document)).toEqual({ batch: "skipped", network: "changes" });
    expect(widen.output).toMatch(/^network {2}changes {2}\+1 ~0 -0$/m);
    expect(widen.output).toContain("    create terraform_data.vpc");
    expect(widen.output).toContain("Changes planned");

    const applied = await merge("widen");
    expect(applied.code, applied.output).toBe(0);
    expect(statuses(applied.document)).toEqual({ batch: "applied", network: "applied" });
    expect(applied.output).toMatch(/^batch {2}applied {2}\+2 ~0 -0$/m);
    expect(applied.output).toContain("Applied.");

    const broken = await pullRequest("broken", {
      ...widened,
      queue: { jobs: { input: { upstream: "${terraform_data.missing.id}" } } },
    });
    expect(broken.code, broken.output).not.toBe(0);
    expect(statuses(broken.document)).toEqual({ batch: "skipped", network: "skipped", queue: "failed" });
    expect(broken.document.stacks.find((stack: { name: string }) => stack.name === "queue").error.code).toBe(
      "TERRAFORM_FAILED",
    );
    expect(broken.output).toContain("gitops-runner plan failed (exit 1)");

    const drop = await pullRequest("drop-archive", {
      ...widened,
      batch: { worker: { input: { schedule: "hourly" } } },
    });
    expect(drop.code, drop.output).not.toBe(0);
    expect(drop.document.stacks.find((stack: { name: string }) => stack.name === "batch")).toMatchObject({
      status: "changes",
      wouldBlock: true,
    });
    expect(drop.output).toMatch(/^batch {2}changes {2}\+0 ~0 -1 {2}would block: destroys$/m);
    expect(drop.output).toContain("the apply would stop as blocked");

    const blocked = await merge("drop-archive");
    expect(blocked.code, blocked.output).not.toBe(0);
    expect(statuses(blocked.document)).toEqual({ batch: "blocked", network: "skipped" });
    expect(blocked.output).toContain("A stack is blocked");
  });
});
