import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { type Tokens, tokenGrants } from "../auth.ts";
import type { Sessions } from "../session.ts";
import type { ZodTypeProvider } from "../validation.ts";
import { signInPage } from "./forms.ts";
import { csrfField, formSchema, type PageContext } from "./page-context.ts";

const signInQuerySchema = z.strictObject({ next: z.string().max(2000).exactOptional() });
const signInBodySchema = z.strictObject({
  ...csrfField,
  token: z.string().min(1).max(1000),
  next: z.string().max(2000),
});

/** Where to go after signing in: a path of this runner only, never another site. */
function safeNext(next: string | undefined): string {
  if (!next?.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  return next;
}

export function signInRoutes(
  app: FastifyInstance,
  tokens: Tokens,
  session: Sessions,
  context: PageContext,
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const grantOf = tokenGrants(tokens);
  api.get("/sign-in", { schema: { hide: true, querystring: signInQuerySchema } }, async (request, reply) => {
    const next = safeNext(request.query.next);
    if (context.accessOf(request)) return reply.redirect(next, 303);
    return context.page(reply, { title: "Sign in", body: signInPage({ next, csrf: reply.generateCsrf() }) });
  });
  api.post(
    "/sign-in",
    { schema: { hide: true, body: signInBodySchema }, preHandler: app.csrfProtection },
    async (request, reply) => {
      const next = safeNext(request.body.next);
      if (grantOf(request.body.token.trim()) === undefined) {
        request.log.info("sign-in refused");
        return context.page(reply, {
          title: "Sign in",
          status: 401,
          body: signInPage({ next, csrf: reply.generateCsrf(), error: "That token is not valid here." }),
        });
      }
      session.start(reply, request.body.token.trim());
      request.log.info("signed in");
      return reply.redirect(next, 303);
    },
  );
  api.post(
    "/sign-out",
    { schema: { hide: true, body: formSchema }, preHandler: app.csrfProtection },
    async (_request, reply) => {
      session.end(reply);
      return reply.redirect("/sign-in", 303);
    },
  );
}
