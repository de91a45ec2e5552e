import { readFile } from "node:fs/promises";
import { z } from "zod";
import { RunnerError } from "../errors.ts";

const envSchema = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "not a variable name"), z.string());

const stackConfigSchema = z.strictObject({
  /** Variables for every command on this stack (credentials, TF_VAR_*). */
  env: envSchema.optional(),
  /** Variables for plans and drift checks only, e.g. read-only credentials; they win over env. */
  planEnv: envSchema.optional(),
});

/** The runner's own configuration file (JSON); never read from the watched repository. */
const runnerConfigSchema = z.strictObject({
  /** Path or name of the engine binary: terraform or tofu. Detected on PATH when unset. */
  engine: z.string().min(1).optional(),
  parallelism: z.int().min(1).max(64).default(4),
  lockTimeout: z
    .string()
    .regex(/^\d+[smh]$/, "a duration such as 30s, 5m or 1h")
    .default("30s"),
  allowInstallScripts: z.boolean().default(false),
  synthTimeoutSeconds: z.int().min(1).default(600),
  synthMaxOldSpaceMb: z.int().min(64).default(4096),
  terraformTimeoutSeconds: z.int().min(1).default(3600),
  env: envSchema.default({}),
  stacks: z.record(z.string(), stackConfigSchema).default({}),
});

export type RunnerConfig = z.infer<typeof runnerConfigSchema>;

export function parseRunnerConfig(file: string, text: string): RunnerConfig {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new RunnerError("CONFIG_INVALID", `${file}: not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const parsed = runnerConfigSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${file}: ${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`,
    );
    throw new RunnerError("CONFIG_INVALID", problems.join("\n"), { cause: parsed.error });
  }
  return Object.freeze(parsed.data);
}

export async function readRunnerConfig(file: string | undefined): Promise<RunnerConfig> {
  if (file === undefined) return parseRunnerConfig("(defaults)", "{}");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new RunnerError("CONFIG_INVALID", `${file}: cannot be read`, { cause: error });
  }
  return parseRunnerConfig(file, text);
}
