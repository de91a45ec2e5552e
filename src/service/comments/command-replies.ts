import { escapeText } from "../../markdown/escape.ts";

/** The runner's replies to comment commands: short, and never themselves a command. */

export const COMMAND_HELP = [
  "gitops-runner understands one command, on the first line of a comment:",
  "",
  "- `/gitops-runner plan` plans the affected stacks of this pull request again;",
  "- `/gitops-runner plan STACK…` plans the named stacks, affected or not.",
].join("\n");

export function commandReply(
  kind: "accepted" | "refused" | "unchecked",
  stacks: readonly string[] = [],
): string {
  switch (kind) {
    case "accepted":
      return stacks.length > 0
        ? `gitops-runner: planning ${stacks.map(escapeText).join(", ")} again; the plan comment will be updated.`
        : "gitops-runner: planning again; the plan comment will be updated.";
    case "refused":
      return "gitops-runner: only people with write access to this repository can ask for a plan.";
    case "unchecked":
      return "gitops-runner: the forge did not say whether you may ask for a plan, so nothing was planned; the operator's log says why.";
  }
}
