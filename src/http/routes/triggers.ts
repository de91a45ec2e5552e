import type { FastifyInstance } from "fastify";
import type { ServiceApi, TriggerKind } from "../../service/api.ts";
import type { AccessCheck } from "../auth.ts";
import { emptyBodySchema, parse, stackParamsSchema } from "../validation.ts";

const TRIGGER_KINDS = ["plan", "apply", "drift"] as const satisfies readonly TriggerKind[];

/** Queue a plan, apply or drift check of one stack or of every stack; answered 202 with the event. */
export function triggerRoutes(
  app: FastifyInstance,
  deps: { readonly service: Pick<ServiceApi, "trigger">; readonly access: AccessCheck },
): void {
  const { service, access } = deps;
  const write = { onRequest: access("write") };

  for (const kind of TRIGGER_KINDS) {
    app.post(`/api/stacks/:name/${kind}`, write, async (request, reply) => {
      const { name } = parse(stackParamsSchema, request.params, "params");
      parse(emptyBodySchema, request.body, "body");
      return reply.code(202).send(await service.trigger({ kind, stack: name }));
    });
    app.post(`/api/${kind}`, write, async (request, reply) => {
      parse(emptyBodySchema, request.body, "body");
      return reply.code(202).send(await service.trigger({ kind }));
    });
  }
}
