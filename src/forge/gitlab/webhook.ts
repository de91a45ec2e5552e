import { z } from "zod";
import { sameSecret } from "../../crypto/hmac.ts";
import { RunnerError } from "../../errors.ts";
import {
  commandEvent,
  type Delivery,
  type Headers,
  header,
  jsonBody,
  type PullRequestAction,
  parseBody,
  requiredHeader,
} from "../events.ts";

const mergeRequestSchema = z.object({
  object_kind: z.literal("merge_request"),
  object_attributes: z.object({
    iid: z.number().int().positive(),
    action: z.string().optional(),
    last_commit: z.object({ id: z.string().min(7) }),
    source_project_id: z.number().int(),
    target_project_id: z.number().int(),
    merge_commit_sha: z.string().nullish(),
    oldrev: z.string().optional(),
  }),
});
const pushSchema = z.object({ object_kind: z.literal("push"), ref: z.string(), after: z.string().min(7) });
/** A comment ("note"); only those on merge requests carry `merge_request`. */
const noteSchema = z.object({
  object_kind: z.literal("note"),
  user: z.object({ id: z.number().int(), username: z.string() }),
  object_attributes: z.object({
    id: z.number().int().positive(),
    note: z.string(),
    noteable_type: z.string(),
    action: z.string().optional(),
  }),
  merge_request: z.object({ iid: z.number().int().positive() }).optional(),
});

/** Checks X-Gitlab-Token (constant time), then reads the event. */
export function gitlabDelivery(secret: string, headers: Headers, raw: Buffer): Delivery {
  const token = header(headers, "x-gitlab-token");
  if (token === undefined || !sameSecret(token, secret)) {
    throw new RunnerError("SIGNATURE_INVALID", "x-gitlab-token: missing or wrong");
  }
  const id = requiredHeader(headers, "x-gitlab-event-uuid");
  const name = requiredHeader(headers, "x-gitlab-event");
  const body = jsonBody(raw);
  if (name === "Push Hook") {
    const push = parseBody(pushSchema, body);
    return { id, event: { kind: "push", ref: push.ref, after: push.after } };
  }
  if (name === "Note Hook") return { id, event: noteEvent(body) };
  if (name !== "Merge Request Hook") return { id, event: undefined };
  const attributes = parseBody(mergeRequestSchema, body).object_attributes;
  const action = mergeRequestAction(attributes.action, attributes.oldrev);
  if (!action) return { id, event: undefined };
  return {
    id,
    event: {
      kind: "pull_request",
      action,
      number: attributes.iid,
      headSha: attributes.last_commit.id,
      fromFork: attributes.source_project_id !== attributes.target_project_id,
      ...(action === "merged" && attributes.merge_commit_sha
        ? { mergeSha: attributes.merge_commit_sha }
        : {}),
    },
  };
}

function noteEvent(body: unknown): Delivery["event"] {
  const note = parseBody(noteSchema, body);
  const attributes = note.object_attributes;
  // An edited note says "update"; only new notes are commands.
  const created = attributes.action === undefined || attributes.action === "create";
  if (attributes.noteable_type !== "MergeRequest" || !note.merge_request || !created) return undefined;
  return commandEvent(
    note.merge_request.iid,
    attributes.id,
    { name: note.user.username, id: String(note.user.id) },
    attributes.note,
  );
}

function mergeRequestAction(
  action: string | undefined,
  oldrev: string | undefined,
): PullRequestAction | undefined {
  switch (action) {
    case "open":
      return "opened";
    case "reopen":
      return "reopened";
    case "close":
      return "closed";
    case "merge":
      return "merged";
    // An update with oldrev is a new push to the source branch; others are title or label edits.
    case "update":
      return oldrev ? "updated" : undefined;
    default:
      return undefined;
  }
}
