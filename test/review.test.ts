import { describe, expect, it } from "vitest";
import { decideApply } from "../src/domain/decisions.ts";
import { compareWithReviewed, staleStacks, widenedPermissions } from "../src/domain/review.ts";
import { parseCommand } from "../src/forge/events.ts";
import { DEFAULT_POLICY, parsePolicy } from "../src/policy/policy.ts";
import { sameCommit } from "../src/service/pull-requests.ts";

const policy = (text: string) => parsePolicy("gitops-runner.policy.json", text).forStack("web");
const create = (address: string) => ({ address, actions: ["create" as const] });
const update = (address: string) => ({ address, actions: ["update" as const] });
const replace = (address: string) => ({ address, actions: ["delete" as const, "create" as const] });

describe("comparing the merge commit's plan with the reviewed one", () => {
  it("finds the same changes the same, whatever their order", () => {
    expect(compareWithReviewed([create("a"), update("b")], [update("b"), create("a")])).toEqual({
      kind: "same",
    });
    expect(compareWithReviewed([], [])).toEqual({ kind: "same" });
  });

  it("names each resource added, removed, or with other actions, by address", () => {
    expect(
      compareWithReviewed([update("b"), create("c"), update("d")], [replace("b"), create("a"), update("d")]),
    ).toEqual({
      kind: "differs",
      notReviewed: false,
      differences: [
        { kind: "added", address: "a", actions: ["create"] },
        { kind: "changed", address: "b", reviewed: ["update"], planned: ["delete", "create"] },
        { kind: "removed", address: "c", actions: ["create"] },
      ],
    });
  });

  it("tells the order of a replacement apart", () => {
    const createFirst = { address: "b", actions: ["create", "delete"] };
    expect(compareWithReviewed([replace("b")], [createFirst]).kind).toBe("differs");
  });

  it("calls a stack the pull request never planned unreviewed, unless nothing changes now", () => {
    expect(compareWithReviewed(undefined, [create("a")])).toEqual({
      kind: "differs",
      notReviewed: true,
      differences: [{ kind: "added", address: "a", actions: ["create"] }],
    });
    expect(compareWithReviewed(undefined, [])).toEqual({ kind: "same" });
  });
});

