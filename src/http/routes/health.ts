import type { FastifyInstance } from "fastify";
import type { ServiceApi } from "../../service/api.ts";

/** Liveness, readiness and Prometheus metrics: no token, for probes and scrapers. */
export function healthRoutes(app: FastifyInstance, service: Pick<ServiceApi, "readiness" | "metrics">): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_request, reply) => {
    const readiness = await service.readiness();
    return reply.code(readiness.ready ? 200 : 503).send(readiness);
  });
  app.get("/metrics", async (_request, reply) => {
    const metrics = await service.metrics();
    return reply.type(metrics.contentType).send(metrics.body);
  });
}
