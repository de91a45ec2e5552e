import { z } from "zod";
import { glob } from "../domain/glob.ts";
import type { Violation } from "../store/records.ts";

/**
 * Policy checks written as JSON rules: pure data, evaluated by the runner
 * itself against a plan's JSON (redacted, as the runner stores it). A rule
 * applies to the resource changes whose type matches `resource` (a glob with
 * `*`) and whose actions include one of `actions` (default create and
 * update), and is one of: `require` (attribute paths that must be set after
 * the change), `deny` (such a change is not allowed at all), or `maxChanges`
 * (the plan changes at most this many resources).
 */
const ACTIONS = ["create", "update", "delete", "read", "no-op", "forget"] as const;

const common = {
  id: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' and '-'"),
  message: z.string().min(1).optional(),
  /** A person's approval of this very plan lets a violation through (in the service); otherwise it blocks. */
  approvable: z.boolean().default(false),
};
const selection = {
  resource: z.string().min(1).default("*"),
  actions: z.array(z.enum(ACTIONS)).min(1).default(["create", "update"]),
};

const ruleSchema = z.union([
  z.strictObject({ ...common, ...selection, require: z.array(z.string().min(1)).min(1) }),
  z.strictObject({ ...common, ...selection, deny: z.literal(true) }),
  z.strictObject({ ...common, maxChanges: z.int().min(0) }),
]);

export const ruleFileSchema = z.strictObject({ rules: z.array(ruleSchema) });

export type Rule = z.infer<typeof ruleSchema>;

interface PlannedChange {
  readonly address: string;
  readonly type: string;
  readonly actions: readonly string[];
  readonly after: unknown;
  readonly afterUnknown: unknown;
}

/** The violations a plan's JSON has of a list of rules. Pure. */
export function evaluateRules(rules: readonly Rule[], plan: unknown): Violation[] {
  const changes = plannedChanges(plan);
  return rules.flatMap((rule): Violation[] => {
    const approvable = rule.approvable ? { approvable: true } : {};
    if ("maxChanges" in rule) {
      const changing = changes.filter(
        (change) => !change.actions.every((action) => action === "no-op" || action === "read"),
      );
      if (changing.length <= rule.maxChanges) return [];
      return [
        {
          check: rule.id,
          message:
            rule.message ??
            `the plan changes ${changing.length} resources; at most ${rule.maxChanges} may change at once`,
          ...approvable,
        },
      ];
    }
    const matching = changes.filter(
      (change) =>
        glob(rule.resource).test(change.type) &&
        change.actions.some((action) => rule.actions.includes(action as never)),
    );
    if ("deny" in rule) {
      return matching.map((change) => ({
        check: rule.id,
        address: change.address,
        message: rule.message ?? `${change.type} may not be ${change.actions.map(participle).join(" and ")}`,
        ...approvable,
      }));
    }
    return matching.flatMap((change) => {
      const missing = rule.require.filter(
        (attribute) => !isSet(change.after, change.afterUnknown, attribute),
      );
      return missing.length === 0
        ? []
        : [
            {
              check: rule.id,
              address: change.address,
              message: rule.message ?? `${missing.join(", ")} must be set`,
              ...approvable,
            },
          ];
    });
  });
}

const PARTICIPLES: Readonly<Record<string, string>> = {
  create: "created",
  update: "updated",
  delete: "destroyed",
  read: "read",
  forget: "forgotten",
};

function participle(action: string): string {
  return PARTICIPLES[action] ?? action;
}

function plannedChanges(plan: unknown): PlannedChange[] {
  const list = (plan as { resource_changes?: unknown } | null)?.resource_changes;
  if (!Array.isArray(list)) return [];
  return list.flatMap((item) => {
    const change = item as {
      address?: unknown;
      type?: unknown;
      mode?: unknown;
      change?: { actions?: unknown; after?: unknown; after_unknown?: unknown };
    };
    if (typeof change.address !== "string" || typeof change.type !== "string" || change.mode === "data")
      return [];
    const actions = Array.isArray(change.change?.actions) ? change.change.actions.map(String) : [];
    return [
      {
        address: change.address,
        type: change.type,
        actions,
        after: change.change?.after,
        afterUnknown: change.change?.after_unknown,
      },
    ];
  });
}

/** Whether an attribute path (`tags.owner`, `rule.0.apply`) has a value after the change, or one known only after apply. */
function isSet(after: unknown, afterUnknown: unknown, attribute: string): boolean {
  const path = attribute.split(".");
  if (at(afterUnknown, path) === true) return true;
  const value = at(after, path);
  if (value === undefined || value === null || value === "") return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === "object") return Object.keys(value).length > 0;
  return true;
}

function at(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const segment of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}
