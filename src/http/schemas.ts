import { z } from "zod";
import type { StackDetail as ServiceStackDetail, StackView as ServiceStackView } from "../service/api.ts";
import type { RunKind, RunRecord, RunStatus, RunSummary as ServiceRunSummary } from "../store/records.ts";
import { STATUS_OF } from "./errors.ts";

/**
 * The JSON API's answers, as zod schemas: they check every response before it
 * is sent (a mismatch is the runner's fault, a logged 500) and they are what
 * GET /openapi.json describes. Each `id` becomes a named component there.
 */
const timestamp = z.iso.datetime();
const count = z.int().min(0);

export const ErrorBody = z
  .strictObject({
    error: z.strictObject({
      code: z.enum(Object.keys(STATUS_OF) as [keyof typeof STATUS_OF, ...(keyof typeof STATUS_OF)[]]),
      message: z.string(),
    }),
  })
  .meta({ id: "Error", description: "Every error, with a stable code to match on" });

export const Accepted = z
  .strictObject({
    eventId: z.string().describe("The persisted event that does the work"),
    duplicate: z.boolean().describe("True when this delivery was accepted before; nothing new was queued"),
  })
  .meta({ id: "Accepted" });

export const Health = z.strictObject({ status: z.literal("ok") }).meta({ id: "Health" });

export const Readiness = z
  .strictObject({ ready: z.boolean(), checks: z.record(z.string(), z.boolean()) })
  .meta({ id: "Readiness" });

const PlanSummary = z
  .strictObject({ add: count, change: count, destroy: count, replace: count, import: count })
  .meta({ id: "PlanSummary" });

const Resource = z
  .strictObject({
    address: z.string(),
    actions: z.array(z.enum(["no-op", "create", "read", "update", "delete", "forget"])),
    drift: z.array(z.string()).optional().describe("Attribute paths that drifted out of band"),
  })
  .meta({ id: "Resource" });

const RunStep = z
  .strictObject({
    name: z.string(),
    startedAt: timestamp,
    endedAt: timestamp.optional(),
    status: z.enum(["running", "succeeded", "failed"]),
  })
  .meta({ id: "RunStep" });

/** Who and what asked for a run: the webhook delivery, the API token's name, the CLI's user, the pull request. */
export const RunOrigin = z
  .strictObject({
    deliveryId: z.string().optional(),
    tokenName: z.string().optional(),
    user: z.string().optional(),
    pullRequest: z
      .strictObject({
        number: z.int(),
        url: z.string().optional(),
        author: z.string().optional(),
        mergedBy: z.string().optional(),
        approvers: z.array(z.string()).readonly().optional(),
      })
      .optional(),
  })
  .meta({ id: "RunOrigin" });

const Violation = z
  .strictObject({
    check: z.string(),
    address: z.string().optional(),
    message: z.string(),
    approvable: z.boolean().optional(),
  })
  .meta({ id: "Violation", description: "What a policy check found in a plan" });

const actionList = z.array(z.string()).readonly();

/** An apply of a merged pull request: its plan against the plan reviewed on the pull request. */
const RunReview = z
  .strictObject({
    pr: z.int(),
    comparison: z.discriminatedUnion("kind", [
      z.strictObject({ kind: z.literal("same") }),
      z.strictObject({
        kind: z.literal("differs"),
        notReviewed: z.boolean(),
        differences: z.array(
          z.discriminatedUnion("kind", [
            z.strictObject({ kind: z.literal("added"), address: z.string(), actions: actionList }),
            z.strictObject({ kind: z.literal("removed"), address: z.string(), actions: actionList }),
            z.strictObject({
              kind: z.literal("changed"),
              address: z.string(),
              reviewed: actionList,
              planned: actionList,
            }),
          ]),
        ),
      }),
    ]),
  })
  .meta({ id: "RunReview" });

export const RUN_KINDS = ["synth", "plan", "apply", "drift"] as const satisfies readonly RunKind[];
export const RUN_STATUSES = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "errored",
  "blocked",
  "cancelled",
  "interrupted",
] as const satisfies readonly RunStatus[];

const runFields = {
  id: z.string(),
  kind: z.enum(RUN_KINDS),
  repoId: z.string(),
  appDir: z.string(),
  stack: z.string().describe('The stack, or "*" for the whole app (its synthesis)'),
  commit: z.string(),
  trigger: z.string(),
  pr: z.int().optional(),
  origin: RunOrigin.optional(),
  status: z.enum(RUN_STATUSES),
  result: z.string().optional().describe("The stack's result: changes, applied, drifted, blocked..."),
  startedAt: timestamp,
  endedAt: timestamp.optional(),
  summary: PlanSummary.optional(),
  resources: z.array(Resource).optional(),
  engine: z.string().optional(),
  engineVersion: z.string().optional(),
  providers: z.record(z.string(), z.string()).optional(),
  error: z.strictObject({ code: z.string(), message: z.string() }).optional(),
  violations: z.array(Violation).optional(),
  review: RunReview.optional(),
  steps: z.array(RunStep).optional(),
  cancel: z
    .strictObject({ requestedAt: timestamp, force: z.boolean(), step: z.string().optional() })
    .optional()
    .describe("A cancel asked of the run while it ran"),
  eventId: z.string().optional(),
  url: z.string().optional().describe("The run's page, when the runner knows its public address"),
};

