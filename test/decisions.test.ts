import { describe, expect, it } from "vitest";
import {
  correctsDrift,
  decideApply,
  decideDrift,
  destroyGuard,
  wouldBlock,
} from "../src/domain/decisions.ts";
import { parsePolicy } from "../src/policy/policy.ts";
import { laneOf } from "../src/service/events.ts";
import { dueDriftChecks, nextDriftCheck } from "../src/service/schedule.ts";
import { stackState } from "../src/service/views.ts";
import type { StackRecord } from "../src/store/records.ts";

const policy = (text: string) => parsePolicy("gitops-runner.policy.json", text).forStack("web");
const defaults = policy("{}");
const create = { address: "terraform_data.a", actions: ["create" as const] };
const replace = { address: "terraform_data.b", actions: ["delete" as const, "create" as const] };

describe("deciding an apply", () => {
  const facts = { hasChanges: true, resources: [create], destroys: [] };

  it("applies a plan with changes, accepts one without, and blocks a destroy the policy does not allow", () => {
    const rules = { policy: defaults, allowDestroy: false, honourAutoApply: true };
    expect(decideApply(facts, rules)).toEqual({ kind: "apply" });
    expect(decideApply({ hasChanges: false, resources: [], destroys: [] }, rules)).toEqual({
      kind: "accept-unchanged",
    });
    const destroying = { hasChanges: true, resources: [replace], destroys: [replace] };
    expect(decideApply(destroying, rules)).toEqual({
      kind: "block",
      reason: expect.stringContaining("destroys or replaces 1 resource(s) (terraform_data.b)"),
    });
    expect(decideApply(destroying, { ...rules, allowDestroy: true })).toEqual({ kind: "apply" });
    expect(decideApply(destroying, { ...rules, policy: policy('{"web":{"allowDestroy":true}}') })).toEqual({
      kind: "apply",
    });
  });

  it("waits for approval where autoApply is off, in the service only", () => {
    const manual = policy('{"default":{"autoApply":false}}');
    expect(decideApply(facts, { policy: manual, allowDestroy: false, honourAutoApply: true })).toMatchObject({
      kind: "block",
      reason: expect.stringContaining("autoApply is off"),
    });
    expect(decideApply(facts, { policy: manual, allowDestroy: false, honourAutoApply: false })).toEqual({
      kind: "apply",
    });
  });

  it("applies an approved plan only when the new plan makes the same changes", () => {
    const approval = { runId: "r1", resources: [create] };
    const rules = { policy: defaults, allowDestroy: true, honourAutoApply: true, approval };
    expect(decideApply(facts, rules)).toEqual({ kind: "apply" });
    expect(decideApply({ hasChanges: true, resources: [replace], destroys: [replace] }, rules)).toMatchObject(
      {
        kind: "block",
        reason: expect.stringContaining("differs from the one approved in run r1"),
      },
    );
  });

  it("previews a pull request's destroy as would-block", () => {
    expect(wouldBlock([replace], defaults)).toBe(true);
    expect(wouldBlock([], defaults)).toBe(false);
    expect(destroyGuard([replace], defaults, true)).toBeUndefined();
  });
});

describe("deciding a drift check", () => {
  const correct = policy('{"web":{"drift":"correct"}}');

  it("corrects only where the mode asks and never a pending stack", () => {
    expect(correctsDrift(correct, false, "policy")).toBe(true);
    expect(correctsDrift(defaults, false, "policy")).toBe(false);
    expect(correctsDrift(defaults, false, "all")).toBe(true);
    expect(correctsDrift(correct, true, "all")).toBe(false);
    expect(correctsDrift(policy('{"web":{"drift":"off"}}'), false, "all")).toBe(false);
  });

  it("tells of a drift when first found and when it changes, not on every check", () => {
    const facts = { drifted: true, fingerprint: "f1", destroys: [] };
    expect(decideDrift(facts, false, defaults, {})).toEqual({
      kind: "report",
      fingerprint: "f1",
      notify: "found",
    });
    expect(decideDrift(facts, false, defaults, { status: "drifted", fingerprint: "f1" })).toEqual({
      kind: "report",
      fingerprint: "f1",
    });
    expect(decideDrift(facts, false, defaults, { status: "drifted", fingerprint: "f0" })).toEqual({
      kind: "report",
      fingerprint: "f1",
      notify: "changed",
    });
    expect(decideDrift({ ...facts, drifted: false }, true, correct, {})).toEqual({ kind: "in-sync" });
  });

  it("corrects unless the correction would destroy what the policy protects", () => {
    expect(decideDrift({ drifted: true, fingerprint: "f", destroys: [] }, true, correct, {})).toEqual({
      kind: "correct",
    });
    expect(
      decideDrift({ drifted: true, fingerprint: "f", destroys: [replace] }, true, correct, {}),
    ).toMatchObject({
      kind: "block",
      fingerprint: "f",
    });
  });
});

