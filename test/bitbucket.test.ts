import { createHmac } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { bitbucketForge } from "../src/forge/bitbucket/client.ts";
import { bitbucketDelivery } from "../src/forge/bitbucket/webhook.ts";
import { refusal } from "./support/errors.ts";
import { accountUuid, startFakeBitbucket } from "./support/fake-bitbucket.ts";
import {
  events,
  idle,
  planStatus,
  runsOf,
  SECRET,
  serveForge,
  stacks,
  TOKEN,
} from "./support/pull-request-serve.ts";
import { TestRepo } from "./support/repo.ts";
import { repoRoot } from "./support/toolchain.ts";

/**
 * Bitbucket Cloud: its webhook payloads (test/fixtures/bitbucket, after
 * Atlassian's documentation), its REST API 2.0 as a strict fake, and the real
 * `serve` between them.
 */
const MARKER = "<!-- gitops-runner:plan -->";
const APPLY_MARKER = "<!-- gitops-runner:apply -->";

type Payload = Record<string, any>;

async function fixture(name: string): Promise<Payload> {
  return JSON.parse(
    await readFile(path.join(repoRoot, "test", "fixtures", "bitbucket", `${name}.json`), "utf8"),
  );
}

function headers(body: string, key: string, id = "d6f1c2a4-0b9e-4c7d-8a5f-3e2d1c0b9a87", secret = SECRET) {
  return {
    "x-event-key": key,
    "x-request-uuid": id,
    "x-hook-uuid": "{1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b}",
    "x-attempt-number": "1",
    "x-hub-signature": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`,
  };
}

describe("Bitbucket Cloud deliveries", () => {
  const read = async (name: string, key: string) => {
    const body = JSON.stringify(await fixture(name));
    return bitbucketDelivery(SECRET, headers(body, key), Buffer.from(body));
  };

  it("reads created, updated, fulfilled and rejected pull requests, with abbreviated hashes", async () => {
    expect(await read("pullrequest-created", "pullrequest:created")).toEqual({
      id: "d6f1c2a4-0b9e-4c7d-8a5f-3e2d1c0b9a87",
      event: { kind: "pull_request", action: "opened", number: 12, headSha: "4b9d2e7c1a05", fromFork: false },
    });
    expect((await read("pullrequest-updated", "pullrequest:updated")).event).toMatchObject({
      action: "updated",
      headSha: "c0ffee12ab34",
    });
    expect((await read("pullrequest-fulfilled", "pullrequest:fulfilled")).event).toEqual({
      kind: "pull_request",
      action: "merged",
      number: 12,
      headSha: "c0ffee12ab34",
      fromFork: false,
      mergeSha: "e5d4c3b2a190",
    });
    expect((await read("pullrequest-rejected", "pullrequest:rejected")).event).toMatchObject({
      action: "closed",
    });
  });

  it("reads a comment command with its author's UUID, and a push", async () => {
    expect((await read("pullrequest-comment-created", "pullrequest:comment_created")).event).toEqual({
      kind: "command",
      number: 12,
      commentId: "501",
      author: { name: "{5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}" },
      command: { action: "plan", stacks: [] },
    });
    expect((await read("repo-push", "repo:push")).event).toEqual({
      kind: "push",
      ref: "refs/heads/main",
      after: "e5d4c3b2a1907f6e5d4c3b2a1908f7e6d5c4b3a2",
    });
  });

  it("drops ordinary and inline comments and events it does not act on", async () => {
    const payload = await fixture("pullrequest-comment-created");
    const ordinary = JSON.stringify({
      ...payload,
      comment: { ...payload.comment, content: { raw: "Nice" } },
    });
    expect(
      bitbucketDelivery(SECRET, headers(ordinary, "pullrequest:comment_created"), Buffer.from(ordinary))
        .event,
    ).toBeUndefined();
    const inline = JSON.stringify({
      ...payload,
      comment: { ...payload.comment, inline: { path: "main.ts", to: 3 } },
    });
    expect(
      bitbucketDelivery(SECRET, headers(inline, "pullrequest:comment_created"), Buffer.from(inline)).event,
    ).toBeUndefined();
    const approved = JSON.stringify(await fixture("pullrequest-created"));
    expect(
      bitbucketDelivery(SECRET, headers(approved, "pullrequest:approved"), Buffer.from(approved)).event,
    ).toBeUndefined();
  });

  it("refuses a wrong or missing signature, a body altered after signing, and a malformed body", async () => {
    const body = JSON.stringify(await fixture("pullrequest-created"));
    const key = "pullrequest:created";
    expect(
      refusal(() => bitbucketDelivery(SECRET, headers(body, key, "d-1", "other"), Buffer.from(body))),
    ).toBe("SIGNATURE_INVALID: x-hub-signature: does not match the body");
    const { "x-hub-signature": _, ...unsigned } = headers(body, key);
    expect(refusal(() => bitbucketDelivery(SECRET, unsigned, Buffer.from(body)))).toBe(
      'SIGNATURE_INVALID: x-hub-signature: missing or not "sha256=<hex>"',
    );
    expect(
      refusal(() => bitbucketDelivery(SECRET, headers(body, key), Buffer.from(body.replace("12", "13")))),
    ).toBe("SIGNATURE_INVALID: x-hub-signature: does not match the body");
    const malformed = JSON.stringify({ pullrequest: { id: 12, state: "OPEN", source: {} } });
    expect(refusal(() => bitbucketDelivery(SECRET, headers(malformed, key), Buffer.from(malformed)))).toMatch(
      /^BAD_REQUEST: body\.pullrequest\.source\.commit: /,
    );
  });
});

describe("the Bitbucket client", () => {
  async function fake(options: { username?: string } = {}) {
    const started = await startFakeBitbucket({ workspace: "acme", repo: "infra", token: TOKEN, ...options });
    onTestFinished(() => started.close());
    return started;
  }
  const sha = (n: number) => n.toString(16).padStart(40, "c");

  it("follows `next` across pages of open pull requests, and refuses one on another origin", async () => {
    const bitbucket = await fake();
    for (let number = 1; number <= 60; number++) bitbucket.addPullRequest({ number, headSha: sha(number) });
    bitbucket.setPullRequestState(5, "merged", { mergeCommitSha: sha(1005) });
    const client = bitbucketForge({ workspace: "acme", repo: "infra", token: TOKEN, baseUrl: bitbucket.url });
    const open = await client.pullRequests.listOpen();
    expect(open).toHaveLength(59);
    expect(open.find((pull) => pull.number === 7)).toEqual({
      number: 7,
      headSha: sha(7).slice(0, 12),
      headRef: "change-7",
      baseRef: "main",
      fromFork: false,
      state: "open",
      url: "https://bitbucket.org/acme/infra/pull-requests/7",
      author: "contributor",
    });
    expect(await client.pullRequests.get(5)).toMatchObject({
      state: "merged",
      mergeCommitSha: sha(1005).slice(0, 12),
    });
    expect(
      bitbucket.calls.map((call) => `${call.method} ${call.path} ${new URLSearchParams(call.query)}`),
    ).toEqual([
      "GET /repositories/acme/infra/pullrequests state=OPEN&pagelen=50",
      "GET /repositories/acme/infra/pullrequests state=OPEN&pagelen=50&page=2",
      "GET /repositories/acme/infra/pullrequests/5 ",
    ]);

    // An answer whose next page points elsewhere is not followed.
    const elsewhere: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const body = (await response.json()) as Payload;
      if (body.next) body.next = body.next.replace(/^http:\/\/127\.0\.0\.1:\d+/, "http://attacker.invalid");
      return new Response(JSON.stringify(body), { status: response.status, headers: response.headers });
    };
    const misled = bitbucketForge({
      workspace: "acme",
      repo: "infra",
      token: TOKEN,
      baseUrl: bitbucket.url,
      fetch: elsewhere,
    });
    await expect(misled.pullRequests.listOpen()).rejects.toMatchObject({
      code: "FORGE_FAILED",
      message: "bitbucket: list open pull requests of acme/infra: a next page on another origin",
    });
    bitbucket.assertNoUnexpected();
  });

  it("writes comments, build statuses with a key of at most 40 characters, and reads permissions", async () => {
    const bitbucket = await fake({ username: "runner@example.invalid" });
    bitbucket.addPullRequest({ number: 3, headSha: sha(3) });
    bitbucket.setPermission("alice", "write");
    bitbucket.setPermission("mallory", "read");
    const client = bitbucketForge({
      workspace: "acme",
      repo: "infra",
      token: TOKEN,
      username: "runner@example.invalid",
      baseUrl: bitbucket.url,
    });
    // A user API token may read its own account.
    expect(await client.accounts.self()).toBe(bitbucket.botUuid);
    expect(client.comments.react).toBeUndefined();
    const created = await client.comments.create(3, `${MARKER}\nPlan`);
    expect(created.author).toBe(bitbucket.botUuid);
    await client.comments.update(3, created.id, `${MARKER}\nPlan again`);
    expect(await client.comments.list(3)).toEqual([{ ...created, body: `${MARKER}\nPlan again` }]);
    await client.comments.remove(3, created.id);
    expect(await client.comments.list(3)).toEqual([]);

    const context = "gitops-runner-production-eu-west-1/plan-of-every-stack";
    await client.statuses.set(sha(3), { context, state: "pending", description: "planning" });
    await client.statuses.set(sha(3), {
      context: "gitops-runner/plan",
      state: "error",
      description: "x".repeat(400),
      targetUrl: "https://runner.example.com/runs/1",
    });
    const posted = bitbucket.calls
      .filter((call) => call.path.endsWith("/statuses/build"))
      .map((call) => call.body as Payload);
    expect(posted[0]).toEqual({
      key: expect.stringMatching(/^gitops-runner-production-eu-wes-[0-9a-f]{8}$/),
      state: "INPROGRESS",
      name: context,
      description: "planning",
      url: `https://bitbucket.org/acme/infra/commits/${sha(3)}`,
    });
    expect(posted[0]?.key).toHaveLength(40);
    expect(posted[1]).toMatchObject({
      key: "gitops-runner/plan",
      state: "FAILED",
      url: "https://runner.example.com/runs/1",
    });
    expect(posted[1]?.description).toHaveLength(140);

    expect(await client.accounts.canWrite({ name: accountUuid("alice") })).toBe(true);
    expect(await client.accounts.canWrite({ name: accountUuid("mallory") })).toBe(false);
    expect(await client.accounts.canWrite({ name: accountUuid("stranger") })).toBe(false);
    bitbucket.assertNoUnexpected();
  });

  it("names who opened, merged and approves a pull request, and opens one of a pushed branch", async () => {
    const branches: Record<string, string> = { main: sha(1), "rollback-demo": sha(2) };
    const bitbucket = await startFakeBitbucket({
      workspace: "acme",
      repo: "infra",
      token: TOKEN,
      branchSha: (branch) => branches[branch],
    });
    onTestFinished(() => bitbucket.close());
    bitbucket.addPullRequest({ number: 4, headSha: sha(4), author: "alice" });
    bitbucket.addApproval(4, "bo");
    bitbucket.addApproval(4, "cy");
    const client = bitbucketForge({ workspace: "acme", repo: "infra", token: TOKEN, baseUrl: bitbucket.url });
    expect(await client.pullRequests.approvers(4)).toEqual(["bo", "cy"]);
    bitbucket.setPullRequestState(4, "merged", { mergeCommitSha: sha(1004), mergedBy: "cy" });
    expect(await client.pullRequests.get(4)).toMatchObject({
      author: "alice",
      mergedBy: "cy",
      state: "merged",
    });

    const opened = await client.pullRequests.create({
      head: "rollback-demo",
      base: "main",
      title: "Roll back demo",
      body: "Restores the app.",
    });
    expect(opened).toMatchObject({
      number: 5,
      headSha: sha(2).slice(0, 12),
      headRef: "rollback-demo",
      state: "open",
    });
    expect(bitbucket.pullRequests().at(-1)).toMatchObject({
      headRef: "rollback-demo",
      baseRef: "main",
      body: "Restores the app.",
    });
    await expect(
      client.pullRequests.create({ head: "nowhere", base: "main", title: "x", body: "" }),
    ).rejects.toMatchObject({
      code: "FORGE_FAILED",
      status: 400,
    });
    bitbucket.assertNoUnexpected();
  });

  it("says nothing of who an access token is: Bitbucket does not tell", async () => {
    const bitbucket = await fake();
    const client = bitbucketForge({ workspace: "acme", repo: "infra", token: TOKEN, baseUrl: bitbucket.url });
    expect(await client.accounts.self()).toBeUndefined();
    expect(bitbucket.calls.map((call) => `${call.method} ${call.path} → ${call.status}`)).toEqual([
      "GET /user → 401",
    ]);
    bitbucket.assertNoUnexpected();
  });
});

