import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { STATE_OVERRIDE_FILE } from "../state/local-state.ts";

/** Files in a synthesized stack folder that are the runner's, not the app's. */
const IGNORED = new Set([".terraform", ".terraform.lock.hcl", STATE_OVERRIDE_FILE]);
const PLAN_FILE = /\.tfplan$/;

/**
 * A hash of what a stack will deploy: its cdk.tf.json with the paths of the
 * throw-away checkout replaced by placeholders, plus every asset or local
 * module file in its folder. Two synths of the same commit in different
 * checkouts hash the same; any change Terraform would see changes the hash.
 */
export async function stackHash(
  stackDir: string,
  noise: Readonly<Record<string, string>>,
  /** Also rewrites the parsed cdk.tf.json, e.g. without an environment's own names and values (promotion). */
  normalize?: (config: unknown) => unknown,
): Promise<string> {
  const hash = createHash("sha256");
  for (const file of await filesUnder(stackDir)) {
    let content: string | Buffer = await readFile(path.join(stackDir, file));
    if (file === "cdk.tf.json") {
      content = normalizeStackJson(content.toString("utf8"), noise);
      if (normalize) content = JSON.stringify(normalize(JSON.parse(content)));
    }
    hash.update(`${file}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest("hex");
}

/** Replaces each noise path (longest first) by its placeholder. */
export function normalizeStackJson(text: string, noise: Readonly<Record<string, string>>): string {
  let normalized = text;
  for (const [value, placeholder] of Object.entries(noise).sort(([a], [b]) => b.length - a.length)) {
    if (value.length > 0) normalized = normalized.split(value).join(placeholder);
  }
  return normalized;
}

async function filesUnder(dir: string, prefix = ""): Promise<string[]> {
  const entries = await readdir(path.join(dir, prefix), { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (prefix === "" && IGNORED.has(entry.name)) continue;
    if (PLAN_FILE.test(entry.name)) continue;
    const relative = path.posix.join(prefix, entry.name);
    if (entry.isDirectory()) files.push(...(await filesUnder(dir, relative)));
    else if (entry.isFile()) files.push(relative);
  }
  return files;
}
