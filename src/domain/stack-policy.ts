import type { StackPolicy } from "../policy/policy.ts";
import type { StackOverride } from "../store/records.ts";

/**
 * The policy that governs a stack: the policy file's entry, with a suspension
 * or resumption an operator stored through the runner on top (it wins over the
 * file's `suspended`). Pure.
 */
export interface PolicyInForce {
  readonly policy: StackPolicy;
  /** Who suspends the stack, when it is suspended: its policy file, or an operator through the runner. */
  readonly suspendedBy?: "policy" | "operator";
  readonly override?: StackOverride;
}

export function policyInForce(file: StackPolicy, override: StackOverride | undefined): PolicyInForce {
  if (override === undefined) {
    return { policy: file, ...(file.suspended ? { suspendedBy: "policy" as const } : {}) };
  }
  return {
    policy: { ...file, suspended: override.suspended },
    ...(override.suspended ? { suspendedBy: "operator" as const } : {}),
    override,
  };
}

/** Why applies and drift checks skip a suspended stack, as the CLI and the records say it. */
export function suspensionReason(inForce: PolicyInForce): string {
  if (inForce.suspendedBy === "operator") {
    const reason = inForce.override?.reason;
    return reason ? `suspended by an operator: ${reason}` : "suspended by an operator";
  }
  return "suspended by policy";
}
