import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { checkSignatureHeader } from "../crypto/hmac.ts";
import { RunnerError } from "../errors.ts";
import type { ForgeKind } from "../forge/port.ts";
import { DELIVERY_PARSERS } from "../forge/webhooks.ts";
import type { ServiceApi } from "../service/api.ts";
import { parseJsonBody } from "./json-body.ts";
import { Accepted, errors } from "./schemas.ts";
import { parse } from "./validation.ts";

/** The forge's webhook: signed with an HMAC secret (GitHub, Gitea, Bitbucket) or carrying a token (GitLab). */
export interface ForgeWebhook {
  readonly kind: ForgeKind;
  readonly secret: string;
}

const SIGNATURE_HEADER = "x-gitops-runner-signature";
const DELIVERY_HEADER = "x-gitops-runner-delivery";
const deliverySchema = z.string().min(1).max(200);
/** Permissive: a sender may add fields; only these are read. */
const genericPayloadSchema = z.object({ repository: z.string().exactOptional() });

/**
 * `POST /webhooks/generic` (when `secret` is set) and `POST /webhooks/<forge>` (when `forge` is set).
 * In their own scope so that only these routes keep JSON bodies as the raw bytes:
 * the signature covers those bytes, and the JSON is parsed only once they are verified.
 * Any other content type is refused first: its body would never reach the check.
 */
export function webhookRoutes(
  app: FastifyInstance,
  deps: {
    readonly service: Pick<ServiceApi, "requestPoll" | "forgeEvent">;
    readonly secret: string | undefined;
    readonly forge: ForgeWebhook | undefined;
  },
): void {
  const { service, secret, forge } = deps;
  if (secret === undefined && forge === undefined) return;
  app.register(async (scope) => {
    scope.addHook("onRequest", async (request) => requireJson(request.headers["content-type"]));
    scope.removeContentTypeParser("application/json");
    scope.addContentTypeParser("application/json", { parseAs: "buffer" }, (_request, body, done) => {
      done(null, body);
    });

    if (forge !== undefined) {
      // Verified first (signature or token), persisted, answered 202; a delivery the runner
      // does not act on is answered 202 too, and nothing is queued.
      scope.post(
        `/webhooks/${forge.kind}`,
        { schema: webhookSchema(`A ${forge.kind} delivery`) },
        async (request, reply) => {
          const raw = rawBody(request);
          const delivery = DELIVERY_PARSERS[forge.kind](forge.secret, request.headers, raw);
          if (delivery.event === undefined) return reply.code(202).send({ ignored: true });
          const accepted = await service.forgeEvent(delivery.event, delivery.id);
          request.log.info(
            { deliveryId: delivery.id, event: delivery.event.kind, ...accepted },
            "webhook accepted",
          );
          return reply.code(202).send(accepted);
        },
      );
    }
    if (secret === undefined) return;

    scope.post(
      "/webhooks/generic",
      { schema: webhookSchema("Ask for an immediate poll (HMAC-SHA256 signed)") },
      async (request, reply) => {
        const raw = rawBody(request);
        checkSignatureHeader({
          secret,
          body: raw,
          header: SIGNATURE_HEADER,
          value: request.headers[SIGNATURE_HEADER],
          form: "sha256=",
        });
        const deliveryId = parse(deliverySchema, request.headers[DELIVERY_HEADER], DELIVERY_HEADER);
        const payload = parse(genericPayloadSchema, parseJsonBody(raw.toString("utf8")), "body");
        const accepted = await service.requestPoll("generic", deliveryId);
        request.log.info({ deliveryId, repository: payload.repository, ...accepted }, "webhook accepted");
        return reply.code(202).send(accepted);
      },
    );
  });
}

/** A webhook in the OpenAPI document: signed instead of a bearer token; its body is checked after the signature. */
function webhookSchema(summary: string) {
  return {
    summary,
    tags: ["webhooks"],
    security: [],
    response: {
      202: z.union([Accepted, z.strictObject({ ignored: z.literal(true) })]),
      ...errors(400, 401, 413, 415),
    },
  };
}

/**
 * Refuses a delivery that is not `application/json` before its body is read. A
 * form-encoded or text body would otherwise reach no parser that keeps its
 * bytes, and its signature would be checked against nothing.
 */
function requireJson(contentType: string | undefined): void {
  const mediaType = contentType?.split(";")[0]?.trim().toLowerCase();
  if (mediaType !== "application/json") {
    throw new RunnerError(
      "UNSUPPORTED_MEDIA_TYPE",
      "content-type: webhooks are accepted as application/json only",
    );
  }
}

/** The body's exact bytes; a request that declares JSON but sends no body has none. */
function rawBody(request: FastifyRequest): Buffer {
  return Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
}
