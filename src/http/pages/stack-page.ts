import type { StackDetail } from "../../service/api.ts";
import type { RunSummary } from "../../store/records.ts";
import { type Html, html } from "../html.ts";
import { badge, csrfField, duration, shortCommit, type Viewer, when } from "./layout.ts";

/**
 * One stack: its facts, the stacks it depends on and those that depend on it,
 * its current drift with the drifted attribute paths, the policy in force and
 * where it comes from, its runs as a timeline, and (for write access) actions.
 */
export function stackPage(stack: StackDetail, runs: readonly RunSummary[], viewer: Viewer): Html {
  const links = (names: readonly string[]) =>
    names.length === 0
      ? html`<span class="muted">none</span>`
      : html`<ul class="inline-list">${names.map((name) => html`<li><a href="/stacks/${encodeURIComponent(name)}">${name}</a></li>`)}</ul>`;
  return html`<nav class="crumbs" aria-label="Breadcrumb"><a href="/">Stacks</a> / <span>${stack.name}</span></nav>
<div class="title-row"><h1>${stack.name}</h1> ${badge(stack.state)}</div>
${viewer.access === "write" ? stackActions(stack, viewer) : ""}
<div class="grid">
<section aria-labelledby="facts"><h2 id="facts">Now</h2>
<dl class="facts">
  <dt>Last applied</dt><dd>${stack.lastAppliedCommit ? html`${shortCommit(stack.lastAppliedCommit)} ${when(stack.lastAppliedAt)}` : html`<span class="muted">never</span>`}</dd>
  <dt>Pending changes</dt><dd>${stack.pending ? "yes: the branch's head differs from what was applied" : "no"}</dd>
  <dt>Drift</dt><dd>${stack.driftStatus ?? html`<span class="muted">not checked</span>`} ${stack.driftCheckedAt ? html`<span class="muted">checked ${when(stack.driftCheckedAt)}</span>` : ""}</dd>
  <dt>Next drift check</dt><dd>${when(stack.nextDriftCheckAt)}</dd>
  <dt>Lock</dt><dd>${stack.lockHolder ? html`held by <code>${stack.lockHolder}</code>` : html`<span class="muted">free</span>`}</dd>
  <dt>Depends on</dt><dd>${links(stack.dependencies)}</dd>
  <dt>Used by</dt><dd>${links(stack.dependents)}</dd>
</dl>
</section>
<section aria-labelledby="policy"><h2 id="policy">Policy in force</h2>
${stack.policy ? policyTable(stack) : html`<p class="muted">Unknown: the stack is not in the app at the branch's head.</p>`}
</section>
</div>
${stack.drift ? driftSection(stack.drift) : ""}
<section aria-labelledby="runs"><h2 id="runs">Runs</h2>
${runs.length === 0 ? html`<p class="muted">No runs yet.</p>` : html`<ol class="timeline">${runs.map(timelineEntry)}</ol>`}
</section>
`;
}

function policyTable(stack: StackDetail): Html {
  const policy = stack.policy;
  if (!policy) return html``;
  const source = stack.policySource;
  const override = source.override;
  return html`<dl class="facts">
  <dt>Suspended</dt><dd>${policy.suspended ? "yes" : "no"}${override ? html` <span class="muted">(${override.suspended ? "suspended" : "resumed"} by an operator ${when(override.updatedAt)}${override.reason ? html`: ${override.reason}` : ""}; this wins over the file)</span>` : ""}</dd>
  <dt>Drift</dt><dd>${policy.drift}, every ${policy.driftSchedule}</dd>
  <dt>Apply on merge</dt><dd>${policy.autoApply ? "yes" : "no: merges wait for approval"}</dd>
  <dt>Destroy</dt><dd>${policy.allowDestroy ? "allowed" : "needs approval"}</dd>
  ${policy.renamedFrom ? html`<dt>Renamed from</dt><dd>${policy.renamedFrom}</dd>` : ""}
  <dt>Source</dt><dd>${source.file ? html`<code>${source.file}</code>` : "defaults (no policy file)"}${source.commit ? html` at ${shortCommit(source.commit)}` : ""}</dd>
</dl>`;
}

function driftSection(drift: NonNullable<StackDetail["drift"]>): Html {
  return html`<section aria-labelledby="drift"><h2 id="drift">Current drift</h2>
<p>Found by <a href="/runs/${encodeURIComponent(drift.runId)}">the drift check</a> ${when(drift.checkedAt)}.</p>
<table><thead><tr><th scope="col">Resource</th><th scope="col">Planned</th><th scope="col">Drifted attributes</th></tr></thead>
<tbody>${drift.resources.map(
    (resource) =>
      html`<tr><td><code>${resource.address}</code></td><td>${resource.actions.join(", ")}</td><td>${
        resource.drift && resource.drift.length > 0
          ? html`<ul class="paths">${resource.drift.map((path) => html`<li><code>${path}</code></li>`)}</ul>`
          : html`<span class="muted">—</span>`
      }</td></tr>`,
  )}</tbody></table>
</section>`;
}

function timelineEntry(run: RunSummary): Html {
  return html`<li class="${`entry is-${run.status}`}">
<a class="run-link" href="/runs/${encodeURIComponent(run.id)}"><strong>${run.kind}</strong> ${badge(run.status)}${run.result && run.result !== run.status ? html` <span class="muted">${run.result}</span>` : ""}</a>
<span class="meta">${when(run.startedAt)} · ${shortCommit(run.commit)} · ${run.trigger}${run.endedAt ? html` · ${duration(run.startedAt, run.endedAt)}` : ""}</span>
</li>`;
}

function stackActions(stack: StackDetail, viewer: Viewer): Html {
  const name = encodeURIComponent(stack.name);
  const post = (action: string, label: string, extra: Html = html``) =>
    html`<form method="post" action="/stacks/${name}/${action}">${csrfField(viewer)}${extra}<button type="submit">${label}</button></form>`;
  const correcting = stack.policy?.drift === "correct";
  return html`<section class="actions" aria-label="Actions">
  ${post("plan", "Plan now")}
  <a class="button" href="/stacks/${name}/confirm/apply">Apply now…</a>
  ${correcting ? html`<a class="button" href="/stacks/${name}/confirm/drift">Drift-check now…</a>` : post("drift", "Drift-check now")}
  ${
    stack.state === "suspended"
      ? stack.pending
        ? html`<a class="button" href="/stacks/${name}/confirm/resume">Resume…</a>`
        : post("resume", "Resume")
      : html`<form method="post" action="/stacks/${name}/suspend" class="suspend">${csrfField(viewer)}<label>Reason <input name="reason" maxlength="500" placeholder="optional"></label><button type="submit">Suspend</button></form>`
  }
  ${stack.lockHolder ? html`<a class="button" href="/stacks/${name}/confirm/release-lock">Release lock…</a>` : ""}
</section>`;
}
