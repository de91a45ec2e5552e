import { chmod, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { RunnerError } from "../errors.ts";

/**
 * The data directory belongs to one process at a time: `serve` or one CLI
 * command. The claim is an exclusive lock the kernel holds for the process (a
 * SQLite file in exclusive locking mode), so it ends with the process, even
 * after `kill -9`, and a second process is refused before it touches anything.
 */
export interface DataDirClaim {
  release(): void;
}

const LOCK_FILE = "runner.lock";
const OWNER_FILE = "runner.owner";

export async function claimDataDir(dataDir: string, purpose: string): Promise<DataDirClaim> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  const lock = new DatabaseSync(path.join(dataDir, LOCK_FILE), { timeout: 0 });
  try {
    lock.exec("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;");
  } catch (error) {
    lock.close();
    const owner = await readFile(path.join(dataDir, OWNER_FILE), "utf8").catch(() => "");
    throw new RunnerError(
      "DATA_DIR_IN_USE",
      `data directory ${dataDir} is in use by another gitops-runner process${owner ? ` (${owner.trim()})` : ""}; one process at a time may use a data directory`,
      { cause: error },
    );
  }
  await writeFile(
    path.join(dataDir, OWNER_FILE),
    `pid ${process.pid}, ${purpose}, since ${new Date().toISOString()}\n`,
    { mode: 0o600 },
  );
  return { release: () => lock.close() };
}

/**
 * What a process that died left in its data directory: work folders
 * (checkouts, synth output, drift copies) and captured output of children.
 * Only the holder of the data directory may call this.
 */
export async function removeLeftovers(dataDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const folder of ["work", "tmp"]) {
    const entries = await readdir(path.join(dataDir, folder)).catch(() => [] as string[]);
    for (const entry of entries) {
      await rm(path.join(dataDir, folder, entry), { recursive: true, force: true });
      removed.push(path.join(folder, entry));
    }
  }
  return removed;
}

/** Where children's output is captured: inside the data directory, private, removed by recovery. */
export function outputDir(dataDir: string): string {
  return path.join(dataDir, "tmp");
}
