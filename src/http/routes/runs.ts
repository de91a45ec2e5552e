import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { RunFilter, ServiceApi } from "../../service/api.ts";
import type { RunKind, RunStatus } from "../../store/records.ts";
import type { AccessCheck } from "../auth.ts";
import { listView, type RunLinker, requireRun } from "../run-views.ts";
import {
  emptyBodySchema,
  emptyQuerySchema,
  nameSchema,
  runParamsSchema,
  type ZodTypeProvider,
} from "../validation.ts";

const RUN_KINDS = ["synth", "plan", "apply", "drift"] as const satisfies readonly RunKind[];
const RUN_STATUSES = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "errored",
  "blocked",
  "cancelled",
  "interrupted",
] as const satisfies readonly RunStatus[];

const runsQuerySchema = z.strictObject({
  stack: nameSchema.exactOptional(),
  kind: z.enum(RUN_KINDS).exactOptional(),
  status: z.enum(RUN_STATUSES).exactOptional(),
  limit: z.coerce.number().int().min(1).max(1000).exactOptional(),
});

/** Runs with their logs and plans, and the approval of a blocked one. */
export function runRoutes(
  app: FastifyInstance,
  deps: {
    readonly service: Pick<ServiceApi, "listRuns" | "getRun" | "approve">;
    readonly access: AccessCheck;
    readonly runUrl: RunLinker;
  },
): void {
  const { service, access, runUrl } = deps;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    "/api/runs",
    { onRequest: access("read"), schema: { querystring: runsQuerySchema } },
    async (request) => {
      const runs = await service.listRuns(request.query satisfies RunFilter);
      return { runs: runs.map((run) => ({ ...listView(run), ...runUrl(run.id) })) };
    },
  );

  api.get(
    "/api/runs/:id",
    { onRequest: access("read"), schema: { params: runParamsSchema, querystring: emptyQuerySchema } },
    async (request) => {
      const run = await requireRun(service, request.params.id);
      return { ...run, ...runUrl(run.id) };
    },
  );

  api.post(
    "/api/runs/:id/approve",
    { onRequest: access("write"), schema: { params: runParamsSchema, body: emptyBodySchema } },
    async (request, reply) =>
      reply.code(202).send(await service.approve(request.params.id, access.tokenName(request))),
  );
}
