import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isRunnerError } from "../src/errors.ts";
import { githubDelivery } from "../src/forge/github/webhook.ts";
import { gitlabDelivery } from "../src/forge/gitlab/webhook.ts";

const SECRET = "forge-webhook-secret";

function signed(body: string, secret = SECRET): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

function refusal(work: () => unknown): string {
  try {
    work();
  } catch (error) {
    if (isRunnerError(error)) return `${error.code}: ${error.message}`;
    throw error;
  }
  throw new Error("not refused");
}

const pullRequest = (action: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    action,
    number: 7,
    pull_request: {
      head: { sha: "a".repeat(40), repo: { full_name: "acme/infra" } },
      base: { repo: { full_name: "acme/infra" } },
      merged: false,
      merge_commit_sha: null,
      ...extra,
    },
  });

describe("GitHub deliveries", () => {
  const headers = (body: string, event = "pull_request") => ({
    "x-hub-signature-256": signed(body),
    "x-github-delivery": "d-1",
    "x-github-event": event,
  });

  it("reads opened, synchronize, reopened, closed and merged pull requests, and pushes", () => {
    const opened = pullRequest("opened");
    expect(githubDelivery(SECRET, headers(opened), Buffer.from(opened))).toEqual({
      id: "d-1",
      event: { kind: "pull_request", action: "opened", number: 7, headSha: "a".repeat(40), fromFork: false },
    });
    const pushed = pullRequest("synchronize");
    expect(githubDelivery(SECRET, headers(pushed), Buffer.from(pushed)).event).toMatchObject({
      action: "updated",
    });
    const merged = pullRequest("closed", { merged: true, merge_commit_sha: "b".repeat(40) });
    expect(githubDelivery(SECRET, headers(merged), Buffer.from(merged)).event).toMatchObject({
      action: "merged",
      mergeSha: "b".repeat(40),
    });
    const fork = pullRequest("opened", {
      head: { sha: "c".repeat(40), repo: { full_name: "someone/infra" } },
    });
    expect(githubDelivery(SECRET, headers(fork), Buffer.from(fork)).event).toMatchObject({ fromFork: true });
    const push = JSON.stringify({ ref: "refs/heads/main", after: "d".repeat(40) });
    expect(githubDelivery(SECRET, headers(push, "push"), Buffer.from(push)).event).toEqual({
      kind: "push",
      ref: "refs/heads/main",
      after: "d".repeat(40),
    });
  });

  it("drops actions and events it does not act on", () => {
    const labeled = pullRequest("labeled");
    expect(githubDelivery(SECRET, headers(labeled), Buffer.from(labeled)).event).toBeUndefined();
    const ping = JSON.stringify({ zen: "Keep it logically awesome." });
    expect(githubDelivery(SECRET, headers(ping, "ping"), Buffer.from(ping)).event).toBeUndefined();
  });

  it("refuses a wrong or missing signature and a body altered after signing", () => {
    const body = pullRequest("opened");
    expect(
      refusal(() =>
        githubDelivery(
          SECRET,
          { ...headers(body), "x-hub-signature-256": signed(body, "other") },
          Buffer.from(body),
        ),
      ),
    ).toBe("SIGNATURE_INVALID: x-hub-signature-256: does not match the body");
    const { "x-hub-signature-256": _, ...unsigned } = headers(body);
    expect(refusal(() => githubDelivery(SECRET, unsigned, Buffer.from(body)))).toBe(
      'SIGNATURE_INVALID: x-hub-signature-256: missing or not "sha256=<hex>"',
    );
    expect(refusal(() => githubDelivery(SECRET, headers(body), Buffer.from(body.replace("7", "8"))))).toBe(
      "SIGNATURE_INVALID: x-hub-signature-256: does not match the body",
    );
  });

  it("refuses a signed delivery with a malformed body, naming the field", () => {
    const body = JSON.stringify({ action: "opened", number: "seven", pull_request: {} });
    expect(refusal(() => githubDelivery(SECRET, headers(body), Buffer.from(body)))).toMatch(
      /^BAD_REQUEST: body\.number: /,
    );
  });
});

describe("GitLab deliveries", () => {
  const mergeRequest = (action: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      object_kind: "merge_request",
      object_attributes: {
        iid: 3,
        action,
        last_commit: { id: "e".repeat(40) },
        source_project_id: 10,
        target_project_id: 10,
        ...extra,
      },
    });
  const headers = {
    "x-gitlab-token": SECRET,
    "x-gitlab-event": "Merge Request Hook",
    "x-gitlab-event-uuid": "u-1",
  };

  it("reads merge request actions; an update counts only with a new push", () => {
    const opened = mergeRequest("open");
    expect(gitlabDelivery(SECRET, headers, Buffer.from(opened)).event).toEqual({
      kind: "pull_request",
      action: "opened",
      number: 3,
      headSha: "e".repeat(40),
      fromFork: false,
    });
    const pushed = mergeRequest("update", { oldrev: "f".repeat(40) });
    expect(gitlabDelivery(SECRET, headers, Buffer.from(pushed)).event).toMatchObject({ action: "updated" });
    const retitled = mergeRequest("update");
    expect(gitlabDelivery(SECRET, headers, Buffer.from(retitled)).event).toBeUndefined();
    const fork = mergeRequest("open", { source_project_id: 11 });
    expect(gitlabDelivery(SECRET, headers, Buffer.from(fork)).event).toMatchObject({ fromFork: true });
  });

  it("refuses a wrong or missing token", () => {
    const body = mergeRequest("open");
    expect(
      refusal(() => gitlabDelivery(SECRET, { ...headers, "x-gitlab-token": "wrong" }, Buffer.from(body))),
    ).toBe("SIGNATURE_INVALID: x-gitlab-token: missing or wrong");
    const { "x-gitlab-token": _, ...without } = headers;
    expect(refusal(() => gitlabDelivery(SECRET, without, Buffer.from(body)))).toBe(
      "SIGNATURE_INVALID: x-gitlab-token: missing or wrong",
    );
  });
});
