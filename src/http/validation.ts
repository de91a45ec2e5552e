import type { FastifySchemaCompiler, FastifySerializerCompiler, FastifyTypeProvider } from "fastify";
import { z } from "zod";
import { RunnerError } from "../errors.ts";

/**
 * Routes declare zod schemas for their request parts in fastify's own route
 * option, `schema: { params, querystring, body }`; this compiler validates them
 * and the type provider gives handlers the parsed types. Response schemas and
 * an OpenAPI document can be attached to the same option.
 */
export interface ZodTypeProvider extends FastifyTypeProvider {
  readonly validator: this["schema"] extends z.ZodType ? z.output<this["schema"]> : unknown;
  readonly serializer: this["schema"] extends z.ZodType ? z.input<this["schema"]> : unknown;
}

/** Refuses a request part that fails its schema with BAD_REQUEST naming each field as `params.name`, `query.limit`, `body.x`. */
export const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (value) => {
    const result = schema.safeParse(value);
    if (result.success) return { value: result.data };
    return {
      error: badRequest(result.error, httpPart === "querystring" ? "query" : (httpPart ?? "request")),
    };
  };

/**
 * Answers are checked against the route's response schema before they leave:
 * a field the schema does not name is an error of the runner (a 500), never
 * a leak.
 */
export const zodSerializerCompiler: FastifySerializerCompiler<z.ZodType> =
  ({ schema }) =>
  (data) =>
    JSON.stringify(schema.parse(data));

/** The longest stack or run name, and so the longest path parameter the router passes on. */
export const MAX_NAME_LENGTH = 200;

/** A stack or run name as it appears in a path or a query. */
export const nameSchema = z
  .string()
  .min(1)
  .max(MAX_NAME_LENGTH)
  .regex(/^[A-Za-z0-9._-]+$/, "only letters, digits, '.', '_' and '-'");
export const stackParamsSchema = z.strictObject({ name: nameSchema });
export const runParamsSchema = z.strictObject({ id: nameSchema });
export const emptyQuerySchema = z.strictObject({});
/** Routes that take no options yet: no body (fastify hands an absent body to validation as null), or `{}`. */
export const emptyBodySchema = z.strictObject({}).nullish();

/** Parses `value` or throws BAD_REQUEST naming each offending field as `where.path`. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw badRequest(result.error, where);
}

function badRequest(error: z.ZodError, where: string): RunnerError {
  const problems = error.issues.map(
    (issue) => `${[where, ...issue.path.map(String)].join(".")}: ${issue.message}`,
  );
  return new RunnerError("BAD_REQUEST", problems.join("; "), { cause: error });
}
