import { RunnerError } from "../errors.ts";

/** What an engine printed for a `-json` command: its one JSON document, and whatever else it said. */
export interface JsonOutput {
  readonly document: Readonly<Record<string, unknown>>;
  /** The rest of stdout and all of stderr, e.g. warnings about the CLI configuration; "" when none. */
  readonly warnings: string;
}

/**
 * Finds the one JSON document in what an engine printed. `show -json` writes
 * its document as one line, but the engine may print diagnostics on stdout
 * before it: OpenTofu warns there when TF_CLI_CONFIG_FILE names a missing file.
 * Those lines, and stderr, are returned as warnings, never parsed as JSON.
 */
export function splitJsonOutput(stdout: string, stderr: string, source: string): JsonOutput {
  const whole = parseObject(stdout);
  if (whole) return { document: whole, warnings: stderr.trim() };
  const lines = stdout.split("\n");
  const documents = lines.flatMap((line, index) => {
    const document = line.trimStart().startsWith("{") ? parseObject(line) : undefined;
    return document ? [{ index, document }] : [];
  });
  const [found, ...more] = documents;
  if (!found) {
    throw new RunnerError("TERRAFORM_OUTPUT_INVALID", `${source}: not JSON: ${excerpt(stdout)}`);
  }
  if (more.length > 0) {
    throw new RunnerError(
      "TERRAFORM_OUTPUT_INVALID",
      `${source}: ${documents.length} JSON documents in the output (lines ${documents.map((candidate) => candidate.index + 1).join(", ")}), expected one`,
    );
  }
  const rest = lines.filter((_, index) => index !== found.index).join("\n");
  const warnings = [stderr.trim(), rest.trim()].filter((text) => text.length > 0).join("\n\n");
  return { document: found.document, warnings };
}

function parseObject(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function excerpt(text: string): string {
  const trimmed = text.trim();
  if (trimmed.length === 0) return "(no output)";
  return JSON.stringify(trimmed.length > 200 ? `${trimmed.slice(0, 200)}…` : trimmed);
}
