import { spawn } from "node:child_process";
import { once } from "node:events";
import { onTestFinished } from "vitest";
import { repoRoot } from "./toolchain.ts";

export interface InTerminal {
  /** Everything written to the terminal so far, with the terminal's CRLF line ends made LF. */
  text(): string;
  /** The command's exit code, once it ended. */
  readonly exited: Promise<number>;
}

/**
 * Runs a shell line with a pseudo-terminal as its stdin, stdout and stderr
 * (`script` from util-linux), as when a person runs it; the line may redirect
 * stdout to a file to keep it apart.
 */
export function startInTerminal(line: string, env: Record<string, string>): InTerminal {
  const child = spawn("script", ["--quiet", "--flush", "--return", "--command", line, "/dev/null"], {
    cwd: repoRoot,
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let output = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    output += chunk;
  });
  const exited = once(child, "close").then(([code]) => code as number);
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  });
  return { text: () => output.replaceAll("\r\n", "\n"), exited };
}

export async function runInTerminal(
  line: string,
  env: Record<string, string>,
): Promise<{ code: number; text: string }> {
  const terminal = startInTerminal(line, env);
  const code = await terminal.exited;
  return { code, text: terminal.text() };
}

/** Quotes words for a shell line. */
export function shellLine(...words: readonly string[]): string {
  return words.map((word) => `'${word.replaceAll("'", `'\\''`)}'`).join(" ");
}
