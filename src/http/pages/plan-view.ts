/**
 * A stored plan (JSON, already redacted) as people read it: each managed
 * resource that changes, marked create, update, replace, destroy (or read,
 * import, forget), with the attributes that change, their values before and
 * after, "(known after apply)" where Terraform cannot know yet, and which
 * attributes force the replacement. Pure: plan in, view out.
 */
export type PlanAction = "create" | "update" | "replace" | "destroy" | "read" | "import" | "forget";

export interface AttributeChange {
  /** The attribute's path, as `tags.env` or `ingress[0].port`. */
  readonly path: string;
  /** The value as JSON text; undefined when the attribute is absent on that side. */
  readonly before?: string;
  readonly after?: string;
  readonly afterUnknown: boolean;
  readonly forcesReplacement: boolean;
}

export interface ResourceView {
  readonly address: string;
  readonly action: PlanAction;
  readonly attributes: readonly AttributeChange[];
  /** Attributes not shown, past the cap on a resource's rows. */
  readonly hidden: number;
}

/** At most this many attribute rows per resource, so that a huge resource cannot swamp the page. */
const MAX_ROWS = 200;

export function planView(plan: unknown): ResourceView[] {
  const changes = isRecord(plan) && Array.isArray(plan.resource_changes) ? plan.resource_changes : [];
  const views: ResourceView[] = [];
  for (const resource of changes) {
    if (!isRecord(resource) || resource.mode !== "managed" || !isRecord(resource.change)) continue;
    const change = resource.change;
    const actions = Array.isArray(change.actions) ? change.actions.map(String) : [];
    const action = actionOf(actions, change.importing !== undefined && change.importing !== null);
    if (!action) continue;
    const rows = attributeChanges(
      change.before,
      change.after,
      change.after_unknown,
      change.replace_paths,
      action,
    );
    views.push({
      address: String(resource.address),
      action,
      attributes: rows.slice(0, MAX_ROWS),
      hidden: Math.max(0, rows.length - MAX_ROWS),
    });
  }
  return views;
}

function actionOf(actions: readonly string[], importing: boolean): PlanAction | undefined {
  const has = (action: string) => actions.includes(action);
  if (has("delete") && has("create")) return "replace";
  if (has("create")) return "create";
  if (has("delete")) return "destroy";
  if (has("update")) return "update";
  if (has("read")) return "read";
  if (has("forget")) return "forget";
  return importing ? "import" : undefined;
}

function attributeChanges(
  before: unknown,
  after: unknown,
  afterUnknown: unknown,
  replacePaths: unknown,
  action: PlanAction,
): AttributeChange[] {
  const old = flatten(before);
  const next = flatten(after);
  const unknown = new Set(flattenTrue(afterUnknown));
  const forcing = new Set(
    (Array.isArray(replacePaths) ? replacePaths : []).filter(Array.isArray).map((steps) => pathText(steps)),
  );
  const paths = [...new Set([...old.keys(), ...next.keys(), ...unknown])].sort();
  const rows: AttributeChange[] = [];
  for (const path of paths) {
    const was = old.get(path);
    const will = next.get(path);
    const isUnknown = unknown.has(path);
    // A destroy shows what goes; the rest show what changes.
    const shown = action === "destroy" ? was !== undefined : isUnknown || was !== will;
    if (!shown) continue;
    rows.push({
      path,
      ...(was !== undefined ? { before: was } : {}),
      ...(will !== undefined && !isUnknown ? { after: will } : {}),
      afterUnknown: isUnknown,
      forcesReplacement: [...forcing].some((forced) => path === forced || path.startsWith(`${forced}.`)),
    });
  }
  return rows;
}

/** Leaf values by path, each as JSON text; empty objects and arrays count as leaves. */
function flatten(value: unknown, prefix = "", into = new Map<string, string>()): Map<string, string> {
  if (value === null || value === undefined) {
    if (prefix) into.set(prefix, "null");
    return into;
  }
  if (Array.isArray(value) && value.length > 0) {
    value.forEach((item, index) => {
      flatten(item, `${prefix}[${index}]`, into);
    });
    return into;
  }
  if (isRecord(value) && Object.keys(value).length > 0) {
    for (const [key, item] of Object.entries(value)) flatten(item, prefix ? `${prefix}.${key}` : key, into);
    return into;
  }
  if (prefix) into.set(prefix, JSON.stringify(value));
  return into;
}

/** The paths marked `true` in one of Terraform's shape-of-the-value trees (after_unknown). */
function flattenTrue(tree: unknown, prefix = ""): string[] {
  if (tree === true) return prefix ? [prefix] : [];
  if (Array.isArray(tree)) return tree.flatMap((item, index) => flattenTrue(item, `${prefix}[${index}]`));
  if (isRecord(tree)) {
    return Object.entries(tree).flatMap(([key, item]) =>
      flattenTrue(item, prefix ? `${prefix}.${key}` : key),
    );
  }
  return [];
}

function pathText(steps: readonly unknown[]): string {
  return steps
    .map((step, index) => (typeof step === "number" ? `[${step}]` : index === 0 ? String(step) : `.${step}`))
    .join("");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
