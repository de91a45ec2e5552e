import type { RunRecord } from "../../store/records.ts";
import { type Html, html } from "../html.ts";
import { badge, duration, shortCommit, type Viewer, when } from "./layout.ts";
import { type PlanAction, planView, type ResourceView } from "./plan-view.ts";

/** Links a run page shows besides the runner's own: the pull request on its forge. */
export interface RunLinks {
  readonly pullRequest?: (number: number) => string;
}

/**
 * A run: its status, summary, commit, pull request, trigger, engine and
 * provider versions, step timings, the plan resource by resource with values
 * before and after, and its log (followed live while the run runs).
 */
export function runPage(run: RunRecord, viewer: Viewer, links: RunLinks): Html {
  const running = run.status === "running" || run.status === "queued";
  const engine = [run.engine, run.engineVersion].filter(Boolean).join(" ");
  const providers = Object.entries(run.providers ?? {});
  const summary = run.summary;
  const pr = run.pr;
  return html`<nav class="crumbs" aria-label="Breadcrumb"><a href="/">Stacks</a> / ${run.stack === "*" ? html`<span>the app</span>` : html`<a href="/stacks/${encodeURIComponent(run.stack)}">${run.stack}</a>`} / <span>run</span></nav>
<div class="title-row"><h1>${run.kind} of ${run.stack === "*" ? "the app" : run.stack}</h1> <span id="run-status" data-status="${run.status}">${badge(run.status)}</span>${run.result && run.result !== run.status ? html` <span class="muted">${run.result}</span>` : ""}</div>
${viewer.access === "write" ? runActions(run) : ""}
${run.error ? html`<p class="error" role="alert"><code>${run.error.code}</code> ${run.error.message}</p>` : ""}
${run.cancel ? html`<p class="notice">A cancel was asked ${when(run.cancel.requestedAt)}${run.cancel.step ? html` during its ${run.cancel.step} step` : ""}${run.cancel.force ? html`, forced: a running apply was interrupted` : ""}.</p>` : ""}
<div class="grid">
<section aria-labelledby="facts"><h2 id="facts">Run</h2>
<dl class="facts">
  <dt>Summary</dt><dd>${summary ? html`<span class="plan-counts"><span class="add">+${summary.add} to add</span> <span class="change">~${summary.change} to change</span> <span class="destroy">−${summary.destroy} to destroy</span>${summary.replace > 0 ? html` <span class="replace">(${summary.replace} replaced)</span>` : ""}${summary.import > 0 ? html` <span>${summary.import} to import</span>` : ""}</span>` : html`<span class="muted">—</span>`}</dd>
  <dt>Commit</dt><dd>${shortCommit(run.commit)}</dd>
  <dt>Pull request</dt><dd>${pr === undefined ? html`<span class="muted">—</span>` : links.pullRequest ? html`<a href="${links.pullRequest(pr)}">#${pr}</a>` : html`#${pr}`}</dd>
  <dt>Trigger</dt><dd>${run.trigger}${origin(run)}</dd>
  <dt>Started</dt><dd>${when(run.startedAt)}</dd>
  <dt>Ended</dt><dd>${run.endedAt ? html`${when(run.endedAt)} <span class="muted">after ${duration(run.startedAt, run.endedAt)}</span>` : html`<span class="muted">not yet</span>`}</dd>
  <dt>Engine</dt><dd>${engine || html`<span class="muted">—</span>`}</dd>
  <dt>Providers</dt><dd>${providers.length === 0 ? html`<span class="muted">—</span>` : html`<ul class="plain">${providers.map(([name, version]) => html`<li><code>${name}</code> ${version}</li>`)}</ul>`}</dd>
</dl>
</section>
<section aria-labelledby="steps"><h2 id="steps">Steps</h2>
${
  run.steps && run.steps.length > 0
    ? html`<table class="steps"><thead><tr><th scope="col">Step</th><th scope="col">Status</th><th scope="col">Took</th></tr></thead><tbody>${run.steps.map(
        (step) =>
          html`<tr><td>${step.name}</td><td>${badge(step.status)}</td><td>${step.endedAt ? duration(step.startedAt, step.endedAt) : html`<span class="muted">since ${when(step.startedAt)}</span>`}</td></tr>`,
      )}</tbody></table>`
    : html`<p class="muted">No steps recorded.</p>`
}
</section>
</div>
${
  run.violations && run.violations.length > 0
    ? html`<section aria-labelledby="violations"><h2 id="violations">Policy checks</h2><ul class="plain">${run.violations.map(
        (violation) =>
          html`<li><strong>${violation.check}</strong>${violation.address ? html` <code>${violation.address}</code>` : ""}: ${violation.message}${violation.approvable ? html` <span class="muted">(an approval lets it through)</span>` : ""}</li>`,
      )}</ul></section>`
    : ""
}${planSection(run)}
<section aria-labelledby="log-heading" class="log-section"><h2 id="log-heading">Log</h2>
<p class="muted">${running ? html`Live: new lines appear as the run writes them. <a href="#log-end">Jump to the end</a>` : html`<a href="#log-end">Jump to the end</a>`}</p>
<pre id="log" class="log" tabindex="0" aria-label="Run log"${running ? html` data-follow="/runs/${encodeURIComponent(run.id)}/log" data-offset="${Array.from(run.log ?? "").length}"` : ""}>${run.log ?? ""}</pre>
<span id="log-end"></span>
</section>
`;
}

const ACTION_LABELS: Readonly<Record<PlanAction, string>> = {
  create: "create",
  update: "update",
  replace: "replace",
  destroy: "destroy",
  read: "read",
  import: "import",
  forget: "forget",
};

function planSection(run: RunRecord): Html {
  const resources = planView(run.plan);
  const drifted = new Map((run.resources ?? []).map((resource) => [resource.address, resource.drift ?? []]));
  if (resources.length === 0) {
    const said =
      run.plan === undefined
        ? run.summary
          ? "No changes."
          : "No plan was made."
        : "The plan changes no resource.";
    return html`<section aria-labelledby="plan"><h2 id="plan">Plan</h2><p class="muted">${said}</p></section>`;
  }
  return html`<section aria-labelledby="plan"><h2 id="plan">Plan</h2>
<p class="muted">${resources.length} resource${resources.length === 1 ? "" : "s"}. Values Terraform marks sensitive show as (sensitive).</p>
<ul class="plan">${resources.map((resource) => resourceEntry(resource, drifted.get(resource.address) ?? []))}</ul>
</section>`;
}

function resourceEntry(resource: ResourceView, drift: readonly string[]): Html {
  return html`<li><details${resource.attributes.length <= 12 ? html` open` : ""}>
<summary><span class="${`action is-${resource.action}`}">${ACTION_LABELS[resource.action]}</span> <code>${resource.address}</code>${drift.length > 0 ? html` <span class="muted">drifted: ${drift.join(", ")}</span>` : ""}</summary>
${
  resource.attributes.length === 0
    ? html`<p class="muted">No attribute changes to show.</p>`
    : html`<div class="table-wrap"><table class="diff"><thead><tr><th scope="col">Attribute</th><th scope="col">Before</th><th scope="col">After</th></tr></thead><tbody>${resource.attributes.map(
        (attribute) =>
          html`<tr><th scope="row"><code>${attribute.path}</code>${attribute.forcesReplacement ? html` <span class="forces">forces replacement</span>` : ""}</th><td>${attribute.before === undefined ? html`<span class="muted">—</span>` : html`<code>${attribute.before}</code>`}</td><td>${attribute.afterUnknown ? html`<em>(known after apply)</em>` : attribute.after === undefined ? html`<span class="muted">—</span>` : html`<code>${attribute.after}</code>`}</td></tr>`,
      )}</tbody></table></div>${resource.hidden > 0 ? html`<p class="muted">${resource.hidden} more attributes not shown.</p>` : ""}`
}
</details></li>`;
}

function runActions(run: RunRecord): Html {
  const id = encodeURIComponent(run.id);
  const parts: Html[] = [];
  if (run.status === "blocked" && run.kind === "apply") {
    parts.push(html`<a class="button primary" href="/runs/${id}/confirm/approve">Review and approve…</a>`);
  }
  if (run.status === "running")
    parts.push(html`<a class="button" href="/runs/${id}/confirm/cancel">Cancel…</a>`);
  if (parts.length === 0) return html``;
  return html`<section class="actions" aria-label="Actions">${parts}</section>`;
}

/** Who asked, as far as the runner knows: the token's name, the command line's user, the pull request's people. */
function origin(run: RunRecord): Html {
  const who = run.origin;
  if (!who) return html``;
  const pr = who.pullRequest;
  const parts = [
    who.tokenName ? `token ${who.tokenName}` : "",
    who.user ? `user ${who.user}` : "",
    pr?.author ? `PR by ${pr.author}` : "",
    pr?.mergedBy ? `merged by ${pr.mergedBy}` : "",
  ].filter(Boolean);
  return parts.length === 0 ? html`` : html` <span class="muted">(${parts.join(", ")})</span>`;
}
