import { describe, expect, it } from "vitest";
import { parseRunnerConfig } from "../src/config/runner-config.ts";
import { applyGate, gateReason, type MaintenanceWindow } from "../src/domain/apply-gate.ts";
import { decideCancel } from "../src/domain/cancel.ts";
import { policyInForce, suspensionReason } from "../src/domain/stack-policy.ts";
import { parsePolicy } from "../src/policy/policy.ts";
import { entriesToTrim } from "../src/synth/cache-trim.ts";

/** The operations' decisions, from plain values. */

const weeknights: MaintenanceWindow = {
  cron: "0 22 * * 1-5",
  durationMs: 2 * 60 * 60 * 1000,
  timezone: "UTC",
  text: "0 22 * * 1-5 for 2h (UTC)",
};

describe("may an apply start now", () => {
  const monday2230 = new Date("2026-11-30T22:30:00.000Z");

  it("is open with no freeze and no windows", () => {
    expect(applyGate(monday2230, undefined, [])).toEqual({ kind: "open" });
  });

  it("is frozen until the freeze ends, then open again", () => {
    const freeze = {
      reason: "release week",
      since: "2026-11-30T08:00:00.000Z",
      until: "2026-12-01T00:00:00.000Z",
    };
    const frozen = applyGate(monday2230, freeze, []);
    expect(frozen).toEqual({ kind: "frozen", freeze });
    expect(gateReason(frozen)).toBe("applies are frozen until 2026-12-01T00:00:00.000Z: release week");
    expect(applyGate(new Date("2026-12-01T00:00:00.000Z"), freeze, [])).toEqual({ kind: "open" });
    const open = { reason: "incident", since: "2026-11-30T08:00:00.000Z" };
    expect(gateReason(applyGate(new Date("2030-01-01T00:00:00.000Z"), open, []))).toBe(
      "applies are frozen: incident",
    );
  });

  it("is open inside a maintenance window, from its first instant to just before its end", () => {
    for (const at of ["2026-11-30T22:00:00.000Z", "2026-11-30T22:30:00.000Z", "2026-11-30T23:59:59.999Z"]) {
      expect(applyGate(new Date(at), undefined, [weeknights]), at).toEqual({ kind: "open" });
    }
  });

  it("waits outside every window, naming when the next one opens", () => {
    expect(applyGate(new Date("2026-12-01T00:00:00.000Z"), undefined, [weeknights])).toEqual({
      kind: "outside-window",
      opensAt: new Date("2026-12-01T22:00:00.000Z"),
    });
    // Friday night's window is the last of the week.
    const saturday = applyGate(new Date("2026-12-05T12:00:00.000Z"), undefined, [weeknights]);
    expect(saturday).toEqual({ kind: "outside-window", opensAt: new Date("2026-12-07T22:00:00.000Z") });
    expect(gateReason(saturday)).toBe(
      "applies wait for the next maintenance window, at 2026-12-07T22:00:00.000Z",
    );
  });

  it("reads a window in its time zone, and takes the soonest of several", () => {
    const berlinMorning = { ...weeknights, cron: "0 6 * * *", timezone: "Europe/Berlin" };
    // 06:00 in Berlin is 05:00 UTC in winter.
    expect(applyGate(new Date("2026-12-02T05:30:00.000Z"), undefined, [berlinMorning])).toEqual({
      kind: "open",
    });
    expect(applyGate(new Date("2026-12-02T04:30:00.000Z"), undefined, [weeknights, berlinMorning])).toEqual({
      kind: "outside-window",
      opensAt: new Date("2026-12-02T05:00:00.000Z"),
    });
  });

  it("is frozen even inside a window", () => {
    const freeze = { reason: "incident", since: "2026-11-30T08:00:00.000Z" };
    expect(applyGate(monday2230, freeze, [weeknights]).kind).toBe("frozen");
  });

  it("takes windows from the runner's configuration, and names a wrong one by its field", () => {
    const config = parseRunnerConfig(
      "runner.json",
      JSON.stringify({ maintenanceWindows: [{ cron: "0 22 * * 1-5", duration: "2h" }] }),
    );
    expect(config.maintenanceWindows).toEqual([weeknights]);
    expect(config.retention).toEqual({ days: 90 });
    expect(config.cache.maxBytes).toBeGreaterThan(0);
    expect(() =>
      parseRunnerConfig(
        "runner.json",
        JSON.stringify({
          maintenanceWindows: [{ cron: "1h", duration: "0 22 * * *", timezone: "Mars/Olympus" }],
        }),
      ),
    ).toThrow(
      /maintenanceWindows\.0\.cron: .*cron expression[\s\S]*maintenanceWindows\.0\.duration: .*duration[\s\S]*maintenanceWindows\.0\.timezone: an IANA time zone/,
    );
  });
});

