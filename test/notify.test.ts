import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import pino, { type Logger } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { isRunnerError } from "../src/errors.ts";
import type { Notification } from "../src/notify/notification.ts";
import { createNotifier, type NotificationTarget } from "../src/notify/notifier.ts";
import { slackTarget } from "../src/notify/slack.ts";
import { webhookTarget } from "../src/notify/webhook.ts";

const SECRET = "s3cr3t-shared-with-the-receiver";
const SLACK_PATH = "/services/T0001/B0001/XXXXXXXXXXXXXXXXXXXXXXXX";
const HOOK_PATH = "/hooks/gitops-runner";

const DRIFT: Notification = {
  kind: "drift-found",
  repository: "https://git.example.com/platform/infra.git",
  stack: "storage",
  commit: "abc1234def5678900000000000000000000000000",
  runId: "run-01",
  summary: "aws_s3_bucket.artifacts: tags.purpose drifted",
  resources: [{ address: "aws_s3_bucket.artifacts", actions: ["update"], drift: ["tags.purpose"] }],
  url: "https://runner.example.com/runs/run-01",
  at: "2026-03-01T12:00:00.000Z",
};

// --- Receivers: real HTTP servers on the loopback, strict about what they accept ---

interface Request {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: Buffer;
}

type Answer = { readonly status: number; readonly body?: string; readonly headers?: Record<string, string> };

interface Receiver {
  readonly url: string;
  readonly requests: Request[];
  /** Requests the fake's documented API would not accept; any one fails the test. */
  readonly unexpected: string[];
  /** Resolves once this many requests have arrived. */
  arrived(count: number): Promise<void>;
  close(): Promise<void>;
}

const receivers: Receiver[] = [];

afterEach(async () => {
  const open = receivers.splice(0);
  await Promise.all(open.map((receiver) => receiver.close()));
  for (const receiver of open) expect(receiver.unexpected).toEqual([]);
});

