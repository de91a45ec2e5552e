/**
 * What the CLI prints for people, checked against golden files in
 * test/golden/cli/. After an intended change to the rendering:
 *
 *   UPDATE_GOLDEN=1 bash scripts/run.sh npx vitest run test/cli-render.test.ts
 */
import path from "node:path";
import { describe, expect, it } from "vitest";
import { duration, finishedLine, startedLine } from "../src/cli/progress.ts";
import { renderReport } from "../src/cli/render.ts";
import type { FinishedRun } from "../src/engine/context.ts";
import { type CommandReport, EMPTY_SUMMARY, type StackReport } from "../src/engine/report.ts";
import { expectGolden } from "./support/golden.ts";

const golden = (name: string) => path.join(import.meta.dirname, "golden", "cli", name);

const HEAD = "4f7c2a9e1b3d5f60718293a4b5c6d7e8f9012345";
const BASE = "9a8b7c6d5e4f30211203f4e5d6c7b8a990817263";

function stack(name: string, fields: Partial<StackReport>): StackReport {
  return {
    name,
    commit: HEAD,
    status: "no-changes",
    summary: EMPTY_SUMMARY,
    resources: [],
    runId: `run-${name}`,
    ...fields,
  };
}

describe("the final table", () => {
  it("shows each stack's status, counts and reason after a plan", async () => {
    const report: CommandReport = {
      commit: HEAD,
      stacks: [
        stack("network", { status: "changes", summary: { ...EMPTY_SUMMARY, change: 1 } }),
        stack("storage", {
          status: "changes",
          summary: { add: 1, change: 0, destroy: 1, replace: 1, import: 0 },
          wouldBlock: true,
        }),
        stack("service", {
          status: "pending",
          provisional: true,
          reason: "waits for the producer's apply (network)",
        }),
        stack("batch", { status: "skipped", reason: `unchanged since ${BASE}`, runId: null }),
        stack("queue", {
          status: "failed",
          error: { code: "TERRAFORM_FAILED", message: "stack queue: plan: Reference to undeclared resource" },
        }),
      ],
    };
    await expectGolden(golden("plan.txt"), renderReport("plan", report));
  });

  it("shows applied, blocked and skipped stacks after an apply", async () => {
    const report: CommandReport = {
      commit: HEAD,
      stacks: [
        stack("network", { status: "applied", summary: { ...EMPTY_SUMMARY, add: 2 } }),
        stack("storage", {
          status: "blocked",
          summary: { ...EMPTY_SUMMARY, destroy: 1 },
          reason: "the plan destroys terraform_data.archive; the policy does not allow it",
        }),
        stack("service", { status: "skipped", reason: "dependency storage is blocked", runId: null }),
        stack("batch", { status: "no-changes" }),
      ],
    };
    await expectGolden(golden("apply.txt"), renderReport("apply", report));
  });
});

describe("progress lines", () => {
  const finished = (fields: Partial<FinishedRun>): FinishedRun => ({
    id: "run-1",
    kind: "plan",
    stack: "network",
    commit: HEAD,
    status: "succeeded",
    result: "changes",
    durationMs: 1_250,
    ...fields,
  });

  it("name the run when it starts and give its result, counts and duration when it ends", async () => {
    const lines = [
      startedLine({ id: "run-0", kind: "synth", stack: "*", commit: HEAD }),
      finishedLine(finished({ kind: "synth", stack: "*", result: "synthesized", durationMs: 2_140 })),
      startedLine({ id: "run-1", kind: "plan", stack: "network", commit: HEAD }),
      startedLine({ id: "run-2", kind: "plan", stack: "queue", commit: HEAD }),
      finishedLine(finished({ summary: { ...EMPTY_SUMMARY, add: 1, change: 2 } })),
      finishedLine(
        finished({
          stack: "queue",
          status: "failed",
          result: "failed",
          error: { code: "TERRAFORM_FAILED", message: "stack queue: plan: Reference to undeclared resource" },
          durationMs: 430,
        }),
      ),
      finishedLine(
        finished({
          kind: "apply",
          stack: "storage",
          status: "blocked",
          result: "blocked",
          summary: { ...EMPTY_SUMMARY, destroy: 1 },
        }),
      ),
      finishedLine(
        finished({
          kind: "apply",
          stack: "batch",
          status: "cancelled",
          result: "failed",
          durationMs: 75_000,
        }),
      ),
    ];
    await expectGolden(golden("progress.txt"), `${lines.join("\n")}\n`);
  });

  it("give durations in tenths of a second, then seconds, then minutes", () => {
    expect([430, 9_949, 9_950, 59_400, 59_600, 125_000].map(duration)).toEqual([
      "0.4s",
      "9.9s",
      "10s",
      "59s",
      "1m00s",
      "2m05s",
    ]);
  });
});
