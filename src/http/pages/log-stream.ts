import type { FastifyReply, FastifyRequest } from "fastify";
import type { ServiceApi } from "../../service/api.ts";

const POLL_MS = 500;
const KEEPALIVE_MS = 15_000;

/**
 * Follows a run's log as Server-Sent Events: each new piece of the log is an
 * event whose id is the offset after it, so a browser that reconnects (it
 * sends Last-Event-ID) gets exactly what it missed; when the run ends, an
 * `end` event carries its status and the stream closes. The log is read from
 * the store, where the run writes it as it grows, so any replica can serve it.
 */
export function followRunLog(
  request: FastifyRequest,
  reply: FastifyReply,
  options: { readonly service: Pick<ServiceApi, "runLog">; readonly id: string; readonly offset: number },
): void {
  reply.hijack();
  const response = reply.raw;
  response.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-accel-buffering": "no",
    "x-content-type-options": "nosniff",
  });
  response.write("retry: 2000\n\n");
  let offset = options.offset;
  let closed = false;
  let lastWrite = Date.now();
  const stop = () => {
    closed = true;
    clearInterval(timer);
  };
  request.raw.on("close", stop);
  const send = (text: string) => {
    response.write(text);
    lastWrite = Date.now();
  };
  let busy = false;
  const tick = async () => {
    if (closed || busy) return;
    busy = true;
    try {
      const chunk = await options.service.runLog(options.id, offset);
      if (closed) return;
      if (!chunk) {
        send("event: end\ndata: gone\n\n");
        response.end();
        stop();
        return;
      }
      if (chunk.text) {
        offset = chunk.offset;
        send(
          `id: ${offset}\nevent: log\n${chunk.text
            .split("\n")
            .map((line) => `data: ${line}`)
            .join("\n")}\n\n`,
        );
      }
      if (chunk.status !== "running" && chunk.status !== "queued") {
        send(`event: end\ndata: ${chunk.status}\n\n`);
        response.end();
        stop();
      } else if (Date.now() - lastWrite > KEEPALIVE_MS) {
        send(": keep-alive\n\n");
      }
    } catch (error) {
      request.log.warn({ err: error }, "following a run's log failed");
      response.end();
      stop();
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), POLL_MS);
  void tick();
}
