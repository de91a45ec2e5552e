import { once } from "node:events";
import { chmod, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import path from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { startFakeGitHub } from "./support/fake-github.ts";
import { deliverGitHub, githubForgeConfig, githubPullRequest } from "./support/github-deliveries.ts";
import { dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";
import { primaryEngine } from "./support/toolchain.ts";

/** An engine that misbehaves the way only the runner's side can: `show -json` prints no plan. */
async function brokenEngine(dir: string): Promise<string> {
  const file = path.join(dir, "engine-with-a-broken-show");
  await writeFile(
    file,
    [
      "#!/bin/sh",
      'if [ "$1" = show ]; then echo \'{"format_version":"1.2","internal":"a stack trace only the operator should read"}\'; exit 0; fi',
      `exec ${primaryEngine()} "$@"`,
      "",
    ].join("\n"),
  );
  await chmod(file, 0o755);
  return file;
}

describe("a run that errors (the runner's own fault)", () => {
  it("shows people a short coded line in the pull request and in chat, and keeps the detail for the operator", async () => {
    const data = await dataDir();
    const repo = await TestRepo.create({ web: { service: { input: { size: 1 } } } });
    const secret = "forge-webhook-secret";
    const token = "forge-token-abc123";
    const forge = await startFakeGitHub({ owner: "acme", repo: "infra", token });
    onTestFinished(() => forge.close());
    const notifications: string[] = [];
    const chat = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        notifications.push(Buffer.concat(chunks).toString("utf8"));
        response.writeHead(200).end("ok");
      });
    });
    chat.listen(0, "127.0.0.1");
    await once(chat, "listening");
    onTestFinished(() => new Promise<void>((resolve) => chat.close(() => resolve())));
    const address = chat.address();
    if (address === null || typeof address === "string") throw new Error("no address");

    const served = await startServe(
      await writeServeConfig(data, {
        repository: { url: repo.dir },
        pollIntervalSeconds: 3600,
        engine: await brokenEngine(data),
        notifications: [{ type: "slack", urlEnv: "TEST_SLACK_URL" }],
        forge: githubForgeConfig(forge.url),
      }),
      {
        TEST_FORGE_TOKEN: token,
        TEST_FORGE_SECRET: secret,
        TEST_SLACK_URL: `http://127.0.0.1:${address.port}/services/T0/B0/X`,
      },
    );
    await vi.waitFor(
      () =>
        expect(notifications.some((body) => body.includes("apply-failed") || body.includes("failed"))).toBe(
          true,
        ),
      {
        timeout: 90_000,
        interval: 250,
      },
    );

    await repo.checkout("bigger", true);
    await repo.setApp({ web: { service: { input: { size: 2 } } } });
    const head = await repo.commit("Bigger");
    forge.addPullRequest({ number: 5, headSha: head, headRef: "bigger" });
    const payload = githubPullRequest("opened", 5, head);
    await deliverGitHub(served.url, secret, { event: "pull_request", id: "pr-5", payload });
    await vi.waitFor(
      () =>
        expect(forge.statuses(head).map((status) => `${status.context} ${status.state}`)).toContain(
          "gitops-runner/plan failure",
        ),
      { timeout: 90_000, interval: 250 },
    );

    const comment = forge.comments(5)[0]?.body ?? "";
    const shown = [comment, ...notifications];
    for (const text of shown) {
      expect(text).not.toContain("unexpected plan JSON");
      expect(text).not.toContain(data);
    }
    expect(comment).toContain("the runner failed (TERRAFORM_OUTPUT_INVALID)");
    expect(notifications.join("\n")).toContain("the runner failed (TERRAFORM_OUTPUT_INVALID)");
    // The operator's log has what happened, and the run's record keeps it for the API.
    const errored = served.logs.filter((entry) => entry.msg === "run errored: the runner's own fault");
    expect(errored.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(errored)).toContain("unexpected plan JSON");
    forge.assertNoUnexpected();
    expect(await served.stop()).toBe(0);
  });
});
