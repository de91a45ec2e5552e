import { RunnerError } from "../errors.ts";
import type { PolicyDefaults } from "../policy/policy.ts";
import { glob } from "./glob.ts";

/**
 * Environments of one app (dev before staging before prod), and the
 * promotion rule between them: a stack of a later environment applies only a
 * configuration that its counterpart in the environment before already
 * applied successfully. Pure: configuration and records in, verdicts out.
 */
export type EnvironmentValue = string | number | boolean;

export interface Environment {
  readonly name: string;
  /** The app folder whose stacks it holds; any app folder when unset. */
  readonly appDir?: string;
  /** Stack name patterns (`*` matches any run of characters); every stack of the app when empty. */
  readonly stacks: readonly string[];
  /** The environment's own values, which the promotion hash ignores: keys name them across environments. */
  readonly values: Readonly<Record<string, EnvironmentValue>>;
  /** Whether its stacks wait for the environment before; the first environment never does. */
  readonly requirePromotion: boolean;
  /** Policy defaults for its stacks, between the policy file's `default` entry and a stack's own. */
  readonly policy?: PolicyDefaults;
}

/** The placeholder the environment's name becomes in a normalized configuration. */
const NAME_PLACEHOLDER = "${environment}";

export interface Membership {
  readonly environment: Environment;
  readonly index: number;
}

/**
 * The environment a stack of an app folder belongs to, if any. A stack that
 * two environments claim is a mistake of the configuration, reported with both.
 */
export function environmentOf(
  environments: readonly Environment[],
  appDir: string,
  stack: string,
): Membership | undefined {
  const claims = environments
    .map((environment, index) => ({ environment, index }))
    .filter(({ environment }) => holds(environment, appDir, stack));
  if (claims.length > 1) {
    throw new RunnerError(
      "CONFIG_INVALID",
      `environments: stack ${stack} belongs to more than one environment (${claims.map((claim) => claim.environment.name).join(", ")}); make their stack patterns exclusive`,
    );
  }
  return claims[0];
}

function holds(environment: Environment, appDir: string, stack: string): boolean {
  if (environment.appDir !== undefined && environment.appDir !== appDir) return false;
  return environment.stacks.length === 0 || environment.stacks.some((pattern) => glob(pattern).test(stack));
}

/**
 * The stack of the environment before that corresponds to `stack`: its name
 * with this environment's name (as a word: `network-prod`, `prod_db`) put as
 * the one before's (`network-dev`), in that environment's app folder.
 */
export function counterpartOf(
  environments: readonly Environment[],
  member: Membership,
  appDir: string,
  stack: string,
  /** Another environment than the one before (`promote --from`). */
  from: number = member.index - 1,
): { readonly environment: Environment; readonly appDir: string; readonly stack: string } | undefined {
  const previous = environments[from];
  if (previous === undefined) return undefined;
  const name = replaceWord(stack, member.environment.name, previous.name);
  const where = previous.appDir ?? appDir;
  return holds(previous, where, name) ? { environment: previous, appDir: where, stack: name } : undefined;
}

/**
 * A synthesized configuration (cdk.tf.json, parsed) without what is the
 * environment's own: its name as a word in any key or string, and each of its
 * declared values (a string as a word in any key or string, a number or a
 * boolean where it is a whole value), replaced by placeholders named by the
 * value's key. Two environments' configurations that differ only in those are equal.
 */
export function normalizeForPromotion(config: unknown, environment: Environment): unknown {
  const strings = Object.entries(environment.values)
    .filter((entry): entry is [string, string] => typeof entry[1] === "string" && entry[1].length > 0)
    // Longer values first, so that one value inside another is not cut in two.
    .sort(([, a], [, b]) => b.length - a.length);
  const scalars = new Map(
    Object.entries(environment.values)
      .filter(([, value]) => typeof value !== "string")
      .map(([key, value]) => [JSON.stringify(value), key]),
  );
  const text = (value: string) => {
    let normalized = value;
    for (const [key, word] of strings) normalized = replaceWord(normalized, word, `\${values.${key}}`);
    return replaceWord(normalized, environment.name, NAME_PLACEHOLDER);
  };
  const walk = (value: unknown): unknown => {
    if (typeof value === "string") return text(value);
    if (typeof value === "number" || typeof value === "boolean") {
      const key = scalars.get(JSON.stringify(value));
      return key === undefined ? value : `\${values.${key}}`;
    }
    if (Array.isArray(value)) return value.map(walk);
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([key, inner]) => [text(key), walk(inner)]));
    }
    return value;
  };
  return walk(config);
}

export type PromotionVerdict =
  /** Not in an environment, in the first one, or promotion is off for it. */
  | { readonly kind: "ungated" }
  /** The environment before applied this very configuration. */
  | {
      readonly kind: "promoted";
      readonly from: string;
      readonly counterpart: string;
      readonly commit: string;
    }
  /** The counterpart applies this very configuration first, in the same change (on merge). */
  | { readonly kind: "follows"; readonly from: string; readonly counterpart: string }
  | { readonly kind: "blocked"; readonly from?: string; readonly reason: string };

export interface PromotionFacts {
  readonly environment?: string;
  readonly requirePromotion: boolean;
  /** The environment before, when there is one. */
  readonly previous?: string;
  /** The counterpart stack in the environment before, when there is one. */
  readonly counterpart?: string;
  /** The stack's configuration hash without its environment's names and values. */
  readonly promotionHash?: string;
  /** The counterpart's successful apply of that same configuration, if any. */
  readonly appliedByCounterpart?: { readonly commit: string };
  /** The counterpart's configuration hash in the same change, when it is applied first in it. */
  readonly counterpartInChange?: { readonly promotionHash?: string };
}

export function decidePromotion(facts: PromotionFacts): PromotionVerdict {
  if (facts.environment === undefined || facts.previous === undefined || !facts.requirePromotion) {
    return { kind: "ungated" };
  }
  const from = facts.previous;
  if (facts.counterpart === undefined) {
    return {
      kind: "blocked",
      from,
      reason: `promotion: this ${facts.environment} stack has no counterpart in ${from}, so ${from} never applied its configuration`,
    };
  }
  if (facts.appliedByCounterpart) {
    return {
      kind: "promoted",
      from,
      counterpart: facts.counterpart,
      commit: facts.appliedByCounterpart.commit,
    };
  }
  if (facts.promotionHash !== undefined && facts.counterpartInChange?.promotionHash === facts.promotionHash) {
    return { kind: "follows", from, counterpart: facts.counterpart };
  }
  return {
    kind: "blocked",
    from,
    reason: `promotion: ${from} never applied this configuration (${facts.counterpart}); apply it to ${from} first`,
  };
}

function replaceWord(text: string, word: string, by: string): string {
  if (word.length === 0) return text;
  const escaped = word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return text.replace(new RegExp(`(?<![A-Za-z0-9])${escaped}(?![A-Za-z0-9])`, "g"), () => by);
}
