import { execFile } from "node:child_process";
import path from "node:path";
import { inheritedEnv, repoRoot } from "./toolchain.ts";

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed, for --json runs. */
  readonly json: any;
}

/** Runs the real gitops-runner command in a child process. */
export function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(repoRoot, "bin", "gitops-runner.js"), ...args],
      {
        cwd: repoRoot,
        env: { ...cliEnv(), ...env },
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        if (code === -1) return reject(error);
        let json: unknown;
        if (args.includes("--json")) {
          try {
            json = JSON.parse(stdout);
          } catch {
            json = undefined;
          }
        }
        resolve({ code, stdout, stderr, json });
      },
    );
  });
}

function cliEnv(): Record<string, string> {
  return { ...inheritedEnv(), GITOPS_RUNNER_LOG_LEVEL: "warn" };
}
