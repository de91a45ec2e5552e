import { createHmac } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { RunnerError } from "../src/errors.ts";
import type { ForgeEvent } from "../src/forge/webhooks.ts";
import { buildHttpApp, type HttpOptions } from "../src/http/app.ts";
import type {
  Accepted,
  Readiness,
  RunFilter,
  ServiceApi,
  StackView,
  TriggerRequest,
} from "../src/service/api.ts";
import type { RunRecord } from "../src/store/records.ts";

const READ_TOKEN = "read-token-0123456789abcdef";
const WRITE_TOKEN = "write-token-fedcba9876543210";
const SECRET = "webhook-secret-5f1d2c";

const READ = { authorization: `Bearer ${READ_TOKEN}` };
const WRITE = { authorization: `Bearer ${WRITE_TOKEN}` };
const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

const FINISHED_RUN: RunRecord = {
  id: "3b6f1c2e-5d0a-4c8e-9f7b-1a2b3c4d5e6f",
  repoId: "demo-1a2b3c",
  appDir: "",
  stack: "network",
  kind: "plan",
  commit: "0123456789abcdef0123456789abcdef01234567",
  trigger: "pr",
  pr: 7,
  status: "succeeded",
  result: "changes",
  startedAt: "2026-01-02T10:00:00.000Z",
  endedAt: "2026-01-02T10:00:42.000Z",
  summary: { add: 1, change: 0, destroy: 0, replace: 0, import: 0 },
  resources: [{ address: 'aws_s3_bucket.logs["<b>"]', actions: ["create"] }],
  plan: { format_version: "1.2", resource_changes: [] },
  log: "planning network\n<script>alert('pwned')</script>\n",
  engine: "tofu",
  engineVersion: "1.12.6",
  providers: { "registry.opentofu.org/hashicorp/aws": "6.0.0" },
};

const BLOCKED_RUN: RunRecord = {
  id: "blocked-run",
  repoId: "demo-1a2b3c",
  appDir: "",
  stack: "storage",
  kind: "apply",
  commit: "89abcdef0123456789abcdef0123456789abcdef",
  trigger: "merge",
  status: "blocked",
  result: "blocked",
  startedAt: "2026-01-02T11:00:00.000Z",
  log: "destroys aws_s3_bucket.old\n",
  plan: { format_version: "1.2" },
  error: { code: "DESTROY_NOT_ALLOWED", message: "the plan destroys 1 resource & <the> policy forbids it" },
};

type Call = { readonly method: keyof ServiceApi; readonly args: readonly unknown[] };

/** A ServiceApi that records every call, so tests can tell that a refused request queued nothing. */
class FakeService implements ServiceApi {
  readonly calls: Call[] = [];
  readiness_: Readiness = { ready: true, checks: { store: true, repository: true } };
  /** Methods that throw this error instead of answering. */
  readonly failing = new Map<keyof ServiceApi, Error>();
  private readonly stacks: StackView[] = [
    { name: "network", state: "in-sync", dependencies: [], lastAppliedCommit: "abc" },
    { name: "storage", state: "blocked", dependencies: ["network"] },
  ];
  private readonly runs: RunRecord[] = [FINISHED_RUN, BLOCKED_RUN];
  private readonly deliveries = new Map<string, string>();
  private events = 0;

  callsOf(method: keyof ServiceApi): readonly (readonly unknown[])[] {
    return this.calls.filter((call) => call.method === method).map((call) => call.args);
  }

  private record(method: keyof ServiceApi, ...args: unknown[]): void {
    this.calls.push({ method, args });
    const error = this.failing.get(method);
    if (error !== undefined) throw error;
  }

  private accept(): Accepted {
    this.events += 1;
    return { eventId: `event-${this.events}`, duplicate: false };
  }

  async readiness(): Promise<Readiness> {
    this.record("readiness");
    return this.readiness_;
  }

  async listStacks(): Promise<StackView[]> {
    this.record("listStacks");
    return this.stacks;
  }

  async listRuns(filter: RunFilter): Promise<RunRecord[]> {
    this.record("listRuns", filter);
    return this.runs;
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    this.record("getRun", id);
    return this.runs.find((run) => run.id === id);
  }

