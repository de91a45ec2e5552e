import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import path from "node:path";
import { environmentOf, normalizeForPromotion } from "../domain/environments.ts";
import { type PolicyChecks, readPolicyChecks } from "../policy/checks.ts";
import { type Policy, readPolicy } from "../policy/policy.ts";
import { outputDir } from "../state/data-dir.ts";
import { installDependencies } from "../synth/dependencies.ts";
import { stackHash } from "../synth/stack-hash.ts";
import { synthesize } from "../synth/synthesize.ts";
import { dependencyCacheDir, type EngineContext, workRoot } from "./context.ts";

export interface AppStack {
  readonly name: string;
  readonly dependencies: readonly string[];
  /** The synthesized folder, inside this run's work folder. */
  readonly dir: string;
  /** The normalized hash of what the stack deploys. */
  readonly hash: string;
  /** The environment the stack belongs to, and the hash of its configuration without that environment's names and values. */
  readonly environment?: string;
  readonly promotionHash?: string;
}

export interface SynthesizedApp {
  readonly commit: string;
  readonly stacks: readonly AppStack[];
  readonly policy: Policy;
  /** The policy checks next to the policy file. */
  readonly checks: PolicyChecks;
  /** Where the app's source is, for code of the repository that runs later (its policy checks). */
  readonly source: {
    readonly workDir: string;
    readonly checkoutDir: string;
    /** The app's folder in the checkout. */
    readonly appDir: string;
    /** Folders of installed dependencies the app reads. */
    readonly dependencies: readonly string[];
  };
  /** Removes the checkout and the synthesized output. */
  dispose(): Promise<void>;
}

/** Checks a commit out, installs the app's dependencies, synthesizes it and hashes each stack. */
export async function synthesizeCommit(context: EngineContext, commit: string): Promise<SynthesizedApp> {
  const workDir = path.join(workRoot(context.dataDir), `${commit.slice(0, 12)}-${randomUUID().slice(0, 8)}`);
  const checkoutDir = path.join(workDir, "checkout");
  const removeCheckout = await context.repository.checkout(commit, checkoutDir);
  const dispose = async () => {
    await removeCheckout();
    await rm(workDir, { recursive: true, force: true });
  };
  try {
    const appDir = path.join(checkoutDir, context.appDir);
    const signal = context.signal ? { signal: context.signal } : {};
    const sandbox = await context.sandbox();
    const dependencies = await installDependencies(checkoutDir, appDir, {
      cacheDir: dependencyCacheDir(context.dataDir),
      ...(context.dependencySeedDir ? { seedDir: context.dependencySeedDir } : {}),
      env: context.toolEnv,
      timeoutMs: context.installTimeoutMs,
      tempDir: outputDir(context.dataDir),
      allowInstallScripts: context.allowInstallScripts,
      sandbox,
      ...signal,
    });
    const outDir = path.join(workDir, "out");
    const synth = await synthesize({
      appDir,
      outDir,
      env: context.toolEnv,
      timeoutMs: context.synthTimeoutMs,
      tempDir: outputDir(context.dataDir),
      maxOldSpaceMb: context.synthMaxOldSpaceMb,
      sandbox,
      readWrite: [checkoutDir],
      readOnly: dependencies.cacheEntry ? [dependencies.cacheEntry] : [],
      engine: await context.terraform.engine(signal),
      ...signal,
    });
    const member = (name: string) => environmentOf(context.environments, context.appDir, name);
    const filePolicy = await readPolicy(appDir);
    const policy: Policy = {
      ...filePolicy,
      forStack: (name) => filePolicy.forStack(name, member(name)?.environment.policy),
    };
    const checks = await readPolicyChecks(appDir);
    const noise = { [checkoutDir]: "<checkout>", [outDir]: "<out>" };
    const stacks = await Promise.all(
      synth.stacks.map(async (stack) => {
        const hash = await stackHash(stack.dir, noise);
        const environment = member(stack.name)?.environment;
        if (!environment) return { ...stack, hash };
        const promotionHash = await stackHash(stack.dir, noise, (config) =>
          normalizeForPromotion(config, environment),
        );
        return { ...stack, hash, environment: environment.name, promotionHash };
      }),
    );
    context.logger.info(
      { commit, stacks: stacks.length, durationMs: Math.round(synth.durationMs) },
      "synthesized",
    );
    return {
      commit,
      stacks,
      policy,
      checks,
      source: {
        workDir,
        checkoutDir,
        appDir,
        dependencies: dependencies.cacheEntry ? [dependencies.cacheEntry] : [],
      },
      dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}
