import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { RunnerError } from "../errors.ts";
import { type Rule, ruleFileSchema } from "./rules.ts";

/** The folder of policy checks, next to cdktf.json and the policy file. */
export const CHECKS_DIR = "gitops-runner.checks";

/** An app's policy checks: JSON rules (read and validated now) and TypeScript checks (run in the sandbox). */
export interface PolicyChecks {
  readonly rules: readonly { readonly file: string; readonly rules: readonly Rule[] }[];
  /** TypeScript check files, relative to the app's folder. */
  readonly scripts: readonly string[];
}

export const NO_CHECKS: PolicyChecks = Object.freeze({ rules: [], scripts: [] });

/**
 * Reads the checks folder of an app: each `*.json` a file of rules, each
 * `*.ts` a check whose default export takes the plan's JSON and returns
 * violations. Mistakes in a rule file are reported with the file and the
 * field path, and nothing is checked with a half-read policy.
 */
export async function readPolicyChecks(appDir: string): Promise<PolicyChecks> {
  let names: string[];
  try {
    names = (await readdir(path.join(appDir, CHECKS_DIR), { withFileTypes: true }))
      .filter((entry) => entry.isFile())
      .map((entry) => entry.name)
      .sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return NO_CHECKS;
    throw new RunnerError("POLICY_INVALID", `${CHECKS_DIR}: cannot be read: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const rules: { file: string; rules: Rule[] }[] = [];
  const problems: string[] = [];
  const ids = new Map<string, string>();
  for (const name of names.filter((candidate) => candidate.endsWith(".json"))) {
    const file = `${CHECKS_DIR}/${name}`;
    let data: unknown;
    try {
      data = JSON.parse(await readFile(path.join(appDir, file), "utf8"));
    } catch (error) {
      problems.push(`${file}: not valid JSON: ${(error as Error).message}`);
      continue;
    }
    const parsed = ruleFileSchema.safeParse(data);
    if (!parsed.success) {
      problems.push(
        ...parsed.error.issues.map(
          (issue) => `${file}: ${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`,
        ),
      );
      continue;
    }
    for (const [index, rule] of parsed.data.rules.entries()) {
      const earlier = ids.get(rule.id);
      if (earlier)
        problems.push(`${file}: rules.${index}.id: "${rule.id}" is already the id of a rule in ${earlier}`);
      ids.set(rule.id, file);
    }
    rules.push({ file, rules: parsed.data.rules });
  }
  if (problems.length > 0) throw new RunnerError("POLICY_INVALID", problems.join("\n"));
  const scripts = names.filter((name) => name.endsWith(".ts")).map((name) => `${CHECKS_DIR}/${name}`);
  return { rules, scripts };
}