  async trigger(request: TriggerRequest): Promise<Accepted> {
    this.record("trigger", request);
    if (request.stack !== undefined && !this.stacks.some((stack) => stack.name === request.stack)) {
      throw new RunnerError("STACK_UNKNOWN", `unknown stack ${request.stack}`);
    }
    return this.accept();
  }

  async approve(runId: string): Promise<Accepted> {
    this.record("approve", runId);
    const run = this.runs.find((candidate) => candidate.id === runId);
    if (run === undefined) throw new RunnerError("RUN_NOT_FOUND", `no run with id ${runId}`);
    if (run.status !== "blocked") throw new RunnerError("RUN_NOT_BLOCKED", `run ${runId} is not blocked`);
    return this.accept();
  }

  async releaseLock(stack: string): Promise<{ readonly released: boolean }> {
    this.record("releaseLock", stack);
    return { released: stack === "storage" };
  }

  async forgeEvent(event: ForgeEvent, deliveryId: string): Promise<Accepted> {
    this.record("forgeEvent", event, deliveryId);
    return this.accept();
  }

  async requestPoll(source: string, deliveryId: string): Promise<Accepted> {
    this.record("requestPoll", source, deliveryId);
    const key = `${source}/${deliveryId}`;
    const known = this.deliveries.get(key);
    if (known !== undefined) return { eventId: known, duplicate: true };
    const accepted = this.accept();
    this.deliveries.set(key, accepted.eventId);
    return accepted;
  }

  async metrics(): Promise<{ readonly contentType: string; readonly body: string }> {
    this.record("metrics");
    return { contentType: "text/plain; version=0.0.4; charset=utf-8", body: "gitops_runner_up 1\n" };
  }
}

let app: FastifyInstance | undefined;

afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** The app on a fake service, with every log line it writes kept; the webhook secret is SECRET unless given. */
function start(overrides: { readonly webhookSecret?: string | undefined; readonly publicUrl?: string } = {}) {
  const service = new FakeService();
  const logs: string[] = [];
  const logger = pino({ level: "trace" }, { write: (line: string) => logs.push(line) });
  const webhookSecret = "webhookSecret" in overrides ? overrides.webhookSecret : SECRET;
  const options: HttpOptions = {
    service,
    logger,
    tokens: { read: [READ_TOKEN], write: [WRITE_TOKEN] },
    ...(webhookSecret !== undefined && { webhookSecret }),
    ...(overrides.publicUrl !== undefined && { publicUrl: overrides.publicUrl }),
  };
  app = buildHttpApp(options);
  return { app, service, logs };
}

function sign(body: string, secret = SECRET): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

describe("health, readiness and metrics", () => {
  it("answer without a token", async () => {
    const { app, service } = start();

    const health = await app.inject({ method: "GET", url: "/healthz" });
    const ready = await app.inject({ method: "GET", url: "/readyz" });
    const metrics = await app.inject({ method: "GET", url: "/metrics" });

    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ status: "ok" });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ ready: true, checks: { store: true, repository: true } });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(metrics.body).toBe("gitops_runner_up 1\n");
    expect(service.calls.map((call) => call.method)).toEqual(["readiness", "metrics"]);
  });

  it("answers 503 with the failing checks when the service is not ready", async () => {
    const { app, service } = start();
    service.readiness_ = { ready: false, checks: { store: false, repository: true } };

    const ready = await app.inject({ method: "GET", url: "/readyz" });

    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({ ready: false, checks: { store: false, repository: true } });
  });
});

