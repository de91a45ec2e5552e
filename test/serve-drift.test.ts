import { createHmac, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:http";
import {
  GetBucketTaggingCommand,
  ListBucketsCommand,
  PutBucketTaggingCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { GetQueueUrlCommand, SetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { useMoto } from "./support/moto-per-file.ts";
import { dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";

const credentials = { accessKeyId: "testing", secretAccessKey: "testing" };
const SECRET = "notification-secret";

interface Received {
  kind: string;
  stack: string;
  summary: string;
}

/** A notification receiver shaped after the runner's documented webhook: it checks every signature. */
async function receiver(): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const body = Buffer.concat(chunks);
      const expected = Buffer.from(`sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`);
      const given = Buffer.from(String(request.headers["x-gitops-runner-signature"] ?? ""));
      const valid = given.length === expected.length && timingSafeEqual(given, expected);
      if (request.method !== "POST" || request.url !== "/hooks" || !valid) {
        response.writeHead(401).end();
        throw new Error(
          `unexpected notification request ${request.method} ${request.url} (signature ${valid})`,
        );
      }
      const payload = JSON.parse(body.toString("utf8")) as Received;
      expect(request.headers["x-gitops-runner-event"]).toBe(payload.kind);
      received.push({ kind: payload.kind, stack: payload.stack, summary: payload.summary });
      response.writeHead(204).end();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no address");
  return { url: `http://127.0.0.1:${address.port}/hooks`, received };
}

describe("drift on a schedule against an AWS API emulator", () => {
  const motoEndpoint = useMoto();

  // The emulator takes about a minute to create the SQS queues; drift checks plan every ten seconds.
  it("corrects a stack whose policy says correct, only reports one that says notify, and notifies once per change", {
    timeout: 600_000,
  }, async () => {
    const endpoint = motoEndpoint();
    const repo = await TestRepo.fromExample("aws");
    await repo.write(
      "gitops-runner.policy.json",
      JSON.stringify({
        default: { drift: "off" },
        storage: { drift: "correct", driftSchedule: "10s" },
        messaging: { drift: "notify", driftSchedule: "10s" },
      }),
    );
    await repo.commit("Drift policy");
    const data = await dataDir();
    const hooks = await receiver();
    const config = await writeServeConfig(data, {
      repository: { url: repo.dir },
      pollIntervalSeconds: 3600,
      drift: { tickSeconds: 1, jitterPercent: 0 },
      env: {
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_REGION: "us-east-1",
        AWS_ENDPOINT_URL: endpoint,
      },
      notifications: [{ type: "webhook", name: "receiver", url: hooks.url, secretEnv: "TEST_NOTIFY_SECRET" }],
    });
    const served = await startServe(config, { TEST_NOTIFY_SECRET: SECRET });
    await vi.waitFor(
      async () => {
        const { stacks } = await served.json<{ stacks: { name: string; lastAppliedCommit?: string }[] }>(
          "/api/stacks",
        );
        expect(stacks.filter((stack) => stack.lastAppliedCommit).map((stack) => stack.name)).toEqual([
          "access",
          "messaging",
          "storage",
        ]);
      },
      { timeout: 240_000, interval: 500 },
    );

    const s3 = new S3Client({ endpoint, region: "us-east-1", credentials, forcePathStyle: true });
    const { Buckets = [] } = await s3.send(new ListBucketsCommand({}));
    const bucket = Buckets.map((candidate) => candidate.Name ?? "").find((name) =>
      name.startsWith("gitops-runner-artifacts-"),
    );
    if (!bucket) throw new Error("no bucket");
    const tags = async (): Promise<Record<string, string>> =>
      Object.fromEntries(
        ((await s3.send(new GetBucketTaggingCommand({ Bucket: bucket }))).TagSet ?? []).map((tag) => [
          tag.Key ?? "",
          tag.Value ?? "",
        ]),
      );
    const original = await tags();
    await s3.send(
      new PutBucketTaggingCommand({
        Bucket: bucket,
        Tagging: {
          TagSet: Object.entries({ ...original, purpose: "by-hand" }).map(([Key, Value]) => ({ Key, Value })),
        },
      }),
    );
    const sqs = new SQSClient({ endpoint, region: "us-east-1", credentials });
    const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: "gitops-runner-jobs" }));
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl, Attributes: { VisibilityTimeout: "45" } }));

    await vi.waitFor(
      () => {
        expect(
          hooks.received.map((notification) => `${notification.kind} ${notification.stack}`).sort(),
        ).toEqual(["drift-corrected storage", "drift-found messaging"]);
      },
      { timeout: 240_000, interval: 500 },
    );
    expect(await tags()).toEqual(original);
    const found = hooks.received.find((notification) => notification.kind === "drift-found");
    expect(found?.summary).toBe("aws_sqs_queue.jobs: visibility_timeout_seconds");

    // Later checks still see the same drift on messaging: nothing new is sent.
    const checks = async () =>
      (await served.json<{ runs: unknown[] }>("/api/runs?stack=messaging&kind=drift&status=succeeded")).runs
        .length;
    const seen = await checks();
    await vi.waitFor(async () => expect(await checks()).toBeGreaterThanOrEqual(seen + 2), {
      timeout: 120_000,
      interval: 500,
    });
    expect(hooks.received).toHaveLength(2);
    const { stacks } = await served.json<{ stacks: { name: string; state: string }[] }>("/api/stacks");
    expect(Object.fromEntries(stacks.map((stack) => [stack.name, stack.state]))).toMatchObject({
      messaging: "drifted",
      storage: "in-sync",
    });
    expect(await served.stop()).toBe(0);
  });
});
