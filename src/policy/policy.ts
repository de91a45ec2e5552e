import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { CronExpressionParser } from "cron-parser";
import type * as Yaml from "yaml";
import { z } from "zod";
import { RunnerError } from "../errors.ts";

/** The policy file sits next to cdktf.json; at most one of these may exist. */
export const POLICY_FILE_NAMES = [
  "gitops-runner.policy.json",
  "gitops-runner.policy.yaml",
  "gitops-runner.policy.yml",
] as const;

export type DriftMode = "correct" | "notify" | "off";

/** `text` is what the file says, kept for messages; the other fields are what a scheduler uses. */
export type Schedule =
  | { readonly kind: "interval"; readonly everyMs: number; readonly text: string }
  | { readonly kind: "cron"; readonly expression: string; readonly text: string };

export interface StackPolicy {
  readonly allowDestroy: boolean;
  readonly drift: DriftMode;
  readonly driftSchedule: Schedule;
  readonly autoApply: boolean;
  readonly suspended: boolean;
  readonly renamedFrom?: string;
  /**
   * A merge whose plan differs from the plan reviewed on its pull request (other
   * resources or actions) waits as blocked until someone approves it. Absent in
   * snapshots stored before this field existed: false.
   */
  readonly requireReviewedPlan?: boolean;
}

export interface Policy {
  /**
   * The stack's policy: the built-in defaults, the file's `default` entry,
   * then `environmentDefaults` (its environment's, from the runner's
   * configuration), then the stack's own entry.
   */
  forStack(name: string, environmentDefaults?: PolicyDefaults): StackPolicy;
  /** The policy file's path relative to the app directory, if there is one. */
  readonly file?: string;
  /** Stacks with an entry of their own, in file order (`default` is not one). */
  readonly stackNames: readonly string[];
}

const DEFAULT_ENTRY = "default";

export const DEFAULT_POLICY: StackPolicy = Object.freeze({
  allowDestroy: false,
  drift: "notify",
  driftSchedule: Object.freeze({ kind: "interval", everyMs: 3_600_000, text: "1h" }),
  autoApply: true,
  suspended: false,
  requireReviewedPlan: false,
});

const MINUTE_MS = 60_000;
// Ten seconds: short schedules serve demos and tests; a plan per stack per check bounds real use.
const MIN_INTERVAL_MS = 10_000;
// A drift check rarer than yearly is as good as none (`drift: off` says so); the bound also keeps
// `everyMs` far from float precision trouble.
const MAX_INTERVAL_MS = 365 * 24 * 60 * MINUTE_MS;
// Units in descending order, each at most once: 1h30m, 2d, 90s.
const INTERVAL = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;
// cron-parser's Jenkins-style `H` picks a random value on every parse, so the schedule would move
// each time the runner restarts. `THU` is a day name, not a hash.
const CRON_HASH = /(?<![A-Za-z])H/;

/** Reads a schedule; returns what is wrong as text so the schema can report it at its path. */
export function parseSchedule(text: string): Schedule | string {
  const trimmed = text.trim();
  const fields = trimmed.split(/\s+/);
  if (fields.length > 1) {
    return parseCron(text, fields);
  }
  const match = INTERVAL.exec(trimmed);
  if (trimmed === "" || match === null) {
    return `${JSON.stringify(text)} is neither an interval (such as 30m, 1h30m or 2d) nor a 5-field cron expression`;
  }
  const [, days = "0", hours = "0", minutes = "0", seconds = "0"] = match;
  const everyMs =
    ((Number(days) * 24 + Number(hours)) * 60 + Number(minutes)) * MINUTE_MS + Number(seconds) * 1000;
  if (everyMs < MIN_INTERVAL_MS) {
    return `${JSON.stringify(text)} is shorter than the minimum interval of 10s`;
  }
  if (everyMs > MAX_INTERVAL_MS) {
    return `${JSON.stringify(text)} is longer than the maximum interval of 365d`;
  }
  return { kind: "interval", everyMs, text };
}

function parseCron(text: string, fields: readonly string[]): Schedule | string {
  // cron-parser also takes a leading seconds field; the policy promises classic 5-field cron.
  if (fields.length !== 5) {
    return `${JSON.stringify(text)} has ${fields.length} fields; a cron expression has 5 (minute hour day-of-month month day-of-week)`;
  }
  if (fields.some((field) => CRON_HASH.test(field))) {
    return `${JSON.stringify(text)} is not a valid cron expression: H (a random time) is not supported`;
  }
  const expression = fields.join(" ");
  try {
    CronExpressionParser.parse(expression);
  } catch (error) {
    return `${JSON.stringify(text)} is not a valid cron expression: ${(error as Error).message}`;
  }
  return { kind: "cron", expression, text };
}

