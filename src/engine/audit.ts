import type { AuditEntry } from "../store/records.ts";
import type { PlanSummary, ResourceChange } from "../terraform/plan-json.ts";
import { type EngineContext, stackKey } from "./context.ts";
import type { RunScope } from "./stack-run.ts";

export interface AuditFacts {
  readonly stack: string;
  readonly kind: AuditEntry["kind"];
  readonly commit: string;
  readonly result: AuditEntry["result"];
  readonly summary: PlanSummary;
  readonly resources: readonly ResourceChange[];
  readonly environment?: string;
  readonly promotionHash?: string;
  readonly error?: unknown;
}

/**
 * Adds a run that applied (or tried to) or accepted a commit to the audit
 * trail: with the trigger, who asked (the context's origin) and the commit's
 * author as git records it.
 */
export async function recordAudit(context: EngineContext, scope: RunScope, facts: AuditFacts): Promise<void> {
  const commitAuthor = await context.repository.commitAuthor(facts.commit).catch(() => undefined);
  const { error, stack, ...rest } = facts;
  await context.store.recordAudit({
    ...rest,
    ...stackKey(context, stack),
    runId: scope.id,
    trigger: context.trigger,
    origin: context.origin ?? {},
    resources: facts.resources.map(({ address, actions }) => ({ address, actions })),
    ...(commitAuthor ? { commitAuthor } : {}),
    ...(error === undefined
      ? {}
      : { error: context.redact(error instanceof Error ? error.message : String(error)) }),
  });
}