describe("API authentication", () => {
  it("refuses a request without a token with 401 and asks for a bearer token", async () => {
    const { app, service } = start();

    const response = await app.inject({ method: "GET", url: "/api/stacks" });

    expect(response.statusCode).toBe(401);
    expect(response.json()).toEqual({
      error: { code: "UNAUTHORIZED", message: "a bearer token is required" },
    });
    expect(response.headers["www-authenticate"]).toContain("Bearer");
    expect(service.calls).toEqual([]);
  });

  it("refuses an unknown token, a prefix of a real one, and a non-bearer scheme with 401", async () => {
    const { app, service } = start();

    for (const authorization of [
      "Bearer not-a-token",
      `Bearer ${WRITE_TOKEN.slice(0, -1)}`,
      `Basic ${WRITE_TOKEN}`,
      "Bearer ",
    ]) {
      const response = await app.inject({ method: "POST", url: "/api/plan", headers: { authorization } });
      expect(response.statusCode, authorization).toBe(401);
      expect(response.json().error.code).toBe("UNAUTHORIZED");
    }
    expect(service.calls).toEqual([]);
  });

  it("refuses a read token on every mutating route with 403 and queues nothing", async () => {
    const { app, service } = start();

    for (const [method, url] of [
      ["POST", "/api/stacks/network/plan"],
      ["POST", "/api/stacks/network/apply"],
      ["POST", "/api/stacks/network/drift"],
      ["POST", "/api/apply"],
      ["POST", `/api/runs/${BLOCKED_RUN.id}/approve`],
      ["DELETE", "/api/stacks/storage/lock"],
    ] as const) {
      const response = await app.inject({ method, url, headers: READ });
      expect(response.statusCode, url).toBe(403);
      expect(response.json().error.code).toBe("FORBIDDEN");
    }
    expect(service.calls).toEqual([]);
  });

  it("lets a write token read too", async () => {
    const { app } = start();

    const response = await app.inject({ method: "GET", url: "/api/stacks", headers: WRITE });

    expect(response.statusCode).toBe(200);
    expect(response.json().stacks.map((stack: StackView) => stack.name)).toEqual(["network", "storage"]);
  });

  it("does not take the token from the query string on API routes", async () => {
    const { app, service } = start();

    const response = await app.inject({
      method: "GET",
      url: `/api/runs/${FINISHED_RUN.id}?token=${READ_TOKEN}`,
    });

    expect(response.statusCode).toBe(401);
    expect(service.calls).toEqual([]);
  });
});

describe("triggers, approval and locks", () => {
  it("queues a plan of one stack with 202 and the event id", async () => {
    const { app, service } = start();

    const response = await app.inject({ method: "POST", url: "/api/stacks/network/plan", headers: WRITE });

    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ eventId: "event-1", duplicate: false });
    expect(service.callsOf("trigger")).toEqual([[{ kind: "plan", stack: "network" }]]);
  });

  it("queues a drift check of every stack", async () => {
    const { app, service } = start();

    const response = await app.inject({
      method: "POST",
      url: "/api/drift",
      headers: WRITE,
      payload: {},
    });

    expect(response.statusCode).toBe(202);
    expect(service.callsOf("trigger")).toEqual([[{ kind: "drift" }]]);
  });

  it("answers 404 STACK_UNKNOWN for a stack the app does not have", async () => {
    const { app } = start();

    const response = await app.inject({ method: "POST", url: "/api/stacks/nope/apply", headers: WRITE });

    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ error: { code: "STACK_UNKNOWN", message: "unknown stack nope" } });
  });

  it("refuses a malformed stack name or an unexpected body field with 400 before calling the service", async () => {
    const { app, service } = start();

    const badName = await app.inject({ method: "POST", url: "/api/stacks/a%20b/plan", headers: WRITE });
    const badBody = await app.inject({
      method: "POST",
      url: "/api/stacks/network/apply",
      headers: WRITE,
      payload: { allowDestroy: true },
    });
    const badJson = await app.inject({
      method: "POST",
      url: "/api/apply",
      headers: { ...WRITE, "content-type": "application/json" },
      payload: "{not json",
    });

    expect(badName.statusCode).toBe(400);
    expect(badName.json().error).toMatchObject({
      code: "BAD_REQUEST",
      message: expect.stringContaining("params.name"),
    });
    expect(badBody.statusCode).toBe(400);
    expect(badBody.json().error.message).toContain('Unrecognized key: "allowDestroy"');
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json()).toEqual({ error: { code: "BAD_REQUEST", message: "body: not valid JSON" } });
    expect(service.calls).toEqual([]);
  });

  it("approves a blocked run, and answers 409 for a run that is not blocked and 404 for no run", async () => {
    const { app, service } = start();

    const approved = await app.inject({
      method: "POST",
      url: `/api/runs/${BLOCKED_RUN.id}/approve`,
      headers: WRITE,
    });
    const notBlocked = await app.inject({
      method: "POST",
      url: `/api/runs/${FINISHED_RUN.id}/approve`,
      headers: WRITE,
    });
    const missing = await app.inject({
      method: "POST",
      url: "/api/runs/no-such-run/approve",
      headers: WRITE,
    });

    expect(approved.statusCode).toBe(202);
    expect(service.callsOf("approve")[0]).toEqual([BLOCKED_RUN.id]);
    expect(notBlocked.statusCode).toBe(409);
    expect(notBlocked.json().error.code).toBe("RUN_NOT_BLOCKED");
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe("RUN_NOT_FOUND");
  });

  it("releases a stack's lock", async () => {
    const { app, service } = start();

    const response = await app.inject({ method: "DELETE", url: "/api/stacks/storage/lock", headers: WRITE });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ released: true });
    expect(service.callsOf("releaseLock")).toEqual([["storage"]]);
  });
});

