import type { FastifyInstance } from "fastify";
import type { ServiceApi } from "../../service/api.ts";
import type { AccessCheck } from "../auth.ts";
import { emptyBodySchema, parse, stackParamsSchema } from "../validation.ts";

/** The stacks and their locks. */
export function stackRoutes(
  app: FastifyInstance,
  deps: { readonly service: Pick<ServiceApi, "listStacks" | "releaseLock">; readonly access: AccessCheck },
): void {
  const { service, access } = deps;

  app.get("/api/stacks", { onRequest: access("read") }, async () => ({ stacks: await service.listStacks() }));

  app.delete("/api/stacks/:name/lock", { onRequest: access("write") }, async (request) => {
    const { name } = parse(stackParamsSchema, request.params, "params");
    parse(emptyBodySchema, request.body, "body");
    const { released } = await service.releaseLock(name);
    return { released };
  });
}
