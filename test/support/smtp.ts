import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, readdir, readFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { type ParsedMail, simpleParser } from "mailparser";
import { onTestFinished } from "vitest";
import { tempDir } from "./toolchain.ts";

const run = promisify(execFile);
const READY_TIMEOUT_MS = 60_000;

export interface SmtpServerOptions {
  readonly mode: "starttls" | "tls";
  readonly user: string;
  readonly password: string;
  /** Answer the first N messages with 451 (try again later). */
  readonly failFirst?: number;
}

export interface ReceivedMail {
  readonly envelope: {
    readonly mailFrom: string;
    readonly rcptTos: readonly string[];
    readonly tls: boolean;
  };
  /** The message as it arrived. */
  readonly raw: string;
  readonly parsed: ParsedMail;
}

export interface SmtpServer {
  readonly host: string;
  readonly port: number;
  /** The server's self-signed certificate (PEM), for clients to trust. */
  readonly certificate: string;
  readonly certificateFile: string;
  /** Every message accepted so far, in order. */
  received(): Promise<ReceivedMail[]>;
  stop(): Promise<void>;
}

/**
 * A real SMTP server (aiosmtpd, from the virtual environment scripts/setup.sh
 * prepares) on a free loopback port, with a certificate made for the test,
 * TLS and authentication required. Stopped when the test ends.
 */
export async function startSmtpServer(options: SmtpServerOptions): Promise<SmtpServer> {
  const python = process.env.GITOPS_RUNNER_TEST_SMTP_PYTHON;
  if (!python) throw new Error("GITOPS_RUNNER_TEST_SMTP_PYTHON is not set: run the tests with `npm test`");
  const dir = await tempDir("smtp");
  const certificateFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-keyout",
    keyFile,
    "-out",
    certificateFile,
  ]);
  const folder = path.join(dir, "mail");
  await mkdir(folder);
  const port = await freePort();
  const child = spawn(
    python,
    [
      path.join(import.meta.dirname, "smtp-server.py"),
      "--port",
      String(port),
      "--mode",
      options.mode,
      "--cert",
      certificateFile,
      "--key",
      keyFile,
      "--user",
      options.user,
      "--password",
      options.password,
      "--folder",
      folder,
      "--fail-first",
      String(options.failFirst ?? 0),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    await exited;
  };
  onTestFinished(stop);
  await ready(child);
  return {
    host: "127.0.0.1",
    port,
    certificate: await readFile(certificateFile, "utf8"),
    certificateFile,
    async received() {
      const names = (await readdir(folder)).filter((name) => name.endsWith(".eml"));
      names.sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10));
      return Promise.all(
        names.map(async (name) => {
          const raw = await readFile(path.join(folder, name), "utf8");
          const envelope = JSON.parse(
            await readFile(path.join(folder, name.replace(/\.eml$/, ".json")), "utf8"),
          );
          return { envelope, raw, parsed: await simpleParser(raw) };
        }),
      );
    },
    stop,
  };
}

/** Waits for the server's "ready" line; fails with its output as soon as it exits. */
async function ready(child: ChildProcess): Promise<void> {
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`smtp server: not ready in time\n${stderr}`)),
      READY_TIMEOUT_MS,
    );
    lines.on("line", (line) => {
      if (line.trim() === "ready") {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`smtp server exited with ${code}\n${stderr}`));
    });
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}