const scheduleSchema = z.string().transform((text, ctx): Schedule => {
  const schedule = parseSchedule(text);
  if (typeof schedule === "string") {
    ctx.issues.push({ code: "custom", message: schedule, input: text });
    return z.NEVER;
  }
  return Object.freeze(schedule);
});

const entrySchema = z.strictObject({
  allowDestroy: z.boolean().optional(),
  drift: z.enum(["correct", "notify", "off"]).optional(),
  driftSchedule: scheduleSchema.optional(),
  autoApply: z.boolean().optional(),
  suspended: z.boolean().optional(),
  requireReviewedPlan: z.boolean().optional(),
  renamedFrom: z.string().min(1, "must name the stack's previous name").optional(),
});

type PolicyEntry = z.infer<typeof entrySchema>;

/** Policy fields an environment of the runner's configuration sets for its stacks. */
export const policyDefaultsSchema = entrySchema.omit({ renamedFrom: true });
export type PolicyDefaults = z.infer<typeof policyDefaultsSchema>;

const policySchema = z.record(z.string(), entrySchema);

/** Parses a policy file's text (JSON or YAML by extension); errors list every problem. */
export function parsePolicy(fileName: string, text: string): Policy {
  const data = parseSyntax(fileName, text);
  // zod's record drops this key (it cannot be an own property of a plain object) instead of reporting it.
  if (typeof data === "object" && data !== null && Object.hasOwn(data, "__proto__")) {
    throw invalid([`${fileName}: __proto__: cannot be a stack name`]);
  }
  const parsed = policySchema.safeParse(data, { reportInput: true });
  if (!parsed.success) {
    throw invalid(
      parsed.error.issues.flatMap((issue) => describeIssue(issue)).map((line) => `${fileName}: ${line}`),
      parsed.error,
    );
  }
  const entries = new Map(Object.entries(parsed.data));
  const problems = crossFieldProblems(entries).map((line) => `${fileName}: ${line}`);
  if (problems.length > 0) {
    throw invalid(problems);
  }
  return buildPolicy(fileName, entries);
}

/** Finds the policy file in the app directory and parses it; no file means defaults for every stack. */
export async function readPolicy(appDir: string): Promise<Policy> {
  const found: { name: string; text: string }[] = [];
  for (const name of POLICY_FILE_NAMES) {
    try {
      found.push({ name, text: await readFile(path.join(appDir, name), "utf8") });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        continue;
      }
      throw invalid([`${name}: cannot be read: ${(error as Error).message}`], error);
    }
  }
  const [only, ...others] = found;
  if (only === undefined) {
    return buildPolicy(undefined, new Map());
  }
  if (others.length > 0) {
    throw invalid([`${found.map((file) => file.name).join(", ")}: more than one policy file; keep only one`]);
  }
  return parsePolicy(only.name, only.text);
}

/** Entries that name no stack of the app (typos, removed stacks); callers decide if that is fatal. */
export function checkPolicyStacks(policy: Policy, stackNames: readonly string[]): string[] {
  const file = policy.file ?? "policy";
  const known = new Set(stackNames);
  const listed = [...stackNames].sort().join(", ") || "none";
  const problems: string[] = [];
  for (const name of policy.stackNames) {
    if (!known.has(name)) {
      problems.push(`${file}: entry ${JSON.stringify(name)} names no stack of the app (stacks: ${listed})`);
    }
    const renamedFrom = policy.forStack(name).renamedFrom;
    if (renamedFrom !== undefined && known.has(renamedFrom)) {
      problems.push(
        `${file}: ${name}.renamedFrom: ${JSON.stringify(renamedFrom)} is still a stack of the app`,
      );
    }
  }
  return problems;
}

function parseSyntax(fileName: string, text: string): unknown {
  const extension = path.extname(fileName);
  if (extension === ".json") {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw invalid([`${fileName}: not valid JSON: ${(error as Error).message}`], error);
    }
  }
  if (extension === ".yaml" || extension === ".yml") {
    return parseYaml(fileName, text);
  }
  throw invalid([`${fileName}: not a policy file name (expected ${POLICY_FILE_NAMES.join(", ")})`]);
}

/** The YAML parser, loaded only when a policy is written in YAML: the CLI starts faster without it. */
const requireModule = createRequire(import.meta.url);

