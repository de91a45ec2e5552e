import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { MaintenanceWindow } from "../domain/apply-gate.ts";
import { RunnerError } from "../errors.ts";
import type { EmailTargetOptions } from "../notify/email.ts";
import { parseSchedule, policyDefaultsSchema, type Schedule } from "../policy/policy.ts";

const DEFAULT_CACHE_BYTES = 4 * 1024 ** 3;

const envSchema = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "not a variable name"), z.string());

const stackConfigSchema = z.strictObject({
  /** Variables for every command on this stack (credentials, TF_VAR_*). */
  env: envSchema.optional(),
  /** Variables for plans and drift reports only, e.g. read-only credentials; they win over env. Pull-request plans get only planEnv. */
  planEnv: envSchema.optional(),
});

const envNameSchema = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "the name of an environment variable");

/** An address, bare or with a display name: "runner@example.com", "Runner <runner@example.com>". */
const emailAddressSchema = z
  .string()
  .regex(/^(?:[^<>]*<[^<>@\s]+@[^<>@\s]+>|[^<>@\s]+@[^<>@\s]+)$/, "an email address");

const notificationSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("slack"),
    name: z.string().min(1).optional(),
    /** The incoming-webhook URL is a secret: the variable that holds it. */
    urlEnv: envNameSchema,
  }),
  z.strictObject({
    type: z.literal("webhook"),
    name: z.string().min(1).optional(),
    url: z.url({ protocol: /^https?$/ }),
    secretEnv: envNameSchema,
  }),
  z
    .strictObject({
      type: z.literal("email"),
      name: z.string().min(1).optional(),
      host: z.string().min(1),
      /** Defaults to 587 (STARTTLS) or 465 (TLS). */
      port: z.int().min(1).max(65_535).optional(),
      /** starttls: a plain connection upgraded, TLS required; tls: TLS from the first byte. */
      security: z.enum(["starttls", "tls"]).default("starttls"),
      user: z.string().min(1).optional(),
      /** The variable holding the SMTP password. */
      passwordEnv: envNameSchema.optional(),
      from: emailAddressSchema,
      to: z.array(emailAddressSchema).min(1),
    })
    .refine((target) => (target.user === undefined) === (target.passwordEnv === undefined), {
      message: "user and passwordEnv go together",
      path: ["passwordEnv"],
    }),
]);

/** API tokens with names, which the audit trail records; the tokens themselves come from the environment. */
const apiTokenSchema = z.strictObject({
  name: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[A-Za-z0-9._@-]+$/, "letters, digits, '.', '_', '@' and '-'"),
  tokenEnv: envNameSchema,
  access: z.enum(["read", "write"]).default("write"),
});

/** An environment: the stacks it holds, its credentials, policy defaults and own values; their order is promotion's. */
const environmentSchema = z.strictObject({
  name: z
    .string()
    .min(1)
    .max(50)
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, "letters, digits, '_' and '-'"),
  /** The app folder whose stacks it holds (one app folder per environment); any when unset. */
  appDir: z.string().exactOptional(),
  /** Stack names or patterns with `*`; every stack of its app folder when unset. */
  stacks: z.array(z.string().min(1)).default([]),
  env: envSchema.optional(),
  planEnv: envSchema.optional(),
  policy: policyDefaultsSchema.exactOptional(),
  /** The environment's own values (sizes, address ranges), which promotion compares without. */
  values: z
    .record(
      z.string().regex(/^[A-Za-z0-9_]+$/, "letters, digits and '_'"),
      z.union([z.string(), z.number(), z.boolean()]),
    )
    .default({}),
  /** Its stacks apply only what the environment before applied; the first environment is never gated. */
  requirePromotion: z.boolean().default(true),
});
/** A schedule of the given kind (a cron expression, or an interval as a duration), as the policy file writes them. */
function scheduleOf<K extends Schedule["kind"]>(kind: K, example: string) {
  return z.string().transform((text, ctx): Extract<Schedule, { kind: K }> => {
    const schedule = parseSchedule(text);
    if (typeof schedule !== "string" && schedule.kind === kind)
      return schedule as Extract<Schedule, { kind: K }>;
    const message = typeof schedule === "string" ? schedule : `${JSON.stringify(text)}: expected ${example}`;
    ctx.issues.push({ code: "custom", input: text, message });
    return z.NEVER;
  });
}

