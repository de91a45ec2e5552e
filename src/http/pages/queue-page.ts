import type { ApplyGateView, QueueEntry } from "../../service/api.ts";
import { type Html, html } from "../html.ts";
import { badge, csrfField, shortCommit, type Viewer, when } from "./layout.ts";

/**
 * The queued and running events, each with its runs and why a queued one
 * waits, and whether applies may start (the freeze, the maintenance windows),
 * with the freeze's controls for write access. Refreshed in place every few
 * seconds.
 */
export function queuePage(
  queue: { readonly events: readonly QueueEntry[]; readonly applies: ApplyGateView },
  viewer: Viewer,
): Html {
  const { events, applies } = queue;
  return html`<h1>Queue</h1>
<section aria-labelledby="applies"><h2 id="applies">Applies</h2>
<p>${applies.open ? "Applies and drift corrections may start now." : applies.reason}${applies.windows.length > 0 ? html` <span class="muted">Maintenance windows: ${applies.windows.join("; ")}.</span>` : ""}</p>
${viewer.access === "write" ? freezeControls(applies, viewer) : ""}
</section>
<section aria-labelledby="events" id="queue" hx-get="/queue" hx-trigger="every 3s" hx-select="#queue" hx-target="this" hx-swap="outerHTML">
<h2 id="events">Queued and running <span class="count">${events.length}</span></h2>
${
  events.length === 0
    ? html`<p class="empty">Nothing is queued or running.</p>`
    : html`<div class="table-wrap"><table>
<thead><tr><th scope="col">Status</th><th scope="col">What</th><th scope="col">Commit</th><th scope="col">Asked by</th><th scope="col">Since</th><th scope="col">Runs</th>${viewer.access === "write" ? html`<th scope="col"><span class="visually-hidden">Actions</span></th>` : ""}</tr></thead>
<tbody>${events.map((event) => row(event, viewer))}</tbody></table></div>`
}
</section>
`;
}

function row(event: QueueEntry, viewer: Viewer): Html {
  const what = [event.kind, event.pr === undefined ? "" : `PR #${event.pr}`].filter(Boolean).join(" ");
  const current = event.runs.filter((run) => run.status === "running");
  return html`<tr>
<td>${badge(event.status)}${event.waitsFor ? html`<div class="muted small">waits for ${event.waitsFor}</div>` : ""}</td>
<td>${event.stack ? html`${event.kind} <a href="/stacks/${encodeURIComponent(event.stack)}">${event.stack}</a>${event.pr === undefined ? "" : html` PR #${event.pr}`}` : what}</td>
<td>${shortCommit(event.commit)}</td>
<td>${event.source}</td>
<td>${when(event.createdAt)}</td>
<td>${
    event.runs.length === 0
      ? html`<span class="muted">none yet</span>`
      : html`<ul class="plain">${event.runs.map((run) => html`<li><a href="/runs/${encodeURIComponent(run.id)}">${run.kind} ${run.stack === "*" ? "app" : run.stack}</a> ${badge(run.status)}${run.status === "running" && run.steps?.length ? html` <span class="muted">${run.steps.at(-1)?.name}</span>` : ""}</li>`)}</ul>`
  }</td>
${
  viewer.access === "write"
    ? html`<td>${
        event.status === "queued"
          ? html`<form method="post" action="/runs/${encodeURIComponent(event.id)}/cancel">${csrfField(viewer)}<button type="submit">Drop</button></form>`
          : current[0]
            ? html`<a class="button" href="/runs/${encodeURIComponent(current[0].id)}/confirm/cancel">Cancel…</a>`
            : ""
      }</td>`
    : ""
}
</tr>`;
}

function freezeControls(applies: ApplyGateView, viewer: Viewer): Html {
  if (applies.frozen) {
    return html`<a class="button" href="/confirm/unfreeze">Unfreeze applies…</a>`;
  }
  return html`<form method="post" action="/freeze" class="freeze">${csrfField(viewer)}
<label>Reason <input name="reason" required maxlength="500"></label>
<label>Until (UTC, optional) <input name="until" type="datetime-local"></label>
<button type="submit">Freeze applies</button>
</form>`;
}
