import type {} from "@fastify/cookie";
import type { FastifyReply, FastifyRequest } from "fastify";
import { signSha256 } from "../crypto/hmac.ts";
import type { Access, Grant, Tokens } from "./auth.ts";

/**
 * A person's session in the dashboard, after they pasted a token once: an
 * HttpOnly, SameSite=Strict cookie, signed by @fastify/cookie and expiring,
 * that holds the session's end and a fingerprint of the token (an HMAC, never
 * the token). What the session may do is looked up from the configured tokens
 * on every request, so removing a token ends its sessions.
 */
export const SESSION_COOKIE = "gitops_runner_session";
export const SESSION_HOURS = 12;

export interface Sessions {
  /** The access of the request's session, if it has a valid one. */
  accessOf(request: FastifyRequest): Access | undefined;
  /** The session's access and its token's name (for the audit trail). */
  grantOf(request: FastifyRequest): Grant | undefined;
  /** Starts a session for a token already checked. */
  start(reply: FastifyReply, token: string): void;
  end(reply: FastifyReply): void;
}

export function sessions(options: {
  readonly secret: string;
  readonly tokens: Tokens;
  /** Whether cookies are sent over HTTPS only (the runner's public address is https). */
  readonly secure: boolean;
  readonly now?: () => number;
}): Sessions {
  const now = options.now ?? Date.now;
  const fingerprint = (token: string) => signSha256(options.secret, `session:${token}`).slice(0, 32);
  const grants = new Map<string, Grant>([
    ...options.tokens.read
      .filter((token) => token.value)
      .map((token) => [fingerprint(token.value), { access: "read", name: token.name }] as const),
    ...options.tokens.write
      .filter((token) => token.value)
      .map((token) => [fingerprint(token.value), { access: "write", name: token.name }] as const),
  ]);
  const cookie = {
    path: "/",
    httpOnly: true,
    sameSite: "strict" as const,
    secure: options.secure,
    signed: true,
  };
  return {
    accessOf(request) {
      return this.grantOf(request)?.access;
    },
    grantOf(request) {
      const raw = request.cookies[SESSION_COOKIE];
      if (!raw) return undefined;
      const unsigned = request.unsignCookie(raw);
      if (!unsigned.valid || unsigned.value === null) return undefined;
      const [ends, print] = unsigned.value.split(".");
      if (!print || !(Number(ends) > now())) return undefined;
      return grants.get(print);
    },
    start(reply, token) {
      const ends = now() + SESSION_HOURS * 3_600_000;
      reply.setCookie(SESSION_COOKIE, `${ends}.${fingerprint(token)}`, {
        ...cookie,
        maxAge: SESSION_HOURS * 3600,
      });
    },
    end(reply) {
      reply.clearCookie(SESSION_COOKIE, cookie);
    },
  };
}
