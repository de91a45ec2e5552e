import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ServiceApi } from "../../service/api.ts";
import type { AccessCheck } from "../auth.ts";
import { ApplyGate, errors, Queue, READ_ERRORS, WRITE_ERRORS } from "../schemas.ts";
import { emptyBodySchema, emptyQuerySchema, type ZodTypeProvider } from "../validation.ts";

const freezeBodySchema = z.strictObject({
  reason: z.string().trim().min(1).max(500).describe("Why, shown wherever applies wait"),
  until: z.iso
    .datetime({ offset: true })
    .exactOptional()
    .describe("When the freeze ends by itself; unset: until it is lifted"),
});

/** The queue, and the freeze of applies. */
export function operationRoutes(
  app: FastifyInstance,
  deps: {
    readonly service: Pick<ServiceApi, "queue" | "applyGate" | "freeze" | "unfreeze">;
    readonly access: AccessCheck;
  },
): void {
  const { service, access } = deps;
  const api = app.withTypeProvider<ZodTypeProvider>();
  const tags = ["operations"];

  api.get(
    "/api/queue",
    {
      onRequest: access("read"),
      schema: {
        tags,
        summary: "Queued and running events, running first, with their runs and why queued ones wait",
        querystring: emptyQuerySchema,
        response: { 200: Queue, ...errors(...READ_ERRORS) },
      },
    },
    async () => service.queue(),
  );

  api.get(
    "/api/freeze",
    {
      onRequest: access("read"),
      schema: {
        tags,
        summary: "Whether applies may start: the freeze and the maintenance windows",
        querystring: emptyQuerySchema,
        response: { 200: ApplyGate, ...errors(...READ_ERRORS) },
      },
    },
    async () => service.applyGate(),
  );

  api.post(
    "/api/freeze",
    {
      onRequest: access("write"),
      schema: {
        tags,
        summary: "Freeze applies and drift corrections; queued ones wait, plans and drift checks go on",
        body: freezeBodySchema,
        response: { 200: ApplyGate, ...errors(...WRITE_ERRORS) },
      },
    },
    async (request) =>
      service.freeze({
        reason: request.body.reason,
        ...(request.body.until ? { until: new Date(request.body.until).toISOString() } : {}),
      }),
  );

  api.delete(
    "/api/freeze",
    {
      onRequest: access("write"),
      schema: {
        tags,
        summary: "Lift the freeze; queued applies run",
        body: emptyBodySchema,
        response: { 200: ApplyGate, ...errors(...WRITE_ERRORS) },
      },
    },
    async () => service.unfreeze(),
  );
}
