import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isRunnerError } from "../src/errors.ts";
import type { StackPolicy } from "../src/policy/policy.ts";
import { checkPolicyStacks, parsePolicy, readPolicy } from "../src/policy/policy.ts";

const JSON_FILE = "gitops-runner.policy.json";
const YAML_FILE = "gitops-runner.policy.yaml";

const DEFAULTS: StackPolicy = {
  allowDestroy: false,
  drift: "notify",
  driftSchedule: { kind: "interval", everyMs: 3_600_000, text: "1h" },
  autoApply: true,
  suspended: false,
  requireReviewedPlan: false,
};

function parseJson(policy: unknown) {
  return parsePolicy(JSON_FILE, JSON.stringify(policy));
}

/** The message of the POLICY_INVALID error that `run` throws. */
function policyError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(isRunnerError(error, "POLICY_INVALID")).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected a POLICY_INVALID error");
}

describe("reading the policy file of an app", () => {
  let appDir: string;

  beforeEach(async () => {
    appDir = await mkdtemp(path.join(os.tmpdir(), "gitops-runner-policy-"));
  });

  afterEach(async () => {
    await rm(appDir, { recursive: true, force: true });
  });

  it("gives every stack the defaults when there is no policy file", async () => {
    const policy = await readPolicy(appDir);

    expect(policy.file).toBeUndefined();
    expect(policy.stackNames).toEqual([]);
    expect(policy.forStack("storage")).toEqual(DEFAULTS);
  });

  it("reads a .yml file and says which file it read", async () => {
    await writeFile(path.join(appDir, "gitops-runner.policy.yml"), "storage:\n  suspended: true\n");

    const policy = await readPolicy(appDir);

    expect(policy.file).toBe("gitops-runner.policy.yml");
    expect(policy.stackNames).toEqual(["storage"]);
    expect(policy.forStack("storage")).toEqual({ ...DEFAULTS, suspended: true });
  });

  it("refuses two policy files, naming both", async () => {
    await writeFile(path.join(appDir, JSON_FILE), "{}");
    await writeFile(path.join(appDir, YAML_FILE), "{}");

    await expect(readPolicy(appDir)).rejects.toMatchObject({
      code: "POLICY_INVALID",
      message:
        "gitops-runner.policy.json, gitops-runner.policy.yaml: more than one policy file; keep only one",
    });
  });

  it("reports a file it cannot read", async () => {
    // A directory in the file's place fails to read even as root, which file modes would not.
    await mkdir(path.join(appDir, JSON_FILE));

    await expect(readPolicy(appDir)).rejects.toMatchObject({
      code: "POLICY_INVALID",
      message: expect.stringMatching(/^gitops-runner\.policy\.json: cannot be read: EISDIR/),
    });
  });
});

describe("the merge rule", () => {
  const policy = parseJson({
    default: { drift: "off", allowDestroy: true },
    storage: { drift: "correct", driftSchedule: "30m", renamedFrom: "bucket", requireReviewedPlan: true },
    access: { allowDestroy: false },
  });

  it("applies defaults, then the default entry, then the stack's entry", () => {
    expect(policy.forStack("storage")).toEqual({
      allowDestroy: true,
      drift: "correct",
      driftSchedule: { kind: "interval", everyMs: 30 * 60_000, text: "30m" },
      autoApply: true,
      suspended: false,
      requireReviewedPlan: true,
      renamedFrom: "bucket",
    });
    expect(policy.forStack("access")).toEqual({ ...DEFAULTS, drift: "off", allowDestroy: false });
  });

  it("gives a stack without an entry the default entry over the defaults", () => {
    expect(policy.forStack("messaging")).toEqual({ ...DEFAULTS, drift: "off", allowDestroy: true });
  });

  it("lists the stacks with their own entry, not `default`", () => {
    expect(policy.file).toBe(JSON_FILE);
    expect(policy.stackNames).toEqual(["storage", "access"]);
  });

  it("does not mistake Object.prototype members for entries", () => {
    expect(policy.forStack("constructor")).toEqual({ ...DEFAULTS, drift: "off", allowDestroy: true });
    expect(policy.forStack("toString")).toEqual(policy.forStack("messaging"));
  });

  it("returns frozen policies", () => {
    expect(Object.isFrozen(policy.forStack("storage"))).toBe(true);
    expect(Object.isFrozen(policy.forStack("storage").driftSchedule)).toBe(true);
  });
});

