import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import { decideApply } from "../src/domain/decisions.ts";
import type { CommandReport } from "../src/engine/report.ts";
import { parsePolicy } from "../src/policy/policy.ts";
import { evaluateRules, ruleFileSchema } from "../src/policy/rules.ts";
import { failsPlanGates, policySection } from "../src/service/plan-gates.ts";
import type { Violation } from "../src/store/records.ts";
import { runCli } from "./support/cli.ts";
import { dataDir, TestRepo } from "./support/repo.ts";

const change = (
  address: string,
  type: string,
  actions: string[],
  after: unknown,
  afterUnknown: unknown = {},
) => ({
  address,
  mode: "managed",
  type,
  name: address.split(".")[1],
  change: { actions, before: null, after, after_unknown: afterUnknown },
});

const plan = {
  format_version: "1.2",
  resource_changes: [
    change("aws_s3_bucket.logs", "aws_s3_bucket", ["create"], { bucket: "logs", tags: { owner: "ana" } }),
    change("aws_s3_bucket.tmp", "aws_s3_bucket", ["create"], { bucket: "tmp", tags: {} }),
    change("aws_s3_bucket.old", "aws_s3_bucket", ["delete"], null),
    change("aws_iam_user.bob", "aws_iam_user", ["create"], { name: "bob" }, { arn: true }),
    change("aws_sqs_queue.q", "aws_sqs_queue", ["no-op"], { name: "q" }),
    { ...change("data.aws_caller_identity.me", "aws_caller_identity", ["read"], {}), mode: "data" },
  ],
};

const rules = (data: unknown) => ruleFileSchema.parse(data).rules;

describe("JSON policy rules", () => {
  it("require attributes after create and update, deny resource types, and bound the size of a change", () => {
    const violations = evaluateRules(
      rules({
        rules: [
          { id: "owner-tag", resource: "aws_s3_bucket", require: ["tags.owner"] },
          { id: "no-iam-users", resource: "aws_iam_*", deny: true, message: "use roles, not users" },
          { id: "arn-known", resource: "aws_iam_user", require: ["arn", "name"] },
          { id: "small", maxChanges: 3, approvable: true },
          { id: "big-enough", maxChanges: 4 },
        ],
      }),
      plan,
    );
    expect(violations).toEqual([
      { check: "owner-tag", address: "aws_s3_bucket.tmp", message: "tags.owner must be set" },
      { check: "no-iam-users", address: "aws_iam_user.bob", message: "use roles, not users" },
      {
        check: "small",
        message: "the plan changes 4 resources; at most 3 may change at once",
        approvable: true,
      },
    ]);
    expect(evaluateRules(rules({ rules: [{ id: "keep", deny: true, actions: ["delete"] }] }), plan)).toEqual([
      { check: "keep", address: "aws_s3_bucket.old", message: "aws_s3_bucket may not be destroyed" },
    ]);
  });

  it("refuses a rule of no known kind or with unknown fields", () => {
    expect(ruleFileSchema.safeParse({ rules: [{ id: "x", resource: "a" }] }).success).toBe(false);
    expect(ruleFileSchema.safeParse({ rules: [{ id: "x", deny: true, color: "red" }] }).success).toBe(false);
  });

  it("block an apply: for good, or until a person approves that very plan when every violation is approvable", () => {
    const policy = parsePolicy("gitops-runner.policy.json", "{}").forStack("web");
    const facts = {
      hasChanges: true,
      resources: [{ address: "a.b", actions: ["create" as const] }],
      destroys: [],
    };
    const hard: Violation = { check: "tags", address: "a.b", message: "tags.owner must be set" };
    const soft: Violation = { check: "small", message: "too big", approvable: true };
    const approval = { runId: "r1", resources: facts.resources };
    const rulesWith = (violations: Violation[], approved = false) => ({
      policy,
      allowDestroy: false,
      honourAutoApply: true,
      violations,
      ...(approved ? { approval } : {}),
    });

    expect(decideApply(facts, rulesWith([hard]))).toEqual({
      kind: "block",
      reason: "the policy checks found 1 violation(s): tags: a.b: tags.owner must be set",
    });
    expect(decideApply(facts, rulesWith([hard, soft], true))).toMatchObject({ kind: "block" });
    expect(decideApply(facts, rulesWith([soft]))).toEqual({
      kind: "block",
      reason: "the policy checks found 1 violation(s): small: too big; a person may approve this plan",
    });
    expect(decideApply(facts, rulesWith([soft], true))).toEqual({ kind: "apply" });
    expect(decideApply(facts, rulesWith([]))).toEqual({ kind: "apply" });
    expect(decideApply({ ...facts, hasChanges: false, resources: [] }, rulesWith([hard]))).toEqual({
      kind: "accept-unchanged",
    });
  });

  it("are listed in the pull request's comment and fail its plan check", () => {
    const report: CommandReport = {
      commit: "c1",
      stacks: [
        {
          name: "web",
          commit: "c1",
          status: "changes",
          summary: { add: 1, change: 0, destroy: 0, replace: 0, import: 0 },
          resources: [],
          runId: "r1",
          violations: [
            { check: "tags", address: "aws_s3_bucket.logs", message: "tags.owner must be <set>" },
            { check: "small", message: "too big", approvable: true },
          ],
        },
        {
          name: "db",
          commit: "c1",
          status: "no-changes",
          summary: { add: 0, change: 0, destroy: 0, replace: 0, import: 0 },
          resources: [],
          runId: "r2",
        },
      ],
    };
    expect(policySection(report)).toBe(
      [
        "#### Policy checks",
        "",
        "- **web**: 2 violations",
        "  - `tags`: `aws_s3_bucket.logs`: tags.owner must be \\<set\\>",
        "  - `small`: too big _(a person may approve the plan)_",
        "",
        "After the merge, the apply of these stacks stops as `blocked` until the violations are fixed.",
      ].join("\n"),
    );
    expect(failsPlanGates(report)).toBe(true);
    const clean = { ...report, stacks: report.stacks.slice(1) };
    expect(policySection(clean)).toBeUndefined();
    expect(failsPlanGates(clean)).toBe(false);
  });
});

