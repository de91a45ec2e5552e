import type { FastifyRequest } from "fastify";
import { sameSecret } from "../crypto/hmac.ts";
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
 * A token is compared in constant time with every configured token, so neither
 * a token's content nor its length, nor which one matched, shows in timing.
 */
export function accessChecker(tokens: Tokens): AccessCheck {
  const configured = (list: readonly string[]) => list.filter((token) => token.length > 0);
  const readTokens = configured(tokens.read);
  const writeTokens = configured(tokens.write);
  const matchesAny = (presented: string, list: readonly string[]): boolean =>
    list.reduce((found, token) => sameSecret(presented, token) || found, false);

  const grantOf = (presented: string): Access | undefined => {
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
