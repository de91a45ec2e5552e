import { cp, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { AppliedConfigs } from "../engine/context.ts";
import { exists } from "../fs.ts";
import { STATE_OVERRIDE_FILE } from "./local-state.ts";

export const LOCK_FILE = ".terraform.lock.hcl";

/** What of a stack folder is kept: not .terraform, the runner's override file or plan files. */
export function keptFile(name: string): boolean {
  return name !== ".terraform" && name !== STATE_OVERRIDE_FILE && !name.endsWith(".tfplan");
}

/**
 * Applied folders in the data directory:
 * `applied/<repo-id>/<app-dir or _>/<stack>/` with a COMMIT file, replaced
 * atomically (a staging folder renamed into place).
 */
export class DiskAppliedConfigs implements AppliedConfigs {
  readonly #root: string;

  constructor(dataDir: string, repoId: string, appDir: string) {
    this.#root = path.join(dataDir, "applied", repoId, appDir || "_");
  }

  dirOf(stack: string): string {
    return path.join(this.#root, stack);
  }

  async keep(stack: string, dir: string, commit: string): Promise<void> {
    const target = this.dirOf(stack);
    const staging = `${target}.partial`;
    await rm(staging, { recursive: true, force: true });
    await mkdir(staging, { recursive: true });
    await cp(dir, staging, { recursive: true, filter: (source) => keptFile(path.basename(source)) });
    await writeFile(path.join(staging, "COMMIT"), `${commit}\n`);
    await rm(target, { recursive: true, force: true });
    await rename(staging, target);
  }

  async restore(stack: string, dir: string): Promise<boolean> {
    const kept = this.dirOf(stack);
    if (!(await exists(kept))) return false;
    await mkdir(dir, { recursive: true });
    await cp(kept, dir, { recursive: true });
    return true;
  }

  async lockFile(stack: string): Promise<Buffer | undefined> {
    return readFile(path.join(this.dirOf(stack), LOCK_FILE)).catch(() => undefined);
  }
}
