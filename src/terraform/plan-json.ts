import { z } from "zod";
import { RunnerError } from "../errors.ts";

/**
 * The parts of Terraform's JSON plan representation (`show -json`, format 1.x)
 * the runner reads. Loose: Terraform and OpenTofu add fields between versions.
 */
const actionSchema = z.enum(["no-op", "create", "read", "update", "delete", "forget"]);

const changeSchema = z.looseObject({
  actions: z.array(actionSchema).min(1),
  before: z.unknown().optional(),
  after: z.unknown().optional(),
  importing: z.unknown().optional(),
});

const resourceChangeSchema = z.looseObject({
  address: z.string(),
  mode: z.enum(["managed", "data"]),
  type: z.string(),
  name: z.string(),
  change: changeSchema,
});

const planSchema = z.looseObject({
  format_version: z.string(),
  terraform_version: z.string(),
  /** Every plan has it, even an empty one; a state (`show -json` of a state) has `values` instead. */
  planned_values: z.looseObject({}),
  resource_changes: z.array(resourceChangeSchema).optional(),
  resource_drift: z.array(resourceChangeSchema).optional(),
  output_changes: z.record(z.string(), z.looseObject({ actions: z.array(actionSchema).min(1) })).optional(),
  errored: z.boolean().optional(),
});

export type PlanJson = z.infer<typeof planSchema>;
export type Action = z.infer<typeof actionSchema>;

export interface PlanSummary {
  readonly add: number;
  readonly change: number;
  readonly destroy: number;
  readonly replace: number;
  readonly import: number;
}

export interface ResourceChange {
  readonly address: string;
  readonly actions: readonly Action[];
}

/** Checks that a JSON document (parsed) is a plan; anything else, a state included, is refused. */
export function parsePlanJson(data: unknown, source: string): PlanJson {
  if (isState(data)) {
    throw new RunnerError(
      "TERRAFORM_OUTPUT_INVALID",
      `${source}: a state, not a plan (it has no planned_values, the field every plan has)`,
    );
  }
  const parsed = planSchema.safeParse(data);
  if (!parsed.success) {
    const where = parsed.error.issues.map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`);
    throw new RunnerError(
      "TERRAFORM_OUTPUT_INVALID",
      `${source}: unexpected plan JSON: ${where.join("; ")}`,
      {
        cause: parsed.error,
      },
    );
  }
  return parsed.data;
}

/**
 * The state representation: `values` (absent while the state is empty) and no
 * `planned_values`, the field every plan has.
 */
function isState(data: unknown): boolean {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return false;
  if ("planned_values" in data || !("format_version" in data)) return false;
  return (
    "values" in data ||
    Object.keys(data).every((key) => key === "format_version" || key === "terraform_version")
  );
}

/** Managed-resource changes that do something (not no-ops, not reads). */
export function resourceChanges(plan: PlanJson): ResourceChange[] {
  return (plan.resource_changes ?? [])
    .filter((resource) => resource.mode === "managed")
    .filter((resource) => !isNoOp(resource.change.actions) || resource.change.importing !== undefined)
    .map((resource) => ({ address: resource.address, actions: resource.change.actions }));
}

/** Counts as Terraform does (a replace is one add and one destroy), and counts replaces too. */
export function summarize(plan: PlanJson): PlanSummary {
  let add = 0;
  let change = 0;
  let destroy = 0;
  let replace = 0;
  let imported = 0;
  for (const resource of plan.resource_changes ?? []) {
    if (resource.mode !== "managed") continue;
    const actions = resource.change.actions;
    if (resource.change.importing !== undefined) imported++;
    if (actions.includes("create")) add++;
    if (actions.includes("delete")) destroy++;
    if (actions.includes("update")) change++;
    if (actions.includes("create") && actions.includes("delete")) replace++;
  }
  return { add, change, destroy, replace, import: imported };
}

/** A destroy is any change whose actions include delete; both orders of replace count. */
export function destroys(plan: PlanJson): ResourceChange[] {
  return resourceChanges(plan).filter((resource) => resource.actions.includes("delete"));
}

function isNoOp(actions: readonly Action[]): boolean {
  return actions.every((action) => action === "no-op" || action === "read");
}
