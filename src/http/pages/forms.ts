import type { StackDetail } from "../../service/api.ts";
import type { RunRecord } from "../../store/records.ts";
import { type Html, html } from "../html.ts";
import { SESSION_HOURS } from "../session.ts";
import { csrfField, shortCommit, type Viewer } from "./layout.ts";
import { planView } from "./plan-view.ts";

/** The sign-in page: paste a token once, for a session. */
export function signInPage(options: {
  readonly next: string;
  readonly csrf: string;
  readonly error?: string;
}): Html {
  return html`<section class="sign-in" aria-labelledby="sign-in">
<h1 id="sign-in">Sign in</h1>
<p>Paste an API token of this runner. A read token shows everything; a write token also allows the actions.</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ""}
<form method="post" action="/sign-in">
<input type="hidden" name="_csrf" value="${options.csrf}">
<input type="hidden" name="next" value="${options.next}">
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="off" required spellcheck="false">
<button class="primary" type="submit">Sign in</button>
</form>
<p class="muted small">The token is checked and forgotten: the browser keeps a signed session cookie for ${SESSION_HOURS} hours.</p>
</section>`;
}

export type StackAction = "apply" | "drift" | "release-lock" | "resume";
export type RunAction = "approve" | "cancel";

/** Asks before anything that changes infrastructure, saying exactly what will happen. */
export function confirmStackPage(stack: StackDetail, action: StackAction, viewer: Viewer): Html {
  const name = encodeURIComponent(stack.name);
  const what: Record<StackAction, { title: string; text: Html; button: string; to: string }> = {
    apply: {
      title: `Apply ${stack.name} now?`,
      text: html`The runner plans <strong>${stack.name}</strong> at the followed branch's head and applies that plan, whether or not it changed. A plan that destroys or replaces anything still stops as blocked unless the policy allows it.`,
      button: "Apply now",
      to: `/stacks/${name}/apply`,
    },
    drift: {
      title: `Check ${stack.name} for drift now?`,
      text: html`Its policy corrects drift: if the check finds any, the runner applies the correcting plan (never one that destroys, unless the policy allows it).`,
      button: "Check and correct",
      to: `/stacks/${name}/drift`,
    },
    resume: {
      title: `Resume ${stack.name}?`,
      text: html`Changes merged while it was suspended are waiting: resuming queues the apply of <strong>${stack.name}</strong> at the followed branch's head (a plan that destroys still stops as blocked unless the policy allows it).`,
      button: "Resume and apply",
      to: `/stacks/${name}/resume`,
    },
    "release-lock": {
      title: `Release the lock on ${stack.name}?`,
      text: html`The lock is held by <code>${stack.lockHolder ?? "nobody"}</code>. Release it only when that run is gone: two applies at once can corrupt the stack's state.`,
      button: "Release the lock",
      to: `/stacks/${name}/release-lock`,
    },
  };
  const page = what[action];
  return confirmation(page.title, page.text, page.button, page.to, `/stacks/${name}`, viewer);
}

export function confirmRunPage(run: RunRecord, action: RunAction, viewer: Viewer): Html {
  const id = encodeURIComponent(run.id);
  if (action === "approve") {
    const resources = planView(run.plan);
    const text = html`The runner plans <strong>${run.stack}</strong> at ${shortCommit(run.commit)} again and applies it if the new plan makes the same changes as this one:
<ul class="plan-list">${resources.map((resource) => html`<li><span class="${`action is-${resource.action}`}">${resource.action}</span> <code>${resource.address}</code></li>`)}</ul>`;
    return confirmation(
      `Approve the apply of ${run.stack}?`,
      text,
      "Approve and apply",
      `/runs/${id}/approve`,
      `/runs/${id}`,
      viewer,
    );
  }
  const applying = run.steps?.at(-1)?.status === "running" && run.steps.at(-1)?.name === "apply";
  const text = html`Cancelling stops this ${run.kind} of <strong>${run.stack}</strong> and the rest of the work it belongs to; the steps that did not start never run.
${applying ? html`<p class="error">It is in its apply step. Interrupting terraform apply can leave resources half-changed; tick the box to do it anyway. The forced cancel is recorded.</p><label class="check"><input type="checkbox" name="force" value="true"> Interrupt the apply</label>` : ""}`;
  return confirmation(
    `Cancel this ${run.kind}?`,
    text,
    "Cancel the run",
    `/runs/${id}/cancel`,
    `/runs/${id}`,
    viewer,
  );
}

function confirmation(
  title: string,
  text: Html,
  button: string,
  to: string,
  back: string,
  viewer: Viewer,
): Html {
  return html`<section class="confirm" aria-labelledby="confirm-title">
<h1 id="confirm-title">${title}</h1>
<form method="post" action="${to}">
${csrfField(viewer)}
<div class="confirm-text">${text}</div>
<div class="confirm-buttons"><button class="primary danger" type="submit">${button}</button> <a class="button" href="${back}">Go back</a></div>
</form>
</section>`;
}

/** Unfreezing lets the applies that waited run at once. */
export function confirmUnfreezePage(waiting: number, viewer: Viewer): Html {
  const text = html`Applies and drift corrections may start again.${
    waiting > 0
      ? html` <strong>${waiting} queued ${waiting === 1 ? "apply starts" : "applies start"}</strong> as soon as a worker is free.`
      : " Nothing is waiting."
  }`;
  return confirmation("Unfreeze applies?", text, "Unfreeze", "/unfreeze", "/queue", viewer);
}

/** What a page shows when a request fails: the message, never internals. */
export function errorPage(status: number, message: string): Html {
  return html`<section class="failed-request"><h1>${status === 404 ? "Not found" : status === 403 ? "Not allowed" : status >= 500 ? "Something went wrong" : "That did not work"}</h1>
<p role="alert">${message}</p>
<p><a href="/">Back to the stacks</a></p></section>`;
}
