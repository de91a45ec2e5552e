import { describe, expect, it } from "vitest";
import { SECRET, type StartedHttp, sign, startHttp } from "./support/http-app.ts";

describe("the generic webhook", () => {
  const body = JSON.stringify({ repository: "https://git.example.com/infra.git", ref: "refs/heads/main" });

  function deliver(send: StartedHttp["send"], headers: Record<string, string>, payload = body) {
    return send({
      method: "POST",
      url: "/webhooks/generic",
      headers: { "content-type": "application/json", ...headers },
      payload,
    });
  }

  it("queues a poll for a correctly signed delivery, once per delivery id", async () => {
    const { send, service } = await startHttp();
    const headers = { "x-gitops-runner-signature": sign(body), "x-gitops-runner-delivery": "delivery-42" };

    const first = await deliver(send, headers);
    const again = await deliver(send, headers);

    expect(first.statusCode).toBe(202);
    expect(first.json()).toEqual({ eventId: "event-1", duplicate: false });
    expect(again.statusCode).toBe(202);
    expect(again.json()).toEqual({ eventId: "event-1", duplicate: true });
    expect(service.callsOf("requestPoll")).toEqual([
      ["generic", "delivery-42"],
      ["generic", "delivery-42"],
    ]);
  });

  it("verifies the exact bytes, whatever their content type parameters", async () => {
    const { send, service } = await startHttp();
    const spaced = '{ "repository" : "demo" }';

    const response = await deliver(
      send,
      {
        "content-type": "application/json; charset=utf-8",
        "x-gitops-runner-signature": sign(spaced),
        "x-gitops-runner-delivery": "d-2",
      },
      spaced,
    );

    expect(response.statusCode).toBe(202);
    expect(service.callsOf("requestPoll")).toHaveLength(1);
  });

  it("refuses a wrong, missing, malformed or stale signature with 401 and queues nothing", async () => {
    const { send, service } = await startHttp();
    const delivery = { "x-gitops-runner-delivery": "delivery-43" };

    const refusals = [
      await deliver(send, { ...delivery, "x-gitops-runner-signature": sign(body, "another-secret") }),
      await deliver(send, delivery),
      await deliver(send, {
        ...delivery,
        "x-gitops-runner-signature": sign(body).replace("sha256=", "sha1="),
      }),
      await deliver(send, { ...delivery, "x-gitops-runner-signature": sign(body).slice(0, -2) }),
      await deliver(send, { ...delivery, "x-gitops-runner-signature": "sha256=zz" }),
      await deliver(
        send,
        { ...delivery, "x-gitops-runner-signature": sign(body) },
        body.replace("main", "evil"),
      ),
    ];

    for (const response of refusals) {
      expect(response.statusCode).toBe(401);
      expect(response.json().error.code).toBe("SIGNATURE_INVALID");
    }
    expect(service.callsOf("requestPoll")).toEqual([]);
  });

  it("refuses a signed delivery without a delivery id, or with malformed JSON, with 400", async () => {
    const { send, service } = await startHttp();
    const malformed = '{"repository": ';

    const noDelivery = await deliver(send, { "x-gitops-runner-signature": sign(body) });
    const longDelivery = await deliver(send, {
      "x-gitops-runner-signature": sign(body),
      "x-gitops-runner-delivery": "d".repeat(201),
    });
    const badJson = await deliver(
      send,
      { "x-gitops-runner-signature": sign(malformed), "x-gitops-runner-delivery": "delivery-44" },
      malformed,
    );
    const wrongShape = await deliver(
      send,
      { "x-gitops-runner-signature": sign('{"repository": 7}'), "x-gitops-runner-delivery": "delivery-45" },
      '{"repository": 7}',
    );

    expect(noDelivery.statusCode).toBe(400);
    expect(noDelivery.json().error.message).toContain("x-gitops-runner-delivery");
    expect(longDelivery.statusCode).toBe(400);
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json()).toEqual({ error: { code: "BAD_REQUEST", message: "body: not valid JSON" } });
    expect(wrongShape.statusCode).toBe(400);
    expect(wrongShape.json().error.message).toContain("body.repository");
    expect(service.callsOf("requestPoll")).toEqual([]);
  });

  it("answers 404 when no webhook secret is configured", async () => {
    const { send, service } = await startHttp({ webhookSecret: undefined });

    const response = await deliver(send, {
      "x-gitops-runner-signature": sign(body),
      "x-gitops-runner-delivery": "d-5",
    });

    expect(response.statusCode).toBe(404);
    expect(response.json().error.code).toBe("NOT_FOUND");
    expect(service.calls).toEqual([]);
  });
});

describe("webhook content types", () => {
  const body = JSON.stringify({ repository: "demo" });

  it("refuses anything but JSON with 415 before the signature is checked, and queues nothing", async () => {
    const { send, service } = await startHttp();
    const signedEmpty = sign("");

    const refusals = [
      // Signed over an empty buffer: what a text body used to be checked against.
      { "content-type": "text/plain", "x-gitops-runner-signature": signedEmpty },
      { "content-type": "text/plain", "x-gitops-runner-signature": sign(body) },
      { "content-type": "application/x-www-form-urlencoded", "x-gitops-runner-signature": sign(body) },
      { "content-type": "application/json-seq", "x-gitops-runner-signature": sign(body) },
      { "x-gitops-runner-signature": signedEmpty },
      // Unsigned: the content type is refused first all the same.
      { "content-type": "text/plain" },
    ];
    for (const headers of refusals) {
      const response = await send({
        method: "POST",
        url: "/webhooks/generic",
        headers: { "x-gitops-runner-delivery": "d-type", ...headers },
        payload: body,
      });
      expect(response.statusCode, JSON.stringify(headers)).toBe(415);
      expect(response.json()).toEqual({
        error: {
          code: "UNSUPPORTED_MEDIA_TYPE",
          message: "content-type: webhooks are accepted as application/json only",
        },
      });
    }
    expect(service.calls).toEqual([]);
  });

  it("refuses a forge delivery that is not JSON the same way", async () => {
    const { send, service } = await startHttp({ forgeWebhook: { kind: "github", secret: SECRET } });
    const push = JSON.stringify({ ref: "refs/heads/main", after: "d".repeat(40) });

    const form = await send({
      method: "POST",
      url: "/webhooks/github",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-hub-signature-256": sign(`payload=${encodeURIComponent(push)}`),
        "x-github-delivery": "g-1",
        "x-github-event": "push",
      },
      payload: `payload=${encodeURIComponent(push)}`,
    });
    const json = await send({
      method: "POST",
      url: "/webhooks/github",
      headers: {
        "content-type": "application/json",
        "x-hub-signature-256": sign(push),
        "x-github-delivery": "g-2",
        "x-github-event": "push",
      },
      payload: push,
    });

    expect(form.statusCode).toBe(415);
    expect(form.json().error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    expect(json.statusCode).toBe(202);
    expect(service.callsOf("forgeEvent")).toEqual([
      [{ kind: "push", ref: "refs/heads/main", after: "d".repeat(40) }, "g-2"],
    ]);
  });
});
