import type { ApplyGateView } from "../../service/api.ts";
import type { Access } from "../auth.ts";
import { type Html, html } from "../html.ts";

/**
 * The dashboard's one layout: a header with the navigation and the viewer's
 * access, the freeze banner, a notice after an action, and the page. Pages
 * are server-rendered HTML; every value goes through `html`, which escapes it.
 */
export interface Viewer {
  readonly access: Access;
  /** The name of the session's token, which the audit trail records with what it triggers. */
  readonly tokenName?: string;
  /** A CSRF token for the forms of this page. */
  readonly csrf: () => string;
}

export interface PageParts {
  readonly title: string;
  readonly viewer?: Viewer;
  /** Which navigation entry is current. */
  readonly section?: "stacks" | "queue" | "graph";
  readonly gate?: ApplyGateView;
  readonly notice?: string;
  readonly body: Html;
}

/** The names of the assets, with a hash of their content, as the page links them. */
export interface AssetNames {
  readonly css: string;
  readonly js: string;
  readonly htmx: string;
  readonly icon: string;
}

export function layout(assets: AssetNames, parts: PageParts): string {
  const nav = (section: PageParts["section"], href: string, label: string) =>
    html`<a href="${href}"${parts.section === section ? html` aria-current="page"` : ""}>${label}</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content='{"includeIndicatorCSS":false,"historyCacheSize":0}'>
<title>${parts.title} · gitops-runner</title>
<link rel="icon" href="/assets/${assets.icon}" type="image/svg+xml">
<link rel="stylesheet" href="/assets/${assets.css}">
<script src="/assets/${assets.htmx}" defer></script>
<script src="/assets/${assets.js}" defer></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/"><img src="/assets/${assets.icon}" alt="" width="22" height="22"> gitops-runner</a>
  ${
    parts.viewer
      ? html`<nav aria-label="Main">${nav("stacks", "/", "Stacks")}${nav("queue", "/queue", "Queue")}${nav("graph", "/graph", "Graph")}</nav>
  <div class="who">
    <span class="access" title="${parts.viewer.access === "write" ? "This session may act" : "This session may read, not act"}">${parts.viewer.access === "write" ? "Write access" : "Read only"}</span>
    <form method="post" action="/sign-out">${csrfField(parts.viewer)}<button class="link" type="submit">Sign out</button></form>
  </div>`
      : ""
  }
</header>
${parts.gate && !parts.gate.open ? freezeBanner(parts.gate, parts.viewer) : ""}
<main id="main">
${parts.notice ? html`<p class="notice" role="status">${parts.notice}</p>` : ""}
${parts.body}
</main>
</body>
</html>
`.text;
}

function freezeBanner(gate: ApplyGateView, viewer: Viewer | undefined): Html {
  return html`<div class="banner" role="status">
  <strong>${gate.frozen ? "Applies are frozen." : "Applies wait for a maintenance window."}</strong>
  ${gate.frozen ? html`${gate.frozen.reason} <span class="muted">(since ${when(gate.frozen.since)}${gate.frozen.until ? html`, until ${when(gate.frozen.until)}` : ""})</span>` : html`The next one opens ${when(gate.opensAt)}.`}
  Plans and drift checks go on; queued applies run after.
  ${gate.frozen && viewer?.access === "write" ? html`<a class="button" href="/confirm/unfreeze">Unfreeze…</a>` : ""}
</div>`;
}

export function csrfField(viewer: Viewer): Html {
  return html`<input type="hidden" name="_csrf" value="${viewer.csrf()}">`;
}

/** A state or status word with its colour; the word itself is always shown. */
export function badge(word: string): Html {
  return html`<span class="badge ${`is-${word}`}">${word}</span>`;
}

/** A time as people read it (relative, UTC), with the exact time to hover and for machines. */
export function when(iso: string | undefined, now = Date.now()): Html {
  if (!iso) return html`<span class="muted">—</span>`;
  const at = Date.parse(iso);
  if (!Number.isFinite(at)) return html`${iso}`;
  return html`<time datetime="${iso}" title="${iso}">${relative(at - now)}</time>`;
}

export function relative(deltaMs: number): string {
  const seconds = Math.round(Math.abs(deltaMs) / 1000);
  const [value, unit] =
    seconds < 60
      ? [seconds, "s"]
      : seconds < 3600
        ? [Math.round(seconds / 60), "min"]
        : seconds < 86_400 * 2
          ? [Math.round(seconds / 3600), "h"]
          : [Math.round(seconds / 86_400), "d"];
  if (seconds < 5) return "just now";
  return deltaMs < 0 ? `${value} ${unit} ago` : `in ${value} ${unit}`;
}

export function duration(startedAt: string | undefined, endedAt: string | undefined): string {
  if (!startedAt || !endedAt) return "";
  const ms = Date.parse(endedAt) - Date.parse(startedAt);
  if (!Number.isFinite(ms) || ms < 0) return "";
  return ms < 1000 ? `${ms} ms` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

export function shortCommit(commit: string | undefined): Html {
  if (!commit) return html`<span class="muted">—</span>`;
  return html`<code title="${commit}">${commit.slice(0, 12)}</code>`;
}

/** The messages a page shows after an action, by key: never text from the request itself. */
export const NOTICES: Readonly<Record<string, string>> = {
  queued: "Queued. The queue page shows when it starts.",
  suspended: "Suspended: applies and drift checks skip this stack until it is resumed.",
  resumed: "Resumed. If the stack was pending, its apply is queued.",
  approved: "Approved: the apply is queued; it applies this plan if the new plan makes the same changes.",
  cancelled: "Cancel asked. A queued run is dropped; a running one stops at once.",
  frozen: "Applies are frozen. Plans and drift checks go on.",
  unfrozen: "Applies are unfrozen; queued applies run now.",
  released: "The lock is released.",
  "not-locked": "Nobody held the lock.",
};

export function notice(key: unknown): string | undefined {
  return typeof key === "string" ? NOTICES[key] : undefined;
}
