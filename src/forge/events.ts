import { z } from "zod";
import { RunnerError } from "../errors.ts";
import type { Account } from "./port.ts";

/**
 * A forge delivery, reduced to what the runner acts on: the one union every
 * forge's webhook parser (in its folder) produces.
 */
export type PullRequestAction = "opened" | "updated" | "reopened" | "closed" | "merged";

export type ForgeEvent =
  | {
      readonly kind: "pull_request";
      readonly action: PullRequestAction;
      readonly number: number;
      /** As the delivery says it; Bitbucket abbreviates it. */
      readonly headSha: string;
      readonly fromFork: boolean;
      readonly mergeSha?: string;
    }
  | { readonly kind: "push"; readonly ref: string; readonly after: string }
  | {
      /** A comment on a pull request that asks the runner for something. */
      readonly kind: "command";
      readonly number: number;
      readonly commentId: string;
      readonly author: Account;
      readonly command: Command;
    };

export interface Delivery {
  readonly id: string;
  /** undefined: a delivery the runner does not act on (another event or action); it is answered 202 and dropped. */
  readonly event: ForgeEvent | undefined;
}

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

/** Reads a forge's delivery: checks its signature or token, then the event. */
export type DeliveryParser = (secret: string, headers: Headers, raw: Buffer) => Delivery;

// --- comment commands ------------------------------------------------------------------

export const COMMAND_PREFIX = "/gitops-runner";

export type Command =
  | { readonly action: "plan"; readonly stacks: readonly string[] }
  /** `/gitops-runner` followed by something else: answered with what it can do. */
  | { readonly action: "help"; readonly asked: string };

const STACK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * The command a comment's first line gives (`/gitops-runner plan [stack…]`),
 * or undefined for an ordinary comment. Pure.
 */
export function parseCommand(body: string): Command | undefined {
  const [first = ""] = body.trimStart().split(/\r?\n/, 1);
  const words = first.trim().split(/\s+/);
  if (words[0] !== COMMAND_PREFIX) return undefined;
  const [, action, ...rest] = words;
  if (action === "plan" && rest.every((word) => STACK_NAME.test(word))) {
    return { action: "plan", stacks: [...new Set(rest)] };
  }
  return { action: "help", asked: words.slice(1).join(" ").slice(0, 200) };
}

/** A new comment on a pull request as an event: a command, or undefined for an ordinary comment. */
export function commandEvent(
  number: number,
  commentId: number,
  author: Account,
  body: string,
): ForgeEvent | undefined {
  const command = parseCommand(body);
  return command ? { kind: "command", number, commentId: String(commentId), author, command } : undefined;
}

// --- shared by the parsers --------------------------------------------------------------

export function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return typeof value === "string" ? value : undefined;
}

export function requiredHeader(headers: Headers, name: string): string {
  const value = header(headers, name);
  if (!value || value.length > 200) throw new RunnerError("BAD_REQUEST", `${name}: missing`);
  return value;
}

export function jsonBody(raw: Buffer): unknown {
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch (error) {
    throw new RunnerError("BAD_REQUEST", "body: not valid JSON", { cause: error });
  }
}

export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
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

/** GitHub's and Gitea's push payload, in the fields used. */
export const pushSchema = z.object({ ref: z.string(), after: z.string().min(7) });
