import { access, readFile } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it, vi } from "vitest";
import { dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";

function runs(
  data: string,
): { kind: string; stack: string; status: string; trigger: string; result: string | null }[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return db.prepare("SELECT kind, stack, status, trigger, result FROM runs ORDER BY rowid").all() as never;
  } finally {
    db.close();
  }
}

async function config(data: string, repo: TestRepo, extra: Record<string, unknown> = {}): Promise<string> {
  return writeServeConfig(data, { repository: { url: repo.dir }, pollIntervalSeconds: 1, ...extra });
}

describe("serve survives crashes and shuts down cleanly", () => {
  it("after kill -9 during an apply, marks the run interrupted, re-checks the stack, and applies nothing twice", async () => {
    const data = await dataDir();
    const marker = path.join(data, "creates.log");
    const repo = await TestRepo.create({
      queue: { jobs: { input: { size: 1 }, slowCreate: 4, createMarker: marker } },
    });
    const file = await config(data, repo);
    const first = await startServe(file);
    await vi.waitFor(() => access(marker), { timeout: 60_000, interval: 100 });
    first.process.kill("SIGKILL");
    await new Promise((resolve) => first.process.once("exit", resolve));

    const second = await startServe(file);
    await vi.waitFor(
      async () =>
        expect((await second.json("/api/stacks")).stacks[0]).toMatchObject({
          lastAppliedCommit: await repo.head(),
        }),
      { timeout: 90_000, interval: 200 },
    );
    // The re-check plan runs beside the apply of the head and waits for it; it ends soon after.
    const recorded = await vi.waitFor(
      () => {
        const all = runs(data);
        expect(all).toContainEqual(
          expect.objectContaining({ kind: "plan", stack: "queue", trigger: "recovery", status: "succeeded" }),
        );
        return all;
      },
      { timeout: 60_000, interval: 200 },
    );
    expect(recorded).toContainEqual(
      expect.objectContaining({ kind: "apply", stack: "queue", status: "interrupted" }),
    );
    expect(recorded.filter((run) => run.kind === "synth").length).toBeGreaterThanOrEqual(2);
    // The interrupted terraform finished its create; the restart found it in state and created nothing again.
    expect((await readFile(marker, "utf8")).trim().split("\n")).toEqual(["created"]);
    const state = JSON.parse(
      await readFile(
        path.join(
          data,
          "state",
          (await import("node:fs")).readdirSync(path.join(data, "state"))[0] ?? "",
          "_",
          "queue",
          "terraform.tfstate",
        ),
        "utf8",
      ),
    );
    expect(state.resources.filter((resource: { mode: string }) => resource.mode === "managed")).toHaveLength(
      1,
    );
    expect(await second.stop()).toBe(0);
  });

  it("on SIGTERM during a run, exits in bounded time and records the run as cancelled", async () => {
    const data = await dataDir();
    const marker = path.join(data, "creates.log");
    const repo = await TestRepo.create({
      queue: { jobs: { input: { size: 1 }, slowCreate: 60, createMarker: marker } },
    });
    const served = await startServe(await config(data, repo, { shutdownGraceSeconds: 1 }));
    await vi.waitFor(() => access(marker), { timeout: 60_000, interval: 100 });

    const asked = performance.now();
    expect(await served.stop()).toBe(0);
    expect(performance.now() - asked).toBeLessThan(30_000);
    expect(runs(data)).toContainEqual(
      expect.objectContaining({ kind: "apply", stack: "queue", status: "cancelled" }),
    );
    expect(served.logs.map((entry) => entry.msg)).toContain("stopped");
  });
});
