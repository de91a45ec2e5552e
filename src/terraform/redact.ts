import type { PlanJson } from "./plan-json.ts";

/**
 * What stands in for a value Terraform marks sensitive, before a plan or log is
 * stored, posted or served. The plan schema is loose, so the value-carrying
 * parts it does not model (planned_values, prior_state, variables,
 * configuration, ...) are read here as unknown and narrowed.
 */
const SENSITIVE = "(sensitive)";

/** A place in the plan that holds a value, with Terraform's sensitivity mark for it. */
interface ValueSlot {
  readonly holder: Record<string, unknown>;
  readonly key: string;
  /** true: sensitive; an object or array: a tree of the value's shape with true at sensitive parts. */
  readonly mark: unknown;
}

/**
 * A deep copy of the plan with every value Terraform marks sensitive replaced by
 * "(sensitive)": in resource changes, drift, deferred changes, output changes,
 * action invocations, planned values, prior state, and sensitive variables
 * (their values and declared defaults). Terraform leaves some copies of those
 * values unmarked (terraform_data's `output`, constants in `configuration`), so
 * any string found marked is also hidden wherever else it occurs in a value.
 */
export function redactPlan(plan: PlanJson): PlanJson {
  const copy = structuredClone(plan);
  const slots = valueSlots(copy);
  const secrets = new Set<string>();
  for (const { holder, key, mark } of slots) holder[key] = hideMarked(holder[key], mark, secrets);
  const pattern = secretPattern([...secrets]);
  if (pattern) {
    for (const { holder, key } of slots) holder[key] = hideCopies(holder[key], pattern);
  }
  return copy;
}

/**
 * Replaces every occurrence of each non-empty secret by "(sensitive)", longest
 * first; also the secret as it reads inside JSON text (quotes, backslashes and
 * control characters escaped).
 */
export function redactText(text: string, secrets: readonly string[]): string {
  const pattern = secretPattern(secrets);
  return pattern ? text.replace(pattern, SENSITIVE) : text;
}

/** Values shorter than this are not hidden: "1" or "true" would blank out every log line. */
export const MIN_SECRET_LENGTH = 4;

/**
 * A function that replaces every occurrence of the given values (as they are,
 * and as they read inside JSON text) by "(redacted)": for the values the
 * runner itself injects (its configuration's variables, tokens, webhook
 * secrets), wherever text is stored, served, logged, posted or notified.
 */
export function secretRedactor(values: Iterable<string>): (text: string) => string {
  // Each line of a value that spans lines too: a live log is redacted a few lines at a time.
  const forms = [...values].flatMap((value) =>
    value.includes("\n") ? [value, ...value.split("\n")] : [value],
  );
  const pattern = secretPattern(forms.filter((value) => value.length >= MIN_SECRET_LENGTH));
  return pattern ? (text) => text.replace(pattern, "(redacted)") : (text) => text;
}

function valueSlots(plan: PlanJson): ValueSlot[] {
  const slots: ValueSlot[] = [];
  const deferred = records(plan.deferred_changes).map((entry) => entry.resource_change);
  for (const resource of [...records(plan.resource_changes), ...records(plan.resource_drift), ...deferred]) {
    if (isRecord(resource)) changeSlots(resource.change, slots);
  }
  for (const change of Object.values(plan.output_changes ?? {})) changeSlots(change, slots);
  const invocations = records(plan.deferred_action_invocations).map((entry) => entry.action_invocation);
  for (const invocation of [...records(plan.action_invocations), ...invocations]) {
    if (isRecord(invocation)) slot(invocation, "config_values", invocation.config_sensitive, slots);
  }
  stateSlots(plan.planned_values, slots);
  if (isRecord(plan.prior_state)) stateSlots(plan.prior_state.values, slots);
  const configuration = isRecord(plan.configuration) ? plan.configuration : {};
  const rootVariables = isRecord(configuration.root_module) ? configuration.root_module.variables : undefined;
  for (const [name, variable] of Object.entries(isRecord(plan.variables) ? plan.variables : {})) {
    const declared = isRecord(rootVariables) ? rootVariables[name] : undefined;
    if (isRecord(variable)) slot(variable, "value", isRecord(declared) && declared.sensitive === true, slots);
  }
  configurationSlots(configuration, slots);
  return slots;
}

