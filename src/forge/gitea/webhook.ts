import { z } from "zod";
import { checkSignatureHeader } from "../../crypto/hmac.ts";
import {
  commandEvent,
  type Delivery,
  type Headers,
  header,
  jsonBody,
  parseBody,
  requiredHeader,
} from "../events.ts";
import { githubEvent } from "../github/webhook.ts";

/** A comment on an issue; `is_pull` says the issue is a pull request. */
const commentSchema = z.object({
  action: z.string(),
  is_pull: z.boolean(),
  issue: z.object({ number: z.number().int().positive() }),
  comment: z.object({
    id: z.number().int().positive(),
    body: z.string(),
    user: z.object({ login: z.string(), id: z.number().int() }),
  }),
});

/**
 * A Gitea (or Forgejo) delivery. Signed twice: `X-Gitea-Signature` (bare hex)
 * and `X-Hub-Signature-256` (`sha256=<hex>`); the first is checked when
 * present, else the second. Routed on `X-Gitea-Event-Type`, which tells a
 * push to a pull request's branch (`pull_request_sync`, action
 * `synchronized`, no before/after) and a comment on a pull request
 * (`pull_request_comment`) apart; the payloads follow GitHub's layout.
 */
export function giteaDelivery(secret: string, headers: Headers, raw: Buffer): Delivery {
  const gitea = header(headers, "x-gitea-signature") ?? header(headers, "x-forgejo-signature");
  if (gitea !== undefined) {
    checkSignatureHeader({ secret, body: raw, header: "x-gitea-signature", value: gitea, form: "bare" });
  } else {
    const signature = "x-hub-signature-256";
    checkSignatureHeader({
      secret,
      body: raw,
      header: signature,
      value: headers[signature],
      form: "sha256=",
    });
  }
  const id = header(headers, "x-gitea-delivery") ?? requiredHeader(headers, "x-forgejo-delivery");
  const type = header(headers, "x-gitea-event-type") ?? requiredHeader(headers, "x-forgejo-event-type");
  const body = jsonBody(raw);
  switch (type) {
    case "push":
      return { id, event: githubEvent("push", body) };
    case "pull_request":
    case "pull_request_sync":
      return { id, event: githubEvent("pull_request", body) };
    case "pull_request_comment":
    case "issue_comment": {
      const payload = parseBody(commentSchema, body);
      if (payload.action !== "created" || !payload.is_pull) return { id, event: undefined };
      const { id: commentId, body: text, user } = payload.comment;
      return {
        id,
        event: commandEvent(payload.issue.number, commentId, { name: user.login, id: String(user.id) }, text),
      };
    }
    default:
      return { id, event: undefined };
  }
}