describe("runs", () => {
  it("lists runs without their logs and plans, passing the filter on", async () => {
    const { app, service } = start();

    const response = await app.inject({
      method: "GET",
      url: "/api/runs?stack=network&kind=plan&status=succeeded&limit=5",
      headers: READ,
    });

    expect(response.statusCode).toBe(200);
    const runs = response.json().runs;
    expect(runs).toHaveLength(2);
    for (const run of runs) {
      expect(run).not.toHaveProperty("log");
      expect(run).not.toHaveProperty("plan");
    }
    expect(runs[0]).toMatchObject({
      id: FINISHED_RUN.id,
      status: "succeeded",
      summary: FINISHED_RUN.summary,
    });
    expect(service.callsOf("listRuns")).toEqual([
      [{ stack: "network", kind: "plan", status: "succeeded", limit: 5 }],
    ]);
  });

  it("refuses a bad query with 400 naming the field, without calling the service", async () => {
    const { app, service } = start();

    for (const [query, field] of [
      ["limit=0", "query.limit"],
      ["limit=1001", "query.limit"],
      ["limit=many", "query.limit"],
      ["kind=destroy", "query.kind"],
      ["status=done", "query.status"],
      ["stack=a/b", "query.stack"],
    ]) {
      const response = await app.inject({ method: "GET", url: `/api/runs?${query}`, headers: READ });
      expect(response.statusCode, query).toBe(400);
      expect(response.json().error.code).toBe("BAD_REQUEST");
      expect(response.json().error.message, query).toContain(`${field}: `);
    }
    const unknown = await app.inject({ method: "GET", url: "/api/runs?colour=red", headers: READ });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.message).toContain("colour");
    expect(service.calls).toEqual([]);
  });

  it("shows one run with its log and plan, and links to its page when the public URL is known", async () => {
    const { app } = start({ publicUrl: "https://runner.example.com/gitops" });

    const response = await app.inject({ method: "GET", url: `/api/runs/${FINISHED_RUN.id}`, headers: READ });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      ...FINISHED_RUN,
      url: `https://runner.example.com/gitops/runs/${FINISHED_RUN.id}`,
    });
  });

  it("answers 404 RUN_NOT_FOUND for a run that does not exist", async () => {
    const { app } = start();

    const response = await app.inject({ method: "GET", url: "/api/runs/no-such-run", headers: READ });

    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({
      error: { code: "RUN_NOT_FOUND", message: "no run with id no-such-run" },
    });
  });
});