function parseYaml(fileName: string, text: string): unknown {
  const { LineCounter, parseDocument } = requireModule("yaml") as typeof Yaml;
  const lineCounter = new LineCounter();
  // prettyErrors would append a source excerpt over several lines; we want one problem per line.
  const document = parseDocument(text, { lineCounter, prettyErrors: false });
  if (document.errors.length > 0) {
    throw invalid(
      document.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        return `${fileName}: not valid YAML: ${error.message} at line ${line}, column ${col}`;
      }),
      document.errors[0],
    );
  }
  let data: unknown;
  try {
    data = document.toJS();
  } catch (error) {
    // toJS refuses documents that expand aliases excessively (a "billion laughs" file).
    throw invalid([`${fileName}: not valid YAML: ${(error as Error).message}`], error);
  }
  // A file of only comments is a policy with no entries, as if it were absent.
  return data ?? {};
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  const at = formatPath(issue.path);
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unrecognized key`);
    case "invalid_type": {
      const expected =
        issue.path.length === 0 ? "an object keyed by stack name" : describeExpected(issue.expected);
      return [`${at}: expected ${expected}, got ${describeValue(issue.input)}`];
    }
    case "invalid_value":
      return [
        `${at}: expected one of ${issue.values.map((value) => JSON.stringify(value)).join(", ")}, got ${describeValue(issue.input)}`,
      ];
    default:
      return [`${at}: ${issue.message}`];
  }
}

function describeExpected(expected: string): string {
  switch (expected) {
    case "object":
    case "record":
      return "an object";
    case "boolean":
      return "a boolean (true or false)";
    default:
      return `a ${expected}`;
  }
}

function describeValue(value: unknown): string {
  if (Array.isArray(value)) {
    return "an array";
  }
  if (value === null) {
    return "null";
  }
  if (typeof value === "object") {
    return "an object";
  }
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

function formatPath(segments: readonly PropertyKey[]): string {
  return segments.length === 0 ? "(root)" : segments.map(String).join(".");
}

/** What the schema cannot see: rules that relate entries to each other. */
function crossFieldProblems(entries: ReadonlyMap<string, PolicyEntry>): string[] {
  const problems: string[] = [];
  const previousOwners = new Map<string, string>();
  for (const [name, entry] of entries) {
    const renamedFrom = entry.renamedFrom;
    if (renamedFrom === undefined) {
      continue;
    }
    if (name === DEFAULT_ENTRY) {
      problems.push(`${name}.renamedFrom: only a stack's own entry can name its previous name`);
      continue;
    }
    if (renamedFrom === name) {
      problems.push(`${name}.renamedFrom: names the stack itself`);
      continue;
    }
    const owner = previousOwners.get(renamedFrom);
    if (owner !== undefined) {
      problems.push(
        `${name}.renamedFrom: ${JSON.stringify(renamedFrom)} is already the previous name of ${JSON.stringify(owner)}`,
      );
      continue;
    }
    previousOwners.set(renamedFrom, name);
  }
  return problems;
}

function buildPolicy(file: string | undefined, entries: ReadonlyMap<string, PolicyEntry>): Policy {
  const base = merge(DEFAULT_POLICY, entries.get(DEFAULT_ENTRY));
  // A Map, not an object, so that names like "constructor" never reach Object.prototype.
  const byStack = new Map<string, StackPolicy>();
  for (const [name, entry] of entries) {
    if (name !== DEFAULT_ENTRY) {
      byStack.set(name, merge(base, entry));
    }
  }
  return Object.freeze({
    ...(file === undefined ? {} : { file }),
    stackNames: Object.freeze([...byStack.keys()]),
    forStack: (name: string, environmentDefaults?: PolicyDefaults): StackPolicy =>
      environmentDefaults
        ? merge(merge(base, environmentDefaults), entries.get(name))
        : (byStack.get(name) ?? base),
  });
}

/** The merge rule: defaults ← `default` entry ← the stack's entry, field by field. */
function merge(under: StackPolicy, over: PolicyEntry | undefined): StackPolicy {
  // renamedFrom is one stack's history, so it never comes from `under`.
  const renamedFrom = over?.renamedFrom;
  return Object.freeze({
    allowDestroy: over?.allowDestroy ?? under.allowDestroy,
    drift: over?.drift ?? under.drift,
    driftSchedule: over?.driftSchedule ?? under.driftSchedule,
    autoApply: over?.autoApply ?? under.autoApply,
    suspended: over?.suspended ?? under.suspended,
    requireReviewedPlan: over?.requireReviewedPlan ?? under.requireReviewedPlan ?? false,
    ...(renamedFrom === undefined ? {} : { renamedFrom }),
  });
}

function invalid(problems: readonly string[], cause?: unknown): RunnerError {
  return new RunnerError("POLICY_INVALID", problems.join("\n"), { cause });
}
