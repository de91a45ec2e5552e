import { readFile, realpath, stat } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { isRunnerError } from "../errors.ts";
import { exists, findExecutable } from "../fs.ts";
import { exec } from "./exec.ts";

/**
 * Where the code of a watched repository runs: an app's synthesis and its
 * dependency install. The sandbox only rewrites the command; exec() still
 * starts it (argument array, explicit environment, group kill).
 */
export interface Sandbox {
  /** "none" runs commands as they are: not isolated. */
  readonly kind: "bubblewrap" | "none";
  /** The command to run in the request's place. */
  command(request: SandboxRequest): Command;
}

export interface Command {
  readonly file: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

export interface SandboxRequest extends Command {
  /** The working folder, inside one of the folders below. */
  readonly cwd: string;
  /** Folders the command may change: the work folder, the cache entry being written. */
  readonly readWrite: readonly string[];
  /** Folders and files it may read besides the system's and the toolchain's. */
  readonly readOnly: readonly string[];
}

export const noSandbox: Sandbox = {
  kind: "none",
  command: ({ file, args, env }) => ({ file, args, env }),
};

/** What a bubblewrap sandbox shows besides each request's own folders. */
export interface BubblewrapView {
  /** Shown read-only to every command: system folders, Node, npm, the engine binary. */
  readonly readOnly: readonly string[];
  /** Symlinks recreated inside, so that PATH finds Node and npm where the runner finds them. */
  readonly links: readonly { readonly path: string; readonly target: string }[];
  /** Never shown, even inside a shown folder: the runner's configuration file and data directory. */
  readonly hidden: readonly { readonly path: string; readonly directory: boolean }[];
}

/** Inside the sandbox, HOME and TMPDIR are on a fresh tmpfs. */
const SANDBOX_TMP = "/tmp";
const SANDBOX_HOME = "/tmp/home";

/**
 * bubblewrap with its own PID, IPC and UTS namespaces and a root that holds
 * only what is mounted: a fresh /proc (the command sees its own processes, not
 * the runner's environ or command line), a minimal /dev, tmpfs /tmp and HOME,
 * the view's read-only paths and the request's folders. The network is shared:
 * npm needs it.
 */
export function bubblewrapSandbox(bwrap: string, view: BubblewrapView): Sandbox {
  return {
    kind: "bubblewrap",
    command(request) {
      const env = { ...request.env, HOME: SANDBOX_HOME, TMPDIR: SANDBOX_TMP };
      const args = [
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        SANDBOX_TMP,
        "--dir",
        SANDBOX_HOME,
        // Links first: a later mount over their folder hides them rather than writing through.
        ...view.links.flatMap((link) => ["--symlink", link.target, link.path]),
        ...mountArgs(view, request),
        "--chdir",
        request.cwd,
        "--clearenv",
        ...Object.entries(env).flatMap(([name, value]) => ["--setenv", name, value]),
        "--",
        request.file,
        ...request.args,
      ];
      // bwrap's own environment is what its first process in the sandbox shows in /proc/1/environ.
      return { file: bwrap, args, env };
    },
  };
}

type Mount =
  | { readonly kind: "--ro-bind" | "--bind"; readonly path: string }
  | { readonly kind: "mask"; readonly path: string; readonly directory: boolean };

/** Binds and masks, parents before children, so that each lands inside the one above it. */
function mountArgs(view: BubblewrapView, request: SandboxRequest): string[] {
  const readOnly = [...view.readOnly, ...request.readOnly];
  const mounts: Mount[] = [
    ...readOnly.map((dir) => ({ kind: "--ro-bind" as const, path: dir })),
    ...request.readWrite.map((dir) => ({ kind: "--bind" as const, path: dir })),
    ...view.hidden
      .filter((hidden) => readOnly.some((dir) => isInside(hidden.path, dir)))
      .map((hidden) => ({ kind: "mask" as const, ...hidden })),
  ];
  const depth = (mount: Mount) => mount.path.split("/").length;
  return mounts
    .sort((a, b) => depth(a) - depth(b))
    .flatMap((mount) => {
      if (mount.kind !== "mask") return [mount.kind, mount.path, mount.path];
      return mount.directory ? ["--tmpfs", mount.path] : ["--ro-bind", "/dev/null", mount.path];
    });
}

function isInside(file: string, dir: string): boolean {
  const relative = path.relative(dir, file);
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

export interface SandboxSetup {
  /** bubblewrap: a path, or a name looked up on searchPath. */
  readonly bwrap: string;
  /** The PATH sandboxed commands get: Node and npm are found on it. */
  readonly searchPath: string;
  /** Further files shown read-only to every command, e.g. the engine binary cdktf runs. */
  readonly readOnly: readonly string[];
  /** The runner's configuration file and data directory: never shown. */
  readonly hidden: readonly string[];
  readonly logger: Logger;
}

/**
 * The sandbox for this runner, chosen once at start: bubblewrap when it starts
 * here, else no isolation, with one warning that says so.
 */
export async function createSandbox(setup: SandboxSetup): Promise<Sandbox> {
  const bwrap = await findExecutable(setup.bwrap, setup.searchPath);
  let problem = `${setup.bwrap} is not an executable file or on PATH`;
  if (bwrap) {
    const sandbox = bubblewrapSandbox(bwrap, await bubblewrapView(setup));
    const failed = await trialStart(sandbox, setup.searchPath);
    if (failed === undefined) {
      setup.logger.info({ bwrap }, "synthesis and dependency installs run in a bubblewrap sandbox");
      return sandbox;
    }
    problem = failed;
  }
  setup.logger.warn(
    { bwrap: setup.bwrap, problem },
    "synthesis is not isolated: bubblewrap cannot start here, so the app and npm run with the runner's user and can read its files and processes",
  );
  return noSandbox;
}

/** Starts Node (or a shell) in the sandbox; the reason it failed, or undefined. */
async function trialStart(sandbox: Sandbox, searchPath: string): Promise<string | undefined> {
  const node = await findExecutable("node", searchPath);
  const command = sandbox.command({
    file: node ?? "/bin/sh",
    args: node ? ["--version"] : ["-c", "exit 0"],
    env: { PATH: searchPath },
    cwd: "/",
    readWrite: [],
    readOnly: [],
  });
  try {
    await exec(command.file, command.args, {
      step: "sandbox trial",
      cwd: "/",
      env: command.env,
      timeoutMs: 30_000,
    });
    return undefined;
  } catch (error) {
    if (isRunnerError(error)) return error.message;
    throw error;
  }
}

/** System folders that programs, DNS and TLS need. */
const SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"];

async function bubblewrapView(setup: SandboxSetup): Promise<BubblewrapView> {
  const readOnly: string[] = [];
  const links: { path: string; target: string }[] = [];
  const show = (file: string) => {
    if (!readOnly.some((dir) => isInside(file, dir))) readOnly.push(file);
  };
  for (const dir of SYSTEM_PATHS) if (await exists(dir)) show(dir);
  // /etc/resolv.conf may link to a file elsewhere (/run/systemd/resolve/...).
  if (await exists("/etc/resolv.conf")) show(await realpath("/etc/resolv.conf"));
  for (const tool of ["node", "npm"]) {
    const found = await findExecutable(tool, setup.searchPath);
    if (found === undefined) continue;
    const real = await realpath(found);
    show(await installRoot(tool, real));
    if (!readOnly.some((dir) => isInside(found, dir))) links.push({ path: found, target: real });
  }
  for (const file of setup.readOnly) show(file);
  const hidden = await Promise.all(
    setup.hidden.map(async (file) => ({
      path: path.resolve(file),
      directory: (await stat(file).catch(() => undefined))?.isDirectory() ?? false,
    })),
  );
  return { readOnly, links, hidden };
}

/**
 * What a tool needs beside its binary: the npm package around npm-cli.js, or
 * a Node install's prefix (bin/node, lib/node_modules/npm).
 */
async function installRoot(tool: string, real: string): Promise<string> {
  if (tool === "npm") {
    for (let dir = path.dirname(real); dir !== path.dirname(dir); dir = path.dirname(dir)) {
      const name = await readFile(path.join(dir, "package.json"), "utf8")
        .then((text) => (JSON.parse(text) as { name?: unknown }).name)
        .catch(() => undefined);
      if (name === "npm") return dir;
    }
  }
  const bin = path.dirname(real);
  return path.basename(bin) === "bin" ? path.dirname(bin) : bin;
}
