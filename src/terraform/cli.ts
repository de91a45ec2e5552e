import { chmod, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { isRunnerError, RunnerError } from "../errors.ts";
import { type ExecResult, exec, execFailureOutput } from "../process/exec.ts";
import { splitJsonOutput } from "./json-output.ts";
import { type PlanJson, parsePlanJson } from "./plan-json.ts";

export type EngineName = "terraform" | "tofu";

export interface Engine {
  readonly engine: EngineName;
  readonly version: string;
}

export interface EngineVersion extends Engine {
  /** Provider source address to version, e.g. registry.opentofu.org/hashicorp/aws: 5.100.0. */
  readonly providers: Readonly<Record<string, string>>;
}

export interface TerraformCliOptions {
  /** Path of the terraform or tofu binary. */
  readonly binary: string;
  /** The environment every command gets; per-call variables are added on top. */
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** Where output is captured while a command runs (see ExecOptions.tempDir). */
  readonly tempDir?: string;
  /** How long to wait for a state lock held by someone else, e.g. "30s". */
  readonly lockTimeout: string;
}

export interface CallOptions {
  readonly env?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
  /** Told the process group of the terraform process, e.g. to record it for crash recovery. */
  readonly onSpawn?: (pgid: number) => void;
  /** Told the command's output as it comes, in whole lines, e.g. for a live log. */
  readonly onOutput?: (text: string) => void;
}

export interface PlanOptions extends CallOptions {
  /** false plans without refreshing; drift checks refresh. */
  readonly refresh?: boolean;
}

export interface PlanOutcome {
  readonly hasChanges: boolean;
  readonly log: string;
}

export interface ShownPlan {
  readonly plan: PlanJson;
  /** What the engine printed besides the plan, e.g. warnings about its CLI configuration; "" when nothing. */
  readonly warnings: string;
}

/**
 * Drives one terraform or tofu binary. Every command is an argument array with
 * -input=false and -no-color; plans are saved to a file that only the runner
 * can read, and apply takes exactly that file.
 */
export class TerraformCli {
  readonly #options: TerraformCliOptions;
  #engine: Promise<Engine> | undefined;

  constructor(options: TerraformCliOptions) {
    this.#options = options;
  }

  /** The engine and its version, asked once per binary. */
  engine(call: CallOptions = {}): Promise<Engine> {
    this.#engine ??= this.#run(tmpdir(), ["version"], "version", call).then(({ stdout }) => {
      const head = /^(OpenTofu|Terraform) v(\S+)/m.exec(stdout);
      if (!head?.[1] || !head[2]) {
        throw new RunnerError(
          "TERRAFORM_OUTPUT_INVALID",
          `terraform version: unrecognised output: ${stdout}`,
        );
      }
      return { engine: head[1] === "OpenTofu" ? "tofu" : "terraform", version: head[2] };
    });
    return this.#engine;
  }

  async init(dir: string, call: CallOptions = {}): Promise<string> {
    const { stdout } = await this.#run(
      dir,
      ["init", "-input=false", "-no-color", this.#lockTimeout()],
      "init",
      call,
    );
    return stdout;
  }

  /** plan -detailed-exitcode -out=planFile: exit 2 means the plan has changes. */
  async plan(dir: string, planFile: string, call: PlanOptions = {}): Promise<PlanOutcome> {
    const args = [
      "plan",
      "-input=false",
      "-no-color",
      "-detailed-exitcode",
      this.#lockTimeout(),
      `-out=${planFile}`,
    ];
    if (call.refresh === false) args.push("-refresh=false");
    const result = await this.#run(dir, args, "plan", call, [0, 2]);
    await chmod(planFile, 0o600);
    return { hasChanges: result.exitCode === 2, log: result.stdout };
  }

  /** The saved plan as JSON; a file that holds no plan (a state, say) is refused. */
  async show(dir: string, planFile: string, call: CallOptions = {}): Promise<ShownPlan> {
    const { stdout, stderr } = await this.#run(dir, ["show", "-json", "-no-color", planFile], "show", call);
    const source = `show -json ${planFile}`;
    const { document, warnings } = splitJsonOutput(stdout, stderr, source);
    return { plan: parsePlanJson(document, source), warnings };
  }

  /** Applies exactly the saved plan file; a saved plan needs no approval prompt. */
  async apply(dir: string, planFile: string, call: CallOptions = {}): Promise<string> {
    const args = ["apply", "-input=false", "-no-color", this.#lockTimeout(), planFile];
    const { stdout } = await this.#run(dir, args, "apply", call);
    return stdout;
  }

  #lockTimeout(): string {
    return `-lock-timeout=${this.#options.lockTimeout}`;
  }

  async #run(
    dir: string,
    args: readonly string[],
    command: string,
    call: CallOptions,
    okExitCodes: readonly number[] = [0],
  ): Promise<ExecResult> {
    try {
      return await exec(this.#options.binary, args, {
        step: `terraform ${command}`,
        cwd: dir,
        env: { ...this.#options.env, ...call.env, TF_IN_AUTOMATION: "1", TF_INPUT: "0" },
        timeoutMs: this.#options.timeoutMs,
        ...(this.#options.tempDir ? { tempDir: this.#options.tempDir } : {}),
        okExitCodes,
        ...(call.signal ? { signal: call.signal } : {}),
        ...(call.onSpawn ? { onSpawn: call.onSpawn } : {}),
        ...(call.onOutput ? { onOutput: call.onOutput } : {}),
      });
    } catch (error) {
      throw toTerraformError(error, command);
    }
  }
}

/** Turns a failed terraform command into a typed error; lock conflicts name the holder. */
function toTerraformError(error: unknown, command: string): unknown {
  if (!isRunnerError(error, "EXEC_FAILED")) return error;
  const output = execFailureOutput(error);
  const text = `${output?.stderr ?? ""}\n${output?.stdout ?? ""}`;
  if (text.includes("Error acquiring the state lock")) {
    const field = (name: string) => new RegExp(`^\\s*${name}:\\s*(.*)$`, "m").exec(text)?.[1]?.trim();
    const holder = [field("Who"), field("Operation"), field("Created")].filter(Boolean).join(", ");
    return new RunnerError(
      "TERRAFORM_LOCKED",
      `terraform ${command}: the state is locked (ID ${field("ID") ?? "unknown"}) by ${holder || "an unknown holder"}`,
      { cause: error },
    );
  }
  return new RunnerError("TERRAFORM_FAILED", `terraform ${command}: ${diagnostics(text) || error.message}`, {
    cause: error,
  });
}

/** The "Error: ..." diagnostics of Terraform's output, without the boxes around them. */
function diagnostics(text: string): string {
  const lines = text
    .split("\n")
    .map((line) => line.replace(/^[│╷╵]\s?/u, "").trimEnd())
    .filter((line) => line.length > 0);
  const first = lines.findIndex((line) => line.startsWith("Error"));
  return first === -1 ? "" : lines.slice(first).join("\n");
}

/**
 * The provider versions a stack's init selected, from its .terraform.lock.hcl
 * (no extra process): source address to version.
 */
export async function providerVersions(dir: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(path.join(dir, ".terraform.lock.hcl"), "utf8");
  } catch {
    return {};
  }
  const providers: Record<string, string> = {};
  for (const match of text.matchAll(/^provider "([^"]+)" \{\s*\n\s*version\s*=\s*"([^"]+)"/gm)) {
    if (match[1] && match[2]) providers[match[1]] = match[2];
  }
  return providers;
}