describe("the run page", () => {
  it("answers a self-contained HTML page to a browser, with every value escaped", async () => {
    const { app } = start();

    const response = await app.inject({
      method: "GET",
      url: `/runs/${FINISHED_RUN.id}`,
      headers: { ...READ, accept: BROWSER_ACCEPT },
    });

    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(response.headers["content-security-policy"]).toContain("default-src 'none'");
    expect(response.headers.vary).toBe("Accept");
    const page = response.body;
    expect(page).not.toContain("<script");
    expect(page).toContain("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;");
    expect(page).toContain("aws_s3_bucket.logs[&quot;&lt;b&gt;&quot;]");
    expect(page).not.toMatch(/<link|src=|href=/);
    for (const shown of [
      FINISHED_RUN.kind,
      FINISHED_RUN.stack,
      FINISHED_RUN.commit,
      "changes",
      "42 s",
      "tofu 1.12.6",
    ]) {
      expect(page).toContain(shown);
    }
  });

  it("escapes the error of a blocked run", async () => {
    const { app } = start();

    const response = await app.inject({
      method: "GET",
      url: `/runs/${BLOCKED_RUN.id}`,
      headers: { ...READ, accept: "text/html" },
    });

    expect(response.body).toContain("DESTROY_NOT_ALLOWED");
    expect(response.body).toContain("1 resource &amp; &lt;the&gt; policy forbids it");
  });

  it("answers JSON to a client that does not prefer HTML", async () => {
    const { app } = start();

    for (const accept of [undefined, "*/*", "application/json", "text/html;q=0.5, application/json"]) {
      const response = await app.inject({
        method: "GET",
        url: `/runs/${FINISHED_RUN.id}`,
        headers: accept === undefined ? READ : { ...READ, accept },
      });
      expect(response.headers["content-type"], accept).toContain("application/json");
      expect(response.json()).toEqual(FINISHED_RUN);
    }
  });

  it("accepts the token in the query so that a link opens, and never logs it or the header token", async () => {
    const { app, logs } = start();

    const page = await app.inject({
      method: "GET",
      url: `/runs/${FINISHED_RUN.id}?token=${READ_TOKEN}`,
      headers: { accept: BROWSER_ACCEPT },
    });
    const wrong = await app.inject({ method: "GET", url: `/runs/${FINISHED_RUN.id}?token=guess` });
    await app.inject({ method: "POST", url: "/api/plan", headers: WRITE });
    const body = '{"repository":"demo"}';
    await app.inject({
      method: "POST",
      url: "/webhooks/generic",
      headers: {
        "content-type": "application/json",
        "x-gitops-runner-signature": sign(body),
        "x-gitops-runner-delivery": "d-1",
      },
      payload: body,
    });

    expect(page.statusCode).toBe(200);
    expect(page.headers["content-type"]).toContain("text/html");
    expect(wrong.statusCode).toBe(401);
    const logged = logs.join("");
    expect(logged).toContain(`/runs/${FINISHED_RUN.id}?token=%5Bredacted%5D`);
    expect(logged).toContain("webhook accepted");
    for (const secret of [READ_TOKEN, WRITE_TOKEN, SECRET, "guess"]) {
      expect(logged).not.toContain(secret);
    }
  });
});

