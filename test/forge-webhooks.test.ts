import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { giteaDelivery } from "../src/forge/gitea/webhook.ts";
import { githubDelivery } from "../src/forge/github/webhook.ts";
import { gitlabDelivery } from "../src/forge/gitlab/webhook.ts";
import { refusal } from "./support/errors.ts";

const SECRET = "forge-webhook-secret";

function signed(body: string, secret = SECRET): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
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

describe("comments that ask for something", () => {
  const githubHeaders = (body: string) => ({
    "x-hub-signature-256": signed(body),
    "x-github-delivery": "d-2",
    "x-github-event": "issue_comment",
  });
  const issueComment = (body: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      action: "created",
      issue: { number: 7, pull_request: { url: "https://api.github.com/repos/acme/infra/pulls/7" } },
      comment: { id: 1234, body, user: { login: "alice", id: 99 } },
      ...extra,
    });

  it("reads a GitHub pull request comment command; not an issue's, an edit, or chatter", () => {
    const command = issueComment("/gitops-runner plan network");
    expect(githubDelivery(SECRET, githubHeaders(command), Buffer.from(command)).event).toEqual({
      kind: "command",
      number: 7,
      commentId: "1234",
      author: { name: "alice", id: "99" },
      command: { action: "plan", stacks: ["network"] },
    });
    for (const body of [
      issueComment("/gitops-runner plan", { issue: { number: 7 } }),
      issueComment("/gitops-runner plan", { action: "edited" }),
      issueComment("Looks good"),
    ]) {
      expect(githubDelivery(SECRET, githubHeaders(body), Buffer.from(body)).event).toBeUndefined();
    }
  });

  it("reads a GitLab merge request note command; not a note on a commit, nor an edit", () => {
    const note = (extra: Record<string, unknown> = {}, attributes: Record<string, unknown> = {}) =>
      JSON.stringify({
        object_kind: "note",
        user: { id: 31, username: "alice" },
        object_attributes: {
          id: 555,
          note: "/gitops-runner plan",
          noteable_type: "MergeRequest",
          action: "create",
          ...attributes,
        },
        merge_request: { iid: 3 },
        ...extra,
      });
    const headers = { "x-gitlab-token": SECRET, "x-gitlab-event": "Note Hook", "x-gitlab-event-uuid": "u-2" };
    expect(gitlabDelivery(SECRET, headers, Buffer.from(note())).event).toEqual({
      kind: "command",
      number: 3,
      commentId: "555",
      author: { name: "alice", id: "31" },
      command: { action: "plan", stacks: [] },
    });
    const onCommit = note({ merge_request: undefined }, { noteable_type: "Commit" });
    expect(gitlabDelivery(SECRET, headers, Buffer.from(onCommit)).event).toBeUndefined();
    const edited = note({}, { action: "update" });
    expect(gitlabDelivery(SECRET, headers, Buffer.from(edited)).event).toBeUndefined();
  });
});

describe("Gitea and Forgejo deliveries", () => {
  const pull = (action: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      action,
      number: 4,
      pull_request: {
        number: 4,
        head: { sha: "a".repeat(40), repo_id: 2, repo: { full_name: "owner/infra" } },
        base: { repo_id: 2, repo: { full_name: "owner/infra" } },
        merged: false,
        merge_commit_sha: null,
        ...extra,
      },
    });
  const bare = (body: string, secret = SECRET) => createHmac("sha256", secret).update(body).digest("hex");
  const headers = (body: string, type: string) => ({
    "x-gitea-delivery": "8d0f2a64-1b2c-4d3e-9f80-7a6b5c4d3e2f",
    "x-gitea-event": type === "pull_request_comment" ? "issue_comment" : "pull_request",
    "x-gitea-event-type": type,
    "x-gitea-signature": bare(body),
    "x-hub-signature-256": signed(body),
  });

  it("reads opened, synchronized (without before or after), merged and comment commands", () => {
    const opened = pull("opened");
    expect(giteaDelivery(SECRET, headers(opened, "pull_request"), Buffer.from(opened))).toEqual({
      id: "8d0f2a64-1b2c-4d3e-9f80-7a6b5c4d3e2f",
      event: { kind: "pull_request", action: "opened", number: 4, headSha: "a".repeat(40), fromFork: false },
    });
    const synchronized = pull("synchronized");
    expect(
      giteaDelivery(SECRET, headers(synchronized, "pull_request_sync"), Buffer.from(synchronized)).event,
    ).toMatchObject({
      action: "updated",
    });
    const merged = pull("closed", { merged: true, merge_commit_sha: "b".repeat(40) });
    expect(giteaDelivery(SECRET, headers(merged, "pull_request"), Buffer.from(merged)).event).toMatchObject({
      action: "merged",
      mergeSha: "b".repeat(40),
    });
    const comment = (isPull: boolean) =>
      JSON.stringify({
        action: "created",
        is_pull: isPull,
        issue: { number: 4 },
        comment: { id: 88, body: "/gitops-runner plan dns", user: { login: "alice", id: 3 } },
      });
    expect(
      giteaDelivery(SECRET, headers(comment(true), "pull_request_comment"), Buffer.from(comment(true))).event,
    ).toEqual({
      kind: "command",
      number: 4,
      commentId: "88",
      author: { name: "alice", id: "3" },
      command: { action: "plan", stacks: ["dns"] },
    });
    expect(
      giteaDelivery(SECRET, headers(comment(false), "issue_comment"), Buffer.from(comment(false))).event,
    ).toBeUndefined();
    const labeled = pull("label_updated");
    expect(
      giteaDelivery(SECRET, headers(labeled, "pull_request_label"), Buffer.from(labeled)).event,
    ).toBeUndefined();
  });

  it("checks X-Gitea-Signature (bare hex), else X-Hub-Signature-256, and takes Forgejo's headers", () => {
    const body = pull("opened");
    const { "x-gitea-signature": _, ...hubOnly } = headers(body, "pull_request");
    expect(giteaDelivery(SECRET, hubOnly, Buffer.from(body)).event).toMatchObject({ action: "opened" });
    expect(
      refusal(() =>
        giteaDelivery(
          SECRET,
          { ...headers(body, "pull_request"), "x-gitea-signature": bare(body, "other") },
          Buffer.from(body),
        ),
      ),
    ).toBe("SIGNATURE_INVALID: x-gitea-signature: does not match the body");
    const { "x-hub-signature-256": __, ...unsigned } = hubOnly;
    expect(refusal(() => giteaDelivery(SECRET, unsigned, Buffer.from(body)))).toBe(
      'SIGNATURE_INVALID: x-hub-signature-256: missing or not "sha256=<hex>"',
    );
    const forgejo = {
      "x-forgejo-delivery": "f-1",
      "x-forgejo-event-type": "pull_request",
      "x-forgejo-signature": bare(body),
    };
    expect(giteaDelivery(SECRET, forgejo, Buffer.from(body))).toMatchObject({
      id: "f-1",
      event: { action: "opened" },
    });
  });
});
