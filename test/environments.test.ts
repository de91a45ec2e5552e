import { writeFile } from "node:fs/promises";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import {
  counterpartOf,
  decidePromotion,
  type Environment,
  environmentOf,
  normalizeForPromotion,
} from "../src/domain/environments.ts";
import type { CommandReport } from "../src/engine/report.ts";
import { environmentSection, failsPlanGates } from "../src/service/plan-gates.ts";
import { runCli } from "./support/cli.ts";
import { type AppSpec, dataDir, TestRepo } from "./support/repo.ts";

const dev: Environment = {
  name: "dev",
  stacks: ["*-dev"],
  values: { cidr: "10.0.0.0/16", size: "small", replicas: 1 },
  requirePromotion: true,
};
const prod: Environment = {
  name: "prod",
  stacks: ["*-prod"],
  values: { cidr: "10.1.0.0/16", size: "large", replicas: 3 },
  requirePromotion: true,
};

describe("environments and the promotion rule (pure)", () => {
  it("place stacks by pattern, find the counterpart of the environment before, and refuse a stack two claim", () => {
    const member = environmentOf([dev, prod], "", "network-prod");
    expect(member?.environment.name).toBe("prod");
    expect(
      counterpartOf([dev, prod], member ?? { environment: prod, index: 1 }, "", "network-prod"),
    ).toMatchObject({
      stack: "network-dev",
      appDir: "",
    });
    expect(environmentOf([dev, prod], "", "shared")).toBeUndefined();
    expect(() => environmentOf([dev, { ...prod, stacks: ["network-*"] }], "", "network-dev")).toThrow(
      "environments: stack network-dev belongs to more than one environment (dev, prod)",
    );
    // One app folder per environment: the same stack names in each.
    const folders = [
      { ...dev, stacks: [], appDir: "envs/dev" },
      { ...prod, stacks: [], appDir: "envs/prod" },
    ];
    const inProd = environmentOf(folders, "envs/prod", "network");
    expect(inProd?.environment.name).toBe("prod");
    expect(
      counterpartOf(folders, inProd ?? { environment: prod, index: 1 }, "envs/prod", "network"),
    ).toMatchObject({
      stack: "network",
      appDir: "envs/dev",
    });
  });

  it("normalize away the environment's name (as a word) and its own values, and nothing else", () => {
    const config = (environment: string, cidr: string, size: string, replicas: number) => ({
      "//": { metadata: { stackName: `network-${environment}` } },
      resource: {
        terraform_data: {
          [`vpc_${environment}`]: {
            input: { cidr, size, replicas, name: `vpc-${environment}`, device: "dev0" },
          },
        },
      },
    });
    const devConfig = normalizeForPromotion(config("dev", "10.0.0.0/16", "small", 1), dev);
    const prodConfig = normalizeForPromotion(config("prod", "10.1.0.0/16", "large", 3), prod);
    expect(devConfig).toEqual(prodConfig);
    expect(JSON.stringify(devConfig)).toContain('"device":"dev0"');
    expect(JSON.stringify(devConfig)).toContain('"vpc_${environment}"');
    expect(JSON.stringify(devConfig)).toContain('"size":"${values.size}"');
    expect(normalizeForPromotion(config("prod", "10.1.0.0/16", "huge", 3), prod)).not.toEqual(devConfig);
  });

  it("decide: ungated, promoted, follows its counterpart in the same change, or blocked with the reason", () => {
    const facts = {
      environment: "prod",
      requirePromotion: true,
      previous: "dev",
      counterpart: "network-dev",
      promotionHash: "p1",
    };
    expect(decidePromotion({ ...facts, previous: undefined } as never)).toEqual({ kind: "ungated" });
    expect(decidePromotion({ ...facts, requirePromotion: false })).toEqual({ kind: "ungated" });
    expect(decidePromotion({ ...facts, appliedByCounterpart: { commit: "c1" } })).toEqual({
      kind: "promoted",
      from: "dev",
      counterpart: "network-dev",
      commit: "c1",
    });
    expect(decidePromotion({ ...facts, counterpartInChange: { promotionHash: "p1" } })).toEqual({
      kind: "follows",
      from: "dev",
      counterpart: "network-dev",
    });
    expect(decidePromotion({ ...facts, counterpartInChange: { promotionHash: "p2" } })).toEqual({
      kind: "blocked",
      from: "dev",
      reason: "promotion: dev never applied this configuration (network-dev); apply it to dev first",
    });
    expect(decidePromotion({ ...facts, counterpart: undefined } as never)).toMatchObject({
      kind: "blocked",
      reason: "promotion: this prod stack has no counterpart in dev, so dev never applied its configuration",
    });
  });

  it("show per environment what the merge does, and fail the plan check where promotion would block", () => {
    const stack = (name: string, environment: string, promotion: never, autoApply = true) => ({
      name,
      commit: "c1",
      status: "changes" as const,
      summary: { add: 1, change: 0, destroy: 0, replace: 0, import: 0 },
      resources: [],
      runId: `run-${name}`,
      environment: { name: environment, promotion, autoApply },
    });
    const report: CommandReport = {
      commit: "c1",
      stacks: [
        stack("network-dev", "dev", { kind: "ungated" } as never),
        stack(
          "network-prod",
          "prod",
          { kind: "follows", from: "dev", counterpart: "network-dev" } as never,
          false,
        ),
        stack("alarms-prod", "prod", {
          kind: "blocked",
          from: "dev",
          reason: "promotion: dev never applied it",
        } as never),
      ],
    };
    expect(environmentSection(report)).toBe(
      [
        "#### Environments",
        "",
        "| Environment | Stack | On merge |",
        "| :-- | :-- | :-- |",
        "| dev | network-dev | applies |",
        "| prod | network-prod | applies once network-dev (dev) has applied the same configuration, after a person approves it (autoApply is off) |",
        "| prod | alarms-prod | blocked: promotion: dev never applied it |",
      ].join("\n"),
    );
    expect(failsPlanGates(report)).toBe(true);
    expect(failsPlanGates({ ...report, stacks: report.stacks.slice(0, 2) })).toBe(false);
  });
});

