import { z } from "zod";
import { RunnerError } from "../errors.ts";

/** A stack or run name as it appears in a path or a query. */
export const nameSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._-]+$/, "only letters, digits, '.', '_' and '-'");

export const stackParamsSchema = z.strictObject({ name: nameSchema });
export const runParamsSchema = z.strictObject({ id: nameSchema });
export const emptyQuerySchema = z.strictObject({});
/** Routes that take no options yet: no body, or an empty object. */
export const emptyBodySchema = z.strictObject({}).optional();

/** Parses `value` or throws BAD_REQUEST naming each offending field as `where.path`. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (issue) => `${[where, ...issue.path.map(String)].join(".")}: ${issue.message}`,
  );
  throw new RunnerError("BAD_REQUEST", problems.join("; "), { cause: result.error });
}
