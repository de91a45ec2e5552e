import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import type { StateBackend } from "../engine/context.ts";
import { exists } from "../fs.ts";

/**
 * Stacks with no backend or a local one keep their state in the data directory,
 * never in the throw-away checkout they were synthesized in. cdktf writes such
 * a backend as an absolute path under the synth's working directory, and a
 * cross-stack reference as a `terraform_remote_state` reading the producer's
 * file there; an override file points both at the data directory.
 */
export const STATE_OVERRIDE_FILE = "gitops_runner_override.tf.json";

export interface StateLocation {
  readonly dataDir: string;
  readonly repoId: string;
  /** The app's folder in the repository; "" for its root. */
  readonly appDir: string;
}

export function stateFile(location: StateLocation, stack: string): string {
  return path.join(
    location.dataDir,
    "state",
    location.repoId,
    location.appDir || "_",
    stack,
    "terraform.tfstate",
  );
}

/**
 * A readable slug plus a short hash of the normalized repository address:
 * file:// and plain paths resolved, credentials and a trailing .git stripped.
 */
export function repoId(address: string): string {
  const normalized = normalizeRepoAddress(address);
  const slug =
    normalized
      .split(/[/:]/)
      .filter(Boolean)
      .slice(-2)
      .join("-")
      .replace(/[^a-zA-Z0-9._-]+/g, "-")
      .toLowerCase() || "repo";
  const hash = createHash("sha256").update(normalized).digest("hex").slice(0, 8);
  return `${slug}-${hash}`;
}

export function normalizeRepoAddress(address: string): string {
  let value = address.trim();
  if (value.startsWith("file://")) value = new URL(value).pathname;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !/^[^/]+@[^/]+:/.test(value)) {
    value = path.resolve(value);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    const url = new URL(value);
    url.username = "";
    url.password = "";
    value = url.toString();
  } else {
    value = value.replace(/^[^@]+@/, "");
  }
  return value.replace(/\/+$/, "").replace(/\.git$/, "");
}

interface SynthesizedJson {
  readonly terraform?: { readonly backend?: Readonly<Record<string, unknown>> };
  readonly data?: {
    readonly terraform_remote_state?: Readonly<
      Record<string, { backend?: string; config?: { path?: string } }>
    >;
  };
}

/** Where the runner keeps the state of stacks that have no backend of their own (or a local one). */
export interface StateTarget {
  /** The backend block for a stack's own state, e.g. `{ local: { path } }`. */
  backend(stack: string): Readonly<Record<string, unknown>>;
  /** What a `terraform_remote_state` of a producer reads instead of the local file cdktf wrote. */
  remoteState(producer: string): {
    readonly backend: string;
    readonly config: Readonly<Record<string, unknown>>;
  };
}

/**
 * Writes the override into a synthesized stack folder: the stack's own state
 * (when it keeps state locally) and its producers' states move to the target.
 * Returns whether the stack keeps its state locally (so the target holds it).
 */
export async function writeStateOverride(
  stackDir: string,
  stack: string,
  target: StateTarget,
): Promise<boolean> {
  const synthesized = JSON.parse(
    await readFile(path.join(stackDir, "cdk.tf.json"), "utf8"),
  ) as SynthesizedJson;
  const backends = Object.keys(synthesized.terraform?.backend ?? {});
  const local = backends.length === 0 || backends[0] === "local";

  const override: Record<string, unknown> = {};
  if (local) override.terraform = { backend: target.backend(stack) };
  const remoteStates: Record<string, unknown> = {};
  for (const [name, reference] of Object.entries(synthesized.data?.terraform_remote_state ?? {})) {
    const producer = reference.backend === "local" ? producerOf(reference.config?.path) : undefined;
    if (producer) remoteStates[name] = target.remoteState(producer);
  }
  if (Object.keys(remoteStates).length > 0) override.data = { terraform_remote_state: remoteStates };
  if (Object.keys(override).length > 0) {
    await writeFile(path.join(stackDir, STATE_OVERRIDE_FILE), `${JSON.stringify(override, null, 2)}\n`);
  }
  return local;
}

/** cdktf names a local state file terraform.<stack>.tfstate. */
function producerOf(statePath: string | undefined): string | undefined {
  return statePath ? /^terraform\.(.+)\.tfstate$/.exec(path.basename(statePath))?.[1] : undefined;
}

/** State in files of the data directory (the embedded default, one runner). */
export class LocalStateBackend implements StateBackend {
  readonly #location: StateLocation;

  constructor(location: StateLocation) {
    this.#location = location;
  }

  async prepare(stackDir: string, stack: string) {
    const location = this.#location;
    const local = await writeStateOverride(stackDir, stack, {
      backend: (own) => ({ local: { path: stateFile(location, own) } }),
      remoteState: (producer) => ({ backend: "local", config: { path: stateFile(location, producer) } }),
    });
    if (!local) return undefined;
    const file = stateFile(location, stack);
    await mkdir(path.dirname(file), { recursive: true });
    return { where: file, env: {} };
  }

  hasState(stack: string): Promise<boolean> {
    return exists(stateFile(this.#location, stack));
  }
}
