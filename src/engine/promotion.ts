import {
  counterpartOf,
  decidePromotion,
  environmentOf,
  type PromotionVerdict,
} from "../domain/environments.ts";
import type { EngineContext } from "./context.ts";
import type { AppStack } from "./synthesized-app.ts";

/** A stack's environment and what the promotion rule says of its configuration. */
export interface StackEnvironment {
  readonly name: string;
  readonly promotion: PromotionVerdict;
  /** Whether the service applies it on merge without a person's approval. */
  readonly autoApply: boolean;
}

/**
 * Gathers the facts of the promotion rule for a stack (its environment, the
 * counterpart in the environment before, whether that counterpart applied
 * this very configuration, or applies it first in the same change) and
 * decides. `inChange`: the stacks of this app that are applied before this
 * one in the same command, or (for a plan) would be on merge.
 */
export async function promotionOf(
  context: EngineContext,
  stack: AppStack,
  inChange: ReadonlyMap<string, AppStack>,
): Promise<PromotionVerdict> {
  const member = environmentOf(context.environments, context.appDir, stack.name);
  if (!member) return { kind: "ungated" };
  const counterpart = counterpartOf(context.environments, member, context.appDir, stack.name);
  const previous = context.environments[member.index - 1];
  const applied =
    counterpart && stack.promotionHash
      ? await context.store.lastSuccessfulApply(
          { repoId: context.repoId, appDir: counterpart.appDir, stack: counterpart.stack },
          { promotionHash: stack.promotionHash },
        )
      : undefined;
  const sameChange =
    counterpart && counterpart.appDir === context.appDir ? inChange.get(counterpart.stack) : undefined;
  return decidePromotion({
    environment: member.environment.name,
    requirePromotion: member.environment.requirePromotion,
    ...(previous ? { previous: previous.name } : {}),
    ...(counterpart ? { counterpart: counterpart.stack } : {}),
    ...(stack.promotionHash ? { promotionHash: stack.promotionHash } : {}),
    ...(applied ? { appliedByCounterpart: { commit: applied.commit } } : {}),
    ...(sameChange
      ? { counterpartInChange: sameChange.promotionHash ? { promotionHash: sameChange.promotionHash } : {} }
      : {}),
  });
}

/**
 * Each stack's counterpart in the environment before, when both are in the
 * list and the same app: a later environment's stack applies after it.
 */
export function promotionDependencies(
  context: EngineContext,
  stacks: readonly AppStack[],
): Map<string, string> {
  const names = new Set(stacks.map((stack) => stack.name));
  const waits = new Map<string, string>();
  for (const stack of stacks) {
    const member = environmentOf(context.environments, context.appDir, stack.name);
    if (!member?.environment.requirePromotion) continue;
    const counterpart = counterpartOf(context.environments, member, context.appDir, stack.name);
    if (counterpart && counterpart.appDir === context.appDir && names.has(counterpart.stack)) {
      waits.set(stack.name, counterpart.stack);
    }
  }
  return waits;
}
