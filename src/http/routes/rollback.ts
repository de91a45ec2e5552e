import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ServiceApi } from "../../service/api.ts";
import type { AccessCheck } from "../auth.ts";
import { errors, NAMED, WRITE_ERRORS } from "../schemas.ts";
import { stackParamsSchema, type ZodTypeProvider } from "../validation.ts";

const rollbackBodySchema = z.strictObject({
  /** A commit (full or abbreviated) or a ref naming one. */
  to: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, "a commit or a ref"),
});

export const rollbackResultSchema = z.strictObject({
  stack: z.string(),
  to: z.string(),
  branch: z.string(),
  commit: z.string(),
  base: z.string(),
  alsoChanges: z.array(z.string()).readonly(),
  pullRequest: z.strictObject({ number: z.number().int(), url: z.string() }).optional(),
});

/** Rollback by revert: a branch and a pull request restoring what a stack was applied at (201). */
export function rollbackRoutes(
  app: FastifyInstance,
  deps: { readonly service: Pick<ServiceApi, "rollback">; readonly access: AccessCheck },
): void {
  const { service, access } = deps;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.post(
    "/api/stacks/:name/rollback",
    {
      onRequest: access("write"),
      schema: {
        tags: ["stacks"],
        summary: "Roll a stack back by revert: a branch and a pull request restoring what it was applied at",
        params: stackParamsSchema,
        body: rollbackBodySchema,
        response: { 201: rollbackResultSchema, ...errors(...WRITE_ERRORS, ...NAMED, 409) },
      },
    },
    async (request, reply) => {
      const tokenName = access.tokenName(request);
      const result = await service.rollback({
        stack: request.params.name,
        to: request.body.to,
        ...(tokenName ? { tokenName } : {}),
      });
      return reply.code(201).send(result);
    },
  );
}