describe("may this be cancelled", () => {
  const running = { id: "e1", status: "running" } as const;

  it("drops a queued event", () => {
    expect(decideCancel({ event: { id: "e1", status: "queued" }, applying: false }, false)).toEqual({
      kind: "drop",
      eventId: "e1",
    });
  });

  it("signals a running run's event, forced or not, outside an apply step", () => {
    expect(decideCancel({ run: { status: "running" }, event: running, applying: false }, false)).toEqual({
      kind: "signal",
      eventId: "e1",
      force: false,
    });
    expect(decideCancel({ event: running, applying: false }, true)).toEqual({
      kind: "signal",
      eventId: "e1",
      force: true,
    });
  });

  it("interrupts an apply step only with force", () => {
    expect(decideCancel({ run: { status: "running" }, event: running, applying: true }, false)).toMatchObject(
      {
        kind: "refuse",
        code: "RUN_APPLYING",
        reason: expect.stringContaining("cancel with force"),
      },
    );
    expect(decideCancel({ run: { status: "running" }, event: running, applying: true }, true)).toEqual({
      kind: "signal",
      eventId: "e1",
      force: true,
    });
  });

  it("refuses an ended run, a run of the command line, and an ended event", () => {
    expect(decideCancel({ run: { status: "succeeded" }, event: running, applying: false }, true)).toEqual({
      kind: "refuse",
      code: "RUN_NOT_CANCELLABLE",
      reason: "the run has ended (succeeded)",
    });
    expect(decideCancel({ run: { status: "running" }, applying: false }, false)).toMatchObject({
      kind: "refuse",
      code: "RUN_NOT_CANCELLABLE",
      reason: expect.stringContaining("command-line"),
    });
    expect(decideCancel({ event: { id: "e1", status: "done" }, applying: false }, false)).toMatchObject({
      kind: "refuse",
      code: "RUN_NOT_CANCELLABLE",
    });
  });
});

describe("the policy in force", () => {
  const file = parsePolicy("gitops-runner.policy.json", '{"web":{"suspended":true}}');

  it("is the file's entry when no operator stored anything", () => {
    const inForce = policyInForce(file.forStack("db"), undefined);
    expect(inForce).toEqual({ policy: file.forStack("db") });
    const suspended = policyInForce(file.forStack("web"), undefined);
    expect(suspended.suspendedBy).toBe("policy");
    expect(suspensionReason(suspended)).toBe("suspended by policy");
  });

  it("takes a stored suspension or resumption over the file's", () => {
    const override = { suspended: true, reason: "incident 42", updatedAt: "2026-11-30T10:00:00.000Z" };
    const suspended = policyInForce(file.forStack("db"), override);
    expect(suspended.policy.suspended).toBe(true);
    expect(suspensionReason(suspended)).toBe("suspended by an operator: incident 42");
    const resumed = policyInForce(file.forStack("web"), { suspended: false, updatedAt: override.updatedAt });
    expect(resumed.policy.suspended).toBe(false);
    expect(resumed.suspendedBy).toBeUndefined();
  });
});

describe("which cached dependencies go", () => {
  const now = new Date("2026-11-30T12:00:00.000Z");
  const hoursAgo = (hours: number) => new Date(now.getTime() - hours * 3_600_000);
  const entries = [
    { name: "newest", bytes: 400, lastUsed: hoursAgo(2) },
    { name: "oldest", bytes: 300, lastUsed: hoursAgo(48) },
    { name: "middle", bytes: 500, lastUsed: hoursAgo(24) },
  ];

  it("removes the least recently used first, until the rest fit", () => {
    expect(entriesToTrim(entries, 1200, now, 3_600_000)).toEqual([]);
    expect(entriesToTrim(entries, 1000, now, 3_600_000)).toEqual(["oldest"]);
    expect(entriesToTrim(entries, 500, now, 3_600_000)).toEqual(["oldest", "middle"]);
  });

  it("keeps an entry used recently, even over the cap", () => {
    expect(entriesToTrim(entries, 0, now, 3 * 3_600_000)).toEqual(["oldest", "middle"]);
    expect(entriesToTrim(entries, 0, now, 30 * 3_600_000)).toEqual(["oldest"]);
  });
});
