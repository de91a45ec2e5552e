import type { FastifyRequest } from "fastify";
import { sameSecret } from "../crypto/hmac.ts";
import { RunnerError } from "../errors.ts";

/** Bearer tokens, each with the name the audit trail records: write tokens may also read. */
export interface Tokens {
  readonly read: readonly NamedToken[];
  readonly write: readonly NamedToken[];
}

export interface NamedToken {
  readonly name: string;
  readonly value: string;
}

export type Access = "read" | "write";

/** Builds the `onRequest` hook of a route that needs `need` access. */
export interface AccessCheck {
  (
    need: Access,
    options?: { readonly allowQueryToken?: boolean },
  ): (request: FastifyRequest) => Promise<void>;
  /** The name of the token a request was admitted with. */
  tokenName(request: FastifyRequest): string | undefined;
}

/**
 * Builds `onRequest` hooks that admit a bearer token with the needed access.
 * A token is compared in constant time with every configured token, so neither
 * a token's content nor its length, nor which one matched, shows in timing.
 */
export function accessChecker(tokens: Tokens): AccessCheck {
  const grantOf = tokenGrants(tokens);
  const admitted = new WeakMap<FastifyRequest, string>();
  const check =
    (need: Access, { allowQueryToken = false }: { readonly allowQueryToken?: boolean } = {}) =>
    async (request: FastifyRequest) => {
      const token =
        bearerToken(request.headers.authorization) ?? (allowQueryToken ? queryToken(request) : undefined);
      if (token === undefined) throw new RunnerError("UNAUTHORIZED", "a bearer token is required");
      const grant = grantOf(token);
      if (grant === undefined) throw new RunnerError("UNAUTHORIZED", "the token is not valid");
      if (need === "write" && grant.access !== "write") {
        throw new RunnerError("FORBIDDEN", "this token may read but not change anything");
      }
      admitted.set(request, grant.name);
    };
  return Object.assign(check, { tokenName: (request: FastifyRequest) => admitted.get(request) });
}

/** What a token may do, and its name for the audit trail. */
export interface Grant {
  readonly access: Access;
  readonly name: string;
}

/**
 * What a presented token may do: write, read, or nothing. It is compared in
 * constant time with every configured token.
 */
export function tokenGrants(tokens: Tokens): (presented: string) => Grant | undefined {
  const configured = (list: readonly NamedToken[]) => list.filter((token) => token.value.length > 0);
  const readTokens = configured(tokens.read);
  const writeTokens = configured(tokens.write);
  // Every token is compared, whichever matches: the time taken says nothing about which did.
  const matching = (presented: string, list: readonly NamedToken[]): NamedToken | undefined =>
    list.reduce<NamedToken | undefined>(
      (found, token) => (sameSecret(presented, token.value) ? (found ?? token) : found),
      undefined,
    );
  return (presented) => {
    const write = matching(presented, writeTokens);
    const read = matching(presented, readTokens);
    if (write) return { access: "write", name: write.name };
    return read ? { access: "read", name: read.name } : undefined;
  };
}

/** The grant of the request's bearer token, if it has a valid one. */
export function bearerGrant(
  grantOf: (presented: string) => Grant | undefined,
  request: FastifyRequest,
): Grant | undefined {
  const token = bearerToken(request.headers.authorization);
  return token === undefined ? undefined : grantOf(token);
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
