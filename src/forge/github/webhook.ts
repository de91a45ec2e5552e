import { z } from "zod";
import { checkSignatureHeader } from "../../crypto/hmac.ts";
import {
  commandEvent,
  type Delivery,
  type ForgeEvent,
  type Headers,
  jsonBody,
  type PullRequestAction,
  parseBody,
  pushSchema,
  requiredHeader,
} from "../events.ts";

/** Only the fields used; GitHub sends many more. */
const pullRequestSchema = z.object({
  action: z.string(),
  number: z.number().int().positive(),
  pull_request: z.object({
    head: z.object({ sha: z.string().min(7), repo: z.object({ full_name: z.string() }).nullable() }),
    base: z.object({ repo: z.object({ full_name: z.string() }) }),
    merged: z.boolean().nullish(),
    merge_commit_sha: z.string().nullish(),
  }),
});

/** A comment on an issue or (with `issue.pull_request`) a pull request. */
const issueCommentSchema = z.object({
  action: z.string(),
  issue: z.object({ number: z.number().int().positive(), pull_request: z.object({}).nullish() }),
  comment: z.object({
    id: z.number().int().positive(),
    body: z.string().nullish(),
    user: z.object({ login: z.string(), id: z.number().int() }),
  }),
});

/**
 * Verifies X-Hub-Signature-256 over the raw body (constant time), then reads
 * the event: pull_request, push, and issue_comment on a pull request.
 */
export function githubDelivery(secret: string, headers: Headers, raw: Buffer): Delivery {
  const signature = "x-hub-signature-256";
  checkSignatureHeader({ secret, body: raw, header: signature, value: headers[signature], form: "sha256=" });
  const id = requiredHeader(headers, "x-github-delivery");
  return { id, event: githubEvent(requiredHeader(headers, "x-github-event"), jsonBody(raw)) };
}

/** A GitHub-shaped payload as an event; Gitea's follow the same layout and reuse it. */
export function githubEvent(name: string, body: unknown): ForgeEvent | undefined {
  switch (name) {
    case "push": {
      const push = parseBody(pushSchema, body);
      return { kind: "push", ref: push.ref, after: push.after };
    }
    case "pull_request": {
      const payload = parseBody(pullRequestSchema, body);
      const pr = payload.pull_request;
      const action = pullRequestAction(payload.action, pr.merged === true);
      if (!action) return undefined;
      return {
        kind: "pull_request",
        action,
        number: payload.number,
        headSha: pr.head.sha,
        fromFork: pr.head.repo?.full_name !== pr.base.repo.full_name,
        ...(action === "merged" && pr.merge_commit_sha ? { mergeSha: pr.merge_commit_sha } : {}),
      };
    }
    case "issue_comment": {
      const payload = parseBody(issueCommentSchema, body);
      if (payload.action !== "created" || !payload.issue.pull_request) return undefined;
      const { id, body: text, user } = payload.comment;
      return commandEvent(payload.issue.number, id, { name: user.login, id: String(user.id) }, text ?? "");
    }
    default:
      return undefined;
  }
}

function pullRequestAction(action: string, merged: boolean): PullRequestAction | undefined {
  switch (action) {
    case "opened":
      return "opened";
    // Gitea says "synchronized" where GitHub says "synchronize".
    case "synchronize":
    case "synchronized":
      return "updated";
    case "reopened":
      return "reopened";
    case "closed":
      return merged ? "merged" : "closed";
    default:
      return undefined;
  }
}
