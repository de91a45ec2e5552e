import { isDeepStrictEqual } from "node:util";
import type { PlanJson } from "./plan-json.ts";

export interface DriftedResource {
  readonly address: string;
  /** The drift entry's `change.actions` as Terraform wrote them; ["delete"] for an object deleted out of band. */
  readonly actions: readonly string[];
  /** Sorted attribute paths that changed outside Terraform, e.g. `tags.team`, `versioning[0].enabled`. */
  readonly attributes: readonly string[];
}

/**
 * Managed resources that changed outside Terraform, from the plan's
 * `resource_drift`, with the attribute paths whose values differ. Give it the
 * plan as Terraform printed it: in a redacted plan a changed sensitive value
 * reads "(sensitive)" on both sides and is not seen.
 */
export function driftedResources(plan: PlanJson): DriftedResource[] {
  const drifted: DriftedResource[] = [];
  for (const resource of plan.resource_drift ?? []) {
    if (resource.mode !== "managed") continue;
    const { actions, before, after } = resource.change;
    if (isDeepStrictEqual(before, after)) continue;
    // An object that appeared or disappeared has no attributes to name.
    const attributes = isRecord(before) && isRecord(after) ? differingPaths(before, after, "") : [];
    drifted.push({ address: resource.address, actions, attributes: attributes.sort() });
  }
  return drifted;
}

/**
 * Drift is a plan with managed-resource or output changes that are not no-ops;
 * data sources (their reads) change nothing. Judged from the plan JSON, never
 * from the exit code: `plan -detailed-exitcode` also exits 2 for check blocks.
 */
export function isDrifted(plan: PlanJson): boolean {
  const resourceChanged = (plan.resource_changes ?? []).some(
    (resource) =>
      resource.mode === "managed" && !resource.change.actions.every((action) => action === "no-op"),
  );
  const outputChanged = Object.values(plan.output_changes ?? {}).some(
    (output) => !output.actions.every((action) => action === "no-op"),
  );
  return resourceChanged || outputChanged;
}

/** Paths down to the first difference: a subtree present on one side only is named once, as a whole. */
function differingPaths(before: unknown, after: unknown, path: string): string[] {
  if (isDeepStrictEqual(before, after)) return [];
  // Providers read an unset collection back as empty (tags: null, then {}): not a change anyone made.
  if (isEmpty(before) && isEmpty(after)) return [];
  if (isRecord(before) && isRecord(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    return [...keys].flatMap((key) => differingPaths(before[key], after[key], attributePath(path, key)));
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const indexes = [...Array(Math.max(before.length, after.length)).keys()];
    return indexes.flatMap((index) => differingPaths(before[index], after[index], `${path}[${index}]`));
  }
  return [path];
}

/** `tags.team`, or `tags["kubernetes.io/role"]` when the key is not an identifier. */
function attributePath(parent: string, key: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return `${parent}[${JSON.stringify(key)}]`;
  return parent === "" ? key : `${parent}.${key}`;
}

function isEmpty(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  if (Array.isArray(value)) return value.length === 0;
  return isRecord(value) && Object.keys(value).length === 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
