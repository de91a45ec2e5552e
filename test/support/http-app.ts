import { createHmac } from "node:crypto";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { connect } from "node:net";
import { pino } from "pino";
import { onTestFinished } from "vitest";
import type { RollbackResult } from "../../src/engine/rollback.ts";
import { RunnerError } from "../../src/errors.ts";
import type { ForgeEvent } from "../../src/forge/events.ts";
import { buildHttpApp, type HttpOptions } from "../../src/http/app.ts";
import type {
  Accepted,
  ApplyGateView,
  AuditQuery,
  CancelResult,
  QueueEntry,
  Readiness,
  RunFilter,
  ServiceApi,
  StackDetail,
  StackView,
  TriggerRequest,
} from "../../src/service/api.ts";
import type { AuditEntry, RunLogChunk, RunRecord } from "../../src/store/records.ts";

/**
 * The HTTP edge on a fake ServiceApi, listening on a loopback port: requests go
 * through Node's HTTP parser and fastify exactly as a client's would.
 */

export const READ_TOKEN = "read-token-0123456789abcdef";
export const WRITE_TOKEN = "write-token-fedcba9876543210";
export const SECRET = "webhook-secret-5f1d2c";

export const READ = { authorization: `Bearer ${READ_TOKEN}` };
export const WRITE = { authorization: `Bearer ${WRITE_TOKEN}` };
export const BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

export const FINISHED_RUN: RunRecord = {
  id: "3b6f1c2e-5d0a-4c8e-9f7b-1a2b3c4d5e6f",
  repoId: "demo-1a2b3c",
  appDir: "",
  stack: "network",
  kind: "plan",
  commit: "0123456789abcdef0123456789abcdef01234567",
  trigger: "pr",
  pr: 7,
  status: "succeeded",
  result: "changes",
  startedAt: "2026-01-02T10:00:00.000Z",
  endedAt: "2026-01-02T10:00:42.000Z",
  summary: { add: 1, change: 0, destroy: 0, replace: 0, import: 0 },
  resources: [{ address: 'aws_s3_bucket.logs["<b>"]', actions: ["create"] }],
  plan: {
    format_version: "1.2",
    resource_changes: [
      {
        address: 'aws_s3_bucket.logs["<b>"]',
        mode: "managed",
        type: "aws_s3_bucket",
        name: "logs",
        change: {
          actions: ["create"],
          before: null,
          after: { bucket: "<i>logs</i>" },
          after_unknown: { arn: true },
        },
      },
    ],
  },
  log: "planning network\n<script>alert('pwned')</script>\n",
  engine: "tofu",
  engineVersion: "1.12.6",
  providers: { "registry.opentofu.org/hashicorp/aws": "6.0.0" },
};

export const BLOCKED_RUN: RunRecord = {
  id: "blocked-run",
  repoId: "demo-1a2b3c",
  appDir: "",
  stack: "storage",
  kind: "apply",
  commit: "89abcdef0123456789abcdef0123456789abcdef",
  trigger: "merge",
  status: "blocked",
  result: "blocked",
  startedAt: "2026-01-02T11:00:00.000Z",
  log: "destroys aws_s3_bucket.old\n",
  plan: { format_version: "1.2" },
  error: { code: "DESTROY_NOT_ALLOWED", message: "the plan destroys 1 resource & <the> policy forbids it" },
};

type Call = { readonly method: keyof ServiceApi; readonly args: readonly unknown[] };

/** A ServiceApi that records every call, so tests can tell that a refused request queued nothing. */
export class FakeService implements ServiceApi {
  readonly calls: Call[] = [];
  readiness_: Readiness = { ready: true, checks: { store: true, repository: true } };
  /** Methods that throw this error instead of answering. */
  readonly failing = new Map<keyof ServiceApi, Error>();
  private readonly stacks: StackView[] = [
    { name: "network", state: "in-sync", dependencies: [], lastAppliedCommit: "abc", pending: false },
    { name: "storage", state: "blocked", dependencies: ["network"], pending: true },
  ];
  private readonly runs: RunRecord[] = [FINISHED_RUN, BLOCKED_RUN];
  /** What listAudit answers. */
  audit: AuditEntry[] = [];
  private readonly deliveries = new Map<string, string>();
  private events = 0;