export const RunSummary = z
  .strictObject(runFields)
  .meta({ id: "RunSummary", description: "A run without its log and plan" });

export const Run = z
  .strictObject({
    ...runFields,
    log: z.string().optional().describe("Each step's output under a '==> step' header"),
    plan: z.unknown().optional().describe("The plan JSON, sensitive values shown as (sensitive)"),
  })
  .meta({ id: "Run" });

export const RunLog = z
  .strictObject({
    text: z.string().describe("The log from the offset asked for"),
    offset: count.describe("Where the log ends now: ask from here next"),
    status: runFields.status,
  })
  .meta({ id: "RunLog" });

const stackFields = {
  name: z.string(),
  state: z.enum(["in-sync", "pending", "drifted", "applying", "blocked", "failed", "suspended", "orphaned"]),
  dependencies: z.array(z.string()),
  lastAppliedCommit: z.string().optional(),
  lastAppliedAt: timestamp.optional(),
  driftCheckedAt: timestamp.optional(),
  driftStatus: z.enum(["in-sync", "drifted", "corrected"]).optional(),
  lastRunId: z.string().optional(),
  pending: z
    .boolean()
    .describe("The head's synthesized stack (or a producer's) differs from what was applied"),
  nextDriftCheckAt: timestamp.optional(),
};

export const StackView = z.strictObject(stackFields).meta({ id: "Stack" });

const StackOverride = z.strictObject({
  suspended: z.boolean(),
  reason: z.string().optional(),
  updatedAt: timestamp,
});

export const StackDetail = z
  .strictObject({
    ...stackFields,
    dependents: z.array(z.string()),
    policy: z
      .strictObject({
        allowDestroy: z.boolean(),
        drift: z.enum(["correct", "notify", "off"]),
        driftSchedule: z.string(),
        autoApply: z.boolean(),
        suspended: z.boolean(),
        renamedFrom: z.string().optional(),
      })
      .optional(),
    policySource: z.strictObject({
      file: z.string().optional(),
      commit: z.string().optional(),
      override: StackOverride.optional().describe("A suspension or resumption stored by an operator"),
    }),
    lockHolder: z.string().optional(),
    drift: z
      .strictObject({ runId: z.string(), checkedAt: timestamp, resources: z.array(Resource) })
      .optional(),
  })
  .meta({ id: "StackDetail" });

const Freeze = z.strictObject({ reason: z.string(), since: timestamp, until: timestamp.optional() });

export const ApplyGate = z
  .strictObject({
    open: z.boolean().describe("Whether applies and drift corrections may start now"),
    reason: z.string().optional(),
    frozen: Freeze.optional(),
    opensAt: timestamp.optional().describe("When the next maintenance window opens"),
    windows: z.array(z.string()),
  })
  .meta({ id: "ApplyGate" });

export const Queue = z
  .strictObject({
    events: z.array(
      z.strictObject({
        id: z.string(),
        kind: z.enum(["poll", "apply", "plan", "drift", "approve", "recheck", "pr-plan"]),
        status: z.enum(["queued", "running"]),
        stack: z.string().optional(),
        commit: z.string().optional(),
        pr: z.int().optional(),
        source: z.string(),
        createdAt: timestamp,
        claimedBy: z.string().optional(),
        runs: z.array(RunSummary),
        waitsFor: z.string().optional(),
      }),
    ),
    applies: ApplyGate,
  })
  .meta({ id: "Queue" });

export const CancelResult = z
  .strictObject({
    cancelled: z.enum(["queued", "running"]),
    eventId: z.string(),
    runId: z.string().optional(),
    force: z.boolean(),
  })
  .meta({ id: "CancelResult" });

type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 414 | 415;

/** The error answers a route documents, by status: each is an ErrorBody. */
export function errors(...statuses: readonly ErrorStatus[]): Partial<Record<ErrorStatus, typeof ErrorBody>> {
  return Object.fromEntries(statuses.map((status) => [status, ErrorBody]));
}

/** What every route behind a token may answer besides its own: a malformed request, no or a wrong token. */
export const READ_ERRORS = [400, 401] as const;
/** Routes that change something also refuse a read token, and bodies too large or not JSON. */
export const WRITE_ERRORS = [400, 401, 403, 413, 415] as const;
/** Routes with a name in their path also refuse an unknown or over-long one. */
export const NAMED = [404, 414] as const;

/**
 * Compile-time guards: every field the service answers with is in the
 * schema, so a new field fails the type check here instead of every request
 * at run time (strict schemas refuse what they do not name).
 */
type Unnamed<Record, Schema extends z.ZodType> = Exclude<keyof Record, keyof z.output<Schema>>;
type Covered<Missing> = [Missing] extends [never] ? true : { readonly missing: Missing };
export const SCHEMAS_NAME_EVERY_FIELD: [
  Covered<Unnamed<RunRecord, typeof Run>>,
  Covered<Unnamed<ServiceRunSummary, typeof RunSummary>>,
  Covered<Unnamed<ServiceStackView, typeof StackView>>,
  Covered<Unnamed<ServiceStackDetail, typeof StackDetail>>,
] = [true, true, true, true];
