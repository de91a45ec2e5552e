import type { FastifyInstance } from "fastify";
import type { ServiceApi } from "../../service/api.ts";
import type { AccessCheck } from "../auth.ts";
import { emptyBodySchema, stackParamsSchema, type ZodTypeProvider } from "../validation.ts";

/** The stacks and their locks. */
export function stackRoutes(
  app: FastifyInstance,
  deps: { readonly service: Pick<ServiceApi, "listStacks" | "releaseLock">; readonly access: AccessCheck },
): void {
  const { service, access } = deps;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get("/api/stacks", { onRequest: access("read") }, async () => ({ stacks: await service.listStacks() }));

  api.delete(
    "/api/stacks/:name/lock",
    { onRequest: access("write"), schema: { params: stackParamsSchema, body: emptyBodySchema } },
    async (request) => {
      const { released } = await service.releaseLock(request.params.name);
      return { released };
    },
  );
}
