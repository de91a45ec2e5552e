import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { RunnerError } from "../errors.ts";

/** Bearer tokens: write tokens may also read. */
export interface Tokens {
  readonly read: readonly string[];
  readonly write: readonly string[];
}

export type Access = "read" | "write";

/** Builds the `onRequest` hook of a route that needs `need` access. */
export type AccessCheck = (
  need: Access,
  options?: { readonly allowQueryToken?: boolean },
) => (request: FastifyRequest) => Promise<void>;

/**
 * Builds `onRequest` hooks that admit a bearer token with the needed access.
 * Tokens are compared as SHA-256 digests with `timingSafeEqual`, against every
 * configured token, so neither a token's content nor its length shows in timing.
 */
export function accessChecker(tokens: Tokens): AccessCheck {
  const digest = (token: string): Buffer => createHash("sha256").update(token).digest();
  const configured = (list: readonly string[]) => list.filter((token) => token.length > 0).map(digest);
  const readTokens = configured(tokens.read);
  const writeTokens = configured(tokens.write);
  const matchesAny = (presented: Buffer, list: readonly Buffer[]): boolean =>
    list.reduce((found, token) => timingSafeEqual(token, presented) || found, false);

  const grantOf = (token: string): Access | undefined => {
    const presented = digest(token);
    const write = matchesAny(presented, writeTokens);
    const read = matchesAny(presented, readTokens);
    return write ? "write" : read ? "read" : undefined;
  };

  return (need, { allowQueryToken = false } = {}) =>
    async (request) => {
      const token =
        bearerToken(request.headers.authorization) ?? (allowQueryToken ? queryToken(request) : undefined);
      if (token === undefined) throw new RunnerError("UNAUTHORIZED", "a bearer token is required");
      const grant = grantOf(token);
      if (grant === undefined) throw new RunnerError("UNAUTHORIZED", "the token is not valid");
      if (need === "write" && grant !== "write") {
        throw new RunnerError("FORBIDDEN", "this token may read but not change anything");
      }
    };
}

function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? "");
  return match?.[1];
}

function queryToken(request: FastifyRequest): string | undefined {
  const query = request.query;
  if (typeof query !== "object" || query === null || !("token" in query)) return undefined;
  return typeof query.token === "string" && query.token.length > 0 ? query.token : undefined;
}
