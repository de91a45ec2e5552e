import { writeFile } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import { runCli } from "./support/cli.ts";
import { dataDir } from "./support/repo.ts";

interface RunRow {
  readonly kind: string;
  readonly stack: string;
  readonly status: string;
  readonly log: string;
}

function runsIn(data: string): RunRow[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return db
      .prepare("SELECT kind, stack, status, log FROM runs ORDER BY rowid")
      .all() as unknown as RunRow[];
  } finally {
    db.close();
  }
}

/** The run log's section under a heading, e.g. "warnings". */
function section(log: string | undefined, heading: string): string | undefined {
  return log
    ?.split("==> ")
    .find((part) => part.startsWith(`${heading}\n`))
    ?.slice(heading.length + 1);
}

function demoPlanRun(data: string): RunRow | undefined {
  return runsIn(data).find((run) => run.kind === "plan" && run.stack === "demo");
}

describe("the README's plan command where TF_CLI_CONFIG_FILE names a missing file", () => {
  it("plans the demo app with the variable in the environment: exit 2, one warning naming it", async () => {
    const data = await dataDir();
    const missing = path.join(data, "missing.tfrc");

    const plan = await runCli(["plan", "--repo", ".", "--app-dir", "stacks/demo", "--data-dir", data], {
      TF_CLI_CONFIG_FILE: missing,
    });

    expect(plan.stderr).not.toContain('"level":50');
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/^demo\s+changes\s+\+2 ~0 -0/m);
    const warnings = plan.stderr
      .split("\n")
      .filter((line) => line.includes('"level":40') && line.includes("TF_CLI_CONFIG_FILE"));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0] ?? "{}")).toMatchObject({ variable: "TF_CLI_CONFIG_FILE", file: missing });
    // The engine ran as if the variable were unset: it had nothing to warn about.
    expect(demoPlanRun(data)?.status).toBe("succeeded");
    expect(section(demoPlanRun(data)?.log, "warnings")).toBeUndefined();
  });

  it("plans it with the variable set for the stack by the runner's configuration: the engine's warning in the run log", async () => {
    const data = await dataDir();
    const missing = path.join(data, "missing.tfrc");
    const config = path.join(data, "runner.json");
    await writeFile(config, JSON.stringify({ stacks: { demo: { env: { TF_CLI_CONFIG_FILE: missing } } } }));

    const plan = await runCli([
      "plan",
      "--repo",
      ".",
      "--app-dir",
      "stacks/demo",
      "--data-dir",
      data,
      "--config",
      config,
    ]);

    expect(plan.stderr).not.toContain('"level":50');
    expect(plan.code).toBe(2);
    expect(demoPlanRun(data)?.status).toBe("succeeded");
    const warnings = section(demoPlanRun(data)?.log, "warnings");
    expect(warnings).toContain("Unable to open CLI configuration file");
    // The path is a value the runner's configuration injected: it is redacted like any other.
    expect(warnings).toContain('The CLI configuration file at "(redacted)"');
    expect(warnings).not.toContain(missing);
  });
});
