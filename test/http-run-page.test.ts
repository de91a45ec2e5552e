import { describe, expect, it } from "vitest";
import {
  BLOCKED_RUN,
  BROWSER_ACCEPT,
  FINISHED_RUN,
  READ,
  READ_TOKEN,
  SECRET,
  sign,
  startHttp,
  WRITE,
  WRITE_TOKEN,
} from "./support/http-app.ts";

describe("the run page", () => {
  it("answers a self-contained HTML page to a browser, with every value escaped", async () => {
    const { send } = await startHttp();

    const response = await send({
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
    const { send } = await startHttp();

    const response = await send({
      method: "GET",
      url: `/runs/${BLOCKED_RUN.id}`,
      headers: { ...READ, accept: "text/html" },
    });

    expect(response.body).toContain("DESTROY_NOT_ALLOWED");
    expect(response.body).toContain("1 resource &amp; &lt;the&gt; policy forbids it");
  });

  it("answers JSON to a client that does not prefer HTML", async () => {
    const { send } = await startHttp();

    for (const accept of [undefined, "*/*", "application/json", "text/html;q=0.5, application/json"]) {
      const response = await send({
        method: "GET",
        url: `/runs/${FINISHED_RUN.id}`,
        headers: accept === undefined ? READ : { ...READ, accept },
      });
      expect(response.headers["content-type"], accept).toContain("application/json");
      expect(response.json()).toEqual(FINISHED_RUN);
    }
  });

  it("accepts the token in the query so that a link opens, and never logs it or the header token", async () => {
    const { send, logs } = await startHttp();

    const page = await send({
      method: "GET",
      url: `/runs/${FINISHED_RUN.id}?token=${READ_TOKEN}`,
      headers: { accept: BROWSER_ACCEPT },
    });
    const wrong = await send({ method: "GET", url: `/runs/${FINISHED_RUN.id}?token=guess` });
    await send({ method: "POST", url: "/api/plan", headers: WRITE });
    const body = '{"repository":"demo"}';
    await send({
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