const app = (extraProd: AppSpec[string] = {}, extraBoth: AppSpec[string] = {}): AppSpec => ({
  "network-dev": {
    vpc: { input: { cidr: "10.0.0.0/16", size: "small", name: "vpc-dev" } },
    ...extraBoth,
  },
  "network-prod": {
    vpc: { input: { cidr: "10.1.0.0/16", size: "large", name: "vpc-prod" } },
    ...extraBoth,
    ...extraProd,
  },
});

function applyRuns(data: string): string[] {
  const db = new DatabaseSync(path.join(data, "runner.db"), { readOnly: true });
  try {
    return (
      db.prepare("SELECT stack, result FROM runs WHERE kind = 'apply' ORDER BY rowid").all() as never[]
    ).map((run: { stack: string; result: string }) => `${run.stack} ${run.result}`);
  } finally {
    db.close();
  }
}

describe("a two-environment app through dev, then prod", () => {
  it("blocks prod until dev applied the same configuration, orders them on one apply, and promotes", async () => {
    const repo = await TestRepo.create(app());
    const data = await dataDir();
    const config = path.join(data, "runner.json");
    await writeFile(
      config,
      JSON.stringify({
        environments: [
          { name: "dev", stacks: ["*-dev"], values: { cidr: "10.0.0.0/16", size: "small" } },
          { name: "prod", stacks: ["*-prod"], values: { cidr: "10.1.0.0/16", size: "large" } },
        ],
      }),
    );
    const cli = (...args: string[]) =>
      runCli([...args, "--repo", repo.dir, "--data-dir", data, "--config", config]);

    const early = await cli("apply", "--stack", "network-prod", "--json");
    expect(early.code).toBe(3);
    expect(early.json.stacks.find((stack: { name: string }) => stack.name === "network-prod")).toMatchObject({
      status: "blocked",
      reason: "promotion: dev never applied this configuration (network-dev); apply it to dev first",
    });
    const nothingYet = await cli("promote", "--from", "dev", "--to", "prod", "--json");
    expect(nothingYet.code).toBe(0);
    expect(nothingYet.json.stacks).toEqual([
      expect.objectContaining({
        name: "network-prod",
        status: "skipped",
        reason: "dev has not applied network-dev",
      }),
    ]);

    expect((await cli("apply", "--stack", "network-dev")).code).toBe(0);
    const promotion = await cli("promote", "--from", "dev", "--to", "prod", "--json");
    expect(promotion.code).toBe(2);
    expect(promotion.json.commit).toBe(await repo.head());
    expect(promotion.json.stacks).toEqual([
      expect.objectContaining({
        name: "network-prod",
        status: "changes",
        resources: [{ address: "terraform_data.vpc", actions: ["create"] }],
      }),
    ]);
    expect(promotion.json.stacks[0]).not.toHaveProperty("wouldBlock");
    expect((await cli("apply", "--stack", "network-prod")).code).toBe(0);

    // A change to both: one apply, dev first, then prod, which now runs what dev just applied.
    await repo.setApp(app({}, { dns: { input: { zone: "internal" } } }));
    await repo.commit("DNS in every environment");
    const both = await cli("apply", "--json");
    expect(both.code).toBe(0);
    expect(both.json.stacks.map((stack: { status: string }) => stack.status)).toEqual(["applied", "applied"]);
    expect(applyRuns(data).slice(-2)).toEqual(["network-dev applied", "network-prod applied"]);

    // A change that never reached dev: prod alone grows an alarm.
    await repo.setApp(app({ alarm: { input: { threshold: 90 } } }, { dns: { input: { zone: "internal" } } }));
    await repo.commit("An alarm in prod only");
    const planned = await cli("plan", "--json");
    expect(planned.code).toBe(2);
    expect(planned.json.stacks).toEqual([
      expect.objectContaining({ name: "network-dev", status: "skipped" }),
      expect.objectContaining({
        name: "network-prod",
        status: "changes",
        wouldBlock: true,
        reason: "promotion: dev never applied this configuration (network-dev); apply it to dev first",
      }),
    ]);
    const refused = await cli("apply", "--json");
    expect(refused.code).toBe(3);
    expect(refused.json.stacks[1]).toMatchObject({ name: "network-prod", status: "blocked" });

    const audit = await cli("audit", "--json");
    expect(audit.json.entries.filter((entry: { result: string }) => entry.result === "applied")).toHaveLength(
      4,
    );
    const [newest] = audit.json.entries;
    expect(newest).toMatchObject({
      stack: "network-prod",
      environment: "prod",
      promotionHash: expect.any(String),
    });
    const devEntry = audit.json.entries.find((entry: { stack: string }) => entry.stack === "network-dev");
    expect(devEntry.promotionHash).toBe(newest.promotionHash);
  });
});