describe("YAML", () => {
  it("reads the same shape as JSON, with YAML 1.2 scalars (`off` is a string)", () => {
    const policy = parsePolicy(
      YAML_FILE,
      [
        "# drift is corrected everywhere but on storage",
        "default:",
        "  drift: correct",
        "storage:",
        "  drift: off",
        "  autoApply: false",
        "  driftSchedule: 0 */6 * * *",
      ].join("\n"),
    );

    expect(policy.forStack("storage")).toEqual({
      ...DEFAULTS,
      drift: "off",
      autoApply: false,
      driftSchedule: { kind: "cron", expression: "0 */6 * * *", text: "0 */6 * * *" },
    });
    expect(policy.forStack("access")).toEqual({ ...DEFAULTS, drift: "correct" });
  });

  it("treats a file of only comments as a policy with no entries", () => {
    const policy = parsePolicy("gitops-runner.policy.yml", "# storage:\n#   allowDestroy: true\n");

    expect(policy.stackNames).toEqual([]);
    expect(policy.forStack("storage")).toEqual(DEFAULTS);
  });

  it("does not take YAML 1.1 booleans such as `yes`", () => {
    expect(policyError(() => parsePolicy(YAML_FILE, "storage:\n  allowDestroy: yes\n"))).toBe(
      'gitops-runner.policy.yaml: storage.allowDestroy: expected a boolean (true or false), got "yes"',
    );
  });
});

describe("drift schedules", () => {
  const scheduleOf = (driftSchedule: string) =>
    parseJson({ storage: { driftSchedule } }).forStack("storage").driftSchedule;

  it.each([
    ["1m", 60_000],
    ["90s", 90_000],
    ["10m", 600_000],
    ["1h30m", 5_400_000],
    ["2d", 172_800_000],
    ["1d2h3m4s", 93_784_000],
    ["365d", 31_536_000_000],
  ])("reads the interval %s", (text, everyMs) => {
    expect(scheduleOf(text)).toEqual({ kind: "interval", everyMs, text });
  });

  it.each([
    ["*/15 * * * *", "*/15 * * * *"],
    ["0 9 * * MON-FRI", "0 9 * * MON-FRI"],
    [" 30  2 1 * * ", "30 2 1 * *"],
  ])("reads the cron expression %j", (text, expression) => {
    expect(scheduleOf(text)).toEqual({ kind: "cron", expression, text });
  });

  it.each([
    ["0", '"0" is neither an interval (such as 30m, 1h30m or 2d) nor a 5-field cron expression'],
    ["", '"" is neither an interval (such as 30m, 1h30m or 2d) nor a 5-field cron expression'],
    ["1h1h", '"1h1h" is neither an interval (such as 30m, 1h30m or 2d) nor a 5-field cron expression'],
    ["30m1h", '"30m1h" is neither an interval (such as 30m, 1h30m or 2d) nor a 5-field cron expression'],
    ["@daily", '"@daily" is neither an interval (such as 30m, 1h30m or 2d) nor a 5-field cron expression'],
    ["0m", '"0m" is shorter than the minimum interval of 10s'],
    ["5s", '"5s" is shorter than the minimum interval of 10s'],
    ["366d", '"366d" is longer than the maximum interval of 365d'],
    [
      "0 0 * * * *",
      '"0 0 * * * *" has 6 fields; a cron expression has 5 (minute hour day-of-month month day-of-week)',
    ],
    [
      "* * * *",
      '"* * * *" has 4 fields; a cron expression has 5 (minute hour day-of-month month day-of-week)',
    ],
    [
      "61 * * * *",
      '"61 * * * *" is not a valid cron expression: Constraint error, got value 61 expected range 0-59',
    ],
    ["0 0 31 2 *", '"0 0 31 2 *" is not a valid cron expression: Invalid explicit day of month definition'],
    ["H * * * *", '"H * * * *" is not a valid cron expression: H (a random time) is not supported'],
  ])("refuses %j", (driftSchedule, problem) => {
    expect(policyError(() => parseJson({ storage: { driftSchedule } }))).toBe(
      `gitops-runner.policy.json: storage.driftSchedule: ${problem}`,
    );
  });
});