  callsOf(method: keyof ServiceApi): readonly (readonly unknown[])[] {
    return this.calls.filter((call) => call.method === method).map((call) => call.args);
  }

  private record(method: keyof ServiceApi, ...args: unknown[]): void {
    this.calls.push({ method, args });
    const error = this.failing.get(method);
    if (error !== undefined) throw error;
  }

  private accept(): Accepted {
    this.events += 1;
    return { eventId: `event-${this.events}`, duplicate: false };
  }

  async readiness(): Promise<Readiness> {
    this.record("readiness");
    return this.readiness_;
  }

  async listStacks(): Promise<StackView[]> {
    this.record("listStacks");
    return this.stacks;
  }

  async listRuns(filter: RunFilter): Promise<RunRecord[]> {
    this.record("listRuns", filter);
    return this.runs;
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    this.record("getRun", id);
    return this.runs.find((run) => run.id === id);
  }

  async trigger(request: TriggerRequest): Promise<Accepted> {
    this.record("trigger", request);
    if (request.stack !== undefined && !this.stacks.some((stack) => stack.name === request.stack)) {
      throw new RunnerError("STACK_UNKNOWN", `unknown stack ${request.stack}`);
    }
    return this.accept();
  }

  async listAudit(filter: AuditQuery): Promise<AuditEntry[]> {
    this.record("listAudit", filter);
    return this.audit;
  }

  async rollback(request: { stack: string; to: string; tokenName?: string }): Promise<RollbackResult> {
    this.record("rollback", request);
    return {
      stack: request.stack,
      to: "0123456789abcdef0123456789abcdef01234567",
      branch: "gitops-runner/rollback-network-0123456",
      commit: "89abcdef0123456789abcdef0123456789abcdef",
      base: "main",
      alsoChanges: [],
      pullRequest: { number: 12, url: "https://forge.example/pr/12" },
    };
  }

  async approve(runId: string, tokenName?: string): Promise<Accepted> {
    this.record("approve", runId, tokenName);
    const run = this.runs.find((candidate) => candidate.id === runId);
    if (run === undefined) throw new RunnerError("RUN_NOT_FOUND", `no run with id ${runId}`);
    if (run.status !== "blocked") throw new RunnerError("RUN_NOT_BLOCKED", `run ${runId} is not blocked`);
    return this.accept();
  }

  async releaseLock(stack: string): Promise<{ readonly released: boolean }> {
    this.record("releaseLock", stack);
    return { released: stack === "storage" };
  }

  async forgeEvent(event: ForgeEvent, deliveryId: string): Promise<Accepted> {
    this.record("forgeEvent", event, deliveryId);
    return this.accept();
  }

  async requestPoll(source: string, deliveryId: string): Promise<Accepted> {
    this.record("requestPoll", source, deliveryId);
    const key = `${source}/${deliveryId}`;
    const known = this.deliveries.get(key);
    if (known !== undefined) return { eventId: known, duplicate: true };
    const accepted = this.accept();
    this.deliveries.set(key, accepted.eventId);
    return accepted;
  }

  async getStack(name: string): Promise<StackDetail | undefined> {
    this.record("getStack", name);
    const stack = this.stacks.find((candidate) => candidate.name === name);
    return stack && { ...stack, dependents: [], policySource: {} };
  }

  async runLog(id: string, offset: number): Promise<RunLogChunk | undefined> {
    this.record("runLog", id, offset);
    const run = this.runs.find((candidate) => candidate.id === id);
    const log = run?.log ?? "";
    return run && { text: log.slice(offset), offset: Math.max(offset, log.length), status: run.status };
  }

  async queue(): Promise<{ readonly events: readonly QueueEntry[]; readonly applies: ApplyGateView }> {
    this.record("queue");
    return { events: [], applies: this.gate };
  }

  async cancel(id: string, options: { readonly force: boolean }): Promise<CancelResult> {
    this.record("cancel", id, options);
    if (!this.runs.some((run) => run.id === id))
      throw new RunnerError("RUN_NOT_FOUND", `no run with id ${id}`);
    return { cancelled: "running", eventId: "event-0", runId: id, force: options.force };
  }

  async suspend(stack: string, reason?: string): Promise<StackDetail> {
    this.record("suspend", stack, reason);
    return this.requireStack(stack);
  }

