import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chmod, chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll } from "vitest";
import { freePort } from "./ports.ts";

const run = promisify(execFile);

export const PG_PASSWORD = "pg-test-password-0123";

export interface PostgresServer {
  /** postgres://postgres:<password>@127.0.0.1:<port>/postgres */
  readonly url: string;
  readonly port: number;
  /** A fresh database on the server; its URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its folder. */
  remove(): Promise<void>;
}

/** The server binaries: on PATH, or in the Debian package's own folder. */
function binDir(): string {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (existsSync(path.join(dir, "initdb")) && existsSync(path.join(dir, "pg_ctl"))) return dir;
  }
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base) ? readdirSync(base).sort((a, b) => Number(b) - Number(a)) : [];
  for (const version of versions) {
    const dir = path.join(base, version, "bin");
    if (existsSync(path.join(dir, "initdb"))) return dir;
  }
  throw new Error("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: run `npm run setup`");
}

/**
 * A real PostgreSQL server in a temporary folder on a free loopback port,
 * with password authentication. PostgreSQL refuses to run as root, so as
 * root it runs as the `postgres` user.
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  const root = await mkdtemp(path.join(tmpdir(), "gitops-runner-pg-"));
  const dataDir = path.join(root, "data");
  const asRoot = process.getuid?.() === 0;
  const { uid, gid } = asRoot ? await postgresUser() : { uid: -1, gid: -1 };
  const as = (file: string, args: string[]) =>
    asRoot
      ? run("runuser", ["-u", "postgres", "--", path.join(bin, file), ...args])
      : run(path.join(bin, file), args);
  await chmod(root, 0o755);
  if (asRoot) await chown(root, uid, gid);
  const passwordFile = path.join(root, "password");
  await writeFile(passwordFile, `${PG_PASSWORD}\n`);
  if (asRoot) await chown(passwordFile, uid, gid);
  await as("initdb", [
    "-D",
    dataDir,
    "-U",
    "postgres",
    "--auth=scram-sha-256",
    `--pwfile=${passwordFile}`,
    "--no-sync",
    "-E",
    "UTF8",
  ]);
  const port = await freePort();
  const options = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const start = () =>
    as("pg_ctl", ["-D", dataDir, "-o", options, "-l", path.join(root, "log"), "-w", "start"]);
  const stop = () => as("pg_ctl", ["-D", dataDir, "-m", "fast", "-w", "stop"]).then(() => undefined);
  await start();
  // Terraform's pg backend (lib/pq) requires SSL unless the URL says otherwise; this server has none.
  const url = `postgres://postgres:${PG_PASSWORD}@127.0.0.1:${port}/postgres?sslmode=disable`;
  return {
    url,
    port,
    async createDatabase(name) {
      const { default: pg } = await import("pg");
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      return `postgres://postgres:${PG_PASSWORD}@127.0.0.1:${port}/${name}?sslmode=disable`;
    },
    stop,
    start: () => start().then(() => undefined),
    async remove() {
      await stop().catch(() => undefined);
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const { stdout: uid } = await run("id", ["-u", "postgres"]);
  const { stdout: gid } = await run("id", ["-g", "postgres"]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** One server for the test file: started before its tests, stopped and removed after them. */
export function usePostgres(): () => PostgresServer {
  let server: PostgresServer | undefined;
  beforeAll(async () => {
    server = await startPostgres();
  }, 120_000);
  afterAll(async () => {
    await server?.remove();
  });
  return () => {
    if (!server) throw new Error("the PostgreSQL server has not started");
    return server;
  };
}