const SIZE_CHECK = `
import { existsSync } from "node:fs";

export default function sizes(plan: { resource_changes?: any[] }, context: { stack: string }) {
  const violations = [];
  for (const change of plan.resource_changes ?? []) {
    const size = change.change?.after?.input?.size;
    if (typeof size === "number" && size > 2) {
      violations.push({ address: change.address, message: \`size \${size} in \${context.stack} is over 2\` });
    }
  }
  if (existsSync(process.env.DATA_DIR_PROBE ?? "/nonexistent")) violations.push({ message: "the data directory is visible" });
  return violations;
}
`;

function runs(data: string): { kind: string; stack: string; status: string; violations: string | null }[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return db.prepare("SELECT kind, stack, status, violations FROM runs ORDER BY rowid").all() as never;
  } finally {
    db.close();
  }
}

describe("policy checks in the watched repository", () => {
  it("pass a plan, fail one (blocking its apply), and fail the run of a check that throws", async () => {
    const repo = await TestRepo.create({ web: { box: { input: { size: 1, owner: "ana" } } } });
    await repo.write(
      "gitops-runner.checks/size.ts",
      SIZE_CHECK.replace("process.env.DATA_DIR_PROBE", "DATA_DIR"),
    );
    await repo.write(
      "gitops-runner.checks/tags.json",
      JSON.stringify({ rules: [{ id: "owner", resource: "terraform_data", require: ["input.owner"] }] }),
    );
    const data = await dataDir();
    // The check is code of the repository: it runs in the sandbox, where the runner's data directory is not.
    await repo.write(
      "gitops-runner.checks/size.ts",
      SIZE_CHECK.replace("process.env.DATA_DIR_PROBE", JSON.stringify(path.join(data, "runner.db"))),
    );
    await repo.commit("Checks");

    const passing = await runCli(["plan", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(passing.code).toBe(2);
    expect(passing.json.stacks[0]).toMatchObject({ name: "web", status: "changes" });
    expect(passing.json.stacks[0]).not.toHaveProperty("wouldBlock");
    expect(passing.stderr).not.toContain("data directory is visible");

    await repo.setApp({ web: { box: { input: { size: 5 } } } });
    await repo.commit("Grow the box, and drop its owner");
    const failing = await runCli(["plan", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(failing.code).toBe(2);
    expect(failing.json.stacks[0]).toMatchObject({
      status: "changes",
      wouldBlock: true,
      reason:
        "the policy checks found 2 violation(s): owner: terraform_data.box: input.owner must be set; gitops-runner.checks/size.ts: terraform_data.box: size 5 in web is over 2",
    });
    const blocked = await runCli(["apply", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(blocked.code).toBe(3);
    expect(blocked.json.stacks[0]).toMatchObject({
      status: "blocked",
      reason: failing.json.stacks[0].reason,
    });
    const applyRun = runs(data).filter((run) => run.kind === "apply");
    expect(applyRun).toEqual([
      expect.objectContaining({
        status: "blocked",
        violations: expect.stringContaining("size 5 in web is over 2"),
      }),
    ]);
    const audit = await runCli(["audit", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(audit.json.entries).toEqual([]);

    await repo.write(
      "gitops-runner.checks/broken.ts",
      "export default function broken() { throw new RangeError('no budget file'); }\n",
    );
    await repo.commit("A check that throws");
    const thrown = await runCli(["plan", "--repo", repo.dir, "--data-dir", data, "--json"]);
    expect(thrown.code).toBe(1);
    expect(thrown.json.stacks[0]).toMatchObject({
      status: "failed",
      error: {
        code: "POLICY_CHECK_FAILED",
        message: "stack web: check policy: gitops-runner.checks/broken.ts threw RangeError: no budget file",
      },
    });
  });

  it("refuses a rule file with a mistake, naming the file and the field, before any plan", async () => {
    const repo = await TestRepo.create({ web: { box: { input: { size: 1 } } } });
    await repo.write(
      "gitops-runner.checks/bad.json",
      JSON.stringify({ rules: [{ id: "x", maxChanges: -1 }] }),
    );
    await repo.commit("A bad rule");
    const data = await dataDir();
    const result = await runCli(["plan", "--repo", repo.dir, "--data-dir", data]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("gitops-runner.checks/bad.json: rules.0");
    expect(runs(data).filter((run) => run.kind === "plan")).toEqual([]);
  });
});
