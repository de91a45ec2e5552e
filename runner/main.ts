// The deployable runner's entry point. With no arguments it runs the main job on
// its embedded default: the demo stacks of this repository (stacks/demo), with
// the embedded database in the data directory. It applies what is pending,
// then checks the applied stacks for drift. Arguments are passed to the
// gitops-runner command instead (e.g. `plan --repo URL`).
import { execFile } from "node:child_process";
import { access, cp, mkdir } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { main } from "../src/cli/main.ts";
import { defaultDataDir } from "../src/composition.ts";

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, "..");
const output = {
  stdout: (text: string) => process.stdout.write(text),
  stderr: (text: string) => process.stderr.write(text),
};

/** This checkout when it is a git repository; otherwise (an image) a repository seeded from the bundled demo. */
async function demoRepository(dataDir: string): Promise<string> {
  try {
    await access(path.join(root, ".git"));
    return root;
  } catch {
    const seeded = path.join(dataDir, "demo-repository");
    try {
      await access(path.join(seeded, ".git"));
    } catch {
      await mkdir(seeded, { recursive: true });
      await cp(path.join(root, "stacks"), path.join(seeded, "stacks"), {
        recursive: true,
        filter: (source) => path.basename(source) !== "node_modules",
      });
      const git = (...args: string[]) => run("git", args, { cwd: seeded });
      await git("init", "--quiet", "--initial-branch=main");
      await git("add", "--all");
      await git(
        "-c",
        "user.name=gitops-runner",
        "-c",
        "user.email=demo@gitops-runner.invalid",
        "commit",
        "--quiet",
        "-m",
        "Demo stacks",
      );
    }
    return seeded;
  }
}

async function embeddedDefault(): Promise<number> {
  const dataDir = defaultDataDir(process.env);
  const repo = await demoRepository(dataDir);
  const common = ["--repo", repo, "--app-dir", "stacks/demo", "--data-dir", dataDir];
  const applied = await main(["apply", ...common], process.env, output);
  if (applied === 1) return applied;
  const drift = await main(["drift", ...common], process.env, output);
  return Math.max(applied, drift);
}

const args = process.argv.slice(2);
process.exitCode = args.length > 0 ? await main(args, process.env, output) : await embeddedDefault();