function changeSlots(change: unknown, slots: ValueSlot[]): void {
  if (!isRecord(change)) return;
  slot(change, "before", change.before_sensitive, slots);
  slot(change, "after", change.after_sensitive, slots);
}

/** planned_values and prior_state.values: outputs, and resources of the root and child modules. */
function stateSlots(values: unknown, slots: ValueSlot[]): void {
  if (!isRecord(values)) return;
  for (const output of Object.values(isRecord(values.outputs) ? values.outputs : {})) {
    if (isRecord(output)) slot(output, "value", output.sensitive === true, slots);
  }
  moduleSlots(values.root_module, slots);
}

function moduleSlots(moduleValues: unknown, slots: ValueSlot[]): void {
  if (!isRecord(moduleValues)) return;
  for (const resource of records(moduleValues.resources)) {
    slot(resource, "values", resource.sensitive_values, slots);
  }
  for (const child of records(moduleValues.child_modules)) moduleSlots(child, slots);
}

/**
 * Declared defaults of sensitive variables, and every constant in expressions:
 * Terraform marks none of these, but they may repeat a value it marks elsewhere.
 */
function configurationSlots(node: unknown, slots: ValueSlot[]): void {
  if (Array.isArray(node)) {
    for (const item of node) configurationSlots(item, slots);
    return;
  }
  if (!isRecord(node)) return;
  for (const variable of Object.values(isRecord(node.variables) ? node.variables : {})) {
    if (isRecord(variable)) slot(variable, "default", variable.sensitive === true, slots);
  }
  for (const [key, child] of Object.entries(node)) {
    if (key === "constant_value") slot(node, key, false, slots);
    else if (key !== "variables") configurationSlots(child, slots);
  }
}

function slot(holder: Record<string, unknown>, key: string, mark: unknown, slots: ValueSlot[]): void {
  if (key in holder) slots.push({ holder, key, mark });
}

/** Replaces the marked parts of a value; the strings it hides go into `secrets`. */
function hideMarked(value: unknown, mark: unknown, secrets: Set<string>): unknown {
  if (mark === true) {
    collectStrings(value, secrets);
    return SENSITIVE;
  }
  if (Array.isArray(value) && Array.isArray(mark)) {
    return value.map((item, index) => hideMarked(item, mark[index], secrets));
  }
  if (isRecord(value) && isRecord(mark)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, hideMarked(item, mark[key], secrets)]),
    );
  }
  return value;
}

function hideCopies(value: unknown, pattern: RegExp): unknown {
  if (value === SENSITIVE) return value;
  if (typeof value === "string") return value.replace(pattern, SENSITIVE);
  if (Array.isArray(value)) return value.map((item) => hideCopies(item, pattern));
  if (isRecord(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, hideCopies(item, pattern)]));
  }
  return value;
}

function collectStrings(value: unknown, into: Set<string>): void {
  if (typeof value === "string") {
    if (value !== SENSITIVE) into.add(value);
  } else if (Array.isArray(value)) {
    for (const item of value) collectStrings(item, into);
  } else if (isRecord(value)) {
    for (const item of Object.values(value)) collectStrings(item, into);
  }
}

/** One alternation, longest first, so a secret that contains another is replaced whole. */
function secretPattern(secrets: readonly string[]): RegExp | undefined {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    forms.add(secret);
    forms.add(JSON.stringify(secret).slice(1, -1));
  }
  if (forms.size === 0) return undefined;
  const ordered = [...forms].sort((a, b) => b.length - a.length);
  return new RegExp(ordered.map((form) => form.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
}

function records(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
