import { randomUUID } from "node:crypto";
import { sha256Header } from "../crypto/hmac.ts";
import { RunnerError } from "../errors.ts";
import { checkTargetUrl, postJson } from "./http.ts";
import type { Notification } from "./notification.ts";
import type { NotificationTarget } from "./notifier.ts";

export function webhookBody(notification: Notification): string {
  const { kind, repository, stack, commit, runId, summary, resources, url, at } = notification;
  return JSON.stringify({
    kind,
    repository,
    stack,
    commit,
    runId,
    summary,
    resources: resources?.map(({ address, actions, drift }) => ({ address, actions, drift })),
    url,
    at,
  });
}

/** Posts the notification as JSON, signed with the secret so the receiver can check where it came from. */
export function webhookTarget(options: {
  name: string;
  url: string;
  secret: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}): NotificationTarget {
  checkTargetUrl(options.name, options.url);
  if (options.secret === "") {
    throw new RunnerError("CONFIG_INVALID", `notification target ${options.name}: secret must not be empty`);
  }
  // One delivery id per notification, kept across retries, so a receiver can drop repeats.
  const deliveries = new WeakMap<Notification, string>();
  return {
    name: options.name,
    send: (notification, signal) => {
      const delivery = deliveries.get(notification) ?? randomUUID();
      deliveries.set(notification, delivery);
      const body = webhookBody(notification);
      return postJson(
        options,
        body,
        {
          "X-Gitops-Runner-Event": notification.kind,
          "X-Gitops-Runner-Delivery": delivery,
          "X-Gitops-Runner-Signature": sha256Header(options.secret, body),
        },
        signal,
      );
    },
  };
}
