// Installs apps' dependencies ahead of time into a seed folder, as the image
// build does for the demo app, so that the runner starts them with no registry
// at hand. Point GITOPS_RUNNER_DEPENDENCY_SEED at the folder: the runner looks a
// lockfile up there before it runs npm, and uses what it finds in place. This
// runs the runner's own installer, so an entry's key is the one it looks up
// (the lockfile's hash, with install scripts off as in the default configuration).
//
//   node runner/seed-dependencies.ts SEED_DIR APP_DIR...
// Each APP_DIR holds a package.json and its package-lock.json.
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { noSandbox } from "../src/process/sandbox.ts";
import { installDependencies } from "../src/synth/dependencies.ts";

const [seedDir, ...appDirs] = process.argv.slice(2);
if (seedDir === undefined || appDirs.length === 0) {
  process.stderr.write("usage: node runner/seed-dependencies.ts SEED_DIR APP_DIR...\n");
  process.exit(64);
}

const env: Record<string, string> = {};
for (const name of ["PATH", "HOME", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "NODE_EXTRA_CA_CERTS"]) {
  const value = process.env[name];
  if (value !== undefined) env[name] = value;
}

for (const appDir of appDirs) {
  // A copy of the manifest and lockfile alone, so that no link is left in APP_DIR.
  const work = await mkdtemp(path.join(tmpdir(), "gitops-runner-seed-"));
  try {
    for (const file of ["package.json", "package-lock.json"]) {
      await cp(path.join(appDir, file), path.join(work, file));
    }
    const installed = await installDependencies(work, work, {
      cacheDir: path.resolve(seedDir),
      env,
      timeoutMs: 900_000,
      allowInstallScripts: false,
      // The image's own apps, installed by its builder: nothing of a watched repository runs.
      sandbox: noSandbox,
    });
    process.stdout.write(`seeded ${appDir}: ${path.join(seedDir, installed.lockfileHash ?? "")}\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
