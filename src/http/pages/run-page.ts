import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ServiceApi } from "../../service/api.ts";
import type { RunRecord } from "../../store/records.ts";
import type { AccessCheck } from "../auth.ts";
import { type Html, html } from "../html.ts";
import { prefersHtml } from "../negotiation.ts";
import { type RunLinker, requireRun } from "../run-views.ts";
import { runParamsSchema, type ZodTypeProvider } from "../validation.ts";

/** Inline styles only; no scripts, no external assets, no frames. */
const RUN_PAGE_POLICY =
  "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const runPageQuerySchema = z.strictObject({ token: z.string().exactOptional() });

/** `GET /runs/:id`: the run as a small HTML page for a browser, JSON for any other client. */
export function runPageRoutes(
  app: FastifyInstance,
  deps: {
    readonly service: Pick<ServiceApi, "getRun">;
    readonly access: AccessCheck;
    readonly runUrl: RunLinker;
  },
): void {
  const { service, access, runUrl } = deps;
  // Also takes the token as `?token=`: a link to this page (in a PR comment or
  // a chat message) must open in a browser, which sends no Authorization header.
  app.withTypeProvider<ZodTypeProvider>().get(
    "/runs/:id",
    {
      onRequest: access("read", { allowQueryToken: true }),
      schema: { hide: true, params: runParamsSchema, querystring: runPageQuerySchema },
    },
    async (request, reply) => {
      const run = await requireRun(service, request.params.id);
      reply.header("vary", "Accept").header("cache-control", "no-store");
      if (!prefersHtml(request.headers.accept)) return { ...run, ...runUrl(run.id) };
      return reply
        .type("text/html; charset=utf-8")
        .header("content-security-policy", RUN_PAGE_POLICY)
        .header("referrer-policy", "no-referrer")
        .header("x-content-type-options", "nosniff")
        .send(runPage(run).text);
    },
  );
}

function runPage(run: RunRecord): Html {
  const started = Date.parse(run.startedAt);
  const ended = run.endedAt === undefined ? Number.NaN : Date.parse(run.endedAt);
  const seconds =
    Number.isFinite(started) && Number.isFinite(ended) ? `${Math.round((ended - started) / 1000)} s` : "";
  const engine = [run.engine, run.engineVersion].filter((part) => part !== undefined).join(" ");
  const providers = Object.entries(run.providers ?? {}).map(([name, version]) => `${name} ${version}`);
  const facts: [string, unknown][] = [
    ["Run", run.id],
    ["Kind", run.kind],
    ["Stack", run.stack],
    ["Commit", run.commit],
    ["Trigger", run.trigger],
    ["Pull request", run.pr],
    ["Status", run.status],
    ["Result", run.result],
    ["Started", run.startedAt],
    ["Ended", run.endedAt],
    ["Duration", seconds],
    ["Engine", engine],
    ["Providers", providers.join(", ")],
  ];
  const summary = run.summary;
  const resources = run.resources ?? [];
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${run.kind} ${run.stack}: ${run.status} · gitops-runner</title>
<style>
body { font: 14px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; color: #1f2328; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.5rem; text-align: left; }
pre { background: #f6f8fa; padding: 1rem; overflow: auto; white-space: pre-wrap; }
.status { padding: 0.1rem 0.5rem; border-radius: 1rem; background: #eaeef2; font-size: 0.8em; }
.error { color: #cf222e; }
</style>
</head>
<body>
<h1>${run.kind} of ${run.stack} <span class="status">${run.status}</span></h1>
<dl>
${facts.map(([label, value]) => html`<dt>${label}</dt><dd>${value}</dd>\n`)}</dl>
${
  run.error === undefined
    ? ""
    : html`<h2>Error</h2>\n<p class="error"><code>${run.error.code}</code> ${run.error.message}</p>\n`
}${
  summary === undefined
    ? ""
    : html`<h2>Summary</h2>
<table><tr><th>add</th><th>change</th><th>destroy</th><th>replace</th><th>import</th></tr>
<tr><td>${summary.add}</td><td>${summary.change}</td><td>${summary.destroy}</td><td>${summary.replace}</td><td>${summary.import}</td></tr></table>
`
}${
  resources.length === 0
    ? ""
    : html`<h2>Resources</h2>
<table><tr><th>Address</th><th>Actions</th></tr>
${resources.map((resource) => html`<tr><td>${resource.address}</td><td>${resource.actions.join(", ")}</td></tr>\n`)}</table>
`
}<h2>Log</h2>
<pre>${run.log ?? ""}</pre>
</body>
</html>
`;
}
