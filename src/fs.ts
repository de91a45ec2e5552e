import { access, constants, lstat, readdir } from "node:fs/promises";
import path from "node:path";

/** Whether a file or folder exists (and is reachable). */
export async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** An executable file: `name` itself when it holds a slash, else the first one on `searchPath`. */
export async function findExecutable(name: string, searchPath: string): Promise<string | undefined> {
  const candidates = name.includes("/")
    ? [path.resolve(name)]
    : searchPath.split(":").map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next folder.
    }
  }
  return undefined;
}

/**
 * The bytes the files under a folder take, walking it without following
 * links (as `du` does); 0 when it does not exist. Files that vanish during the
 * walk are skipped.
 */
export async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(file);
    else total += (await lstat(file).catch(() => undefined))?.size ?? 0;
  }
  return total;
}
