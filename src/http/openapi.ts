import { readFileSync } from "node:fs";
import path from "node:path";
import fastifySwagger from "@fastify/swagger";
import type { FastifyInstance } from "fastify";
import { jsonSchemaTransform, jsonSchemaTransformObject } from "fastify-type-provider-zod";
import { INSTALL_ROOT } from "../install-root.ts";

const VERSION = (
  JSON.parse(readFileSync(path.join(INSTALL_ROOT, "package.json"), "utf8")) as { version: string }
).version;

/**
 * `GET /openapi.json`: an OpenAPI 3.1 document generated from the routes' own
 * zod schemas (the ones that validate requests and check responses), never
 * written by hand. Registered before the routes, so that it sees each of them;
 * pages for people are hidden from it.
 */
export function registerOpenApi(app: FastifyInstance): void {
  app.register(fastifySwagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "gitops-runner",
        version: VERSION,
        description:
          "Stacks, runs (with logs and redacted plans), triggers, approvals, cancels, suspensions, the freeze of applies, health and metrics. Every route but health, readiness, metrics and webhooks needs a bearer token: a read token, or a write token for what changes something.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: (document) => tidy(jsonSchemaTransformObject(document)),
  });
  app.register(async (scope) => {
    let document: string | undefined;
    scope.get("/openapi.json", { schema: { hide: true } }, async (_request, reply) => {
      document ??= JSON.stringify(app.swagger());
      return reply.type("application/json; charset=utf-8").send(document);
    });
  });
}

/** What each status means, for responses whose schema gives no description of its own. */
const RESPONSE_DESCRIPTIONS: Readonly<Record<string, string>> = {
  200: "OK",
  202: "Accepted: persisted, and the work is queued",
  400: "BAD_REQUEST: a malformed request, naming the field",
  401: "UNAUTHORIZED: no bearer token or an unknown one (SIGNATURE_INVALID for webhooks)",
  403: "FORBIDDEN: a read token on a route that changes something",
  201: "Created",
  404: "Not found: STACK_UNKNOWN, RUN_NOT_FOUND, GIT_REF_UNKNOWN",
  409: "Conflict: RUN_NOT_BLOCKED, RUN_NOT_CANCELLABLE, RUN_APPLYING, STACK_LOCKED, COMMIT_NOT_APPLIED, NOTHING_TO_ROLL_BACK",
  413: "PAYLOAD_TOO_LARGE: a body over 1 MiB",
  414: "URI_TOO_LONG: a name over 200 characters",
  415: "UNSUPPORTED_MEDIA_TYPE: a body that is not JSON",
  503: "Not ready",
};

type Document = ReturnType<typeof jsonSchemaTransformObject>;

/**
 * Names each response by its status; marks a body whose schema admits null
 * (routes that take no options yet, or only optional ones) as optional, which
 * it is; and drops the components nothing refers to (the type provider lists
 * each schema once as an input and once as an output).
 */
function tidy(generated: Document): Document {
  const document = generated as Document & { readonly components?: { readonly schemas?: object } };
  for (const operations of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(operations ?? {})) {
      if (typeof operation !== "object" || operation === null || !("responses" in operation)) continue;
      if ("requestBody" in operation) optionalBody(operation.requestBody);
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const described = response as { description?: string };
        if (described.description === "Default Response") {
          described.description = RESPONSE_DESCRIPTIONS[status] ?? described.description;
        }
      }
    }
  }
  const schemas: Record<string, unknown> = { ...document.components?.schemas };
  for (;;) {
    const text = JSON.stringify({ ...document, components: { ...document.components, schemas } });
    const unused = Object.keys(schemas).filter((name) => !text.includes(`"#/components/schemas/${name}"`));
    if (unused.length === 0) break;
    for (const name of unused) delete schemas[name];
  }
  return { ...document, components: { ...document.components, schemas } } as Document;
}

/** A JSON body of `anyOf: [X, {type: null}]` is X, and may be left out. */
function optionalBody(requestBody: unknown): void {
  const body = requestBody as {
    required?: boolean;
    content?: Record<string, { schema?: { type?: string; anyOf?: { type?: string }[] } }>;
  };
  const media = body.content?.["application/json"];
  const alternatives = media?.schema?.anyOf;
  if (!media || !alternatives?.some((alternative) => alternative.type === "null")) return;
  const rest = alternatives.filter((alternative) => alternative.type !== "null");
  if (rest.length !== 1) return;
  media.schema = rest[0] ?? {};
  body.required = false;
}
