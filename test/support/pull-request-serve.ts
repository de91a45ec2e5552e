import { glob, writeFile } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { expect, onTestFinished, vi } from "vitest";
import type { FakeForge } from "./fake-forge.ts";
import { startFakeGitHub } from "./fake-github.ts";
import { deliverGitHub } from "./github-deliveries.ts";
import { type AppSpec, appSource, dataDir, TestRepo } from "./repo.ts";
import { type Served, startServe, writeServeConfig } from "./serve.ts";

export { githubComment, githubPullRequest } from "./github-deliveries.ts";

/** What the pull-request tests share: the real `serve` against a fake forge, and ways to wait on its work. */

export const SECRET = "forge-webhook-secret";
export const TOKEN = "forge-token-abc123";

export const stacks = (cidr: string, replicas = 2): AppSpec => ({
  network: { vpc: { input: { cidr } } },
  service: { api: { input: { replicas }, reads: "network.vpc" } },
});

export interface StoredEvent {
  readonly id: string;
  readonly kind: string;
  readonly status: string;
  readonly pr: number | null;
  readonly commit: string | null;
}

export function events(data: string): StoredEvent[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return db
      .prepare("SELECT id, kind, status, pr, commit_sha AS 'commit' FROM events ORDER BY rowid")
      .all() as never;
  } finally {
    db.close();
  }
}

/** Runs of a commit, as the store has them. */
export function runsOf(
  data: string,
  commit: string,
): { kind: string; stack: string; status: string; pr: number | null }[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return db
      .prepare("SELECT kind, stack, status, pr FROM runs WHERE commit_sha = ? ORDER BY started_at, id")
      .all(commit) as never;
  } finally {
    db.close();
  }
}

/** Waits until an app that writes `marker` into its checkout (all it may write) is synthesizing. */
export async function synthStarted(data: string, marker: string): Promise<void> {
  await vi.waitFor(async () => expect(await checkoutsWith(data, marker)).toHaveLength(1), {
    timeout: 60_000,
    interval: 100,
  });
}

async function checkoutsWith(data: string, marker: string): Promise<string[]> {
  const found: string[] = [];
  for await (const file of glob(path.join(data, "work", "*", "checkout", marker)))
    found.push(path.dirname(file));
  return found;
}

/**
 * An app that says when its synthesis starts (GATE_STARTED in its checkout)
 * and waits for the test to open the gate (GATE_OPEN there) before it goes on.
 */
export function gatedApp(spec: AppSpec): string {
  return [
    'import { existsSync as gateExists, writeFileSync as gateWrite } from "node:fs";',
    `gateWrite(${JSON.stringify(GATE_STARTED)}, "");`,
    `while (!gateExists(${JSON.stringify(GATE_OPEN)})) await new Promise((resolve) => setTimeout(resolve, 50));`,
    appSource(spec),
  ].join("\n");
}

const GATE_STARTED = "gate-started";
const GATE_OPEN = "gate-open";

export async function gateStarted(data: string): Promise<void> {
  await synthStarted(data, GATE_STARTED);
}

export async function openGates(data: string): Promise<void> {
  for (const checkout of await checkoutsWith(data, GATE_STARTED)) {
    await writeFile(path.join(checkout, GATE_OPEN), "");
  }
}

/** Waits until the runner has no queued or running event: follow-up work is done too. */
export async function idle(data: string): Promise<void> {
  await vi.waitFor(
    () =>
      expect(events(data).filter((event) => event.status === "queued" || event.status === "running")).toEqual(
        [],
      ),
    { timeout: 60_000, interval: 200 },
  );
}

export async function planStatus(
  forge: FakeForge,
  sha: string,
  state: string,
  context = "gitops-runner/plan",
) {
  await vi.waitFor(
    () =>
      expect(forge.statuses(sha).map((status) => `${status.context} ${status.state}`)).toContain(
        `${context} ${state}`,
      ),
    { timeout: 60_000, interval: 200 },
  );
}

export interface GitHubSetup {
  repo: TestRepo;
  data: string;
  forge: FakeForge;
  served: Served;
  deliver(
    event: string,
    payload: Record<string, unknown>,
    delivery: string,
    signature?: string,
  ): Promise<number>;
  /** The answer's body too. */
  deliverFor(
    event: string,
    payload: Record<string, unknown>,
    delivery: string,
  ): Promise<{ status: number; body: any }>;
}

export interface GitHubSetupOptions {
  readonly spec?: AppSpec;
  /** The policy file on the main branch from the start. */
  readonly policy?: Record<string, unknown>;
  readonly forge?: Record<string, unknown>;
  /** Stacks applied at start. */
  readonly applied?: number;
}

export interface ServeForgeOptions {
  /** The repository's address. */
  readonly repository: string;
  /** The forge entry, without its token and secret variables. */
  readonly forge: Record<string, unknown>;
  /** The forge token; TOKEN by default. */
  readonly token?: string;
  /** Stacks applied at start, waited for before the runner is handed over (idle). */
  readonly applied: number;
}

/** The real `serve` on a repository and a forge, once it has applied the repository's stacks and gone idle. */
export async function serveForge(options: ServeForgeOptions): Promise<{ data: string; served: Served }> {
  const data = await dataDir();
  const config = await writeServeConfig(data, {
    repository: { url: options.repository },
    pollIntervalSeconds: 3600,
    forge: { tokenEnv: "TEST_FORGE_TOKEN", webhookSecretEnv: "TEST_FORGE_SECRET", ...options.forge },
  });
  const served = await startServe(config, {
    TEST_FORGE_TOKEN: options.token ?? TOKEN,
    TEST_FORGE_SECRET: SECRET,
  });
  await vi.waitFor(
    async () => {
      const { stacks: views } = await served.json("/api/stacks");
      expect(views.filter((view: { lastAppliedCommit?: string }) => view.lastAppliedCommit)).toHaveLength(
        options.applied,
      );
    },
    { timeout: 90_000, interval: 200 },
  );
  await idle(data);
  return { data, served };
}

/** A repository applied at start by `serve`, which plans the pull requests of a fake GitHub. */
export async function githubSetup(options: GitHubSetupOptions = {}): Promise<GitHubSetup> {
  const spec = options.spec ?? stacks("10.0.0.0/16");
  const repo = await TestRepo.create(spec);
  if (options.policy) {
    await repo.write("gitops-runner.policy.json", JSON.stringify(options.policy));
    await repo.commit("Policy");
  }
  const forge = await startFakeGitHub({ owner: "acme", repo: "infra", token: TOKEN });
  onTestFinished(() => forge.close());
  const { data, served } = await serveForge({
    repository: repo.dir,
    forge: { type: "github", owner: "acme", repo: "infra", baseUrl: forge.url, ...options.forge },
    applied: options.applied ?? Object.keys(spec).length,
  });
  const send = (event: string, payload: Record<string, unknown>, delivery: string, signature?: string) =>
    deliverGitHub(served.url, SECRET, {
      event,
      id: delivery,
      payload,
      ...(signature !== undefined ? { signature } : {}),
    });
  return {
    repo,
    data,
    forge,
    served,
    deliver: async (event, payload, delivery, signature) =>
      (await send(event, payload, delivery, signature)).status,
    deliverFor: async (event, payload, delivery) => {
      const response = await send(event, payload, delivery);
      return { status: response.status, body: await response.json() };
    },
  };
}
