import { describe, expect, it } from "vitest";
import type { StackView } from "../src/service/api.ts";
import {
  BLOCKED_RUN,
  FINISHED_RUN,
  READ,
  READ_TOKEN,
  startHttp,
  WRITE,
  WRITE_TOKEN,
} from "./support/http-app.ts";

describe("API authentication", () => {
  it("refuses a request without a token with 401 and asks for a bearer token", async () => {
    const { send, service } = await startHttp();

    const response = await send({ method: "GET", url: "/api/stacks" });

    expect(response.statusCode).toBe(401);
    expect(response.json()).toEqual({
      error: { code: "UNAUTHORIZED", message: "a bearer token is required" },
    });
    expect(response.headers["www-authenticate"]).toContain("Bearer");
    expect(service.calls).toEqual([]);
  });

  it("refuses an unknown token, a prefix of a real one, and a non-bearer scheme with 401", async () => {
    const { send, service } = await startHttp();

    for (const authorization of [
      "Bearer not-a-token",
      `Bearer ${WRITE_TOKEN.slice(0, -1)}`,
      `Basic ${WRITE_TOKEN}`,
      "Bearer ",
    ]) {
      const response = await send({ method: "POST", url: "/api/plan", headers: { authorization } });
      expect(response.statusCode, authorization).toBe(401);
      expect(response.json().error.code).toBe("UNAUTHORIZED");
    }
    expect(service.calls).toEqual([]);
  });

  it("refuses a read token on every mutating route with 403 and queues nothing", async () => {
    const { send, service } = await startHttp();

    for (const [method, url] of [
      ["POST", "/api/stacks/network/plan"],
      ["POST", "/api/stacks/network/apply"],
      ["POST", "/api/stacks/network/drift"],
      ["POST", "/api/apply"],
      ["POST", `/api/runs/${BLOCKED_RUN.id}/approve`],
      ["DELETE", "/api/stacks/storage/lock"],
    ] as const) {
      const response = await send({ method, url, headers: READ });
      expect(response.statusCode, url).toBe(403);
      expect(response.json().error.code).toBe("FORBIDDEN");
    }
    expect(service.calls).toEqual([]);
  });

  it("lets a write token read too", async () => {
    const { send } = await startHttp();

    const response = await send({ method: "GET", url: "/api/stacks", headers: WRITE });

    expect(response.statusCode).toBe(200);
    expect(response.json().stacks.map((stack: StackView) => stack.name)).toEqual(["network", "storage"]);
  });

  it("does not take the token from the query string on API routes", async () => {
    const { send, service } = await startHttp();

    const response = await send({
      method: "GET",
      url: `/api/runs/${FINISHED_RUN.id}?token=${READ_TOKEN}`,
    });

    expect(response.statusCode).toBe(401);
    expect(service.calls).toEqual([]);
  });
});
