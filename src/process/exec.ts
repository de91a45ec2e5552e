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
}

export interface ExecResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

const DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024;
const KILL_GRACE_MS = 10_000;
const STDERR_TAIL_LINES = 20;

export async function exec(file: string, args: readonly string[], options: ExecOptions): Promise<ExecResult> {
  const started = performance.now();
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const stop = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;

  const child = execa(file, args, {
    cwd: options.cwd,
    env: options.env,
    extendEnv: false,
    // Its own process group, so that a cancel reaches what it started too.
    detached: true,
    reject: false,
    stdin: "ignore",
    maxBuffer: options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT,
    stripFinalNewline: false,
  });

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
    if (result.failed && result.exitCode === undefined) {
      if (timeout.aborted) {
        throw new RunnerError("EXEC_TIMEOUT", `${options.step}: timed out after ${options.timeoutMs} ms`);
      }
      if (stop.aborted) {
        throw new RunnerError("EXEC_CANCELLED", `${options.step}: cancelled`, { cause: stop.reason });
      }
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
    const stdout = String(result.stdout);
    const stderr = String(result.stderr);
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
    stop.removeEventListener("abort", endGroup);
    // After an abort the fallback stays armed (unref'd): the direct child may
    // have exited while others in its group ignore SIGTERM.
    if (!stop.aborted) clearTimeout(forceKill);
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
