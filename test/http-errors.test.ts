import { describe, expect, it } from "vitest";
import { RunnerError } from "../src/errors.ts";
import { READ, READ_TOKEN, startHttp, WRITE } from "./support/http-app.ts";

describe("errors", () => {
  it("answers 500 with no internal text when the service fails, and logs the error instead", async () => {
    const { send, service, logs } = await startHttp();
    service.failing.set("listStacks", new Error("connect to postgres://admin:hunter2@db:5432 failed"));

    const response = await send({ method: "GET", url: "/api/stacks", headers: READ });

    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: { code: "INTERNAL", message: "internal error" } });
    expect(response.body).not.toContain("hunter2");
    expect(logs.join("")).toContain("request failed");
  });

  it("does not pass on a runner error whose code is not meant for clients", async () => {
    const { send, service } = await startHttp();
    service.failing.set("trigger", new RunnerError("GIT_FAILED", "git fetch https://user:pass@host failed"));

    const response = await send({ method: "POST", url: "/api/plan", headers: WRITE });

    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: { code: "INTERNAL", message: "internal error" } });
  });

  it("answers 404 NOT_FOUND for an unknown route, without echoing the query", async () => {
    const { send } = await startHttp();

    const response = await send({ method: "GET", url: `/nowhere?token=${READ_TOKEN}` });

    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ error: { code: "NOT_FOUND", message: "no route for GET /nowhere" } });
  });

  it("refuses a body over 1 MiB with 413", async () => {
    const { send, service } = await startHttp();

    const response = await send({
      method: "POST",
      url: "/api/plan",
      headers: { ...WRITE, "content-type": "application/json" },
      payload: JSON.stringify({ padding: "x".repeat(1024 * 1024) }),
    });

    expect(response.statusCode).toBe(413);
    expect(response.json().error.code).toBe("PAYLOAD_TOO_LARGE");
    expect(service.calls).toEqual([]);
  });

  it("refuses to start with an empty webhook secret", async () => {
    await expect(startHttp({ webhookSecret: "" })).rejects.toThrow(/secret is empty/);
  });
});