/** A window in which applies and drift corrections may start: when it opens (cron) and how long it stays open. */
const maintenanceWindowSchema = z
  .strictObject({
    cron: scheduleOf("cron", "a 5-field cron expression such as 0 22 * * 1-5"),
    duration: scheduleOf("interval", "a duration such as 2h or 90m"),
    timezone: z
      .string()
      .refine(
        (zone) => zone === "UTC" || Intl.supportedValuesOf("timeZone").includes(zone),
        "an IANA time zone such as UTC or Europe/Berlin",
      )
      .default("UTC"),
  })
  .transform(
    (window): MaintenanceWindow => ({
      cron: window.cron.expression,
      durationMs: window.duration.everyMs,
      timezone: window.timezone,
      text: `${window.cron.text} for ${window.duration.text} (${window.timezone})`,
    }),
  );

/** What every forge entry has: credentials, forks, and how this runner names itself there. */
const forgeAccess = {
  tokenEnv: envNameSchema,
  webhookSecretEnv: envNameSchema.optional(),
  allowForks: z.boolean().default(false),
  /** The account the runner's comments are written by (login, username or UUID); learnt from the forge when unset. */
  login: z.string().min(1).optional(),
  /** Names this runner's comments (`<!-- NAME:plan -->`), so that two runners can share a repository. */
  commentMarker: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,59}$/, "letters, digits and . _ / -, at most 60")
    .default("gitops-runner"),
  planStatus: z.string().min(1).max(40).default("gitops-runner/plan"),
  applyStatus: z.string().min(1).max(40).default("gitops-runner/apply"),
};

