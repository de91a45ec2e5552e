import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { RunnerError } from "../../errors.ts";
import type { ServiceApi } from "../../service/api.ts";
import type { AccessCheck } from "../auth.ts";
import { errors, NAMED, READ_ERRORS, StackDetail, StackView, WRITE_ERRORS } from "../schemas.ts";
import { emptyBodySchema, emptyQuerySchema, stackParamsSchema, type ZodTypeProvider } from "../validation.ts";

const suspendBodySchema = z
  .strictObject({ reason: z.string().min(1).max(500).exactOptional() })
  .nullish()
  .describe("Why, for people reading the stack's page");

/** The stacks, their locks, and their suspension. */
export function stackRoutes(
  app: FastifyInstance,
  deps: {
    readonly service: Pick<ServiceApi, "listStacks" | "getStack" | "releaseLock" | "suspend" | "resume">;
    readonly access: AccessCheck;
  },
): void {
  const { service, access } = deps;
  const api = app.withTypeProvider<ZodTypeProvider>();
  const tags = ["stacks"];

  api.get(
    "/api/stacks",
    {
      onRequest: access("read"),
      schema: {
        tags,
        summary: "Every stack with its state",
        querystring: emptyQuerySchema,
        response: { 200: z.strictObject({ stacks: z.array(StackView) }), ...errors(...READ_ERRORS) },
      },
    },
    async () => ({ stacks: await service.listStacks() }),
  );

  api.get(
    "/api/stacks/:name",
    {
      onRequest: access("read"),
      schema: {
        tags,
        summary: "One stack: dependencies both ways, policy in force and its source, lock, current drift",
        params: stackParamsSchema,
        querystring: emptyQuerySchema,
        response: { 200: StackDetail, ...errors(...READ_ERRORS, ...NAMED) },
      },
    },
    async (request) => {
      const stack = await service.getStack(request.params.name);
      if (!stack) throw new RunnerError("STACK_UNKNOWN", `unknown stack "${request.params.name}"`);
      return stack;
    },
  );

  api.delete(
    "/api/stacks/:name/lock",
    {
      onRequest: access("write"),
      schema: {
        tags,
        summary: "Release a stale lock",
        params: stackParamsSchema,
        body: emptyBodySchema,
        response: {
          200: z.strictObject({ released: z.boolean() }),
          ...errors(...WRITE_ERRORS, ...NAMED),
        },
      },
    },
    async (request) => {
      const { released } = await service.releaseLock(request.params.name);
      return { released };
    },
  );

  api.post(
    "/api/stacks/:name/suspend",
    {
      onRequest: access("write"),
      schema: {
        tags,
        summary: "Suspend a stack: applies and drift checks skip it (stored; wins over the policy file)",
        params: stackParamsSchema,
        body: suspendBodySchema,
        response: { 200: StackDetail, ...errors(...WRITE_ERRORS, ...NAMED) },
      },
    },
    async (request) => service.suspend(request.params.name, request.body?.reason),
  );

  api.post(
    "/api/stacks/:name/resume",
    {
      onRequest: access("write"),
      schema: {
        tags,
        summary: "Resume a stack; a pending one is applied",
        params: stackParamsSchema,
        body: emptyBodySchema,
        response: { 200: StackDetail, ...errors(...WRITE_ERRORS, ...NAMED) },
      },
    },
    async (request) => service.resume(request.params.name),
  );
}
