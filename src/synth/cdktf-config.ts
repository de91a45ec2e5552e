import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { RunnerError } from "../errors.ts";

/** The fields of cdktf.json the runner uses; cdktf and cdktn write the same file. */
const cdktfConfigSchema = z.looseObject({
  app: z.string().trim().min(1, "must name the command that synthesizes the app"),
  output: z.string().optional(),
  context: z.record(z.string(), z.unknown()).optional(),
});

export type CdktfConfig = z.infer<typeof cdktfConfigSchema>;

export async function readCdktfConfig(appDir: string): Promise<CdktfConfig> {
  const file = path.join(appDir, "cdktf.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new RunnerError("SYNTH_CONFIG_INVALID", `${file}: cannot be read (is this the app directory?)`, {
      cause: error,
    });
  }
  return parseJsonFile(file, text, cdktfConfigSchema, "SYNTH_CONFIG_INVALID");
}

/** Parses JSON text against a schema; errors name the file and the field path. */
export function parseJsonFile<T>(
  file: string,
  text: string,
  schema: z.ZodType<T>,
  code: "SYNTH_CONFIG_INVALID" | "SYNTH_MANIFEST_INVALID",
): T {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new RunnerError(code, `${file}: not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${file}: ${formatPath(issue.path)}: ${issue.message}`,
    );
    throw new RunnerError(code, problems.join("\n"), { cause: parsed.error });
  }
  return parsed.data;
}

function formatPath(segments: readonly PropertyKey[]): string {
  return segments.length === 0 ? "(root)" : segments.map(String).join(".");
}
