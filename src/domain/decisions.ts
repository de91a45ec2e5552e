import type { StackPolicy } from "../policy/policy.ts";
import type { Violation } from "../store/records.ts";
import type { ResourceChange } from "../terraform/plan-json.ts";
import type { PromotionVerdict } from "./environments.ts";
import type { ReviewComparison } from "./review.ts";

/**
 * What to do with a plan, decided from plain data: apply it, accept that
 * there is nothing to apply, block it, correct drift or only report it. The
 * workflows in src/engine/ carry these decisions out.
 */

/** What an apply sees of its plan. */
export interface PlanFacts {
  readonly hasChanges: boolean;
  readonly resources: readonly ResourceChange[];
  /** Changes whose actions include delete (both orders of replace). */
  readonly destroys: readonly ResourceChange[];
}

export interface ApplyRules {
  readonly policy: StackPolicy;
  /** What the policy checks found in the plan; approvable ones yield to a person's approval of the plan. */
  readonly violations?: readonly Violation[];
  /** What the promotion rule says of this configuration: a block no approval lifts. */
  readonly promotion?: PromotionVerdict;
  /** A person approved destroying (--allow-destroy). */
  readonly allowDestroy: boolean;
  /** The service applies merges only where autoApply is on; the CLI applies what it is told. */
  readonly honourAutoApply: boolean;
  /** A person approved this blocked plan: the new plan must make the same changes. */
  readonly approval?: { readonly runId: string; readonly resources: readonly ResourceChange[] };
  /** The plan against the one reviewed on the merged pull request, when there was one. */
  readonly review?: { readonly pr: number; readonly comparison: ReviewComparison };
}

export type ApplyDecision =
  | { readonly kind: "apply" }
  | { readonly kind: "accept-unchanged" }
  | { readonly kind: "block"; readonly reason: string };

export function decideApply(plan: PlanFacts, rules: ApplyRules): ApplyDecision {
  const violations = rules.violations ?? [];
  const binding = rules.approval ? violations.filter((violation) => !violation.approvable) : violations;
  if (plan.hasChanges && binding.length > 0) return { kind: "block", reason: violationsReason(binding) };
  if (plan.hasChanges && rules.promotion?.kind === "blocked")
    return { kind: "block", reason: rules.promotion.reason };
  if (rules.approval) {
    if (!sameChanges(plan.resources, rules.approval.resources)) {
      return {
        kind: "block",
        reason: `the plan differs from the one approved in run ${rules.approval.runId}; review the new plan and approve it`,
      };
    }
  } else {
    const blocked = destroyGuard(plan.destroys, rules.policy, rules.allowDestroy);
    if (blocked) return { kind: "block", reason: blocked };
    if (rules.honourAutoApply && !rules.policy.autoApply && plan.hasChanges) {
      return { kind: "block", reason: "autoApply is off for this stack: approve the run to apply this plan" };
    }
    const unreviewed = reviewGuard(plan, rules);
    if (unreviewed) return { kind: "block", reason: unreviewed };
  }
  return plan.hasChanges ? { kind: "apply" } : { kind: "accept-unchanged" };
}

/**
 * With `requireReviewedPlan`, why a plan that is not the one reviewed on its
 * pull request may not be applied without approval; undefined when it may.
 */
function reviewGuard(plan: PlanFacts, rules: ApplyRules): string | undefined {
  const review = rules.review;
  if (!rules.policy.requireReviewedPlan || !plan.hasChanges || review?.comparison.kind !== "differs")
    return undefined;
  const { differences, notReviewed } = review.comparison;
  const what = notReviewed
    ? `pull request #${review.pr} did not plan this stack`
    : `the plan differs from the one reviewed on pull request #${review.pr} for ${differences.length} resource(s) (${differences.map((difference) => difference.address).join(", ")})`;
  return `${what} and the policy requires the reviewed plan (requireReviewedPlan); review this plan and approve the run to apply it`;
}

/** Why a plan that destroys may not be applied as it is, or undefined when it may. */
export function destroyGuard(
  destroys: readonly ResourceChange[],
  policy: StackPolicy,
  allowDestroy: boolean,
): string | undefined {
  if (destroys.length === 0 || policy.allowDestroy || allowDestroy) return undefined;
  const addresses = destroys.map((resource) => resource.address).join(", ");
  return `the plan destroys or replaces ${destroys.length} resource(s) (${addresses}) and the policy does not allow destroy; approve this plan with --allow-destroy or set allowDestroy in the policy`;
}

/** "the policy checks found 2 violation(s): tags: aws_s3_bucket.b: tags.owner must be set; …" */
export function violationsReason(violations: readonly Violation[]): string {
  const listed = violations
    .map(
      (violation) =>
        `${violation.check}: ${violation.address ? `${violation.address}: ` : ""}${violation.message}`,
    )
    .join("; ");
  const approvable = violations.every((violation) => violation.approvable)
    ? "; a person may approve this plan"
    : "";
  return `the policy checks found ${violations.length} violation(s): ${listed}${approvable}`;
}

/** Whether two plans make the same changes: the same resources with the same actions. */
export function sameChanges(a: readonly ResourceChange[], b: readonly ResourceChange[]): boolean {
  const key = (resources: readonly ResourceChange[]) =>
    JSON.stringify(resources.map((resource) => [resource.address, resource.actions]).sort());
  return key(a) === key(b);
}

/** A plan preview of a pull request shows `wouldBlock` where the apply would stop. */
export function wouldBlock(destroys: readonly ResourceChange[], policy: StackPolicy): boolean {
  return destroys.length > 0 && !policy.allowDestroy;
}

// --- drift ------------------------------------------------------------------------

export type CorrectMode = "all" | "policy" | "none";

/**
 * Whether a drift check of a stack would correct what it finds; decided
 * before planning, since a correction plans with the apply credentials. A
 * pending stack is never corrected: its pending apply will settle it.
 */
export function correctsDrift(policy: StackPolicy, pending: boolean, mode: CorrectMode): boolean {
  if (pending || policy.drift === "off") return false;
  return mode === "all" || (mode === "policy" && policy.drift === "correct");
}

export type DriftDecision =
  | { readonly kind: "in-sync" }
  | {
      readonly kind: "report";
      readonly fingerprint: string;
      /** What to tell people: on first detection and when what drifted changes, else nothing. */
      readonly notify?: "found" | "changed";
    }
  | { readonly kind: "block"; readonly fingerprint: string; readonly reason: string }
  | { readonly kind: "correct" };

export interface DriftFacts {
  readonly drifted: boolean;
  /** Identifies what drifted, so that the same drift is reported once. */
  readonly fingerprint: string;
  readonly destroys: readonly ResourceChange[];
}

export function decideDrift(
  facts: DriftFacts,
  corrects: boolean,
  policy: StackPolicy,
  previous: { readonly status?: string; readonly fingerprint?: string },
): DriftDecision {
  if (!facts.drifted) return { kind: "in-sync" };
  if (!corrects) {
    const notify =
      previous.status !== "drifted"
        ? "found"
        : previous.fingerprint !== facts.fingerprint
          ? "changed"
          : undefined;
    return { kind: "report", fingerprint: facts.fingerprint, ...(notify ? { notify } : {}) };
  }
  const blocked = destroyGuard(facts.destroys, policy, false);
  return blocked ? { kind: "block", fingerprint: facts.fingerprint, reason: blocked } : { kind: "correct" };
}
