import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { RunnerError } from "../src/errors.ts";
import { STATUS_OF } from "../src/http/errors.ts";
import { READ, READ_TOKEN, sendRaw, sign, startHttp, WRITE } from "./support/http-app.ts";

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

  it("are all documented in the README with their status", async () => {
    const readme = await readFile(new URL("../README.md", import.meta.url), "utf8");
    const rows = [...readme.matchAll(/^\| `([A-Z_]+)` +\| (\d{3}) +\|/gm)];

    expect(Object.fromEntries(rows.map(([, code, status]) => [code, Number(status)]))).toEqual(STATUS_OF);
  });

  it("refuses to start with an empty webhook secret", async () => {
    await expect(startHttp({ webhookSecret: "" })).rejects.toThrow(/secret is empty/);
  });
});

/** What fastify's router and Node's HTTP parser refuse, before any route runs, in the same error shape. */
describe("requests refused before any route", () => {
  it("answers a header block over 16 KB with 431, and logs neither the headers nor the token", async () => {
    const { send, service, logs } = await startHttp();

    const response = await send({
      method: "GET",
      url: "/api/stacks",
      headers: { ...READ, "x-padding": "p".repeat(17 * 1024) },
    });

    expect(response.statusCode).toBe(431);
    expect(response.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(response.json()).toEqual({
      error: { code: "HEADERS_TOO_LARGE", message: "headers: larger than the limit of 16384 bytes" },
    });
    expect(service.calls).toEqual([]);
    const logged = logs.join("");
    expect(logged).toContain("HEADERS_TOO_LARGE");
    expect(logged).not.toContain(READ_TOKEN);
    expect(logged).not.toContain("ppppp");
  });

  it("answers bytes that are not HTTP with 400", async () => {
    const { url } = await startHttp();

    const answer = await sendRaw(url, "HELLO /api/stacks\r\n\r\n");

    const [head = "", body] = answer.split("\r\n\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(head).toContain("Content-Type: application/json; charset=utf-8");
    expect(JSON.parse(body ?? "")).toEqual({
      error: { code: "BAD_REQUEST", message: "not a valid HTTP request" },
    });
  });

  it("answers a path that is not valid percent-encoding with 400, without repeating the URL's token", async () => {
    const { send, service } = await startHttp();

    const response = await send({ method: "GET", url: `/runs/%E0%A4%A?token=${READ_TOKEN}` });

    expect(response.statusCode).toBe(400);
    expect(response.json()).toEqual({
      error: { code: "BAD_REQUEST", message: "url: the path is not valid percent-encoding" },
    });
    expect(response.body).not.toContain(READ_TOKEN);
    expect(service.calls).toEqual([]);
  });

  it("answers a path parameter longer than a name may be with 414; one of the longest length passes", async () => {
    const { send, service } = await startHttp();

    const tooLong = await send({ method: "GET", url: `/api/runs/${"r".repeat(201)}`, headers: READ });
    const longest = await send({ method: "GET", url: `/api/runs/${"r".repeat(200)}`, headers: READ });

    expect(tooLong.statusCode).toBe(414);
    expect(tooLong.json()).toEqual({
      error: { code: "URI_TOO_LONG", message: "url: a path parameter is longer than 200 characters" },
    });
    expect(longest.statusCode).toBe(404);
    expect(longest.json().error.code).toBe("RUN_NOT_FOUND");
    expect(service.callsOf("getRun")).toEqual([["r".repeat(200)]]);
  });

  it("refuses a JSON body that reaches for a prototype with 400 naming the key, on the API and on webhooks", async () => {
    const { send, service } = await startHttp();
    const json = { ...WRITE, "content-type": "application/json" };

    const proto = await send({
      method: "POST",
      url: "/api/plan",
      headers: json,
      payload: '{"__proto__":{"x":1}}',
    });
    const nested = await send({
      method: "POST",
      url: "/api/plan",
      headers: json,
      payload: '{"a":{"constructor":{"prototype":{"x":1}}}}',
    });
    const signedBody = '{"repository":"demo","__proto__":{"x":1}}';
    const webhook = await send({
      method: "POST",
      url: "/webhooks/generic",
      headers: {
        "content-type": "application/json",
        "x-gitops-runner-signature": sign(signedBody),
        "x-gitops-runner-delivery": "d-proto",
      },
      payload: signedBody,
    });

    expect(proto.statusCode).toBe(400);
    expect(proto.json()).toEqual({
      error: { code: "BAD_REQUEST", message: 'body: a "__proto__" key is not allowed' },
    });
    expect(nested.statusCode).toBe(400);
    expect(nested.json()).toEqual({
      error: { code: "BAD_REQUEST", message: 'body: a "constructor" key holding "prototype" is not allowed' },
    });
    expect(webhook.statusCode).toBe(400);
    expect(webhook.json().error.message).toBe('body: a "__proto__" key is not allowed');
    expect(service.calls).toEqual([]);
  });
});
