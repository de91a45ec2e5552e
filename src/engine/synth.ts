import { resolveCommit } from "./commit.ts";
import type { EngineContext } from "./context.ts";
import { synthesizeCommit } from "./synthesized-app.ts";

export interface SynthReport {
  readonly commit: string;
  readonly stacks: readonly {
    readonly name: string;
    readonly status: "synthesized";
    readonly hash: string;
    readonly dependencies: readonly string[];
  }[];
}

/** Synthesizes a commit and reports each stack's hash and dependencies. */
export async function synthCommand(context: EngineContext, options: { ref?: string }): Promise<SynthReport> {
  const commit = await resolveCommit(context, options.ref);
  const app = await synthesizeCommit(context, commit);
  try {
    return {
      commit,
      stacks: app.stacks.map((stack) => ({
        name: stack.name,
        status: "synthesized",
        hash: stack.hash,
        dependencies: stack.dependencies,
      })),
    };
  } finally {
    await app.dispose();
  }
}
