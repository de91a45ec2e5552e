import path from "node:path";
import { execa } from "execa";
import { describe, expect, it, vi } from "vitest";
import { dataDir, TestRepo } from "./support/repo.ts";
import { READ_TOKEN, startServe, WRITE_TOKEN, writeServeConfig } from "./support/serve.ts";
import { repoRoot, tempDir } from "./support/toolchain.ts";

/**
 * The OpenAPI document is generated from the routes' zod schemas, and
 * schemathesis checks the real serve against it: no 500s, every answer in its
 * documented status, content type and schema, every route refusing requests
 * without a valid token.
 */

const CHECKS = [
  "not_a_server_error",
  "status_code_conformance",
  "content_type_conformance",
  "response_headers_conformance",
  "response_schema_conformance",
  "negative_data_rejection",
  "missing_required_header",
  "ignored_auth",
  "use_after_free",
  "ensure_resource_availability",
].join(",");

async function servedDemo() {
  const repo = await TestRepo.fromExample("demo");
  const data = await dataDir();
  const served = await startServe(
    await writeServeConfig(data, { repository: { url: repo.dir }, pollIntervalSeconds: 3600 }),
  );
  await vi.waitFor(async () => expect((await served.json("/api/stacks")).stacks[0]?.state).toBe("in-sync"), {
    timeout: 120_000,
    interval: 250,
  });
  return served;
}

/** Runs in a folder of its own: schemathesis keeps a cache of what it found in its working folder. */
function schemathesis(base: string, token: string, cwd: string) {
  const binary = process.env.GITOPS_RUNNER_TEST_SCHEMATHESIS;
  if (!binary) throw new Error("GITOPS_RUNNER_TEST_SCHEMATHESIS is not set: run the tests with `npm test`");
  return execa(
    binary,
    [
      "--no-color",
      "--config-file",
      path.join(repoRoot, "test", "fixtures", "schemathesis.toml"),
      "run",
      new URL("/openapi.json", base).href,
      "--header",
      `Authorization: Bearer ${token}`,
      "--checks",
      CHECKS,
      "--max-examples",
      "15",
      "--workers",
      "2",
      "--seed",
      "20261130",
      "--request-timeout",
      "30",
    ],
    { cwd, reject: false, all: true, timeout: 600_000 },
  );
}

describe("the described API", () => {
  it("is an OpenAPI 3.1 document of every JSON route, from the zod schemas that check requests and answers", async () => {
    const served = await servedDemo();
    const response = await fetch(new URL("/openapi.json", served.url));
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    const document = (await response.json()) as {
      openapi: string;
      paths: Record<string, Record<string, any>>;
      components: { schemas: Record<string, unknown> };
    };
    expect(document.openapi).toBe("3.1.0");
    expect(Object.keys(document.paths).sort()).toEqual([
      "/api/apply",
      "/api/audit",
      "/api/drift",
      "/api/freeze",
      "/api/plan",
      "/api/queue",
      "/api/runs",
      "/api/runs/{id}",
      "/api/runs/{id}/approve",
      "/api/runs/{id}/cancel",
      "/api/runs/{id}/log",
      "/api/stacks",
      "/api/stacks/{name}",
      "/api/stacks/{name}/apply",
      "/api/stacks/{name}/drift",
      "/api/stacks/{name}/lock",
      "/api/stacks/{name}/plan",
      "/api/stacks/{name}/resume",
      "/api/stacks/{name}/rollback",
      "/api/stacks/{name}/suspend",
      "/healthz",
      "/metrics",
      "/readyz",
    ]);
    // What the validation of a stack's name says, the document says.
    const name = document.paths["/api/stacks/{name}"]?.get.parameters[0];
    expect(name).toMatchObject({ in: "path", schema: { pattern: "^[A-Za-z0-9._-]+$", maxLength: 200 } });
    const cancel = document.paths["/api/runs/{id}/cancel"]?.post;
    expect(cancel.requestBody).toMatchObject({
      required: false,
      content: { "application/json": { schema: { properties: { force: { type: "boolean" } } } } },
    });
    expect(Object.keys(cancel.responses).sort()).toEqual(
      ["200", "202", "400", "401", "403", "404", "409", "413", "414", "415"].sort(),
    );
    expect(document.paths["/healthz"]?.get.security).toEqual([]);
    expect(Object.keys(document.components.schemas)).toEqual(
      expect.arrayContaining(["Error", "Run", "RunSummary", "Stack", "StackDetail", "Queue", "ApplyGate"]),
    );
    expect(await served.stop()).toBe(0);
  });

  it("holds against schemathesis with a read token and with a write token", async () => {
    const served = await servedDemo();
    for (const token of [READ_TOKEN, WRITE_TOKEN]) {
      const result = await schemathesis(served.url, token, await tempDir("schemathesis"));
      expect(result.all, `schemathesis with the ${token === READ_TOKEN ? "read" : "write"} token`).toMatch(
        / passed[,)]?/,
      );
      expect(result.exitCode, result.all).toBe(0);
    }
    const errors = served.logs.filter((entry) => entry.msg === "request failed");
    expect(errors).toEqual([]);
    expect(await served.stop()).toBe(0);
  });
});
