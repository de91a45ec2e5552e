import { createHash, randomUUID } from "node:crypto";
import { chmod, mkdir, readdir, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import {
  type CliConfigInputs,
  type CliConfigResolution,
  cliConfigCandidates,
  type MirrorPackage,
  mirrorLinks,
  renderCliConfig,
  resolveCliConfig,
} from "./cli-config.ts";

/** The disk side of the engine's CLI configuration: looking at files and mirrors, writing the runner's own. */
export interface PrepareCliConfigOptions
  extends Pick<CliConfigInputs, "configured" | "envFile" | "setupMirror"> {
  /** Where the runner keeps a CLI configuration it writes: the data directory. */
  readonly dataDir: string;
  /** Told which configuration the engine gets, and warned of an ignored TF_CLI_CONFIG_FILE. */
  readonly logger: Logger;
}

export interface PreparedCliConfig {
  readonly resolution: CliConfigResolution;
  /** The variables for every engine call: TF_CLI_CONFIG_FILE, or none for the engine's own default. */
  readonly env: Readonly<Record<string, string>>;
}

export async function prepareCliConfig(options: PrepareCliConfigOptions): Promise<PreparedCliConfig> {
  const candidates = cliConfigCandidates(options);
  const existingFiles = new Set<string>();
  for (const file of candidates.files) if ((await kindOf(file)) === "file") existingFiles.add(file);
  const mirrors = new Map<string, readonly MirrorPackage[]>();
  for (const dir of candidates.mirrors) {
    const packages = await scanMirror(dir);
    if (packages) mirrors.set(dir, packages);
  }
  const resolution = resolveCliConfig({ ...options, existingFiles, mirrors });
  const { choice, ignoredEnvFile } = resolution;
  if (ignoredEnvFile) {
    options.logger.warn(
      { variable: "TF_CLI_CONFIG_FILE", file: ignoredEnvFile },
      "TF_CLI_CONFIG_FILE names a file that does not exist; the engine runs as if it were unset",
    );
  }
  const file =
    choice.kind === "file"
      ? choice.file
      : choice.kind === "mirror"
        ? await writeMirrorCliConfig(options.dataDir, choice.mirror, choice.packages)
        : undefined;
  options.logger.info(
    { from: choice.kind === "engine-default" ? "the engine's default" : choice.from, file },
    "engine CLI configuration",
  );
  return { resolution, env: file ? { TF_CLI_CONFIG_FILE: file } : {} };
}

const PLATFORM = /^[a-z0-9]+_[a-z0-9]+$/;
const PACKED = /^terraform-provider-.+\.zip$/i;

/**
 * The provider packages in a filesystem mirror (host/namespace/type/version/os_arch
 * folders, or host/namespace/type/*.zip files), or undefined when the folder does not exist.
 */
export async function scanMirror(mirror: string): Promise<MirrorPackage[] | undefined> {
  if ((await kindOf(mirror)) !== "folder") return undefined;
  const packages: MirrorPackage[] = [];
  for (const host of await folders(mirror)) {
    for (const namespace of await folders(path.join(mirror, host))) {
      for (const type of await folders(path.join(mirror, host, namespace))) {
        const provider = `${host}/${namespace}/${type}`;
        const typeDir = path.join(mirror, host, namespace, type);
        for (const entry of await entries(typeDir)) {
          if (entry.kind === "file" && PACKED.test(entry.name)) {
            packages.push({ provider, path: `${provider}/${entry.name}` });
          } else if (entry.kind === "folder") {
            for (const platform of await folders(path.join(typeDir, entry.name))) {
              if (PLATFORM.test(platform))
                packages.push({ provider, path: `${provider}/${entry.name}/${platform}` });
            }
          }
        }
      }
    }
  }
  return packages.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Writes the runner's CLI configuration for a mirror, with a mirror folder of
 * links beside it, into <dataDir>/cli-config/<key>/ (the file mode 0600). The
 * key hashes the mirror and its packages: an unchanged mirror reuses the
 * folder, and runners sharing a data directory never see a half-written one.
 */
async function writeMirrorCliConfig(
  dataDir: string,
  mirror: string,
  packages: readonly MirrorPackage[],
): Promise<string> {
  const links = mirrorLinks(mirror, packages);
  const key = createHash("sha256").update(JSON.stringify({ mirror, links })).digest("hex").slice(0, 16);
  const root = path.join(dataDir, "cli-config");
  const dir = path.join(root, key);
  const file = path.join(dir, "terraformrc");
  if ((await kindOf(file)) === "file") return file;

  const staging = path.join(root, `.${key}-${randomUUID()}`);
  try {
    for (const link of links) {
      const at = path.join(staging, "providers", link.path);
      await mkdir(path.dirname(at), { recursive: true });
      await symlink(link.target, at);
    }
    const staged = path.join(staging, "terraformrc");
    await writeFile(staged, renderCliConfig(path.join(dir, "providers"), links), { mode: 0o600 });
    await chmod(staged, 0o600);
    await rename(staging, dir);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    // Another runner on this data directory wrote the same folder first.
    if (!isCode(error, "ENOTEMPTY") && !isCode(error, "EEXIST")) throw error;
  }
  return file;
}

type Kind = "file" | "folder" | "other" | "missing";

/** What a path is, following links. */
async function kindOf(file: string): Promise<Kind> {
  try {
    const info = await stat(file);
    return info.isFile() ? "file" : info.isDirectory() ? "folder" : "other";
  } catch {
    return "missing";
  }
}

async function entries(dir: string): Promise<{ readonly name: string; readonly kind: Kind }[]> {
  const names = (await readdir(dir)).filter((name) => !name.startsWith(".")).sort();
  return Promise.all(names.map(async (name) => ({ name, kind: await kindOf(path.join(dir, name)) })));
}

async function folders(dir: string): Promise<string[]> {
  return (await entries(dir)).filter((entry) => entry.kind === "folder").map((entry) => entry.name);
}

function isCode(error: unknown, code: string): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === code;
}