describe("requireReviewedPlan", () => {
  const facts = { hasChanges: true, resources: [create("terraform_data.a")], destroys: [] };
  const differs = { pr: 7, comparison: compareWithReviewed([], [create("terraform_data.a")]) };
  const same = {
    pr: 7,
    comparison: compareWithReviewed([create("terraform_data.a")], [create("terraform_data.a")]),
  };
  const strict = policy('{"web":{"requireReviewedPlan":true}}');

  it("blocks a plan that differs from the reviewed one, naming the pull request and the resources", () => {
    expect(
      decideApply(facts, { policy: strict, allowDestroy: false, honourAutoApply: true, review: differs }),
    ).toEqual({
      kind: "block",
      reason:
        "the plan differs from the one reviewed on pull request #7 for 1 resource(s) (terraform_data.a) and the policy requires the reviewed plan (requireReviewedPlan); review this plan and approve the run to apply it",
    });
    const unplanned = { pr: 7, comparison: compareWithReviewed(undefined, [create("terraform_data.a")]) };
    expect(
      decideApply(facts, { policy: strict, allowDestroy: false, honourAutoApply: true, review: unplanned }),
    ).toMatchObject({
      kind: "block",
      reason: expect.stringMatching(/^pull request #7 did not plan this stack and/),
    });
  });

  it("applies the reviewed plan, a difference by default, an approved plan, and nothing to apply", () => {
    const rules = { policy: strict, allowDestroy: false, honourAutoApply: true };
    expect(decideApply(facts, { ...rules, review: same })).toEqual({ kind: "apply" });
    expect(decideApply(facts, { ...rules, policy: policy("{}"), review: differs })).toEqual({
      kind: "apply",
    });
    expect(
      decideApply(facts, {
        ...rules,
        review: differs,
        approval: { runId: "r1", resources: facts.resources },
      }),
    ).toEqual({
      kind: "apply",
    });
    const unchanged = { hasChanges: false, resources: [], destroys: [] };
    const gone = { pr: 7, comparison: compareWithReviewed([create("terraform_data.a")], []) };
    expect(decideApply(unchanged, { ...rules, review: gone })).toEqual({ kind: "accept-unchanged" });
    // A push to the branch that no pull request reviewed is not compared.
    expect(decideApply(facts, rules)).toEqual({ kind: "apply" });
  });
});

describe("stale plans", () => {
  const at = (hashes: Record<string, string>, dependencies: Record<string, string[]> = {}) =>
    Object.entries(hashes).map(([name, hash]) => ({ name, hash, dependencies: dependencies[name] ?? [] }));

  it("names the affected stacks the followed branch changed since the merge base, and those reading them", () => {
    const mergeBase = at({ network: "n1", service: "s1", dns: "d1" });
    const branchHead = at({ network: "n2", service: "s1", dns: "d1" }, { service: ["network"] });
    expect(staleStacks(["service", "dns"], mergeBase, branchHead)).toEqual(["service"]);
    expect(staleStacks(["network"], mergeBase, branchHead)).toEqual(["network"]);
    expect(staleStacks(["dns"], mergeBase, branchHead)).toEqual([]);
  });

  it("counts a stack added on the followed branch as changed", () => {
    expect(staleStacks(["queue"], at({}), at({ queue: "q1" }))).toEqual(["queue"]);
  });
});

describe("a policy change that widens a permission", () => {
  const stacks = (text: string, names: string[]) => {
    const parsed = parsePolicy("gitops-runner.policy.json", text);
    return new Map(names.map((name) => [name, parsed.forStack(name)]));
  };

  it("names allowDestroy, drift: correct, autoApply and dropping requireReviewedPlan", () => {
    const inForce = stacks('{"default":{"autoApply":false,"requireReviewedPlan":true}}', [
      "network",
      "storage",
    ]);
    const proposed = stacks(
      '{"default":{"autoApply":false,"requireReviewedPlan":true},"storage":{"allowDestroy":true,"drift":"correct","autoApply":true,"requireReviewedPlan":false}}',
      ["network", "storage"],
    );
    expect(widenedPermissions(inForce, proposed, DEFAULT_POLICY)).toEqual([
      { stack: "storage", field: "allowDestroy", from: "false", to: "true" },
      { stack: "storage", field: "drift", from: "notify", to: "correct" },
      { stack: "storage", field: "autoApply", from: "false", to: "true" },
      { stack: "storage", field: "requireReviewedPlan", from: "true", to: "false" },
    ]);
  });

  it("says nothing of narrowing, of an unchanged policy, or of a new stack with the defaults", () => {
    const wide = stacks('{"default":{"allowDestroy":true,"drift":"correct"}}', ["network"]);
    const narrow = stacks('{"default":{"drift":"off"}}', ["network", "queue"]);
    expect(widenedPermissions(wide, narrow, DEFAULT_POLICY)).toEqual([]);
    expect(widenedPermissions(wide, wide, DEFAULT_POLICY)).toEqual([]);
    const newStack = stacks('{"queue":{"allowDestroy":true}}', ["queue"]);
    expect(widenedPermissions(new Map(), newStack, DEFAULT_POLICY)).toEqual([
      { stack: "queue", field: "allowDestroy", from: "false", to: "true" },
    ]);
  });
});

describe("comment commands", () => {
  it("reads `/gitops-runner plan` with stacks from the first line only", () => {
    expect(parseCommand("/gitops-runner plan")).toEqual({ action: "plan", stacks: [] });
    expect(parseCommand("  /gitops-runner   plan network dns network\nthanks!")).toEqual({
      action: "plan",
      stacks: ["network", "dns"],
    });
    expect(parseCommand("/gitops-runner apply")).toEqual({ action: "help", asked: "apply" });
    expect(parseCommand("/gitops-runner plan ../etc")).toEqual({ action: "help", asked: "plan ../etc" });
    expect(parseCommand("/gitops-runner")).toEqual({ action: "help", asked: "" });
  });

  it("ignores ordinary comments and the command further down", () => {
    expect(parseCommand("Looks good")).toBeUndefined();
    expect(parseCommand("LGTM\n/gitops-runner plan")).toBeUndefined();
    expect(parseCommand("/gitops-runnerplan")).toBeUndefined();
    expect(parseCommand("<!-- gitops-runner:plan -->\n### gitops-runner plan")).toBeUndefined();
  });
});

describe("commit hashes from forges", () => {
  it("takes an abbreviated hash (Bitbucket's 12 characters) as the commit it starts", () => {
    const full = "4f7c2a9e1b3d5f60718293a4b5c6d7e8f9012345";
    expect(sameCommit(full, full)).toBe(true);
    expect(sameCommit("4f7c2a9e1b3d", full)).toBe(true);
    expect(sameCommit(full, "4f7c2a9e1b3d")).toBe(true);
    expect(sameCommit("4f7c2a9e1b3e", full)).toBe(false);
    expect(sameCommit("4f7c2a", full)).toBe(false);
  });
});