describe("pull requests on Bitbucket Cloud", () => {
  it("plans, skips an edit that pushed nothing, answers commands with replies, and reports the apply after the merge", async () => {
    const repo = await TestRepo.create(stacks("10.0.0.0/16"));
    const bitbucket = await startFakeBitbucket({ workspace: "acme", repo: "infra", token: TOKEN });
    onTestFinished(() => bitbucket.close());
    bitbucket.setPermission("alice", "write");
    bitbucket.setPermission("mallory", "read");
    const { data, served } = await serveForge({
      repository: repo.dir,
      forge: { type: "bitbucket", workspace: "acme", repo: "infra", baseUrl: bitbucket.url },
      applied: 2,
    });
    let deliveries = 0;
    const deliver = async (key: string, payload: Payload) => {
      const body = JSON.stringify(payload);
      const response = await fetch(new URL("/webhooks/bitbucket", served.url), {
        method: "POST",
        headers: { "content-type": "application/json", ...headers(body, key, `request-${++deliveries}`) },
        body,
      });
      return response.status;
    };
    const withHead = (payload: Payload, head: string): Payload => {
      payload.pullrequest.source.commit.hash = head.slice(0, 12);
      return payload;
    };

    await repo.checkout("widen", true);
    await repo.setApp(stacks("10.0.0.0/12"));
    const first = await repo.commit("Widen the network");
    bitbucket.addPullRequest({ number: 12, headSha: first, headRef: "widen" });
    expect(await deliver("pullrequest:created", withHead(await fixture("pullrequest-created"), first))).toBe(
      202,
    );
    await planStatus(bitbucket, first, "SUCCESSFUL", "gitops-runner/plan");
    expect(bitbucket.statuses(first).map((status) => status.state)).toEqual(["INPROGRESS", "SUCCESSFUL"]);
    const [planned] = bitbucket.comments(12);
    expect(planned?.author).toBe(bitbucket.botUuid);
    expect(planned?.body.startsWith(MARKER)).toBe(true);
    expect(planned?.body).toContain(first.slice(0, 7));

    // An edit of the description: Bitbucket says "updated" with the same head.
    expect(await deliver("pullrequest:updated", withHead(await fixture("pullrequest-updated"), first))).toBe(
      202,
    );
    await idle(data);
    expect(
      events(data)
        .filter((event) => event.pr === 12)
        .map((event) => event.status),
    ).toEqual(["done", "superseded"]);

    // A push: the one comment, found by the account learnt from it, is updated.
    await repo.setApp(stacks("10.0.0.0/12", 3));
    const second = await repo.commit("And scale the service");
    bitbucket.setHeadSha(12, second);
    expect(await deliver("pullrequest:updated", withHead(await fixture("pullrequest-updated"), second))).toBe(
      202,
    );
    await planStatus(bitbucket, second, "SUCCESSFUL", "gitops-runner/plan");
    await idle(data);
    expect(bitbucket.comments(12).map((comment) => comment.id)).toEqual([planned?.id]);
    expect(bitbucket.comments(12)[0]?.body).toContain(second.slice(0, 7));

    // Commands: a reader is refused, a writer gets a reply (Bitbucket has no reactions) and a plan.
    const command = async (name: string) => {
      const payload = await fixture("pullrequest-comment-created");
      payload.comment.user.uuid = accountUuid(name);
      payload.comment.content.raw = "/gitops-runner plan network";
      return deliver("pullrequest:comment_created", payload);
    };
    const plans = () => runsOf(data, second).filter((run) => run.kind === "plan").length;
    const before = plans();
    expect(await command("mallory")).toBe(202);
    await idle(data);
    expect(bitbucket.comments(12).at(-1)?.body).toBe(
      "gitops-runner: only people with write access to this repository can ask for a plan.",
    );
    expect(await command("alice")).toBe(202);
    await idle(data);
    expect(bitbucket.comments(12).map((comment) => comment.body.split("\n")[0])).toEqual([
      MARKER,
      "gitops-runner: only people with write access to this repository can ask for a plan.",
      "gitops-runner: planning network again; the plan comment will be updated.",
    ]);
    expect(plans()).toBe(before + 1);

    // The merge: Bitbucket names the merge commit by 12 characters; the runner resolves it.
    await repo.checkout("main");
    await repo.git("merge", "--no-ff", "--quiet", "-m", "Merged in widen (pull request #12)", "widen");
    const merge = await repo.head();
    bitbucket.setPullRequestState(12, "merged", { mergeCommitSha: merge });
    const fulfilled = withHead(await fixture("pullrequest-fulfilled"), second);
    fulfilled.pullrequest.merge_commit.hash = merge.slice(0, 12);
    expect(await deliver("pullrequest:fulfilled", fulfilled)).toBe(202);
    await planStatus(bitbucket, merge, "SUCCESSFUL", "gitops-runner/apply");
    await idle(data);
    const applied = bitbucket.comments(12).find((comment) => comment.body.startsWith(APPLY_MARKER));
    expect(applied?.body).toContain("**2 affected stacks**: 2 applied.");
    bitbucket.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});
