import type { StackState, StackView } from "../../service/api.ts";
import { type Html, html } from "../html.ts";
import { badge, shortCommit, when } from "./layout.ts";

export const STATES = [
  "in-sync",
  "pending",
  "drifted",
  "applying",
  "blocked",
  "failed",
  "suspended",
  "orphaned",
] as const satisfies readonly StackState[];

export interface OverviewFilter {
  readonly state?: StackState;
  /** Part of a stack's name, any case. */
  readonly q?: string;
}

/**
 * Every stack with its state, last apply, drift, pending changes and next
 * drift check; counts by state that filter the list, and a search by name.
 * The list is one table whatever the number of stacks (htmx swaps it in place
 * as the search is typed; without scripts the form submits).
 */
export function overviewPage(stacks: readonly StackView[], filter: OverviewFilter): Html {
  const needle = filter.q?.trim().toLowerCase() ?? "";
  const shown = stacks.filter(
    (stack) =>
      (filter.state === undefined || stack.state === filter.state) &&
      (needle === "" || stack.name.toLowerCase().includes(needle)),
  );
  const counts = new Map(
    STATES.map((state) => [state, stacks.filter((stack) => stack.state === state).length]),
  );
  const link = (state: StackState | undefined) => {
    const query = new URLSearchParams({
      ...(state ? { state } : {}),
      ...(filter.q ? { q: filter.q } : {}),
    }).toString();
    return query ? `/?${query}` : "/";
  };
  const live = html`hx-get="/" hx-include="closest form" hx-target="#stacks" hx-select="#stacks" hx-swap="outerHTML" hx-push-url="true"`;
  return html`<h1>Stacks</h1>
<ul class="chips" aria-label="Stacks by state">
  <li><a class="chip" href="${link(undefined)}"${filter.state === undefined ? html` aria-current="true"` : ""}>All <span class="count">${stacks.length}</span></a></li>
  ${STATES.filter((state) => (counts.get(state) ?? 0) > 0 || state === filter.state).map(
    (state) =>
      html`<li><a class="${`chip is-${state}`}" href="${link(state)}"${filter.state === state ? html` aria-current="true"` : ""}>${state} <span class="count">${counts.get(state) ?? 0}</span></a></li>`,
  )}
</ul>
<form class="filters" method="get" action="/" role="search" aria-label="Filter stacks">
  <label>Search by name <input type="search" name="q" value="${filter.q ?? ""}" autocomplete="off" ${live} hx-trigger="input changed delay:250ms, search"></label>
  <label>State <select name="state" ${live} hx-trigger="change">
    <option value=""${filter.state === undefined ? html` selected` : ""}>any</option>
    ${STATES.map((state) => html`<option${filter.state === state ? html` selected` : ""}>${state}</option>`)}
  </select></label>
  <button type="submit">Filter</button>
</form>
<div id="stacks" class="table-wrap">
<p class="muted" aria-live="polite">${shown.length} of ${stacks.length} stacks</p>
${
  shown.length === 0
    ? html`<p class="empty">${stacks.length === 0 ? "No stacks yet: the runner has not synthesized the branch's head." : "No stack matches."}</p>`
    : html`<table class="stacks">
<thead><tr><th scope="col">Stack</th><th scope="col">State</th><th scope="col">Last applied</th><th scope="col">Drift</th><th scope="col">Pending</th><th scope="col">Next drift check</th></tr></thead>
<tbody>
${shown.map(
  (stack) => html`<tr>
<th scope="row"><a href="/stacks/${encodeURIComponent(stack.name)}">${stack.name}</a></th>
<td data-label="State">${badge(stack.state)}</td>
<td data-label="Last applied">${stack.lastAppliedCommit ? html`${shortCommit(stack.lastAppliedCommit)} ${when(stack.lastAppliedAt)}` : html`<span class="muted">never</span>`}</td>
<td data-label="Drift">${stack.driftStatus ? html`${stack.driftStatus} <span class="muted">${when(stack.driftCheckedAt)}</span>` : html`<span class="muted">not checked</span>`}</td>
<td data-label="Pending">${stack.pending ? "yes" : html`<span class="muted">no</span>`}</td>
<td data-label="Next drift check">${when(stack.nextDriftCheckAt)}</td>
</tr>
`,
)}</tbody>
</table>`
}
</div>
`;
}
