import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ServiceApi } from "../../service/api.ts";
import { Health, Readiness } from "../schemas.ts";
import type { ZodTypeProvider } from "../validation.ts";

/** Liveness, readiness and Prometheus metrics: no token, for probes and scrapers. */
export function healthRoutes(app: FastifyInstance, service: Pick<ServiceApi, "readiness" | "metrics">): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const open = { security: [], tags: ["health"] };
  api.get(
    "/healthz",
    { schema: { ...open, summary: "Liveness: answers from the start", response: { 200: Health } } },
    async () => ({ status: "ok" as const }),
  );
  api.get(
    "/readyz",
    {
      schema: {
        ...open,
        summary:
          "Readiness: recovered, the database answers, the data directory has room, the branch was polled",
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_request, reply) => {
      const readiness = await service.readiness();
      return reply.code(readiness.ready ? 200 : 503).send(readiness);
    },
  );
  api.get(
    "/metrics",
    {
      schema: {
        ...open,
        summary: "Prometheus metrics",
        response: {
          200: {
            description: "The text exposition format",
            content: { "text/plain": { schema: z.string() } },
          },
        },
      },
    },
    async (_request, reply) => {
      const metrics = await service.metrics();
      return reply.type(metrics.contentType).send(metrics.body);
    },
  );
}
