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

describe("the README's plan command where the engine prints warnings", () => {
  it("plans the demo app with TF_CLI_CONFIG_FILE naming a missing file: exit 2, the engine's warning in the run log", async () => {
    const data = await dataDir();
    const missing = path.join(data, "missing.tfrc");

    const plan = await runCli(["plan", "--repo", ".", "--app-dir", "stacks/demo", "--data-dir", data], {
      TF_CLI_CONFIG_FILE: missing,
    });

    expect(plan.stderr).not.toContain('"level":50');
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/^demo\s+changes\s+\+2 ~0 -0/m);
    const run = runsIn(data).find((candidate) => candidate.kind === "plan" && candidate.stack === "demo");
    expect(run?.status).toBe("succeeded");
    const warnings = run?.log.split("==> ").find((section) => section.startsWith("warnings\n"));
    expect(warnings).toContain("Unable to open CLI configuration file");
    expect(warnings).toContain(missing);
  });
});
