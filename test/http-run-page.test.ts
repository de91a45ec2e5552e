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
  it("answers the dashboard's run page to a browser, with every value escaped and every asset its own", async () => {
    const { send } = await startHttp();

    const response = await send({
      method: "GET",
      url: `/runs/${FINISHED_RUN.id}`,
      headers: { ...READ, accept: BROWSER_ACCEPT },
    });

    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(response.headers["content-security-policy"]).toContain("default-src 'none'; script-src 'self'");
    expect(response.headers.vary).toBe("Accept");
    const page = response.body;
    expect(page).not.toMatch(/<script(?![^>]* src="\/assets\/)/);
    expect(page).toContain("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;");
    expect(page).toContain("aws_s3_bucket.logs[&quot;&lt;b&gt;&quot;]");
    expect(page).toContain("&quot;&lt;i&gt;logs&lt;/i&gt;&quot;");
    expect(page).toContain("(known after apply)");
    for (const [, url] of page.matchAll(/(?:src|href)="([^"]*)"/g)) expect(url).toMatch(/^(\/|#)/);
    for (const shown of [
      FINISHED_RUN.kind,
      FINISHED_RUN.stack,
      FINISHED_RUN.commit,
      "changes",
      "42.0 s",
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

  it("sends a browser without a session to the sign-in page, and takes no token from the query", async () => {
    const { send, logs } = await startHttp();

    const page = await send({
      method: "GET",
      url: `/runs/${FINISHED_RUN.id}?token=${READ_TOKEN}`,
      headers: { accept: BROWSER_ACCEPT },
    });
    const json = await send({ method: "GET", url: `/runs/${FINISHED_RUN.id}?token=${READ_TOKEN}` });
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

    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe(`/sign-in?next=${encodeURIComponent(`/runs/${FINISHED_RUN.id}`)}`);
    expect(json.statusCode).toBe(401);
    const logged = logs.join("");
    expect(logged).toContain(`/runs/${FINISHED_RUN.id}?token=%5Bredacted%5D`);
    expect(logged).toContain("webhook accepted");
    for (const secret of [READ_TOKEN, WRITE_TOKEN, SECRET]) {
      expect(logged).not.toContain(secret);
    }
  });
});
