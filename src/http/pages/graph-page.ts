import type { StackView } from "../../service/api.ts";
import { type Html, html } from "../html.ts";
import { layoutGraph, NODE_HEIGHT, NODE_WIDTH } from "./graph-layout.ts";
import { STATES } from "./overview.ts";

/**
 * The app's stacks and their dependencies, coloured by state: an SVG (each
 * stack a link to its page), a legend, and the same as a table for those who
 * do not see the picture.
 */
export function graphPage(stacks: readonly StackView[]): Html {
  const graph = layoutGraph(stacks);
  const state = new Map(stacks.map((stack) => [stack.name, stack.state]));
  const usedBy = (name: string) =>
    stacks.filter((stack) => stack.dependencies.includes(name)).map((stack) => stack.name);
  return html`<h1>Graph</h1>
<p class="muted">Each stack stands right of the stacks it depends on. Select a stack to open it.</p>
<ul class="legend" aria-label="States">${STATES.map((word) => html`<li><span class="${`swatch is-${word}`}"></span>${word}</li>`)}</ul>
${
  stacks.length === 0
    ? html`<p class="empty">No stacks yet.</p>`
    : html`<div class="graph-wrap">
<svg class="graph" role="group" aria-labelledby="graph-title" viewBox="0 0 ${graph.width} ${graph.height}" width="${graph.width}" height="${graph.height}">
<title id="graph-title">Dependencies between ${stacks.length} stacks</title>
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrow"></path></marker></defs>
${graph.edges.map((edge) => html`<path class="edge" d="${edge.path}" marker-end="url(#arrow)"></path>`)}
${graph.nodes.map(
  (
    node,
  ) => html`<a href="/stacks/${encodeURIComponent(node.name)}" class="${`node is-${state.get(node.name) ?? "pending"}`}">
<rect x="${node.x}" y="${node.y}" width="${NODE_WIDTH}" height="${NODE_HEIGHT}" rx="6"></rect>
<text x="${node.x + 10}" y="${node.y + NODE_HEIGHT / 2 + 4}">${truncate(node.name)}<title>${node.name}: ${state.get(node.name) ?? ""}</title></text>
</a>`,
)}
</svg>
</div>
<details class="graph-table"><summary>The graph as a table</summary>
<table><thead><tr><th scope="col">Stack</th><th scope="col">State</th><th scope="col">Depends on</th><th scope="col">Used by</th></tr></thead>
<tbody>${stacks.map(
        (stack) =>
          html`<tr><th scope="row"><a href="/stacks/${encodeURIComponent(stack.name)}">${stack.name}</a></th><td>${stack.state}</td><td>${stack.dependencies.join(", ") || "—"}</td><td>${usedBy(stack.name).join(", ") || "—"}</td></tr>`,
      )}</tbody></table>
</details>`
}
`;
}

function truncate(name: string): string {
  return name.length > 24 ? `${name.slice(0, 23)}…` : name;
}