describe("invalid policies", () => {
  it("names an unknown key by its path", () => {
    expect(policyError(() => parseJson({ storage: { allowDestory: true } }))).toBe(
      "gitops-runner.policy.json: storage.allowDestory: unrecognized key",
    );
  });

  it("names a value of the wrong type and what was expected", () => {
    expect(policyError(() => parseJson({ default: { autoApply: "false" } }))).toBe(
      'gitops-runner.policy.json: default.autoApply: expected a boolean (true or false), got "false"',
    );
    expect(policyError(() => parseJson({ storage: { driftSchedule: 60 } }))).toBe(
      "gitops-runner.policy.json: storage.driftSchedule: expected a string, got 60",
    );
    expect(policyError(() => parseJson({ storage: null }))).toBe(
      "gitops-runner.policy.json: storage: expected an object, got null",
    );
    expect(policyError(() => parseJson(["storage"]))).toBe(
      "gitops-runner.policy.json: (root): expected an object keyed by stack name, got an array",
    );
  });

  it("names the allowed drift modes", () => {
    expect(policyError(() => parseJson({ storage: { drift: "fix" } }))).toBe(
      'gitops-runner.policy.json: storage.drift: expected one of "correct", "notify", "off", got "fix"',
    );
  });

  it("lists every problem, one per line", () => {
    const message = policyError(() =>
      parseJson({
        default: { drift: "fix" },
        storage: { allowDestroy: 1, driftSchedule: "5s", extra: true },
        access: { renamedFrom: "" },
      }),
    );

    expect(message.split("\n")).toEqual([
      'gitops-runner.policy.json: default.drift: expected one of "correct", "notify", "off", got "fix"',
      "gitops-runner.policy.json: storage.allowDestroy: expected a boolean (true or false), got 1",
      'gitops-runner.policy.json: storage.driftSchedule: "5s" is shorter than the minimum interval of 10s',
      "gitops-runner.policy.json: storage.extra: unrecognized key",
      "gitops-runner.policy.json: access.renamedFrom: must name the stack's previous name",
    ]);
  });

  it("refuses renamedFrom where it cannot name one stack's previous name", () => {
    const message = policyError(() =>
      parseJson({
        default: { renamedFrom: "old" },
        storage: { renamedFrom: "storage" },
        access: { renamedFrom: "iam" },
        messaging: { renamedFrom: "iam" },
      }),
    );

    expect(message.split("\n")).toEqual([
      "gitops-runner.policy.json: default.renamedFrom: only a stack's own entry can name its previous name",
      "gitops-runner.policy.json: storage.renamedFrom: names the stack itself",
      'gitops-runner.policy.json: messaging.renamedFrom: "iam" is already the previous name of "access"',
    ]);
  });

  it("refuses __proto__ as a stack name rather than ignoring it", () => {
    expect(policyError(() => parsePolicy(JSON_FILE, '{"__proto__": {"drift": "off"}}'))).toBe(
      "gitops-runner.policy.json: __proto__: cannot be a stack name",
    );
  });

  it("names the file and position of a JSON syntax error", () => {
    expect(policyError(() => parsePolicy(JSON_FILE, '{\n  "storage": {},\n}'))).toBe(
      "gitops-runner.policy.json: not valid JSON: Expected double-quoted property name in JSON at position 19 (line 3 column 1)",
    );
  });

  it("names the file and position of each YAML syntax error", () => {
    expect(
      policyError(() => parsePolicy(YAML_FILE, "storage:\n  drift: off\nstorage:\n  drift: notify\n")),
    ).toBe("gitops-runner.policy.yaml: not valid YAML: Map keys must be unique at line 3, column 1");
    expect(policyError(() => parsePolicy(YAML_FILE, "storage: {drift: off\n"))).toMatch(
      /^gitops-runner\.policy\.yaml: not valid YAML: .* at line \d+, column \d+$/,
    );
  });

  it("refuses a file name that is not a policy file's", () => {
    expect(policyError(() => parsePolicy("policy.toml", ""))).toBe(
      "policy.toml: not a policy file name (expected gitops-runner.policy.json, gitops-runner.policy.yaml, gitops-runner.policy.yml)",
    );
  });
});

describe("checking entries against the app's stacks", () => {
  const appStacks = ["storage", "messaging", "access"];

  it("reports entries that name no stack, listing the app's stacks", () => {
    const policy = parseJson({ default: { drift: "off" }, storag: {}, storage: {} });

    expect(checkPolicyStacks(policy, appStacks)).toEqual([
      'gitops-runner.policy.json: entry "storag" names no stack of the app (stacks: access, messaging, storage)',
    ]);
  });

  it("reports a renamedFrom that is still a stack of the app", () => {
    const policy = parseJson({ access: { renamedFrom: "storage" } });

    expect(checkPolicyStacks(policy, appStacks)).toEqual([
      'gitops-runner.policy.json: access.renamedFrom: "storage" is still a stack of the app',
    ]);
  });

  it("finds nothing to report for a matching or an empty policy", () => {
    expect(checkPolicyStacks(parseJson({ storage: { renamedFrom: "bucket" } }), appStacks)).toEqual([]);
    expect(checkPolicyStacks(parsePolicy(YAML_FILE, ""), [])).toEqual([]);
  });
});
