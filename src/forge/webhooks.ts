import { z } from "zod";
import { checkSignatureHeader, sameSecret } from "../crypto/hmac.ts";
import { RunnerError } from "../errors.ts";

/** A forge delivery, reduced to what the runner acts on. */
export type ForgeEvent =
  | {
      readonly kind: "pull_request";
      readonly action: "opened" | "updated" | "reopened" | "closed" | "merged";
      readonly number: number;
      readonly headSha: string;
      readonly fromFork: boolean;
      readonly mergeSha?: string;
    }
  | { readonly kind: "push"; readonly ref: string; readonly after: string };

export interface Delivery {
  readonly id: string;
  /** undefined: a delivery the runner does not act on (another event or action); it is answered 202 and dropped. */
  readonly event: ForgeEvent | undefined;
}

type Headers = Readonly<Record<string, string | string[] | undefined>>;

// --- GitHub ---------------------------------------------------------------------------

/** Only the fields used; GitHub sends many more. */
const githubPullRequest = z.object({
  action: z.string(),
  number: z.number().int().positive(),
  pull_request: z.object({
    head: z.object({ sha: z.string().min(7), repo: z.object({ full_name: z.string() }).nullable() }),
    base: z.object({ repo: z.object({ full_name: z.string() }) }),
    merged: z.boolean().nullish(),
    merge_commit_sha: z.string().nullish(),
  }),
});
const githubPush = z.object({ ref: z.string(), after: z.string().min(7) });

/** Verifies X-Hub-Signature-256 over the raw body (constant time), then reads the event. */
export function githubDelivery(secret: string, headers: Headers, raw: Buffer): Delivery {
  const signature = "x-hub-signature-256";
  checkSignatureHeader({ secret, body: raw, header: signature, value: headers[signature], form: "sha256=" });
  const id = requiredHeader(headers, "x-github-delivery");
  const name = requiredHeader(headers, "x-github-event");
  const body = json(raw);
  if (name === "push") {
    const push = parseBody(githubPush, body);
    return { id, event: { kind: "push", ref: push.ref, after: push.after } };
  }
  if (name !== "pull_request") return { id, event: undefined };
  const payload = parseBody(githubPullRequest, body);
  const pr = payload.pull_request;
  const action = githubAction(payload.action, pr.merged === true);
  if (!action) return { id, event: undefined };
  return {
    id,
    event: {
      kind: "pull_request",
      action,
      number: payload.number,
      headSha: pr.head.sha,
      fromFork: pr.head.repo?.full_name !== pr.base.repo.full_name,
      ...(action === "merged" && pr.merge_commit_sha ? { mergeSha: pr.merge_commit_sha } : {}),
    },
  };
}

function githubAction(
  action: string,
  merged: boolean,
): Extract<ForgeEvent, { kind: "pull_request" }>["action"] | undefined {
  switch (action) {
    case "opened":
      return "opened";
    case "synchronize":
      return "updated";
    case "reopened":
      return "reopened";
    case "closed":
      return merged ? "merged" : "closed";
    default:
      return undefined;
  }
}

// --- GitLab ---------------------------------------------------------------------------

const gitlabMergeRequest = z.object({
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
const gitlabPush = z.object({ object_kind: z.literal("push"), ref: z.string(), after: z.string().min(7) });

/** Checks X-Gitlab-Token (constant time), then reads the event. */
export function gitlabDelivery(secret: string, headers: Headers, raw: Buffer): Delivery {
  const token = header(headers, "x-gitlab-token");
  if (token === undefined || !sameSecret(token, secret)) {
    throw new RunnerError("SIGNATURE_INVALID", "x-gitlab-token: missing or wrong");
  }
  const id = requiredHeader(headers, "x-gitlab-event-uuid");
  const name = requiredHeader(headers, "x-gitlab-event");
  const body = json(raw);
  if (name === "Push Hook") {
    const push = parseBody(gitlabPush, body);
    return { id, event: { kind: "push", ref: push.ref, after: push.after } };
  }
  if (name !== "Merge Request Hook") return { id, event: undefined };
  const attributes = parseBody(gitlabMergeRequest, body).object_attributes;
  const action = gitlabAction(attributes.action, attributes.oldrev);
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

function gitlabAction(
  action: string | undefined,
  oldrev: string | undefined,
): Extract<ForgeEvent, { kind: "pull_request" }>["action"] | undefined {
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

// --- shared -----------------------------------------------------------------------------

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return typeof value === "string" ? value : undefined;
}

function requiredHeader(headers: Headers, name: string): string {
  const value = header(headers, name);
  if (!value || value.length > 200) throw new RunnerError("BAD_REQUEST", `${name}: missing`);
  return value;
}

function json(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch (error) {
    throw new RunnerError("BAD_REQUEST", "body: not valid JSON", { cause: error });
  }
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RunnerError(
      "BAD_REQUEST",
      `body.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}
