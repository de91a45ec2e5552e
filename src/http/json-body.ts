import type { FastifyRequest } from "fastify";
import { isRunnerError, RunnerError } from "../errors.ts";

/**
 * Parses a JSON request body. Refuses, by name, the keys that reach an object's
 * prototype when a body is merged into another object (`__proto__`, and
 * `constructor` holding `prototype`), as fastify's own parser does silently.
 */
export function parseJsonBody(text: string): unknown {
  if (text.length === 0) throw new RunnerError("BAD_REQUEST", "body: empty, but sent as JSON");
  try {
    return JSON.parse(text, (key, value: unknown) => {
      if (key === "__proto__") throw new RunnerError("BAD_REQUEST", 'body: a "__proto__" key is not allowed');
      if (
        key === "constructor" &&
        typeof value === "object" &&
        value !== null &&
        Object.hasOwn(value, "prototype")
      )
        throw new RunnerError("BAD_REQUEST", 'body: a "constructor" key holding "prototype" is not allowed');
      return value;
    });
  } catch (error) {
    if (isRunnerError(error)) throw error;
    throw new RunnerError("BAD_REQUEST", "body: not valid JSON", { cause: error });
  }
}

/**
 * `parseJsonBody` as fastify's parser of application/json bodies. A body of
 * `null` is refused: no route takes one, and routes without options take no
 * body at all (which fastify hands to validation as null).
 */
export function jsonBodyParser(
  _request: FastifyRequest,
  body: string,
  done: (error: Error | null, value?: unknown) => void,
): void {
  try {
    const parsed = parseJsonBody(body);
    if (parsed === null) throw new RunnerError("BAD_REQUEST", "body: null; send a JSON object, or no body");
    done(null, parsed);
  } catch (error) {
    done(error instanceof Error ? error : new Error(String(error)));
  }
}
