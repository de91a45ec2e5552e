import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { RunnerError } from "../errors.ts";
import { evaluateRules } from "../policy/rules.ts";
import { exec } from "../process/exec.ts";
import { outputDir } from "../state/data-dir.ts";
import type { Violation } from "../store/records.ts";
import type { EngineContext } from "./context.ts";
import type { RunScope } from "./stack-run.ts";
import type { SynthesizedApp } from "./synthesized-app.ts";

/** Runs the TypeScript checks; see the file. */
const CHECK_HOST = fileURLToPath(new URL("../policy/check-host.mts", import.meta.url));

const resultsSchema = z.strictObject({
  results: z.array(
    z.union([
      z.strictObject({
        file: z.string(),
        violations: z.array(
          z.looseObject({
            address: z.string().optional(),
            message: z.string().min(1),
            approvable: z.boolean().optional(),
          }),
        ),
      }),
      z.strictObject({ file: z.string(), error: z.string() }),
    ]),
  ),
});

/**
 * Checks a stack's plan against the app's policy checks: its JSON rules here,
 * its TypeScript checks in the synthesis sandbox. Each gets the plan's JSON
 * as the runner stores it (redacted). A check that throws, or answers
 * something that is not a list of violations, fails the run: a policy that
 * could not be checked is not a policy that passed.
 */
export async function checkPolicy(
  context: EngineContext,
  scope: RunScope,
  app: SynthesizedApp,
  stack: string,
  plan: unknown,
): Promise<Violation[]> {
  const { checks } = app;
  if (plan === undefined || (checks.rules.length === 0 && checks.scripts.length === 0)) return [];
  return scope.step("check policy", async () => {
    const violations = [
      ...checks.rules.flatMap((file) => evaluateRules(file.rules, plan)),
      ...(checks.scripts.length > 0 ? await runScripts(context, scope, app, stack, plan) : []),
    ];
    scope.log.add(
      "policy checks",
      violations.length === 0
        ? "no violations"
        : violations
            .map(
              (violation) =>
                `${violation.check}: ${violation.address ? `${violation.address}: ` : ""}${violation.message}`,
            )
            .join("\n"),
    );
    return violations;
  });
}

async function runScripts(
  context: EngineContext,
  scope: RunScope,
  app: SynthesizedApp,
  stack: string,
  plan: unknown,
): Promise<Violation[]> {
  const { source } = app;
  const dir = path.join(source.workDir, `checks-${scope.id}`);
  await mkdir(dir, { recursive: true });
  try {
    const request = {
      plan: path.join(dir, "plan.json"),
      stack,
      checks: app.checks.scripts.map((file) => path.join(source.appDir, file)),
      out: path.join(dir, "results.json"),
    };
    await writeFile(request.plan, JSON.stringify(plan));
    await writeFile(path.join(dir, "request.json"), JSON.stringify(request));
    const command = (await context.sandbox()).command({
      file: "/usr/bin/env",
      args: ["node", CHECK_HOST, path.join(dir, "request.json")],
      env: { ...context.toolEnv, NODE_OPTIONS: `--max-old-space-size=${context.synthMaxOldSpaceMb}` },
      cwd: source.appDir,
      readWrite: [dir],
      readOnly: [source.checkoutDir, CHECK_HOST, ...source.dependencies],
    });
    const output = await exec(command.file, command.args, {
      step: "check policy",
      cwd: source.appDir,
      env: command.env,
      timeoutMs: context.synthTimeoutMs,
      tempDir: outputDir(context.dataDir),
      ...(context.signal ? { signal: context.signal } : {}),
    });
    const logged = `${output.stdout}${output.stderr}`.trim();
    if (logged) scope.log.add("policy checks output", logged);
    const parsed = resultsSchema.safeParse(JSON.parse(await readFile(request.out, "utf8")));
    if (!parsed.success) {
      const where = parsed.error.issues[0]?.path.join(".") ?? "";
      throw new RunnerError(
        "POLICY_CHECK_FAILED",
        `a check answered something other than violations (${where})`,
      );
    }
    const failures = parsed.data.results.flatMap((result) => ("error" in result ? [result] : []));
    if (failures.length > 0) {
      throw new RunnerError(
        "POLICY_CHECK_FAILED",
        failures
          .map((failure) => `${relative(source.appDir, failure.file)} threw ${failure.error}`)
          .join("\n"),
      );
    }
    return parsed.data.results.flatMap((result) =>
      "violations" in result
        ? result.violations.map((violation) => ({
            check: relative(source.appDir, result.file),
            ...(violation.address ? { address: violation.address } : {}),
            message: violation.message,
            ...(violation.approvable ? { approvable: true } : {}),
          }))
        : [],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The violations as a run's outcome records them: none recorded when there are none. */
export function checked(violations: readonly Violation[]): { violations?: readonly Violation[] } {
  return violations.length > 0 ? { violations } : {};
}

function relative(appDir: string, file: string): string {
  return path.relative(appDir, file);
}