describe("the drift schedule", () => {
  const now = new Date("2026-11-30T12:00:00Z");
  const candidate = (fields: Partial<Parameters<typeof dueDriftChecks>[0][number]> = {}) => ({
    stack: "web",
    policy: policy('{"web":{"driftSchedule":"10m"}}'),
    lastCheckedAt: new Date(now.getTime() - 11 * 60_000),
    failures: 0,
    locked: false,
    queued: false,
    ...fields,
  });

  it("is due after the interval, not before, and never while applying, queued, off or suspended", () => {
    expect(dueDriftChecks([candidate()], now, 0)).toEqual(["web"]);
    expect(
      dueDriftChecks([candidate({ lastCheckedAt: new Date(now.getTime() - 9 * 60_000) })], now, 0),
    ).toEqual([]);
    expect(dueDriftChecks([candidate({ locked: true })], now, 0)).toEqual([]);
    expect(dueDriftChecks([candidate({ queued: true })], now, 0)).toEqual([]);
    expect(dueDriftChecks([candidate({ policy: policy('{"web":{"drift":"off"}}') })], now, 0)).toEqual([]);
    expect(dueDriftChecks([candidate({ policy: policy('{"web":{"suspended":true}}') })], now, 0)).toEqual([]);
  });

  it("backs off after failed checks and spreads stacks of one schedule by a stable jitter", () => {
    expect(dueDriftChecks([candidate({ failures: 1 })], now, 0)).toEqual([]);
    const schedule = policy('{"web":{"driftSchedule":"1h"}}').driftSchedule;
    const from = { lastCheckedAt: now, failures: 0 };
    const a = nextDriftCheck("alpha", schedule, from, 10).getTime();
    expect(nextDriftCheck("alpha", schedule, from, 10).getTime()).toBe(a);
    expect(a - now.getTime()).toBeGreaterThanOrEqual(3_600_000);
    expect(a - now.getTime()).toBeLessThanOrEqual(3_960_000);
    expect(nextDriftCheck("beta", schedule, from, 10).getTime()).not.toBe(a);
  });
});

describe("a stack's state word", () => {
  const applied: StackRecord = {
    repoId: "r",
    appDir: "",
    stack: "web",
    lastAppliedCommit: "c1",
    lastAppliedHash: "h1",
    lastApplyStatus: "succeeded",
    driftFailures: 0,
  };
  const base = { record: applied, inApp: true, locked: false, changedAtHead: false };

  it("names the state people act on, most urgent first", () => {
    expect(stackState(base)).toBe("in-sync");
    expect(stackState({ ...base, changedAtHead: true })).toBe("pending");
    expect(stackState({ ...base, record: { ...applied, driftStatus: "drifted" } })).toBe("drifted");
    expect(stackState({ ...base, record: { ...applied, lastApplyStatus: "failed" } })).toBe("failed");
    expect(stackState({ ...base, record: { ...applied, lastApplyStatus: "blocked" } })).toBe("blocked");
    expect(stackState({ ...base, locked: true })).toBe("applying");
    expect(stackState({ ...base, inApp: false })).toBe("orphaned");
    expect(stackState({ ...base, policy: policy('{"web":{"suspended":true}}') })).toBe("suspended");
    expect(stackState({ locked: false, changedAtHead: true, inApp: true })).toBe("pending");
  });
});

describe("event lanes", () => {
  it("serializes the app's applies and gives stacks and pull requests lanes of their own", () => {
    expect(laneOf("apply", undefined, undefined)).toBe(laneOf("approve", "web", undefined));
    expect(laneOf("drift", "web", undefined)).not.toBe(laneOf("drift", "db", undefined));
    expect(laneOf("pr-plan", undefined, 4)).not.toBe(laneOf("pr-plan", undefined, 5));
    expect(laneOf("plan", "web", undefined)).toBe(laneOf("recheck", "web", undefined));
  });
});
