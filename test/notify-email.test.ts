import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import { parseRunnerConfig, resolveSecrets } from "../src/config/runner-config.ts";
import { emailTarget } from "../src/notify/email.ts";
import type { Notification } from "../src/notify/notification.ts";
import { createNotifier } from "../src/notify/notifier.ts";
import { dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";
import { startSmtpServer } from "./support/smtp.ts";

const USER = "runner";
const PASSWORD = "smtp-password-0123";

const BLOCKED: Notification = {
  kind: "run-blocked",
  repository: "https://git.example.com/platform/infra.git",
  stack: "storage",
  commit: "abc1234def5678900000000000000000000000000",
  runId: "run-42",
  summary: "the plan destroys or replaces 1 resource(s) (aws_s3_bucket.logs) & <the> policy forbids it",
  resources: [{ address: 'aws_s3_bucket.logs["<b>"]', actions: ["delete", "create"] }],
  url: "https://runner.example.com/runs/run-42",
  at: "2026-03-01T12:00:00.000Z",
};

function logged() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

describe("the email target, against a real SMTP server on loopback", () => {
  it("sends a multipart message over STARTTLS with login: headers, the text part and the HTML part", async () => {
    const smtp = await startSmtpServer({ mode: "starttls", user: USER, password: PASSWORD });
    const { logger } = logged();
    const notifier = createNotifier({
      logger,
      targets: [
        emailTarget({
          name: "ops-mail",
          host: smtp.host,
          port: smtp.port,
          security: "starttls",
          user: USER,
          password: PASSWORD,
          from: "gitops-runner <runner@example.com>",
          to: ["ops@example.com", "Oncall <oncall@example.com>"],
          ca: smtp.certificate,
        }),
      ],
    });
    notifier.notify(BLOCKED);
    await notifier.drain();

    const [mail, ...more] = await smtp.received();
    expect(more).toEqual([]);
    expect(mail?.envelope).toEqual({
      mailFrom: "runner@example.com",
      rcptTos: ["ops@example.com", "oncall@example.com"],
      tls: true,
    });
    const parsed = mail?.parsed;
    expect(parsed?.subject).toBe("[gitops-runner] run blocked in stack storage at abc1234");
    expect(parsed?.from?.text).toBe('"gitops-runner" <runner@example.com>');
    expect(parsed?.headers.get("x-gitops-runner-event")).toBe("run-blocked");
    expect(parsed?.messageId).toMatch(/^<[0-9a-f-]+@gitops-runner>$/);
    expect(String(parsed?.headers.get("content-type") && mail?.raw)).toMatch(
      /Content-Type: multipart\/alternative/,
    );
    expect(parsed?.text).toContain("Stack: storage");
    expect(parsed?.text).toContain(`Commit: ${BLOCKED.commit}`);
    expect(parsed?.text).toContain(`Summary: ${BLOCKED.summary}`);
    expect(parsed?.text).toContain('- aws_s3_bucket.logs["<b>"]: delete, create');
    expect(parsed?.text).toContain("View run run-42: https://runner.example.com/runs/run-42");
    expect(parsed?.html).toContain('<a href="https://runner.example.com/runs/run-42">View run run-42</a>');
    expect(parsed?.html).toContain("&amp; &lt;the&gt; policy forbids it");
    expect(parsed?.html).toContain("aws_s3_bucket.logs[&quot;&lt;b&gt;&quot;]");
    expect(parsed?.html).not.toContain("<b>");
  });

  it("retries a relay that says try again later, with backoff, over TLS from the first byte", async () => {
    const smtp = await startSmtpServer({ mode: "tls", user: USER, password: PASSWORD, failFirst: 2 });
    const { logger, lines } = logged();
    const notifier = createNotifier({
      logger,
      baseDelayMs: 10,
      targets: [
        emailTarget({
          name: "ops-mail",
          host: smtp.host,
          port: smtp.port,
          security: "tls",
          user: USER,
          password: PASSWORD,
          from: "runner@example.com",
          to: ["ops@example.com"],
          ca: smtp.certificate,
        }),
      ],
    });
    notifier.notify({ ...BLOCKED, kind: "drift-found", summary: "aws_s3_bucket.logs: tags.owner" });
    await notifier.drain();

    const received = await smtp.received();
    expect(received).toHaveLength(1);
    expect(received[0]?.envelope.tls).toBe(true);
    expect(received[0]?.parsed.subject).toBe("[gitops-runner] drift found in stack storage at abc1234");
    expect(lines.filter((line) => line.msg === "notification delivery failed; retrying")).toEqual([
      expect.objectContaining({ target: "ops-mail", reason: "SMTP 451", attempt: 1 }),
      expect.objectContaining({ target: "ops-mail", reason: "SMTP 451", attempt: 2 }),
    ]);
    expect(lines.find((line) => line.msg === "notification delivered")).toMatchObject({ attempts: 3 });
    expect(JSON.stringify(lines)).not.toContain(PASSWORD);
  });

  it("does not retry a refused login, and never logs the password", async () => {
    const smtp = await startSmtpServer({ mode: "starttls", user: USER, password: PASSWORD });
    const { logger, lines } = logged();
    const notifier = createNotifier({
      logger,
      baseDelayMs: 10,
      targets: [
        emailTarget({
          name: "ops-mail",
          host: smtp.host,
          port: smtp.port,
          security: "starttls",
          user: USER,
          password: "wrong-password-42",
          from: "runner@example.com",
          to: ["ops@example.com"],
          ca: smtp.certificate,
        }),
      ],
    });
    notifier.notify(BLOCKED);
    await notifier.drain();

    expect(await smtp.received()).toEqual([]);
    expect(lines.filter((line) => String(line.msg).startsWith("notification"))).toEqual([
      expect.objectContaining({ msg: "notification rejected", reason: "SMTP 535", attempts: 1 }),
    ]);
    expect(JSON.stringify(lines)).not.toContain("wrong-password-42");
  });
});

describe("an email target in the configuration", () => {
  it("takes the password from the environment, defaults the port by security, and names mistakes", () => {
    const config = parseRunnerConfig(
      "runner.json",
      JSON.stringify({
        notifications: [
          {
            type: "email",
            host: "smtp.example.com",
            user: "runner",
            passwordEnv: "SMTP_PASSWORD",
            from: "Runner <runner@example.com>",
            to: ["ops@example.com"],
          },
          {
            type: "email",
            host: "smtp.example.com",
            security: "tls",
            from: "r@example.com",
            to: ["o@example.com"],
          },
        ],
      }),
    );
    expect(resolveSecrets("runner.json", config, { SMTP_PASSWORD: "pw-0123" }).notifications).toEqual([
      {
        type: "email",
        name: "email-0",
        host: "smtp.example.com",
        port: 587,
        security: "starttls",
        user: "runner",
        password: "pw-0123",
        from: "Runner <runner@example.com>",
        to: ["ops@example.com"],
      },
      expect.objectContaining({ name: "email-1", port: 465, security: "tls" }),
    ]);
    expect(() => resolveSecrets("runner.json", config, {})).toThrow(
      "runner.json: notifications.0.passwordEnv: the environment variable SMTP_PASSWORD is not set",
    );
    expect(() =>
      parseRunnerConfig(
        "runner.json",
        '{"notifications":[{"type":"email","host":"h","user":"u","from":"a@b.c","to":["nobody"]}]}',
      ),
    ).toThrow(
      /notifications\.0\.to\.0: an email address[\s\S]*notifications\.0\.passwordEnv: user and passwordEnv go together/,
    );
  });
});

describe("serve with an email target", () => {
  it("mails a blocked apply, with the link to its run, through the configured relay", async () => {
    const smtp = await startSmtpServer({ mode: "starttls", user: USER, password: PASSWORD });
    const repo = await TestRepo.create({
      storage: { bucket: { input: { name: "logs" } }, queue: { input: { n: 1 } } },
    });
    const data = await dataDir();
    const config = await writeServeConfig(data, {
      repository: { url: repo.dir },
      pollIntervalSeconds: 3600,
      publicUrl: "https://runner.example.com/",
      notifications: [
        {
          type: "email",
          host: smtp.host,
          port: smtp.port,
          user: USER,
          passwordEnv: "SMTP_PASSWORD",
          from: "gitops-runner <runner@example.com>",
          to: ["platform@example.com"],
        },
      ],
    });
    const served = await startServe(config, {
      SMTP_PASSWORD: PASSWORD,
      NODE_EXTRA_CA_CERTS: smtp.certificateFile,
    });
    await vi.waitFor(
      async () =>
        expect((await served.json("/api/stacks")).stacks[0]?.lastAppliedCommit).toBe(await repo.head()),
      { timeout: 90_000, interval: 250 },
    );
    await repo.setApp({ storage: { bucket: { input: { name: "logs" } } } });
    const removal = await repo.commit("Drop the queue");
    expect((await served.api("/api/apply", { method: "POST" })).status).toBe(202);

    await vi.waitFor(async () => expect(await smtp.received()).toHaveLength(1), {
      timeout: 90_000,
      interval: 250,
    });
    const [mail] = await smtp.received();
    const { runs } = await served.json("/api/runs?stack=storage&status=blocked");
    expect(mail?.parsed.subject).toBe(
      `[gitops-runner] run blocked in stack storage at ${removal.slice(0, 7)}`,
    );
    expect(mail?.parsed.text).toContain(`Commit: ${removal}`);
    expect(mail?.parsed.text).toContain("terraform_data.queue: delete");
    expect(mail?.parsed.html).toContain(`<a href="https://runner.example.com/runs/${runs[0].id}">`);
    expect(JSON.stringify(served.logs)).not.toContain(PASSWORD);
    expect(await served.stop()).toBe(0);
  });
});
