import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { gunzip, gzip } from "node:zlib";
import type { AppliedConfigs } from "../engine/context.ts";
import type { StackKey } from "../store/records.ts";
import { keptFile, LOCK_FILE } from "./applied-dir.ts";

const zip = promisify(gzip);
const unzip = promisify(gunzip);

export interface AppliedConfigRecords {
  saveAppliedConfig(key: StackKey, commit: string, archive: Uint8Array): Promise<void>;
  loadAppliedConfig(key: StackKey): Promise<{ commit: string; archive: Uint8Array } | undefined>;
}

interface Archive {
  readonly files: readonly { readonly path: string; readonly mode: number; readonly data: string }[];
}

/**
 * Applied folders in the database, for replicas: any replica checks any
 * stack for drift from exactly the folder that was applied. The folder is a
 * gzipped list of its files (cdk.tf.json, assets, the provider lock file).
 */
export class DbAppliedConfigs implements AppliedConfigs {
  readonly #records: AppliedConfigRecords;
  readonly #key: (stack: string) => StackKey;

  constructor(records: AppliedConfigRecords, app: { repoId: string; appDir: string }) {
    this.#records = records;
    this.#key = (stack) => ({ ...app, stack });
  }

  async keep(stack: string, dir: string, commit: string): Promise<void> {
    await this.#records.saveAppliedConfig(this.#key(stack), commit, await archiveOf(dir));
  }

  async restore(stack: string, dir: string): Promise<boolean> {
    const kept = await this.#records.loadAppliedConfig(this.#key(stack));
    if (!kept) return false;
    for (const file of (await unpack(kept.archive)).files) {
      const target = path.join(dir, file.path);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, Buffer.from(file.data, "base64"), { mode: file.mode });
    }
    await writeFile(path.join(dir, "COMMIT"), `${kept.commit}\n`);
    return true;
  }

  async lockFile(stack: string): Promise<Buffer | undefined> {
    const kept = await this.#records.loadAppliedConfig(this.#key(stack));
    const file = kept
      ? (await unpack(kept.archive)).files.find((entry) => entry.path === LOCK_FILE)
      : undefined;
    return file ? Buffer.from(file.data, "base64") : undefined;
  }
}

/** The kept files of a stack folder, as an archive. */
export async function archiveOf(dir: string): Promise<Uint8Array> {
  const files: Archive["files"][number][] = [];
  const walk = async (relative: string) => {
    for (const entry of await readdir(path.join(dir, relative), { withFileTypes: true })) {
      if (relative === "" && !keptFile(entry.name)) continue;
      const file = path.posix.join(relative, entry.name);
      if (entry.isDirectory()) await walk(file);
      else if (entry.isFile()) {
        const full = path.join(dir, file);
        files.push({
          path: file,
          mode: (await stat(full)).mode & 0o777,
          data: (await readFile(full)).toString("base64"),
        });
      }
    }
  };
  await walk("");
  return zip(JSON.stringify({ files } satisfies Archive));
}

async function unpack(archive: Uint8Array): Promise<Archive> {
  return JSON.parse((await unzip(archive)).toString("utf8")) as Archive;
}
