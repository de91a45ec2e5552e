import { describe, expect, it } from "vitest";
import { parseRunnerConfig } from "../src/config/runner-config.ts";
import { isRunnerError } from "../src/errors.ts";

function problem(text: string): string {
  try {
    parseRunnerConfig("runner.json", text);
  } catch (error) {
    if (isRunnerError(error)) return error.message;
    throw error;
  }
  throw new Error("accepted");
}

describe("the forge section of the runner's configuration", () => {
  it("takes Gitea (or Forgejo) and Bitbucket Cloud, with the runner's names defaulted", () => {
    const gitea = parseRunnerConfig(
      "runner.json",
      JSON.stringify({
        forge: {
          type: "gitea",
          baseUrl: "https://git.example.com",
          owner: "acme",
          repo: "infra",
          tokenEnv: "TOKEN",
        },
      }),
    ).forge;
    expect(gitea).toEqual({
      type: "gitea",
      baseUrl: "https://git.example.com",
      owner: "acme",
      repo: "infra",
      tokenEnv: "TOKEN",
      allowForks: false,
      commentMarker: "gitops-runner",
      planStatus: "gitops-runner/plan",
      applyStatus: "gitops-runner/apply",
    });
    const bitbucket = parseRunnerConfig(
      "runner.json",
      JSON.stringify({
        forge: {
          type: "bitbucket",
          workspace: "acme",
          repo: "infra",
          tokenEnv: "TOKEN",
          webhookSecretEnv: "SECRET",
          login: "{9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a}",
          commentMarker: "gitops-runner-prod",
          planStatus: "prod/plan",
          applyStatus: "prod/apply",
        },
      }),
    ).forge;
    expect(bitbucket).toMatchObject({
      type: "bitbucket",
      commentMarker: "gitops-runner-prod",
      planStatus: "prod/plan",
    });
  });

  it("names the field of a marker that could end its comment, a status over 40 characters, one status twice, and a Gitea without its address", () => {
    const github = { type: "github", owner: "acme", repo: "infra", tokenEnv: "TOKEN" };
    expect(problem(JSON.stringify({ forge: { ...github, commentMarker: "x -->" } }))).toBe(
      "runner.json: forge.commentMarker: letters, digits and . _ / -, at most 60",
    );
    expect(problem(JSON.stringify({ forge: { ...github, planStatus: "p".repeat(41) } }))).toMatch(
      /^runner\.json: forge\.planStatus: /,
    );
    expect(problem(JSON.stringify({ forge: { ...github, applyStatus: "gitops-runner/plan" } }))).toBe(
      "runner.json: forge.applyStatus: planStatus and applyStatus must differ",
    );
    expect(
      problem(JSON.stringify({ forge: { type: "gitea", owner: "acme", repo: "infra", tokenEnv: "TOKEN" } })),
    ).toMatch(/^runner\.json: forge\.baseUrl: /);
  });
});
