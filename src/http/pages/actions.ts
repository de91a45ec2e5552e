import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { RunnerError } from "../../errors.ts";
import type { ServiceApi } from "../../service/api.ts";
import { requireRun } from "../run-views.ts";
import { nameSchema, type ZodTypeProvider } from "../validation.ts";
import {
  confirmRunPage,
  confirmStackPage,
  confirmUnfreezePage,
  type RunAction,
  type StackAction,
} from "./forms.ts";
import { csrfField, formSchema, type PageContext, requireStack } from "./page-context.ts";

const suspendFormSchema = z.strictObject({ ...csrfField, reason: z.string().max(500).exactOptional() });
const cancelFormSchema = z.strictObject({ ...csrfField, force: z.literal("true").exactOptional() });
const freezeFormSchema = z.strictObject({
  ...csrfField,
  reason: z.string().trim().min(1, "a reason is needed").max(500),
  until: z.string().max(40).exactOptional(),
});
const stackActionSchema = z.strictObject({
  name: nameSchema,
  action: z.enum(["plan", "apply", "drift", "suspend", "resume", "release-lock"]),
});
const runActionSchema = z.strictObject({ id: nameSchema, action: z.enum(["approve", "cancel"]) });
const stackConfirmSchema = z.strictObject({
  name: nameSchema,
  action: z.enum(["apply", "drift", "release-lock", "resume"]),
});
const runConfirmSchema = z.strictObject({ id: nameSchema, action: z.enum(["approve", "cancel"]) });

/** Pages that ask before anything that changes infrastructure, saying what will happen. */
export function confirmRoutes(app: FastifyInstance, service: ServiceApi, context: PageContext): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const hide = { hide: true };

  api.get(
    "/stacks/:name/confirm/:action",
    { schema: { ...hide, params: stackConfirmSchema } },
    async (request, reply) => {
      const viewer = context.viewer(request, reply, "write");
      if (!viewer) return reply;
      const stack = await requireStack(service, request.params.name);
      const body = confirmStackPage(stack, request.params.action as StackAction, viewer);
      return context.page(reply, { title: "Confirm", viewer, section: "stacks", body });
    },
  );

  api.get(
    "/runs/:id/confirm/:action",
    { schema: { ...hide, params: runConfirmSchema } },
    async (request, reply) => {
      const viewer = context.viewer(request, reply, "write");
      if (!viewer) return reply;
      const run = await requireRun(service, request.params.id);
      const body = confirmRunPage(run, request.params.action as RunAction, viewer);
      return context.page(reply, { title: "Confirm", viewer, section: "stacks", body });
    },
  );

  api.get("/confirm/unfreeze", { schema: hide }, async (request, reply) => {
    const viewer = context.viewer(request, reply, "write");
    if (!viewer) return reply;
    const { events } = await service.queue();
    const waiting = events.filter(
      (event) => event.status === "queued" && (event.kind === "apply" || event.kind === "approve"),
    ).length;
    return context.page(reply, {
      title: "Confirm",
      viewer,
      section: "queue",
      body: confirmUnfreezePage(waiting, viewer),
    });
  });
}

/** The forms' targets: each checks the session's write access and the CSRF token, acts, and goes back. */
export function actionRoutes(app: FastifyInstance, service: ServiceApi, context: PageContext): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const writer = (request: FastifyRequest, reply: FastifyReply) => context.viewer(request, reply, "write");
  const guarded = { preHandler: app.csrfProtection };

  api.post(
    "/stacks/:name/:action",
    { ...guarded, schema: { hide: true, params: stackActionSchema, body: suspendFormSchema } },
    async (request, reply) => {
      const viewer = writer(request, reply);
      if (!viewer) return reply;
      const named = viewer.tokenName ? { tokenName: viewer.tokenName } : {};
      const { name, action } = request.params;
      const back = (key: string) => reply.redirect(`/stacks/${encodeURIComponent(name)}?notice=${key}`, 303);
      switch (action) {
        case "plan":
        case "apply":
        case "drift":
          await service.trigger({ kind: action, stack: name, ...named });
          return back("queued");
        case "suspend":
          await service.suspend(name, request.body.reason?.trim() || undefined);
          return back("suspended");
        case "resume":
          await service.resume(name);
          return back("resumed");
        case "release-lock":
          return back((await service.releaseLock(name)).released ? "released" : "not-locked");
      }
    },
  );

  api.post(
    "/runs/:id/:action",
    { ...guarded, schema: { hide: true, params: runActionSchema, body: cancelFormSchema } },
    async (request, reply) => {
      const viewer = writer(request, reply);
      if (!viewer) return reply;
      const { id, action } = request.params;
      if (action === "approve") {
        await service.approve(id, viewer.tokenName);
        return reply.redirect(`/runs/${encodeURIComponent(id)}?notice=approved`, 303);
      }
      const result = await service.cancel(id, { force: request.body.force === "true" });
      const target = result.runId ? `/runs/${encodeURIComponent(result.runId)}` : "/queue";
      return reply.redirect(`${target}?notice=cancelled`, 303);
    },
  );

  api.post(
    "/freeze",
    { ...guarded, schema: { hide: true, body: freezeFormSchema } },
    async (request, reply) => {
      if (!writer(request, reply)) return reply;
      const until = request.body.until ? new Date(`${request.body.until}Z`) : undefined;
      if (until && Number.isNaN(until.getTime()))
        throw new RunnerError("BAD_REQUEST", "until: not a date and time");
      await service.freeze({ reason: request.body.reason, ...(until ? { until: until.toISOString() } : {}) });
      return reply.redirect("/queue?notice=frozen", 303);
    },
  );

  api.post("/unfreeze", { ...guarded, schema: { hide: true, body: formSchema } }, async (request, reply) => {
    if (!writer(request, reply)) return reply;
    await service.unfreeze();
    return reply.redirect("/queue?notice=unfrozen", 303);
  });
}
