import { randomUUID } from "node:crypto";
import { readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { directoryBytes, exists } from "../fs.ts";
import { COMPLETE_MARKER } from "./dependencies.ts";

/** One installed set of dependencies in the cache: its folder, size and last use (the folder's mtime). */
export interface CacheEntry {
  readonly name: string;
  readonly bytes: number;
  readonly lastUsed: Date;
}

/**
 * The cache entries to remove so that the rest fit under `maxBytes`: least
 * recently used first. An entry used within `keepMs` stays whatever the size,
 * since a synthesis may be reading it right now. Pure.
 */
export function entriesToTrim(
  entries: readonly CacheEntry[],
  maxBytes: number,
  now: Date,
  keepMs: number,
): string[] {
  let total = entries.reduce((sum, entry) => sum + entry.bytes, 0);
  const removed: string[] = [];
  const oldestFirst = [...entries].sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime());
  for (const entry of oldestFirst) {
    if (total <= maxBytes) break;
    if (now.getTime() - entry.lastUsed.getTime() < keepMs) break;
    removed.push(entry.name);
    total -= entry.bytes;
  }
  return removed;
}

const TRASH = ".trash-";

/**
 * Trims the dependency cache under `maxBytes`, least recently used first.
 * An entry is first renamed out of the way (a concurrent install then sees a
 * miss and installs again), then removed; what an earlier trim left half
 * removed goes too. Installs in progress (`.partial`) are never touched.
 */
export async function trimDependencyCache(
  cacheDir: string,
  options: { readonly maxBytes: number; readonly now: Date; readonly keepMs: number },
): Promise<{ readonly removed: string[]; readonly keptBytes: number }> {
  const names = await readdir(cacheDir).catch(() => [] as string[]);
  for (const name of names.filter((candidate) => candidate.includes(TRASH))) {
    await rm(path.join(cacheDir, name), { recursive: true, force: true });
  }
  const entries: CacheEntry[] = [];
  for (const name of names) {
    if (name.includes(TRASH) || name.endsWith(".partial")) continue;
    const dir = path.join(cacheDir, name);
    if (!(await exists(path.join(dir, COMPLETE_MARKER)))) continue;
    const stats = await stat(dir).catch(() => undefined);
    if (!stats?.isDirectory()) continue;
    entries.push({ name, bytes: await directoryBytes(dir), lastUsed: stats.mtime });
  }
  const removed = entriesToTrim(entries, options.maxBytes, options.now, options.keepMs);
  for (const name of removed) {
    const trash = path.join(cacheDir, `${name}${TRASH}${randomUUID()}`);
    if (
      await rename(path.join(cacheDir, name), trash).then(
        () => true,
        () => false,
      )
    ) {
      await rm(trash, { recursive: true, force: true });
    }
  }
  const gone = new Set(removed);
  const keptBytes = entries
    .filter((entry) => !gone.has(entry.name))
    .reduce((sum, entry) => sum + entry.bytes, 0);
  return { removed, keptBytes };
}