/** The runner's own configuration file (JSON); never read from the watched repository. */
const runnerConfigSchema = z.strictObject({
  /** What `serve` watches; the CLI takes --repo instead. */
  repository: z
    .strictObject({
      url: z.string().min(1),
      branch: z.string().min(1).optional(),
      appDir: z.string().default(""),
    })
    .optional(),
  pollIntervalSeconds: z.int().min(1).max(86_400).default(60),
  dataDir: z.string().min(1).optional(),
  listen: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.int().min(0).max(65_535).default(8080),
    })
    .default({ host: "127.0.0.1", port: 8080 }),
  /** The address people reach the dashboard at, for links in notifications. */
  publicUrl: z.url().optional(),
  webhooks: z.strictObject({ generic: z.strictObject({ secretEnv: envNameSchema }).optional() }).default({}),
  notifications: z.array(notificationSchema).default([]),
  apiTokens: z
    .array(apiTokenSchema)
    .default([])
    .refine(
      (tokens) => new Set(tokens.map((token) => token.name)).size === tokens.length,
      "token names must be unique",
    ),
  /** The forge whose pull requests are planned; its token and webhook secret come from the environment. */
  forge: z
    .discriminatedUnion("type", [
      z.strictObject({
        type: z.literal("github"),
        owner: z.string().min(1),
        repo: z.string().min(1),
        /** GitHub Enterprise: https://ghe.example.com/api/v3 */
        baseUrl: z.url().optional(),
        ...forgeAccess,
      }),
      z.strictObject({
        type: z.literal("gitlab"),
        project: z.string().min(1),
        /** Self-hosted GitLab: https://gitlab.example.com */
        baseUrl: z.url().optional(),
        ...forgeAccess,
      }),
      z.strictObject({
        type: z.literal("gitea"),
        /** The Gitea (or Forgejo) instance: https://gitea.example.com */
        baseUrl: z.url(),
        owner: z.string().min(1),
        repo: z.string().min(1),
        ...forgeAccess,
      }),
      z.strictObject({
        type: z.literal("bitbucket"),
        workspace: z.string().min(1),
        repo: z.string().min(1),
        /** The Atlassian account's e-mail address, with a user API token; unset for an access token. */
        username: z.string().min(1).optional(),
        baseUrl: z.url().optional(),
        ...forgeAccess,
      }),
    ])
    .refine((forge) => forge.planStatus !== forge.applyStatus, {
      message: "planStatus and applyStatus must differ",
      path: ["applyStatus"],
    })
    .optional(),
  /** Drift schedules: a tick to look for due checks, and jitter spreading them. */
  drift: z
    .strictObject({
      tickSeconds: z.int().min(1).max(3600).default(30),
      jitterPercent: z.int().min(0).max(50).default(10),
    })
    .default({ tickSeconds: 30, jitterPercent: 10 }),
  shutdownGraceSeconds: z.int().min(0).max(3600).default(30),
  /**
   * The engine's CLI configuration (TF_CLI_CONFIG_FILE): a file of the operator's, or a provider
   * filesystem mirror the runner writes one for. Unset: see src/terraform/cli-config.ts.
   */
  terraform: z
    .strictObject({
      cliConfigFile: z.string().refine(path.isAbsolute, "an absolute path").optional(),
      providerMirror: z.string().refine(path.isAbsolute, "an absolute path").optional(),
    })
    .refine((section) => !(section.cliConfigFile && section.providerMirror), {
      message: "cliConfigFile and providerMirror exclude each other: set one of them",
    })
    .optional(),
  /** Path or name of the engine binary: terraform or tofu. Detected on PATH when unset. */
  engine: z.string().min(1).optional(),
  parallelism: z.int().min(1).max(64).default(4),
  /** Events run side by side (applies of one app still run one at a time). */
  workers: z.int().min(1).max(64).default(4),
  /** How long an apply waits for a stack another run holds, and a plan for an apply of its stack to end. */
  lockWaitSeconds: z.int().min(0).max(86_400).default(600),
  /** Leases of events and of leadership: after this long, another replica takes over a dead one's work. */
  leaseSeconds: z.int().min(2).max(3600).default(30),
  /** Work pauses (and /readyz fails) while the data directory has less free space than this. */
  minFreeMegabytes: z.int().min(0).default(64),
  /** The records: the embedded SQLite file (default), or PostgreSQL shared by replicas. */
  store: z
    .discriminatedUnion("type", [
      z.strictObject({ type: z.literal("sqlite") }),
      z.strictObject({
        type: z.literal("postgres"),
        /** The variable holding the connection URL (postgres://user:password@host:port/database). */
        urlEnv: envNameSchema,
      }),
    ])
    .default({ type: "sqlite" }),
  /** Path or name of bubblewrap, the sandbox of synthesis and dependency installs. */
  bwrap: z.string().min(1).default("bwrap"),
  lockTimeout: z
    .string()
    .regex(/^\d+[smh]$/, "a duration such as 30s, 5m or 1h")
    .default("30s"),
  allowInstallScripts: z.boolean().default(false),
  synthTimeoutSeconds: z.int().min(1).default(600),
  synthMaxOldSpaceMb: z.int().min(64).default(4096),
  terraformTimeoutSeconds: z.int().min(1).default(3600),
  /** Variables for every command on every stack; pull-request plans do not get them. */
  env: envSchema.default({}),
  /** Variables for plans and drift reports of every stack (read-only credentials); pull-request plans get only these. */
  planEnv: envSchema.default({}),
  stacks: z.record(z.string(), stackConfigSchema).default({}),
  /** Environments in promotion order: dev before staging before prod. */
  environments: z
    .array(environmentSchema)
    .default([])
    .refine(
      (environments) =>
        new Set(environments.map((environment) => environment.name)).size === environments.length,
      "environment names must be unique",
    ),
  /** Applies and drift corrections start only inside one of these; none: at any time. */
  maintenanceWindows: z.array(maintenanceWindowSchema).default([]),
  /** Runs (with their logs and plans) older than this are pruned; each stack keeps its last apply and drift check. */
  retention: z.strictObject({ days: z.int().min(1).max(36_500).default(90) }).default({ days: 90 }),
  /** The dependency cache is trimmed, least recently used first, to stay under this size. */
  cache: z
    .strictObject({ maxBytes: z.int().min(0).default(DEFAULT_CACHE_BYTES) })
    .default({ maxBytes: DEFAULT_CACHE_BYTES }),
});

export type RunnerConfig = z.infer<typeof runnerConfigSchema>;

export function parseRunnerConfig(file: string, text: string): RunnerConfig {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new RunnerError("CONFIG_INVALID", `${file}: not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const parsed = runnerConfigSchema.safeParse(data);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${file}: ${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`,
    );
    throw new RunnerError("CONFIG_INVALID", problems.join("\n"), { cause: parsed.error });
  }
  return Object.freeze(parsed.data);
}

export async function readRunnerConfig(file: string | undefined): Promise<RunnerConfig> {
  if (file === undefined) return parseRunnerConfig("(defaults)", "{}");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new RunnerError("CONFIG_INVALID", `${file}: cannot be read`, { cause: error });
  }
  return parseRunnerConfig(file, text);
}

/** An API token and the name the audit trail records for it. */
export interface NamedToken {
  readonly name: string;
  readonly value: string;
}

/** An email target as configured, its password read from the environment. */
export interface EmailSecrets extends Omit<EmailTargetOptions, "ca" | "timeoutMs"> {
  readonly type: "email";
}