  async resume(stack: string): Promise<StackDetail> {
    this.record("resume", stack);
    return this.requireStack(stack);
  }

  async applyGate(): Promise<ApplyGateView> {
    this.record("applyGate");
    return this.gate;
  }

  async freeze(request: { readonly reason: string; readonly until?: string }): Promise<ApplyGateView> {
    this.record("freeze", request);
    this.gate = {
      open: false,
      reason: `applies are frozen: ${request.reason}`,
      frozen: {
        reason: request.reason,
        since: "2026-01-02T12:00:00.000Z",
        ...(request.until ? { until: request.until } : {}),
      },
      windows: [],
    };
    return this.gate;
  }

  async unfreeze(): Promise<ApplyGateView> {
    this.record("unfreeze");
    this.gate = { open: true, windows: [] };
    return this.gate;
  }

  private gate: ApplyGateView = { open: true, windows: [] };

  private async requireStack(name: string): Promise<StackDetail> {
    const stack = await this.getStack(name);
    if (!stack) throw new RunnerError("STACK_UNKNOWN", `unknown stack ${name}`);
    return stack;
  }

  async metrics(): Promise<{ readonly contentType: string; readonly body: string }> {
    this.record("metrics");
    return { contentType: "text/plain; version=0.0.4; charset=utf-8", body: "gitops_runner_up 1\n" };
  }
}

export interface Sent {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  json(): any;
}

export interface SendOptions {
  readonly method: string;
  readonly url: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** A string is sent as is; anything else as JSON with content-type application/json. */
  readonly payload?: unknown;
}

/** Sends one request on a fresh connection and reads the whole answer. */
export function sendTo(base: string, options: SendOptions): Promise<Sent> {
  const headers: Record<string, string> = { ...options.headers };
  let payload: string | undefined;
  if (typeof options.payload === "string") payload = options.payload;
  else if (options.payload !== undefined) {
    payload = JSON.stringify(options.payload);
    headers["content-type"] ??= "application/json";
  }
  return new Promise((resolve, reject) => {
    const request = httpRequest(new URL(options.url, base), {
      method: options.method,
      headers,
      agent: false,
    });
    let answered = false;
    request.on("response", (response) => {
      answered = true;
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        resolve({
          statusCode: response.statusCode ?? 0,
          headers: response.headers,
          body,
          json: () => JSON.parse(body),
        });
      });
      response.on("error", reject);
    });
    // A server may answer (413, 431) and close before it has read everything sent.
    request.on("error", (error) => {
      if (!answered) reject(error);
    });
    request.end(payload);
  });
}

/** Writes raw bytes on a fresh connection and reads everything until the server closes it. */
export function sendRaw(base: string, text: string): Promise<string> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("utf8")));
    socket.on("error", reject);
  });
}

export interface StartedHttp {
  readonly url: string;
  readonly service: FakeService;
  /** Every log line the app wrote. */
  readonly logs: string[];
  send(options: SendOptions): Promise<Sent>;
}

/** The app on a fake service, listening until the test ends; the webhook secret is SECRET unless given. */
export async function startHttp(
  overrides: {
    readonly webhookSecret?: string | undefined;
    readonly publicUrl?: string;
    readonly forgeWebhook?: HttpOptions["forgeWebhook"];
  } = {},
): Promise<StartedHttp> {
  const service = new FakeService();
  const logs: string[] = [];
  const logger = pino({ level: "trace" }, { write: (line: string) => logs.push(line) });
  const webhookSecret = "webhookSecret" in overrides ? overrides.webhookSecret : SECRET;
  const app = buildHttpApp({
    service,
    logger,
    tokens: {
      read: [{ name: "reader", value: READ_TOKEN }],
      write: [{ name: "writer", value: WRITE_TOKEN }],
    },
    sessionSecret: "session-secret-for-the-http-tests",
    ...(webhookSecret !== undefined && { webhookSecret }),
    ...(overrides.publicUrl !== undefined && { publicUrl: overrides.publicUrl }),
    ...(overrides.forgeWebhook !== undefined && { forgeWebhook: overrides.forgeWebhook }),
  });
  onTestFinished(() => app.close());
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  return { url, service, logs, send: (options) => sendTo(url, options) };
}

export function sign(body: string, secret = SECRET): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}
