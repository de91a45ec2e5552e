import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ServiceApi, TriggerKind } from "../../service/api.ts";
import type { AccessCheck } from "../auth.ts";
import { Accepted, errors, NAMED, WRITE_ERRORS } from "../schemas.ts";
import { emptyBodySchema, stackParamsSchema, type ZodTypeProvider } from "../validation.ts";

const TRIGGER_KINDS = ["plan", "apply", "drift"] as const satisfies readonly TriggerKind[];

/** Queue a plan, apply or drift check of one stack or of every stack; answered 202 with the event. */
export function triggerRoutes(
  app: FastifyInstance,
  deps: { readonly service: Pick<ServiceApi, "trigger">; readonly access: AccessCheck },
): void {
  const { service, access } = deps;
  const api = app.withTypeProvider<ZodTypeProvider>();
  const named = (request: FastifyRequest) => {
    const tokenName = access.tokenName(request);
    return tokenName ? { tokenName } : {};
  };
  const tags = ["triggers"];

  for (const kind of TRIGGER_KINDS) {
    api.post(
      `/api/stacks/:name/${kind}`,
      {
        onRequest: access("write"),
        schema: {
          tags,
          summary: `Queue a ${kind === "drift" ? "drift check" : kind} of one stack`,
          params: stackParamsSchema,
          body: emptyBodySchema,
          response: { 202: Accepted, ...errors(...WRITE_ERRORS, ...NAMED) },
        },
      },
      async (request, reply) =>
        reply.code(202).send(await service.trigger({ kind, stack: request.params.name, ...named(request) })),
    );
    api.post(
      `/api/${kind}`,
      {
        onRequest: access("write"),
        schema: {
          tags,
          summary: `Queue a ${kind === "drift" ? "drift check" : kind} of every stack`,
          body: emptyBodySchema,
          response: { 202: Accepted, ...errors(...WRITE_ERRORS) },
        },
      },
      async (request, reply) => reply.code(202).send(await service.trigger({ kind, ...named(request) })),
    );
  }
}
