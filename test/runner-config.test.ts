import { describe, expect, it } from "vitest";
import { parseRunnerConfig, resolveSecrets, secretValues } from "../src/config/runner-config.ts";

function problem(work: () => unknown): string {
  try {
    work();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("expected an error");
}

describe("API tokens with names", () => {
  it("names configured tokens and keeps the comma-separated variables, named by variable and position", () => {
    const config = parseRunnerConfig(
      "runner.json",
      JSON.stringify({
        apiTokens: [
          { name: "ci", tokenEnv: "CI_TOKEN" },
          { name: "dashboard", tokenEnv: "DASHBOARD_TOKEN", access: "read" },
        ],
      }),
    );
    const secrets = resolveSecrets("runner.json", config, {
      CI_TOKEN: "ci-secret-1",
      DASHBOARD_TOKEN: "dash-secret-2",
      GITOPS_RUNNER_API_TOKEN: "old-a,old-b",
      GITOPS_RUNNER_READ_TOKEN: "old-read",
    });
    expect(secrets.apiTokens).toEqual({
      read: [
        { name: "dashboard", value: "dash-secret-2" },
        { name: "GITOPS_RUNNER_READ_TOKEN#1", value: "old-read" },
      ],
      write: [
        { name: "ci", value: "ci-secret-1" },
        { name: "GITOPS_RUNNER_API_TOKEN#1", value: "old-a" },
        { name: "GITOPS_RUNNER_API_TOKEN#2", value: "old-b" },
      ],
    });
    expect(secretValues(secrets)).toEqual(
      expect.arrayContaining(["ci-secret-1", "dash-secret-2", "old-a", "old-b", "old-read"]),
    );
  });

  it("refuses a token whose variable is unset, repeated names and bad names, naming the field", () => {
    const config = parseRunnerConfig("runner.json", '{"apiTokens":[{"name":"ci","tokenEnv":"CI_TOKEN"}]}');
    expect(problem(() => resolveSecrets("runner.json", config, {}))).toBe(
      "runner.json: apiTokens.0.tokenEnv: the environment variable CI_TOKEN is not set",
    );
    expect(
      problem(() =>
        parseRunnerConfig(
          "runner.json",
          '{"apiTokens":[{"name":"ci","tokenEnv":"A"},{"name":"ci","tokenEnv":"B"}]}',
        ),
      ),
    ).toBe("runner.json: apiTokens: token names must be unique");
    expect(
      problem(() => parseRunnerConfig("runner.json", '{"apiTokens":[{"name":"a b","tokenEnv":"A"}]}')),
    ).toMatch(/^runner\.json: apiTokens\.0\.name: /);
  });
});