export interface ServeSecrets {
  readonly apiTokens: { readonly read: readonly NamedToken[]; readonly write: readonly NamedToken[] };
  readonly webhookSecret?: string;
  readonly forge?: { readonly token: string; readonly webhookSecret?: string };
  readonly notifications: readonly (
    | { readonly type: "slack"; readonly name: string; readonly url: string }
    | { readonly type: "webhook"; readonly name: string; readonly url: string; readonly secret: string }
    | EmailSecrets
  )[];
}

/**
 * The last phase for `serve`: secrets named by the configuration must be in
 * the environment. Every problem is listed; a configured webhook without its
 * secret is a start-up error.
 */
export function resolveSecrets(
  file: string,
  config: RunnerConfig,
  env: Readonly<Record<string, string | undefined>>,
): ServeSecrets {
  const problems: string[] = [];
  const secret = (name: string, where: string): string => {
    const value = env[name];
    if (!value) problems.push(`${file}: ${where}: the environment variable ${name} is not set`);
    return value ?? "";
  };
  const webhookEnv = config.webhooks.generic?.secretEnv;
  const webhookSecret = webhookEnv ? secret(webhookEnv, "webhooks.generic.secretEnv") : undefined;
  const notifications = config.notifications.map((target, index) =>
    notificationSecrets(target, index, secret),
  );
  const named = config.apiTokens.map((token, index) => ({
    access: token.access,
    name: token.name,
    value: secret(token.tokenEnv, `apiTokens.${index}.tokenEnv`),
  }));
  const forge = config.forge
    ? {
        token: secret(config.forge.tokenEnv, "forge.tokenEnv"),
        ...(config.forge.webhookSecretEnv
          ? { webhookSecret: secret(config.forge.webhookSecretEnv, "forge.webhookSecretEnv") }
          : {}),
      }
    : undefined;
  if (problems.length > 0) throw new RunnerError("CONFIG_INVALID", problems.join("\n"));
  // The comma-separated variables of earlier versions still work; their tokens are named by variable and position.
  const unnamed = (variable: string): NamedToken[] =>
    (env[variable] ?? "")
      .split(",")
      .filter(Boolean)
      .map((value, index) => ({ name: `${variable}#${index + 1}`, value }));
  const withAccess = (access: "read" | "write") =>
    named.filter((token) => token.access === access).map(({ name, value }) => ({ name, value }));
  return {
    apiTokens: {
      read: [...withAccess("read"), ...unnamed("GITOPS_RUNNER_READ_TOKEN")],
      write: [...withAccess("write"), ...unnamed("GITOPS_RUNNER_API_TOKEN")],
    },
    ...(webhookSecret ? { webhookSecret } : {}),
    ...(forge ? { forge } : {}),
    notifications,
  };
}

/** Every secret `serve` holds, to be redacted wherever text leaves the runner. */
export function secretValues(secrets: ServeSecrets): string[] {
  return [
    ...secrets.apiTokens.read.map((token) => token.value),
    ...secrets.apiTokens.write.map((token) => token.value),
    ...(secrets.webhookSecret ? [secrets.webhookSecret] : []),
    ...(secrets.forge
      ? [secrets.forge.token, ...(secrets.forge.webhookSecret ? [secrets.forge.webhookSecret] : [])]
      : []),
    ...secrets.notifications.flatMap(notificationSecretValues),
  ];
}

type NotificationConfig = RunnerConfig["notifications"][number];

/** A notification target with the secrets it names read from the environment (through `secret`). */
function notificationSecrets(
  target: NotificationConfig,
  index: number,
  secret: (name: string, where: string) => string,
): ServeSecrets["notifications"][number] {
  switch (target.type) {
    case "slack":
      return {
        type: target.type,
        name: target.name ?? `slack-${index}`,
        url: secret(target.urlEnv, `notifications.${index}.urlEnv`),
      };
    case "webhook":
      return {
        type: target.type,
        name: target.name ?? `webhook-${index}`,
        url: target.url,
        secret: secret(target.secretEnv, `notifications.${index}.secretEnv`),
      };
    case "email": {
      const { passwordEnv, port, name, user, ...rest } = target;
      return {
        ...rest,
        ...(user ? { user } : {}),
        name: name ?? `email-${index}`,
        port: port ?? (target.security === "tls" ? 465 : 587),
        ...(passwordEnv ? { password: secret(passwordEnv, `notifications.${index}.passwordEnv`) } : {}),
      };
    }
  }
}

/** The secret values a notification target holds. */
function notificationSecretValues(target: ServeSecrets["notifications"][number]): string[] {
  switch (target.type) {
    case "slack":
      return [target.url];
    case "webhook":
      return [target.secret];
    case "email":
      return target.password ? [target.password] : [];
  }
}
