import { describe, expect, it } from "vitest";
import type { AuditEntry } from "../src/store/records.ts";
import { BLOCKED_RUN, FINISHED_RUN, READ, startHttp, WRITE } from "./support/http-app.ts";

describe("health, readiness and metrics", () => {
  it("answer without a token", async () => {
    const { send, service } = await startHttp();

    const health = await send({ method: "GET", url: "/healthz" });
    const ready = await send({ method: "GET", url: "/readyz" });
    const metrics = await send({ method: "GET", url: "/metrics" });

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
    const { send, service } = await startHttp();
    service.readiness_ = { ready: false, checks: { store: false, repository: true } };

    const ready = await send({ method: "GET", url: "/readyz" });

    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toEqual({ ready: false, checks: { store: false, repository: true } });
  });
});

describe("triggers, approval and locks", () => {
  it("queues a plan of one stack with 202 and the event id", async () => {
    const { send, service } = await startHttp();

    const response = await send({ method: "POST", url: "/api/stacks/network/plan", headers: WRITE });

    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ eventId: "event-1", duplicate: false });
    expect(service.callsOf("trigger")).toEqual([[{ kind: "plan", stack: "network", tokenName: "writer" }]]);
  });

  it("queues a drift check of every stack", async () => {
    const { send, service } = await startHttp();

    const response = await send({
      method: "POST",
      url: "/api/drift",
      headers: WRITE,
      payload: {},
    });

    expect(response.statusCode).toBe(202);
    expect(service.callsOf("trigger")).toEqual([[{ kind: "drift", tokenName: "writer" }]]);
  });

  it("answers 404 STACK_UNKNOWN for a stack the app does not have", async () => {
    const { send } = await startHttp();

    const response = await send({ method: "POST", url: "/api/stacks/nope/apply", headers: WRITE });

    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ error: { code: "STACK_UNKNOWN", message: "unknown stack nope" } });
  });

  it("refuses a malformed stack name or an unexpected body field with 400 before calling the service", async () => {
    const { send, service } = await startHttp();

    const badName = await send({ method: "POST", url: "/api/stacks/a%20b/plan", headers: WRITE });
    const badBody = await send({
      method: "POST",
      url: "/api/stacks/network/apply",
      headers: WRITE,
      payload: { allowDestroy: true },
    });
    const badJson = await send({
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
    const { send, service } = await startHttp();

    const approved = await send({
      method: "POST",
      url: `/api/runs/${BLOCKED_RUN.id}/approve`,
      headers: WRITE,
    });
    const notBlocked = await send({
      method: "POST",
      url: `/api/runs/${FINISHED_RUN.id}/approve`,
      headers: WRITE,
    });
    const missing = await send({
      method: "POST",
      url: "/api/runs/no-such-run/approve",
      headers: WRITE,
    });

    expect(approved.statusCode).toBe(202);
    expect(service.callsOf("approve")[0]).toEqual([BLOCKED_RUN.id, "writer"]);
    expect(notBlocked.statusCode).toBe(409);
    expect(notBlocked.json().error.code).toBe("RUN_NOT_BLOCKED");
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe("RUN_NOT_FOUND");
  });

  it("releases a stack's lock", async () => {
    const { send, service } = await startHttp();

    const response = await send({ method: "DELETE", url: "/api/stacks/storage/lock", headers: WRITE });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ released: true });
    expect(service.callsOf("releaseLock")).toEqual([["storage"]]);
  });
});

describe("runs", () => {
  it("lists runs without their logs and plans, passing the filter on", async () => {
    const { send, service } = await startHttp();

    const response = await send({
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
    const { send, service } = await startHttp();

    for (const [query, field] of [
      ["limit=0", "query.limit"],
      ["limit=1001", "query.limit"],
      ["limit=many", "query.limit"],
      ["kind=destroy", "query.kind"],
      ["status=done", "query.status"],
      ["stack=a/b", "query.stack"],
    ]) {
      const response = await send({ method: "GET", url: `/api/runs?${query}`, headers: READ });
      expect(response.statusCode, query).toBe(400);
      expect(response.json().error.code).toBe("BAD_REQUEST");
      expect(response.json().error.message, query).toContain(`${field}: `);
    }
    const unknown = await send({ method: "GET", url: "/api/runs?colour=red", headers: READ });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.message).toContain("colour");
    expect(service.calls).toEqual([]);
  });

  it("shows one run with its log and plan, and links to its page when the public URL is known", async () => {
    const { send } = await startHttp({ publicUrl: "https://runner.example.com/gitops" });

    const response = await send({ method: "GET", url: `/api/runs/${FINISHED_RUN.id}`, headers: READ });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      ...FINISHED_RUN,
      url: `https://runner.example.com/gitops/runs/${FINISHED_RUN.id}`,
    });
  });

  it("answers 404 RUN_NOT_FOUND for a run that does not exist", async () => {
    const { send } = await startHttp();

    const response = await send({ method: "GET", url: "/api/runs/no-such-run", headers: READ });

    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({
      error: { code: "RUN_NOT_FOUND", message: "no run with id no-such-run" },
    });
  });
});

describe("the audit trail", () => {
  const entry: AuditEntry = {
    runId: "run-9",
    repoId: "demo-1a2b3c",
    appDir: "",
    stack: "network",
    kind: "apply",
    commit: "0123456789abcdef0123456789abcdef01234567",
    result: "applied",
    at: "2026-03-01T12:00:00.000Z",
    trigger: "webhook:push",
    origin: {
      deliveryId: "d-1",
      pullRequest: { number: 7, url: "https://forge/pr/7", author: "ana", mergedBy: "bo", approvers: ["cy"] },
    },
    commitAuthor: "Ana <ana@example.com>",
    summary: { add: 1, change: 0, destroy: 0, replace: 0, import: 0 },
    resources: [{ address: "aws_s3_bucket.logs", actions: ["create"] }],
  };

  it("lists applied changes for a read token, the bounds of a day made whole", async () => {
    const { send, service } = await startHttp();
    service.audit = [entry];

    const response = await send({
      method: "GET",
      url: "/api/audit?stack=network&since=2026-03-01&until=2026-03-01&limit=5",
      headers: READ,
    });

    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ entries: [entry] });
    expect(service.callsOf("listAudit")).toEqual([
      [
        {
          stack: "network",
          since: "2026-03-01T00:00:00.000Z",
          until: "2026-03-01T23:59:59.999Z",
          limit: 5,
        },
      ],
    ]);
  });

  it("refuses a bound that is not a date or a zoned time, naming it, and asks nothing of the service", async () => {
    const { send, service } = await startHttp();

    const response = await send({ method: "GET", url: "/api/audit?since=yesterday", headers: READ });
    const noToken = await send({ method: "GET", url: "/api/audit" });

    expect(response.statusCode).toBe(400);
    expect(response.json().error).toMatchObject({
      code: "BAD_REQUEST",
      message: expect.stringMatching(/^since: /),
    });
    expect(noToken.statusCode).toBe(401);
    expect(service.callsOf("listAudit")).toEqual([]);
  });

  it("never serves a field its response schema does not name", async () => {
    const { send, service } = await startHttp();
    service.audit = [{ ...entry, secret: "x" } as AuditEntry];

    const response = await send({ method: "GET", url: "/api/audit", headers: READ });

    expect(response.statusCode).toBe(500);
    expect(response.body).not.toContain('"secret"');
  });
});
