import { checkTargetUrl, postJson } from "./http.ts";
import {
  KIND_WORDS,
  type Notification,
  type NotificationKind,
  type NotifiedResource,
} from "./notification.ts";
import type { NotificationTarget } from "./notifier.ts";

const EMOJI: Readonly<Record<NotificationKind, string>> = {
  "apply-failed": ":x:",
  "run-blocked": ":no_entry:",
  "drift-found": ":warning:",
  "drift-changed": ":warning:",
  "drift-corrected": ":white_check_mark:",
};

/** Slack's section block takes at most 3000 characters of text. */
const SLACK_SECTION_LIMIT = 3000;

/** Slack reads &, < and > as control characters in message text. */
function escapeSlack(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

function resourceLine(resource: NotifiedResource): string {
  const drift = resource.drift?.length ? `: ${resource.drift.join(", ")}` : "";
  return escapeSlack(`• \`${resource.address}\` ${resource.actions.join(", ")}${drift}`);
}

/** The incoming-webhook payload: a `text` line (also the notification fallback) and a section block. */
export function slackMessage(notification: Notification): {
  text: string;
  blocks: { type: "section"; text: { type: "mrkdwn"; text: string } }[];
} {
  const emoji = EMOJI[notification.kind];
  const words = KIND_WORDS[notification.kind];
  const commit = notification.commit.slice(0, 7);
  const text = escapeSlack(
    `${emoji} ${words} in stack ${notification.stack} (${commit}): ${notification.summary}`,
  );

  const head = [
    `${emoji} *${words}* in stack \`${escapeSlack(notification.stack)}\` at \`${escapeSlack(commit)}\` of ${escapeSlack(notification.repository)}`,
    escapeSlack(notification.summary),
  ];
  const link = notification.url
    ? `<${escapeSlack(notification.url).replaceAll("|", "%7C")}|View run ${escapeSlack(notification.runId)}>`
    : `Run ${escapeSlack(notification.runId)}`;
  const resources = notification.resources ?? [];
  const listed: string[] = [];
  // Room for the head, the link, and the "more" line.
  let room = SLACK_SECTION_LIMIT - head.join("\n").length - link.length - 40;
  for (const resource of resources) {
    const line = resourceLine(resource);
    if (line.length + 1 > room) break;
    listed.push(line);
    room -= line.length + 1;
  }
  const more = resources.length > listed.length ? [`…and ${resources.length - listed.length} more`] : [];
  const full = [...head, ...listed, ...more, link].join("\n");
  // Only an overlong summary gets here; a section over the limit would make Slack refuse the message.
  const section = full.length > SLACK_SECTION_LIMIT ? `${full.slice(0, SLACK_SECTION_LIMIT - 1)}…` : full;
  return { text, blocks: [{ type: "section", text: { type: "mrkdwn", text: section } }] };
}

/** Posts to a Slack incoming webhook. Slack answers 200 "ok"; any 2xx counts as delivered. */
export function slackTarget(options: {
  name: string;
  url: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}): NotificationTarget {
  checkTargetUrl(options.name, options.url);
  return {
    name: options.name,
    send: (notification, signal) => postJson(options, JSON.stringify(slackMessage(notification)), {}, signal),
  };
}