describe("the generic webhook", () => {
  const body = JSON.stringify({ repository: "https://git.example.com/infra.git", ref: "refs/heads/main" });

  function deliver(headers: Record<string, string>, payload = body) {
    return app?.inject({
      method: "POST",
      url: "/webhooks/generic",
      headers: { "content-type": "application/json", ...headers },
      payload,
    });
  }

  it("queues a poll for a correctly signed delivery, once per delivery id", async () => {
    const { service } = start();
    const headers = { "x-gitops-runner-signature": sign(body), "x-gitops-runner-delivery": "delivery-42" };

    const first = await deliver(headers);
    const again = await deliver(headers);

    expect(first?.statusCode).toBe(202);
    expect(first?.json()).toEqual({ eventId: "event-1", duplicate: false });
    expect(again?.statusCode).toBe(202);
    expect(again?.json()).toEqual({ eventId: "event-1", duplicate: true });
    expect(service.callsOf("requestPoll")).toEqual([
      ["generic", "delivery-42"],
      ["generic", "delivery-42"],
    ]);
  });

  it("verifies the exact bytes, whatever their content type parameters", async () => {
    const { service } = start();
    const spaced = '{ "repository" : "demo" }';

    const response = await deliver(
      {
        "content-type": "application/json; charset=utf-8",
        "x-gitops-runner-signature": sign(spaced),
        "x-gitops-runner-delivery": "d-2",
      },
      spaced,
    );

    expect(response?.statusCode).toBe(202);
    expect(service.callsOf("requestPoll")).toHaveLength(1);
  });

  it("refuses a wrong, missing, malformed or stale signature with 401 and queues nothing", async () => {
    const { service } = start();
    const delivery = { "x-gitops-runner-delivery": "delivery-43" };

    const refusals = [
      await deliver({ ...delivery, "x-gitops-runner-signature": sign(body, "another-secret") }),
      await deliver(delivery),
      await deliver({ ...delivery, "x-gitops-runner-signature": sign(body).replace("sha256=", "sha1=") }),
      await deliver({ ...delivery, "x-gitops-runner-signature": sign(body).slice(0, -2) }),
      await deliver({ ...delivery, "x-gitops-runner-signature": "sha256=zz" }),
      await deliver({ ...delivery, "x-gitops-runner-signature": sign(body) }, body.replace("main", "evil")),
    ];

    for (const response of refusals) {
      expect(response?.statusCode).toBe(401);
      expect(response?.json().error.code).toBe("SIGNATURE_INVALID");
    }
    expect(service.callsOf("requestPoll")).toEqual([]);
  });

  it("refuses a signed delivery without a delivery id, or with malformed JSON, with 400", async () => {
    const { service } = start();
    const malformed = '{"repository": ';

    const noDelivery = await deliver({ "x-gitops-runner-signature": sign(body) });
    const longDelivery = await deliver({
      "x-gitops-runner-signature": sign(body),
      "x-gitops-runner-delivery": "d".repeat(201),
    });
    const badJson = await deliver(
      { "x-gitops-runner-signature": sign(malformed), "x-gitops-runner-delivery": "delivery-44" },
      malformed,
    );
    const wrongShape = await deliver(
      { "x-gitops-runner-signature": sign('{"repository": 7}'), "x-gitops-runner-delivery": "delivery-45" },
      '{"repository": 7}',
    );

    expect(noDelivery?.statusCode).toBe(400);
    expect(noDelivery?.json().error.message).toContain("x-gitops-runner-delivery");
    expect(longDelivery?.statusCode).toBe(400);
    expect(badJson?.statusCode).toBe(400);
    expect(badJson?.json()).toEqual({ error: { code: "BAD_REQUEST", message: "body: not valid JSON" } });
    expect(wrongShape?.statusCode).toBe(400);
    expect(wrongShape?.json().error.message).toContain("body.repository");
    expect(service.callsOf("requestPoll")).toEqual([]);
  });

  it("answers 404 when no webhook secret is configured", async () => {
    const { service } = start({ webhookSecret: undefined });

    const response = await deliver({
      "x-gitops-runner-signature": sign(body),
      "x-gitops-runner-delivery": "d-5",
    });

    expect(response?.statusCode).toBe(404);
    expect(response?.json().error.code).toBe("NOT_FOUND");
    expect(service.calls).toEqual([]);
  });
});

describe("errors", () => {
  it("answers 500 with no internal text when the service fails, and logs the error instead", async () => {
    const { app, service, logs } = start();
    service.failing.set("listStacks", new Error("connect to postgres://admin:hunter2@db:5432 failed"));

    const response = await app.inject({ method: "GET", url: "/api/stacks", headers: READ });

    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: { code: "INTERNAL", message: "internal error" } });
    expect(response.body).not.toContain("hunter2");
    expect(logs.join("")).toContain("request failed");
  });

  it("does not pass on a runner error whose code is not meant for clients", async () => {
    const { app, service } = start();
    service.failing.set("trigger", new RunnerError("GIT_FAILED", "git fetch https://user:pass@host failed"));

    const response = await app.inject({ method: "POST", url: "/api/plan", headers: WRITE });

    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: { code: "INTERNAL", message: "internal error" } });
  });

  it("answers 404 NOT_FOUND for an unknown route, without echoing the query", async () => {
    const { app } = start();

    const response = await app.inject({ method: "GET", url: `/nowhere?token=${READ_TOKEN}` });

    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ error: { code: "NOT_FOUND", message: "no route for GET /nowhere" } });
  });

  it("refuses a body over 1 MiB with 413", async () => {
    const { app, service } = start();

    const response = await app.inject({
      method: "POST",
      url: "/api/plan",
      headers: { ...WRITE, "content-type": "application/json" },
      payload: JSON.stringify({ padding: "x".repeat(1024 * 1024) }),
    });

    expect(response.statusCode).toBe(413);
    expect(response.json().error.code).toBe("PAYLOAD_TOO_LARGE");
    expect(service.calls).toEqual([]);
  });

  it("refuses to start with an empty webhook secret", () => {
    expect(() => start({ webhookSecret: "" })).toThrow(/secret is empty/);
  });
});
