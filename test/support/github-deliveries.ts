import { createHmac } from "node:crypto";

/** GitHub as the tests meet it: the runner's configuration of the fake, and webhook deliveries shaped and signed like GitHub's. */

/** Delivers a GitHub webhook to a runner at `url`, signed with `secret` unless a `signature` is given. */
export function deliverGitHub(
  url: string,
  secret: string,
  delivery: { event: string; id: string; payload: unknown; signature?: string },
): Promise<Response> {
  const body = JSON.stringify(delivery.payload);
  return fetch(new URL("/webhooks/github", url), {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": delivery.event,
      "x-github-delivery": delivery.id,
      "x-hub-signature-256":
        delivery.signature ?? `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`,
    },
    body,
  });
}

/** A pull_request delivery of pull request `number` of acme/infra, at `head`. */
export function githubPullRequest(
  action: string,
  number: number,
  head: string,
  extra: Record<string, unknown> = {},
) {
  return {
    action,
    number,
    pull_request: {
      head: { sha: head, repo: { full_name: "acme/infra" } },
      base: { repo: { full_name: "acme/infra" } },
      merged: false,
      merge_commit_sha: null,
      ...extra,
    },
  };
}

/** An issue_comment delivery: a comment on pull request `number`. */
export function githubComment(number: number, comment: { id: number; body: string; login: string }) {
  return {
    action: "created",
    issue: { number, pull_request: { url: `https://api.github.com/repos/acme/infra/pulls/${number}` } },
    comment: { id: comment.id, body: comment.body, user: { login: comment.login, id: 4242 } },
  };
}

/** The runner's configuration of a fake GitHub at `url` (acme/infra), its secrets read from these variables. */
export function githubForgeConfig(
  url: string,
  variables: { token: string; webhookSecret?: string } = {
    token: "TEST_FORGE_TOKEN",
    webhookSecret: "TEST_FORGE_SECRET",
  },
) {
  return {
    type: "github",
    owner: "acme",
    repo: "infra",
    baseUrl: url,
    tokenEnv: variables.token,
    ...(variables.webhookSecret ? { webhookSecretEnv: variables.webhookSecret } : {}),
  };
}
