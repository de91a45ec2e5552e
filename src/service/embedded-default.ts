import { cp, mkdir } from "node:fs/promises";
import path from "node:path";
import { simpleGit } from "simple-git";
import { exists } from "../fs.ts";
import { INSTALL_ROOT } from "../install-root.ts";

/** The app the embedded default runs: the demo stacks shipped with the runner. */
export const EMBEDDED_APP_DIR = "stacks/demo";

/**
 * The repository of the embedded default: this checkout when it is a git
 * repository; otherwise (an image) a repository in the data directory seeded
 * once from the bundled stacks.
 */
export async function embeddedRepository(dataDir: string): Promise<string> {
  if (await exists(path.join(INSTALL_ROOT, ".git"))) return INSTALL_ROOT;
  const seeded = path.join(dataDir, "demo-repository");
  if (await exists(path.join(seeded, ".git"))) return seeded;
  await mkdir(seeded, { recursive: true });
  await cp(path.join(INSTALL_ROOT, "stacks"), path.join(seeded, "stacks"), {
    recursive: true,
    filter: (source) => path.basename(source) !== "node_modules",
  });
  const git = simpleGit(seeded);
  await git.init(["--quiet", "--initial-branch=main"]);
  await git.add("--all");
  await git.raw(
    "-c",
    "user.name=gitops-runner",
    "-c",
    "user.email=demo@gitops-runner.invalid",
    "commit",
    "--quiet",
    "-m",
    "Demo stacks",
  );
  return seeded;
}
