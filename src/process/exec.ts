import { mkdir, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { StringDecoder } from "node:string_decoder";
import { execa } from "execa";
import { RunnerError } from "../errors.ts";

/**
 * The one way the runner starts a child process: an argument array (never a
 * shell string), an explicit environment, a timeout, an output cap, and
 * cancellation that ends the child's whole process group. Exit codes and stderr
 * become typed errors here and nowhere else.
 */
export interface ExecOptions {
  /** What the runner was doing, for error messages: "synth", "terraform plan". */
  readonly step: string;
  readonly cwd: string;
  /** The complete environment of the child; nothing is inherited. */
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** Exit codes that count as success; others raise EXEC_FAILED. */
  readonly okExitCodes?: readonly number[];
  /** Cap on each of stdout and stderr, in bytes. */
  readonly maxOutputBytes?: number;
  /** Told the child's process group id once it runs (it leads its own group). */
  readonly onSpawn?: (pgid: number) => void;
  /**
   * Told the child's standard output as it comes, in whole lines (the last
   * one completed with a newline when the child ends), up to the output cap.
   */
  readonly onOutput?: (text: string) => void;
  /**
   * Where the child's output is captured while it runs: the runner's data
   * directory (private, cleaned by recovery); the system's temporary folder
   * when unset.
   */
  readonly tempDir?: string;
}

export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

const DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024;
const FOLLOW_INTERVAL_MS = 250;
const KILL_GRACE_MS = 10_000;
const STDERR_TAIL_LINES = 20;

export async function exec(file: string, args: readonly string[], options: ExecOptions): Promise<ExecResult> {
  const started = performance.now();
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const stop = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;

  // Output goes to files, not pipes: a child outlives a runner killed with
  // SIGKILL (it leads its own group) and must not die writing to a closed pipe.
  const parent = options.tempDir ?? tmpdir();
  await mkdir(parent, { recursive: true, mode: 0o700 });
  const outputDir = await mkdtemp(path.join(parent, "exec-"));
  const stdoutFile = path.join(outputDir, "stdout");
  const stderrFile = path.join(outputDir, "stderr");
  // Descriptors, not execa's { file } (which streams through this process).
  const stdoutHandle = await open(stdoutFile, "w");
  const stderrHandle = await open(stderrFile, "w");
  const child = execa(file, args, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: false,
    // Its own process group, so that a cancel reaches what it started too.
    detached: true,
    reject: false,
    // execa passes any descriptor to spawn, though its types list only 3 to 9.
    stdio: ["ignore", stdoutHandle.fd, stderrHandle.fd] as unknown as ["ignore", 3, 4],
  });
  // The child holds its own copies of the descriptors.
  await Promise.all([stdoutHandle.close(), stderrHandle.close()]);
  const maxBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT;
  const follower = options.onOutput ? followOutput(stdoutFile, maxBytes, options.onOutput) : undefined;

  if (child.pid !== undefined) options.onSpawn?.(child.pid);
  let forceKill: NodeJS.Timeout | undefined;
  const endGroup = () => {
    killGroup(child.pid, "SIGTERM");
    forceKill = setTimeout(() => killGroup(child.pid, "SIGKILL"), KILL_GRACE_MS);
    forceKill.unref();
  };
  stop.addEventListener("abort", endGroup, { once: true });

  try {
    const result = await child;
    const durationMs = performance.now() - started;
    await follower?.stop();
    const stdout = await readCapped(stdoutFile, maxBytes);
    const stderr = await readCapped(stderrFile, maxBytes);
    // Ended by us, whatever its exit code: a cancelled terraform exits 1 after a graceful stop.
    if (timeout.aborted) {
      throw new RunnerError("EXEC_TIMEOUT", `${options.step}: timed out after ${options.timeoutMs} ms`);
    }
    if (stop.aborted) {
      throw new RunnerError("EXEC_CANCELLED", `${options.step}: cancelled`, { cause: stop.reason });
    }
    if (result.failed && result.exitCode === undefined) {
      if (result.signal) {
        throw new RunnerError(
          "EXEC_FAILED",
          `${options.step}: killed by ${result.signal}\n${tail(String(result.stderr))}`,
          {
            cause: { exitCode: -1, stdout: String(result.stdout), stderr: String(result.stderr) },
          },
        );
      }
      const notFound = (result.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
      throw new RunnerError(
        notFound ? "EXEC_NOT_FOUND" : "EXEC_FAILED",
        `${options.step}: could not run ${file}: ${result.shortMessage}`,
        { cause: result.cause },
      );
    }
    const exitCode = result.exitCode ?? -1;
    if (!(options.okExitCodes ?? [0]).includes(exitCode)) {
      throw new RunnerError(
        "EXEC_FAILED",
        `${options.step}: exited with code ${exitCode}\n${tail(stderr || stdout)}`,
        {
          cause: { exitCode, stdout, stderr },
        },
      );
    }
    return { exitCode, stdout, stderr, durationMs };
  } finally {
    await follower?.stop();
    await rm(outputDir, { recursive: true, force: true });
    stop.removeEventListener("abort", endGroup);
    // After an abort the fallback stays armed (unref'd): the direct child may
    // have exited while others in its group ignore SIGTERM.
    if (!stop.aborted) clearTimeout(forceKill);
  }
}

/**
 * Reads what a child writes to its output file while it runs, and hands it on
 * in whole lines, so that a live log never splits a line (or a value the
 * runner hides in it) in two.
 */
function followOutput(file: string, maxBytes: number, onOutput: (text: string) => void) {
  const decoder = new StringDecoder("utf8");
  let position = 0;
  let pending = "";
  let stopped: Promise<void> | undefined;
  const emit = (text: string) => {
    try {
      onOutput(text);
    } catch {
      // A listener's failure is not the child's.
    }
  };
  const read = async () => {
    const handle = await open(file, "r").catch(() => undefined);
    if (!handle) return;
    try {
      const buffer = Buffer.alloc(64 * 1024);
      while (position < maxBytes) {
        const length = Math.min(buffer.length, maxBytes - position);
        const { bytesRead } = await handle.read(buffer, 0, length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        pending += decoder.write(buffer.subarray(0, bytesRead));
      }
    } finally {
      await handle.close();
    }
    const end = pending.lastIndexOf("\n");
    if (end >= 0) {
      emit(pending.slice(0, end + 1));
      pending = pending.slice(end + 1);
    }
  };
  let reading: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    reading = reading.then(read).catch(() => undefined);
  }, FOLLOW_INTERVAL_MS);
  timer.unref();
  return {
    /** Reads the rest and hands on the last line; once, however often it is called. */
    stop(): Promise<void> {
      stopped ??= (async () => {
        clearInterval(timer);
        await reading;
        await read().catch(() => undefined);
        pending += decoder.end();
        if (pending) emit(pending.endsWith("\n") ? pending : `${pending}\n`);
        pending = "";
      })();
      return stopped;
    },
  };
}

/** A file's text, or its last `maxBytes` when it is larger. */
async function readCapped(file: string, maxBytes: number): Promise<string> {
  const handle = await open(file, "r").catch(() => undefined);
  if (!handle) return ""; // The child never started.
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return buffer.toString("utf8");
  } finally {
    await handle.close();
  }
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

function tail(text: string): string {
  return text.trimEnd().split("\n").slice(-STDERR_TAIL_LINES).join("\n");
}

/** Details of a failed child process, as attached to EXEC_FAILED errors. */
export function execFailureOutput(error: RunnerError): { stdout: string; stderr: string } | undefined {
  const cause = error.cause as { stdout?: unknown; stderr?: unknown } | undefined;
  if (typeof cause?.stdout === "string" && typeof cause.stderr === "string") {
    return { stdout: cause.stdout, stderr: cause.stderr };
  }
  return undefined;
}
