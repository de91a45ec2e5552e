import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ServiceApi } from "../../service/api.ts";
import { auditBound } from "../../service/audit-time.ts";
import type { AccessCheck } from "../auth.ts";
import { errors, READ_ERRORS, RunOrigin } from "../schemas.ts";
import { nameSchema, type ZodTypeProvider } from "../validation.ts";

const auditQuerySchema = z.strictObject({
  stack: nameSchema.exactOptional(),
  since: z.string().max(40).exactOptional(),
  until: z.string().max(40).exactOptional(),
  limit: z.coerce.number().int().min(1).max(1000).exactOptional(),
});

/** One applied change: who, what, when, which commit and pull request, which resources. */
export const auditEntrySchema = z.strictObject({
  runId: z.string(),
  repoId: z.string(),
  appDir: z.string(),
  stack: z.string(),
  kind: z.enum(["apply", "drift"]),
  commit: z.string(),
  result: z.enum(["applied", "no-changes", "corrected", "failed"]),
  at: z.string(),
  trigger: z.string(),
  origin: RunOrigin,
  commitAuthor: z.string().optional(),
  summary: z.strictObject({
    add: z.number(),
    change: z.number(),
    destroy: z.number(),
    replace: z.number(),
    import: z.number(),
  }),
  resources: z
    .array(z.strictObject({ address: z.string(), actions: z.array(z.string()).readonly() }))
    .readonly(),
  environment: z.string().optional(),
  promotionHash: z.string().optional(),
  error: z.string().optional(),
});

/** The audit trail of applied changes, newest first. */
export function auditRoutes(
  app: FastifyInstance,
  deps: { readonly service: Pick<ServiceApi, "listAudit">; readonly access: AccessCheck },
): void {
  const { service, access } = deps;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    "/api/audit",
    {
      onRequest: access("read"),
      schema: {
        tags: ["audit"],
        summary: "The audit trail: applied changes, newest first",
        querystring: auditQuerySchema,
        response: {
          200: z.strictObject({ entries: z.array(auditEntrySchema) }),
          ...errors(...READ_ERRORS),
        },
      },
    },
    async (request) => {
      const { stack, since, until, limit } = request.query;
      const entries = await service.listAudit({
        ...(stack ? { stack } : {}),
        ...(since ? { since: auditBound(since, "since") } : {}),
        ...(until ? { until: auditBound(until, "until") } : {}),
        ...(limit ? { limit } : {}),
      });
      return { entries };
    },
  );
}