/** `handle` answers a request, returns a problem (answered 400 and failing the test), or "hang". */
async function startReceiver(
  path: string,
  handle: (request: Request) => Answer | { readonly problem: string; readonly status?: number } | "hang",
): Promise<Receiver> {
  const requests: Request[] = [];
  const unexpected: string[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const server = createServer((incoming: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
    incoming.on("end", () => {
      const request = {
        method: incoming.method ?? "",
        path: incoming.url ?? "",
        headers: incoming.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(request);
      for (const waiter of waiters) if (requests.length >= waiter.count) waiter.resolve();
      const answer =
        request.path === path ? handle(request) : { problem: `unknown path ${request.path}`, status: 404 };
      if (answer === "hang") return;
      if ("problem" in answer) {
        unexpected.push(answer.problem);
        response.writeHead(answer.status ?? 400, { "Content-Type": "text/plain" }).end(answer.problem);
        return;
      }
      response
        .writeHead(answer.status, { "Content-Type": "text/plain", ...answer.headers })
        .end(answer.body ?? "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}${path}`,
    requests,
    unexpected,
    arrived: (count) =>
      new Promise<void>((resolve) => {
        if (requests.length >= count) resolve();
        else waiters.push({ count, resolve });
      }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
  receivers.push(receiver);
  return receiver;
}

function isJson(request: Request): boolean {
  return /^application\/json(;|$)/.test(request.headers["content-type"] ?? "");
}

/** Shaped after Slack's incoming webhooks: POST, a JSON body with a `text` string, answered 200 "ok". */
function slackCheck(request: Request): { problem: string } | undefined {
  if (request.method !== "POST") return { problem: `slack: method ${request.method}` };
  if (!isJson(request)) return { problem: `slack: content type ${request.headers["content-type"]}` };
  let payload: unknown;
  try {
    payload = JSON.parse(request.body.toString("utf8"));
  } catch {
    return { problem: "slack: body is not JSON" };
  }
  const message = payload as { text?: unknown; blocks?: unknown };
  if (typeof message.text !== "string" || message.text === "") return { problem: "slack: no text" };
  if (message.blocks !== undefined && !Array.isArray(message.blocks)) return { problem: "slack: blocks" };
  return undefined;
}

function startSlack(answers: readonly Answer[] = []): Promise<Receiver> {
  let served = 0;
  return startReceiver(SLACK_PATH, (request) => {
    const problem = slackCheck(request);
    if (problem) return problem;
    return answers[served++] ?? { status: 200, body: "ok" };
  });
}

/** The receiver's own check, written apart from the code under test: HMAC over the raw bytes. */
function signedBySecret(request: Request): boolean {
  const header = request.headers["x-gitops-runner-signature"];
  const expected = Buffer.from(`sha256=${createHmac("sha256", SECRET).update(request.body).digest("hex")}`);
  return (
    typeof header === "string" &&
    header.length === expected.length &&
    timingSafeEqual(Buffer.from(header), expected)
  );
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The generic webhook: checks method, content type, headers and signature; a bad signature gets 401. */
function startWebhook(
  options: { answers?: readonly Answer[]; badSignatures?: Request[] } = {},
): Promise<Receiver> {
  let served = 0;
  return startReceiver(HOOK_PATH, (request) => {
    if (request.method !== "POST") return { problem: `webhook: method ${request.method}` };
    if (!isJson(request)) return { problem: `webhook: content type ${request.headers["content-type"]}` };
    if (!UUID.test(String(request.headers["x-gitops-runner-delivery"]))) {
      return { problem: "webhook: delivery id is not a UUID" };
    }
    if (!signedBySecret(request)) {
      if (!options.badSignatures) return { problem: "webhook: bad signature", status: 401 };
      options.badSignatures.push(request);
      return { status: 401, body: "bad signature" };
    }
    const body = JSON.parse(request.body.toString("utf8")) as { kind?: unknown };
    if (request.headers["x-gitops-runner-event"] !== body.kind) return { problem: "webhook: event header" };
    return options.answers?.[served++] ?? { status: 204 };
  });
}

/** A receiver that takes the request and never answers. */
function startSilent(): Promise<Receiver> {
  return startReceiver(HOOK_PATH, () => "hang");
}

// --- The notifier under test ---

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

function memoryLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: "debug", base: null },
    { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
  );
  return { logger, lines };
}

const ERROR = 50;

/** A sleep that returns at once and records the delays asked for: tests never wait on time. */
function instantSleep(): { sleep: (ms: number) => Promise<void>; delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    sleep: async (ms: number) => {
      delays.push(ms);
    },
  };
}

function json(request: Request | undefined): unknown {
  return JSON.parse(request?.body.toString("utf8") ?? "null");
}

describe("delivering notifications", () => {
  it("posts a Slack message and a signed JSON webhook with the documented payloads", async () => {
    const slack = await startSlack();
    const webhook = await startWebhook();
    const { logger, lines } = memoryLogger();
    const notifier = createNotifier({
      targets: [
        slackTarget({ name: "team-slack", url: slack.url }),
        webhookTarget({ name: "audit-hook", url: webhook.url, secret: SECRET }),
      ],
      logger,
    });

    notifier.notify(DRIFT);
    await notifier.drain();

    expect(slack.requests).toHaveLength(1);
    expect(slack.requests[0]?.headers["content-type"]).toBe("application/json");
    expect(json(slack.requests[0])).toEqual({
      text: ":warning: drift found in stack storage (abc1234): aws_s3_bucket.artifacts: tags.purpose drifted",
      blocks: [
        {
          type: "section",
          text: {
            type: "mrkdwn",
            text: [
              ":warning: *drift found* in stack `storage` at `abc1234` of https://git.example.com/platform/infra.git",
              "aws_s3_bucket.artifacts: tags.purpose drifted",
              "• `aws_s3_bucket.artifacts` update: tags.purpose",
              "<https://runner.example.com/runs/run-01|View run run-01>",
            ].join("\n"),
          },
        },
      ],
    });

    expect(webhook.requests).toHaveLength(1);
    const delivered = webhook.requests[0];
    expect(delivered?.headers["content-type"]).toBe("application/json");
    expect(delivered?.headers["x-gitops-runner-event"]).toBe("drift-found");
    expect(delivered?.headers["x-gitops-runner-delivery"]).toMatch(UUID);
    expect(delivered?.headers["x-gitops-runner-signature"]).toBe(
      `sha256=${createHmac("sha256", SECRET)
        .update(delivered?.body ?? "")
        .digest("hex")}`,
    );
    expect(json(delivered)).toEqual({
      kind: "drift-found",
      repository: "https://git.example.com/platform/infra.git",
      stack: "storage",
      commit: "abc1234def5678900000000000000000000000000",
      runId: "run-01",
      summary: "aws_s3_bucket.artifacts: tags.purpose drifted",
      resources: [{ address: "aws_s3_bucket.artifacts", actions: ["update"], drift: ["tags.purpose"] }],
      url: "https://runner.example.com/runs/run-01",
      at: "2026-03-01T12:00:00.000Z",
    });

    const delivereds = lines.filter((line) => line.msg === "notification delivered");
    expect(delivereds.map((line) => line.target).sort()).toEqual(["audit-hook", "team-slack"]);
  });

  it("escapes Slack's control characters and leaves out what a notification does not have", async () => {
    const slack = await startSlack();
    const notifier = createNotifier({
      targets: [slackTarget({ name: "slack", url: slack.url })],
      logger: pino({ level: "silent" }),
    });

    notifier.notify({
      kind: "apply-failed",
      repository: "file:///srv/infra",
      stack: "net<work>",
      commit: "0123456789abcdef",
      runId: "run-02",
      summary: "init failed: provider a & b",
      at: "2026-03-01T12:00:00.000Z",
    });
    await notifier.drain();

    expect(json(slack.requests[0])).toEqual({
      text: ":x: apply failed in stack net&lt;work&gt; (0123456): init failed: provider a &amp; b",
      blocks: [
        {
          type: "section",
          text: {
            type: "mrkdwn",
            text: [
              ":x: *apply failed* in stack `net&lt;work&gt;` at `0123456` of file:///srv/infra",
              "init failed: provider a &amp; b",
              "Run run-02",
            ].join("\n"),
          },
        },
      ],
    });
  });

  it("keeps the Slack section within Slack's 3000 characters when many resources changed", async () => {
    const slack = await startSlack();
    const notifier = createNotifier({
      targets: [slackTarget({ name: "slack", url: slack.url })],
      logger: pino({ level: "silent" }),
    });
    const resources = Array.from({ length: 200 }, (_, index) => ({
      address: `aws_s3_bucket.bucket_number_${index}`,
      actions: ["update"],
      drift: ["tags.purpose", "tags.owner"],
    }));

    notifier.notify({ ...DRIFT, resources });
    await notifier.drain();

    const message = json(slack.requests[0]) as { blocks: { text: { text: string } }[] };
    const section = message.blocks[0]?.text.text ?? "";
    expect(section.length).toBeLessThanOrEqual(3000);
    expect(section).toContain("• `aws_s3_bucket.bucket_number_0` update: tags.purpose, tags.owner");
    expect(section).toMatch(
      /…and \d+ more\n<https:\/\/runner\.example\.com\/runs\/run-01\|View run run-01>$/,
    );
  });
});

describe("retrying", () => {
  it("retries a target that answers 500 twice, delivers once, and keeps the delivery id", async () => {
    const webhook = await startWebhook({ answers: [{ status: 500 }, { status: 500 }] });
    const { logger, lines } = memoryLogger();
    const { sleep, delays } = instantSleep();
    const notifier = createNotifier({
      targets: [webhookTarget({ name: "audit-hook", url: webhook.url, secret: SECRET })],
      logger,
      sleep,
    });

    notifier.notify(DRIFT);
    await notifier.drain();

    expect(webhook.requests).toHaveLength(3);
    const ids = new Set(webhook.requests.map((request) => request.headers["x-gitops-runner-delivery"]));
    expect(ids.size).toBe(1);
    // Full jitter under the default base of 1 s: below 1 s, then below 2 s.
    expect(delays).toHaveLength(2);
    expect(delays[0]).toBeGreaterThanOrEqual(0);
    expect(delays[0]).toBeLessThan(1000);
    expect(delays[1]).toBeLessThan(2000);
    const delivered = lines.filter((line) => line.msg === "notification delivered");
    expect(delivered).toEqual([
      expect.objectContaining({ target: "audit-hook", kind: "drift-found", stack: "storage", attempts: 3 }),
    ]);
  });

  it.each([408, 429, 502, 503])("retries an HTTP %i answer", async (status) => {
    const slack = await startSlack([{ status, body: "busy" }]);
    const { sleep } = instantSleep();
    const notifier = createNotifier({
      targets: [slackTarget({ name: "slack", url: slack.url })],
      logger: pino({ level: "silent" }),
      sleep,
    });

    notifier.notify(DRIFT);
    await notifier.drain();

    expect(slack.requests).toHaveLength(2);
  });

  it("waits at least as long as a 429's Retry-After, within the maximum delay", async () => {
    const slack = await startSlack([{ status: 429, body: "rate_limited", headers: { "Retry-After": "30" } }]);
    const { sleep, delays } = instantSleep();
    const notifier = createNotifier({
      targets: [slackTarget({ name: "slack", url: slack.url })],
      logger: pino({ level: "silent" }),
      sleep,
      maxDelayMs: 20_000,
    });

    notifier.notify(DRIFT);
    await notifier.drain();

    expect(delays).toEqual([20_000]);
    expect(slack.requests).toHaveLength(2);
  });

  it.each([
    [400, "invalid_payload"],
    [403, "action_prohibited"],
    [404, "no_service"],
    [410, "channel_is_archived"],
  ])("does not retry HTTP %i (%s) and logs the notification as rejected", async (status, body) => {
    const slack = await startSlack([{ status, body }]);
    const { logger, lines } = memoryLogger();
    const { sleep, delays } = instantSleep();
    const notifier = createNotifier({
      targets: [slackTarget({ name: "team-slack", url: slack.url })],
      logger,
      sleep,
    });

    notifier.notify(DRIFT);
    await notifier.drain();

    expect(slack.requests).toHaveLength(1);
    expect(delays).toEqual([]);
    expect(lines.filter((line) => line.level === ERROR)).toEqual([
      expect.objectContaining({
        msg: "notification rejected",
        target: "team-slack",
        kind: "drift-found",
        stack: "storage",
        attempts: 1,
        status,
      }),
    ]);
  });

  it("gives up on a target that never answers while another target still gets the notification", async () => {
    const silent = await startSilent();
    const slack = await startSlack();
    const { logger, lines } = memoryLogger();
    const { sleep } = instantSleep();
    const notifier = createNotifier({
      targets: [
        webhookTarget({ name: "silent-hook", url: silent.url, secret: SECRET, timeoutMs: 100 }),
        slackTarget({ name: "team-slack", url: slack.url }),
      ],
      logger,
      retries: 2,
      sleep,
    });

    notifier.notify(DRIFT);
    await notifier.drain();

    expect(silent.requests).toHaveLength(3);
    expect(slack.requests).toHaveLength(1);
    expect(lines.filter((line) => line.level === ERROR)).toEqual([
      expect.objectContaining({
        msg: "notification delivery gave up",
        target: "silent-hook",
        kind: "drift-found",
        stack: "storage",
        attempts: 3,
        reason: "timeout",
      }),
    ]);
    // Only the target's name identifies it: the URL's secret path and the secret never reach the log.
    const logged = JSON.stringify(lines);
    expect(logged).not.toContain(HOOK_PATH);
    expect(logged).not.toContain(SLACK_PATH);
    expect(logged).not.toContain(SECRET);
  });

  it("retries a refused connection and logs the error code, not the address", async () => {
    const closed = await startSlack();
    const url = closed.url;
    await closed.close();
    receivers.splice(receivers.indexOf(closed), 1);
    const { logger, lines } = memoryLogger();
    const { sleep, delays } = instantSleep();
    const notifier = createNotifier({
      targets: [slackTarget({ name: "team-slack", url })],
      logger,
      retries: 1,
      sleep,
    });

    notifier.notify(DRIFT);
    await notifier.drain();

    expect(delays).toHaveLength(1);
    expect(lines.filter((line) => line.level === ERROR)).toEqual([
      expect.objectContaining({ msg: "notification delivery gave up", attempts: 2, reason: "ECONNREFUSED" }),
    ]);
    expect(JSON.stringify(lines)).not.toContain(SLACK_PATH);
  });

  it("rejects a delivery signed with another secret: the receiver answers 401 and it is not retried", async () => {
    const badSignatures: Request[] = [];
    const webhook = await startWebhook({ badSignatures });
    const { logger, lines } = memoryLogger();
    const notifier = createNotifier({
      targets: [webhookTarget({ name: "audit-hook", url: webhook.url, secret: "not-the-shared-secret" })],
      logger,
      sleep: instantSleep().sleep,
    });

    notifier.notify(DRIFT);
    await notifier.drain();

    expect(badSignatures).toHaveLength(1);
    expect(lines.filter((line) => line.level === ERROR)).toEqual([
      expect.objectContaining({ msg: "notification rejected", target: "audit-hook", status: 401 }),
    ]);
  });
});

describe("the notifier never holds up a run", () => {
  it("returns from notify at once, even when a target throws, and other targets still deliver", async () => {
    const slack = await startSlack();
    const { logger, lines } = memoryLogger();
    const broken: NotificationTarget = {
      name: "broken",
      send: () => {
        throw new TypeError("not a promise");
      },
    };
    const notifier = createNotifier({
      targets: [broken, slackTarget({ name: "team-slack", url: slack.url })],
      logger,
      retries: 1,
      sleep: instantSleep().sleep,
    });

    expect(() => notifier.notify(DRIFT)).not.toThrow();
    await notifier.drain();

    expect(slack.requests).toHaveLength(1);
    expect(lines.filter((line) => line.level === ERROR)).toEqual([
      expect.objectContaining({ msg: "notification delivery gave up", target: "broken", attempts: 2 }),
    ]);
  });

  it("close() abandons a pending retry, resolves, and later notifications are dropped", async () => {
    const webhook = await startWebhook({ answers: [{ status: 503 }] });
    const { logger, lines } = memoryLogger();
    let waiting: () => void = () => undefined;
    const retryPending = new Promise<void>((resolve) => {
      waiting = resolve;
    });
    // A retry wait that lasts until the notifier is closed.
    const sleep = (_ms: number, signal: AbortSignal) =>
      new Promise<void>((_resolve, reject) => {
        signal.addEventListener("abort", () => reject(signal.reason));
        waiting();
      });
    const notifier = createNotifier({
      targets: [webhookTarget({ name: "audit-hook", url: webhook.url, secret: SECRET })],
      logger,
      sleep,
    });

    notifier.notify(DRIFT);
    await retryPending;
    await notifier.close();
    notifier.notify(DRIFT);
    await notifier.drain();

    expect(webhook.requests).toHaveLength(1);
    expect(lines.map((line) => line.msg)).toEqual([
      "notification delivery failed; retrying",
      "notification abandoned: notifier closed",
      "notification dropped: notifier closed",
    ]);
  });

  it("close() cancels an attempt in flight instead of waiting out its timeout", async () => {
    const silent = await startSilent();
    const { logger, lines } = memoryLogger();
    const notifier = createNotifier({
      targets: [webhookTarget({ name: "silent-hook", url: silent.url, secret: SECRET, timeoutMs: 600_000 })],
      logger,
    });

    notifier.notify(DRIFT);
    await silent.arrived(1);
    await notifier.close();

    expect(lines).toEqual([
      expect.objectContaining({ msg: "notification abandoned: notifier closed", attempts: 1 }),
    ]);
  });
});

describe("configuring a target", () => {
  it("refuses a URL that is not http(s) without repeating it, and a webhook without a secret", () => {
    const refusal = (make: () => unknown): string => {
      try {
        make();
      } catch (error) {
        expect(isRunnerError(error, "CONFIG_INVALID")).toBe(true);
        return (error as Error).message;
      }
      throw new Error("expected CONFIG_INVALID");
    };

    const message = refusal(() =>
      slackTarget({ name: "slack", url: "ftp://hooks.example.com/T0/B0/secret-path" }),
    );
    expect(message).toBe("notification target slack: url must be an http or https address");
    expect(refusal(() => webhookTarget({ name: "hook", url: "not a url", secret: SECRET }))).toContain(
      "hook",
    );
    expect(refusal(() => webhookTarget({ name: "hook", url: "https://example.com/h", secret: "" }))).toBe(
      "notification target hook: secret must not be empty",
    );
  });
});
