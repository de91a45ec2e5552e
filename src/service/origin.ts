import type { Logger } from "pino";
import type { PullRequests } from "../forge/port.ts";
import type { EventRecord, PullRequestOrigin, RunOrigin } from "../store/records.ts";

/** What the audit trail asks of the forge about a pull request, and a rollback's pull request. */
export type PullRequestDirectory = Pick<PullRequests, "get" | "approvers" | "create">;

/**
 * Who and what asked for an event, from the event itself: the webhook
 * delivery (also the one a poll passes to the apply it queues), the API
 * token's name, the pull request it is about.
 */
export function eventOrigin(event: EventRecord): RunOrigin {
  const payload = event.payload ?? {};
  const deliveryId = event.deliveryId ?? stringField(payload, "deliveryId");
  const tokenName = stringField(payload, "tokenName");
  return {
    ...(deliveryId ? { deliveryId } : {}),
    ...(tokenName ? { tokenName } : {}),
    ...(event.pr !== undefined ? { pullRequest: { number: event.pr } } : {}),
  };
}

/**
 * A pull request as the forge reports it now: its address, author, merger and
 * approvers. What the forge cannot answer is left out (and logged): the audit
 * trail records what is known rather than holding up the apply.
 */
export async function pullRequestOrigin(
  directory: PullRequestDirectory | undefined,
  number: number,
  known: { readonly url?: string },
  log: Logger,
): Promise<PullRequestOrigin> {
  const base: PullRequestOrigin = { number, ...(known.url ? { url: known.url } : {}) };
  if (!directory) return base;
  try {
    const [pull, approvers] = await Promise.all([directory.get(number), directory.approvers(number)]);
    return {
      number,
      url: pull.url,
      ...(pull.author ? { author: pull.author } : {}),
      ...(pull.mergedBy ? { mergedBy: pull.mergedBy } : {}),
      approvers,
    };
  } catch (error) {
    log.warn({ err: error, pr: number }, "the pull request's people could not be read for the audit trail");
    return base;
  }
}

function stringField(payload: Readonly<Record<string, unknown>>, name: string): string | undefined {
  const value = payload[name];
  return typeof value === "string" && value.length > 0 ? value : undefined;
}
