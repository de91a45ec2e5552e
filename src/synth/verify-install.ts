import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";

const lockfileSchema = z.looseObject({
  packages: z
    .record(
      z.string(),
      z.looseObject({
        version: z.string().optional(),
        link: z.boolean().optional(),
        optional: z.boolean().optional(),
      }),
    )
    .default({}),
});

/**
 * Checks an install in `dir` against its package-lock.json: every package the
 * lockfile places under node_modules (links aside) has a package.json that
 * parses and carries the locked version. `npm ci` can exit 0 on a full disk
 * and leave empty files behind; such an install must not be cached.
 * Returns what is wrong with the first broken package, or undefined.
 */
export async function verifyInstall(dir: string): Promise<string | undefined> {
  const lockfile = lockfileSchema.safeParse(
    JSON.parse(await readFile(path.join(dir, "package-lock.json"), "utf8")),
  );
  if (!lockfile.success) return `package-lock.json: ${lockfile.error.issues[0]?.message ?? "unreadable"}`;
  for (const [location, entry] of Object.entries(lockfile.data.packages)) {
    // "" is the app itself; other paths outside node_modules are workspace sources, not installed.
    if (entry.link || !/(^|\/)node_modules\//.test(location)) continue;
    const manifest = path.join(location, "package.json");
    let text: string;
    try {
      text = await readFile(path.join(dir, manifest), "utf8");
    } catch {
      // npm skips optional packages that do not fit this platform.
      if (entry.optional) continue;
      return `${location}: not installed`;
    }
    if (text.trim() === "") return `${manifest}: empty`;
    let version: unknown;
    try {
      version = (JSON.parse(text) as { version?: unknown }).version;
    } catch {
      return `${manifest}: not valid JSON`;
    }
    if (entry.version !== undefined && version !== entry.version) {
      return `${manifest}: version ${String(version)}, the lockfile says ${entry.version}`;
    }
  }
  return undefined;
}
