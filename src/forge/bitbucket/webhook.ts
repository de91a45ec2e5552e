import { z } from "zod";
import { checkSignatureHeader } from "../../crypto/hmac.ts";
import {
  commandEvent,
  type Delivery,
  type ForgeEvent,
  type Headers,
  jsonBody,
  parseBody,
  requiredHeader,
} from "../events.ts";

/** Bitbucket Cloud abbreviates commit hashes in webhooks (12 characters); the runner resolves them with git. */
const hashSchema = z.string().regex(/^[0-9a-f]{7,64}$/, "a commit hash");
const endSchema = z.object({
  commit: z.object({ hash: hashSchema }),
  repository: z.object({ full_name: z.string() }),
});
/** The pull request entity, in the fields used. */
const pullRequestSchema = z.object({
  id: z.number().int().positive(),
  state: z.enum(["OPEN", "MERGED", "DECLINED", "SUPERSEDED"]),
  source: endSchema,
  destination: endSchema,
  merge_commit: z.object({ hash: hashSchema }).nullish(),
});
const pullRequestEventSchema = z.object({ pullrequest: pullRequestSchema });
const commentEventSchema = z.object({
  pullrequest: z.object({ id: z.number().int().positive() }),
  comment: z.object({
    id: z.number().int().positive(),
    content: z.object({ raw: z.string().nullish() }),
    user: z.object({ uuid: z.string() }),
    /** A comment on a line of the diff. */
    inline: z.object({}).passthrough().nullish(),
  }),
});
const pushEventSchema = z.object({
  push: z.object({
    changes: z.array(
      z.object({
        new: z
          .object({ type: z.string(), name: z.string(), target: z.object({ hash: hashSchema }) })
          .nullish(),
      }),
    ),
  }),
});

const PULL_REQUEST_ACTIONS = {
  "pullrequest:created": "opened",
  // Also sent for edits of the title, the description or the reviewers: a plan of a head
  // already planned is skipped when it runs.
  "pullrequest:updated": "updated",
  "pullrequest:fulfilled": "merged",
  "pullrequest:rejected": "closed",
} as const;

/**
 * A Bitbucket Cloud delivery: `X-Hub-Signature` is `sha256=<hex>` (the
 * SHA-256 digest under GitHub's SHA-1 header name), `X-Request-UUID`
 * identifies the delivery and `X-Event-Key` the event.
 */
export function bitbucketDelivery(secret: string, headers: Headers, raw: Buffer): Delivery {
  const signature = "x-hub-signature";
  checkSignatureHeader({ secret, body: raw, header: signature, value: headers[signature], form: "sha256=" });
  const id = requiredHeader(headers, "x-request-uuid");
  const key = requiredHeader(headers, "x-event-key");
  return { id, event: bitbucketEvent(key, jsonBody(raw)) };
}

function bitbucketEvent(key: string, body: unknown): ForgeEvent | undefined {
  if (key === "repo:push") {
    const pushed = parseBody(pushEventSchema, body).push.changes.findLast((change) => change.new)?.new;
    if (pushed?.type !== "branch") return undefined;
    return { kind: "push", ref: `refs/heads/${pushed.name}`, after: pushed.target.hash };
  }
  if (key === "pullrequest:comment_created") {
    const { pullrequest, comment } = parseBody(commentEventSchema, body);
    // A comment on a line of the diff is a review remark, not a command.
    if (comment.inline) return undefined;
    return commandEvent(pullrequest.id, comment.id, { name: comment.user.uuid }, comment.content.raw ?? "");
  }
  const action = PULL_REQUEST_ACTIONS[key as keyof typeof PULL_REQUEST_ACTIONS];
  if (action === undefined) return undefined;
  const pr = parseBody(pullRequestEventSchema, body).pullrequest;
  return {
    kind: "pull_request",
    action,
    number: pr.id,
    headSha: pr.source.commit.hash,
    fromFork: pr.source.repository.full_name !== pr.destination.repository.full_name,
    ...(action === "merged" && pr.merge_commit ? { mergeSha: pr.merge_commit.hash } : {}),
  };
}
