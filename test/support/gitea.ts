import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdir, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { expect, vi } from "vitest";
import { freePort } from "./ports.ts";
import { tempDir } from "./toolchain.ts";

const run = promisify(execFile);

/**
 * A real Gitea server for the tests, as scripts/setup.sh built it (v1.26.0,
 * SQLite): started in a temporary folder on a free loopback port from a
 * generated app.ini, with users, tokens and a repository made through its
 * own CLI and API. Webhooks may only reach loopback addresses.
 */
export interface GiteaServer {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  /** Creates a user; `admin` makes a site administrator. Returns an access token with every scope. */
  createUser(name: string, options?: { admin?: boolean }): Promise<GiteaUser>;
  stop(): Promise<void>;
}

export interface GiteaUser {
  readonly name: string;
  readonly token: string;
  /** Calls the API as this user: JSON in, JSON out; a status other than `expected` fails the test. */
  api<T = any>(method: string, route: string, body?: unknown, expected?: number): Promise<T>;
  /** The API's answer as it is. */
  raw(method: string, route: string, body?: unknown): Promise<Response>;
  /** A git URL that pushes as this user. */
  gitUrl(repository: string): string;
}

/** The server lists at most this many items per page: the tests cross pages with a handful. */
export const GITEA_PAGE_LIMIT = 5;

export async function startGitea(): Promise<GiteaServer> {
  const home = process.env.GITOPS_RUNNER_TEST_GITEA;
  if (!home) {
    throw new Error(
      "GITOPS_RUNNER_TEST_GITEA is not set: run `npm run setup` (it builds Gitea once) and the tests through scripts/run.sh",
    );
  }
  const binary = path.join(home, "gitea");
  const dir = await tempDir("gitea");
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = path.join(dir, "custom", "conf", "app.ini");
  await mkdir(path.dirname(config), { recursive: true });
  await writeFile(config, appIni({ dir, port, staticRoot: path.join(home, "static") }));
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: dir,
    GITEA_WORK_DIR: dir,
    GITEA_CUSTOM: path.join(dir, "custom"),
  };
  const output: string[] = [];
  const child: ChildProcess = spawn(binary, ["web", "--config", config, "--work-path", dir], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const stream of [child.stdout, child.stderr])
    stream?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  const exited = once(child, "exit");
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    await exited;
  };
  const died = exited.then(([code]) => {
    throw new Error(`gitea exited with ${code} before it answered:\n${output.join("")}`);
  });
  died.catch(() => undefined);
  try {
    // The API answers within a couple of seconds of the start.
    const answering = vi.waitFor(
      async () => expect((await fetch(`${url}/api/v1/version`)).status).toBe(200),
      {
        timeout: 60_000,
        interval: 100,
      },
    );
    await Promise.race([answering, died]);
  } catch (error) {
    await stop();
    throw error;
  }

  const cli = (...args: string[]) =>
    run(binary, ["admin", "user", ...args, "--config", config, "--work-path", dir], { cwd: dir, env });

  return {
    url,
    async createUser(name, options = {}) {
      await cli(
        "create",
        "--username",
        name,
        "--email",
        `${name}@example.invalid`,
        "--password",
        randomBytes(12).toString("hex"),
        "--must-change-password=false",
        ...(options.admin ? ["--admin"] : []),
      );
      const { stdout } = await cli(
        "generate-access-token",
        "--username",
        name,
        "--token-name",
        "tests",
        "--scopes",
        "all",
        "--raw",
      );
      // The CLI logs on stdout too (a warning about root); the token is the line of 40 hex digits.
      const token = stdout.split("\n").find((line) => /^[0-9a-f]{40}$/.test(line.trim()));
      if (!token) throw new Error(`gitea admin user generate-access-token printed no token:\n${stdout}`);
      return user(url, name, token.trim());
    },
    stop,
  };
}

function user(url: string, name: string, token: string): GiteaUser {
  const raw = (method: string, route: string, body?: unknown) =>
    fetch(`${url}/api/v1${route}`, {
      method,
      headers: {
        authorization: `token ${token}`,
        accept: "application/json",
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  return {
    name,
    token,
    raw,
    async api(method, route, body, expected) {
      const response = await raw(method, route, body);
      const text = await response.text();
      const ok = expected === undefined ? response.ok : response.status === expected;
      if (!ok) throw new Error(`gitea ${method} ${route} as ${name}: ${response.status} ${text}`);
      return (text ? JSON.parse(text) : undefined) as never;
    },
    gitUrl(repository) {
      return `http://${name}:${token}@${url.slice("http://".length)}/${repository}.git`;
    },
  };
}

function appIni(options: { dir: string; port: number; staticRoot: string }): string {
  const { dir, port, staticRoot } = options;
  return `APP_NAME = gitops-runner tests
RUN_MODE = prod
RUN_USER = ${userInfo().username}
WORK_PATH = ${dir}
; Gitea refuses to run as root unless told; the tests may run as root.
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = ${process.getuid?.() === 0}

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = ${port}
ROOT_URL = http://127.0.0.1:${port}/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
APP_DATA_PATH = ${dir}/data
; No bindata: templates, options and assets come from the module source the set-up kept.
STATIC_ROOT_PATH = ${staticRoot}

[database]
DB_TYPE = sqlite3
PATH = ${dir}/data/gitea.db

[repository]
ROOT = ${dir}/repositories
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = ${randomBytes(24).toString("hex")}

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true

[queue]
; In memory: webhooks go out within a fraction of a second.
TYPE = channel

[webhook]
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 10

[api]
; Small pages: a handful of items crosses a page, as fifty do on a default server.
MAX_RESPONSE_ITEMS = ${GITEA_PAGE_LIMIT}
DEFAULT_PAGING_NUM = ${GITEA_PAGE_LIMIT}

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[mailer]
ENABLED = false

[cron.update_checker]
ENABLED = false

[log]
MODE = console
LEVEL = warn
ROOT_PATH = ${dir}/log
`;
}
