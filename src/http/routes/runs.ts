import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { RunnerError } from "../../errors.ts";
import type { RunFilter, ServiceApi } from "../../service/api.ts";
import type { AccessCheck } from "../auth.ts";
import { listView, type RunLinker, requireRun } from "../run-views.ts";
import {
  Accepted,
  CancelResult,
  errors,
  NAMED,
  READ_ERRORS,
  RUN_KINDS,
  RUN_STATUSES,
  Run,
  RunLog,
  RunSummary,
  WRITE_ERRORS,
} from "../schemas.ts";
import {
  emptyBodySchema,
  emptyQuerySchema,
  nameSchema,
  runParamsSchema,
  type ZodTypeProvider,
} from "../validation.ts";

const runsQuerySchema = z.strictObject({
  stack: nameSchema.exactOptional(),
  kind: z.enum(RUN_KINDS).exactOptional(),
  status: z.enum(RUN_STATUSES).exactOptional(),
  limit: z.coerce.number().int().min(1).max(1000).exactOptional(),
});

const logQuerySchema = z.strictObject({
  after: z.coerce
    .number()
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .exactOptional()
    .describe("The offset returned by the previous call; 0 (the start) when absent"),
});

const cancelBodySchema = z
  .strictObject({
    force: z.boolean().exactOptional().describe("Also interrupt a running terraform apply (recorded)"),
  })
  .nullish();

/** Runs with their logs and plans, the approval of a blocked one, and cancels. */
export function runRoutes(
  app: FastifyInstance,
  deps: {
    readonly service: Pick<ServiceApi, "listRuns" | "getRun" | "approve" | "cancel" | "runLog">;
    readonly access: AccessCheck;
    readonly runUrl: RunLinker;
  },
): void {
  const { service, access, runUrl } = deps;
  const api = app.withTypeProvider<ZodTypeProvider>();
  const tags = ["runs"];

  api.get(
    "/api/runs",
    {
      onRequest: access("read"),
      schema: {
        tags,
        summary: "Runs, newest first, without logs and plans",
        querystring: runsQuerySchema,
        response: { 200: z.strictObject({ runs: z.array(RunSummary) }), ...errors(...READ_ERRORS) },
      },
    },
    async (request) => {
      const runs = await service.listRuns(request.query satisfies RunFilter);
      return { runs: runs.map((run) => ({ ...listView(run), ...runUrl(run.id) })) };
    },
  );

  api.get(
    "/api/runs/:id",
    {
      onRequest: access("read"),
      schema: {
        tags,
        summary: "One run with its log and redacted plan",
        params: runParamsSchema,
        querystring: emptyQuerySchema,
        response: { 200: Run, ...errors(...READ_ERRORS, ...NAMED) },
      },
    },
    async (request) => {
      const run = await requireRun(service, request.params.id);
      return { ...run, ...runUrl(run.id) };
    },
  );

  api.get(
    "/api/runs/:id/log",
    {
      onRequest: access("read"),
      schema: {
        tags,
        summary: "A run's log from an offset on, to follow it while it runs",
        params: runParamsSchema,
        querystring: logQuerySchema,
        response: { 200: RunLog, ...errors(...READ_ERRORS, ...NAMED) },
      },
    },
    async (request) => {
      const chunk = await service.runLog(request.params.id, request.query.after ?? 0);
      if (!chunk) throw new RunnerError("RUN_NOT_FOUND", `no run with id ${request.params.id}`);
      return chunk;
    },
  );

  api.post(
    "/api/runs/:id/approve",
    {
      onRequest: access("write"),
      schema: {
        tags,
        summary: "Apply a blocked run's plan, if the new plan makes the same changes",
        params: runParamsSchema,
        body: emptyBodySchema,
        response: { 202: Accepted, ...errors(...WRITE_ERRORS, ...NAMED, 409) },
      },
    },
    async (request, reply) =>
      reply.code(202).send(await service.approve(request.params.id, access.tokenName(request))),
  );

  api.post(
    "/api/runs/:id/cancel",
    {
      onRequest: access("write"),
      schema: {
        tags,
        summary:
          "Cancel a run (or a queued event by its id): a queued one is dropped (200), a running one is signalled (202)",
        params: runParamsSchema,
        body: cancelBodySchema,
        response: { 200: CancelResult, 202: CancelResult, ...errors(...WRITE_ERRORS, ...NAMED, 409) },
      },
    },
    async (request, reply) => {
      const result = await service.cancel(request.params.id, { force: request.body?.force === true });
      return reply.code(result.cancelled === "queued" ? 200 : 202).send(result);
    },
  );
}
