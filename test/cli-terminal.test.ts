/**
 * People read the output: on a terminal the CLI shows each run as it starts
 * and ends, then a table, and logs are readable lines; elsewhere logs are JSON
 * lines and stdout carries only the table or the JSON document.
 * The terminal is a real pseudo-terminal (`script` from util-linux).
 */
import { access, readFile } from "node:fs/promises";
import path from "node:path";
import { stripVTControlCharacters } from "node:util";
import { describe, expect, it, vi } from "vitest";
import { runCli } from "./support/cli.ts";
import { type AppSpec, dataDir, TestRepo } from "./support/repo.ts";
import { startServe, writeServeConfig } from "./support/serve.ts";
import { runInTerminal, shellLine, startInTerminal } from "./support/terminal.ts";
import { inheritedEnv, repoRoot } from "./support/toolchain.ts";

const threeStacks: AppSpec = {
  network: { vpc: { input: { cidr: "10.0.0.0/16" } } },
  service: { api: { input: { replicas: 2 }, reads: "network.vpc" } },
  batch: { worker: { input: { schedule: "hourly" } } },
};

const cli = (...args: string[]) =>
  shellLine(process.execPath, path.join(repoRoot, "bin", "gitops-runner.js"), ...args);
const env = (extra: Record<string, string> = {}) => ({ ...inheritedEnv(), ...extra });
/** The lines shown, without colours. */
const lines = (text: string) =>
  stripVTControlCharacters(text)
    .split("\n")
    .filter((line) => line.trim() !== "");
/** A pretty log line: time, level, message. */
const PRETTY = /^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): /;
const ESCAPE = "\u001b[";

describe("the CLI on a terminal", () => {
  it("shows each stack's run as it starts and ends, then the table; --json keeps stdout to the JSON document", async () => {
    const repo = await TestRepo.create(threeStacks);
    const data = await dataDir();
    const stdout = path.join(data, "stdout.txt");

    const apply = await runInTerminal(
      `${cli("apply", "--repo", repo.dir, "--data-dir", data)} > ${shellLine(stdout)}`,
      env(),
    );
    expect(apply.code).toBe(0);
    // Log lines (such as a warning about the machine's TF_CLI_CONFIG_FILE) may come between; the
    // progress lines are the rest.
    const shown = lines(apply.text).filter((line) => !PRETTY.test(line));
    expect(shown.slice(0, 2)).toEqual([
      "synth app: started",
      expect.stringMatching(/^synth app: synthesized \(\d+(\.\d)?s\)$/),
    ]);
    expect(shown).toContainEqual(expect.stringMatching(/^apply network: applied \+1 ~0 -0 \(\d+(\.\d)?s\)$/));
    expect(shown).toContainEqual(expect.stringMatching(/^apply batch: applied \+1 ~0 -0 \(/));
    // As it happens: service waits for network's apply.
    const at = (prefix: string) => shown.findIndex((line) => line.startsWith(prefix));
    expect(at("apply network: started")).toBeLessThan(at("apply network: applied"));
    expect(at("apply network: applied")).toBeLessThan(at("apply service: started"));
    // Nothing but progress on the terminal: info logs give way to it, and no JSON.
    expect(shown.filter((line) => line.startsWith("{") || PRETTY.test(line))).toEqual([]);
    // The table goes to stdout.
    const table = await readFile(stdout, "utf8");
    expect(table).toMatch(/^apply at [0-9a-f]{12}\nSTACK +STATUS +CHANGES +REASON\n/);
    expect(lines(table).slice(2)).toEqual([
      expect.stringMatching(/^batch +applied +\+1 ~0 -0$/),
      expect.stringMatching(/^network +applied +\+1 ~0 -0$/),
      expect.stringMatching(/^service +applied +\+1 ~0 -0$/),
    ]);

    await repo.checkout("widen-network", true);
    await repo.setApp({ ...threeStacks, network: { vpc: { input: { cidr: "10.0.0.0/8" } } } });
    await repo.commit("Widen the network");
    const planJson = path.join(data, "plan.json");
    const plan = await runInTerminal(
      `${cli("plan", "--repo", repo.dir, "--ref", "widen-network", "--data-dir", data, "--json")} > ${shellLine(planJson)}`,
      env(),
    );
    expect(plan.code).toBe(2);
    const document = JSON.parse(await readFile(planJson, "utf8"));
    expect(
      document.stacks.map((stack: { name: string; status: string }) => [stack.name, stack.status]),
    ).toEqual([
      ["batch", "skipped"],
      ["network", "changes"],
      ["service", "no-changes"],
    ]);
    // The person still sees the progress and the table, on stderr.
    expect(plan.text).toMatch(/^plan network: changes \+0 ~1 -0 \(/m);
    expect(plan.text).toMatch(/^network +changes +\+0 ~1 -0$/m);
    expect(plan.text).toMatch(/^batch +skipped +unchanged since [0-9a-f]{40}$/m);
    expect(plan.text).not.toContain('"stacks"');
  });

  it("writes JSON log lines on the terminal when GITOPS_RUNNER_LOG_FORMAT=json asks for them", async () => {
    const repo = await TestRepo.create({ web: { site: { input: { replicas: 1 } } } });
    const data = await dataDir();
    const result = await runInTerminal(
      `${cli("plan", "--repo", repo.dir, "--data-dir", data)} > /dev/null`,
      env({ GITOPS_RUNNER_LOG_FORMAT: "json", GITOPS_RUNNER_LOG_LEVEL: "info" }),
    );
    expect(result.code).toBe(2);
    const logs = lines(result.text)
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line));
    expect(logs.map((log) => log.msg)).toContain("run finished");
    expect(lines(result.text)).toContain("plan web: started");
    expect(lines(result.text).filter((line) => PRETTY.test(line))).toEqual([]);
  });

  it("refuses an unknown log format by name, before any work", async () => {
    const data = await dataDir();
    const result = await runCli(["plan", "--repo", data, "--data-dir", data, "--json"], {
      GITOPS_RUNNER_LOG_FORMAT: "yaml",
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'gitops-runner plan: GITOPS_RUNNER_LOG_FORMAT: expected "json" or "pretty", got "yaml"',
    );
    expect(result.json.error.code).toBe("CONFIG_INVALID");
    await expect(access(path.join(data, "runner.db"))).rejects.toThrow();
  });
});

describe("the CLI without a terminal", () => {
  it("prints no progress: JSON log lines on stderr and the table alone on stdout", async () => {
    const repo = await TestRepo.create(threeStacks);
    const data = await dataDir();
    const result = await runCli(["apply", "--repo", repo.dir, "--data-dir", data], {
      GITOPS_RUNNER_LOG_LEVEL: "info",
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^apply at [0-9a-f]{12}\nSTACK +STATUS +CHANGES +REASON\nbatch +applied +\+1 ~0 -0\n/,
    );
    const logs = lines(result.stderr).map((line) => JSON.parse(line));
    expect(logs.filter((log) => log.msg === "run finished")).toHaveLength(4);
    expect(result.stderr).not.toContain(": started");
  });

  it("writes readable log lines when GITOPS_RUNNER_LOG_FORMAT=pretty asks for them, without colours", async () => {
    const repo = await TestRepo.create({ web: { site: { input: { replicas: 1 } } } });
    const result = await runCli(["plan", "--repo", repo.dir, "--data-dir", await dataDir(), "--json"], {
      GITOPS_RUNNER_LOG_FORMAT: "pretty",
      GITOPS_RUNNER_LOG_LEVEL: "info",
    });
    expect(result.code).toBe(2);
    expect(result.json.stacks[0].status).toBe("changes");
    const logged = lines(result.stderr);
    expect(logged.length).toBeGreaterThan(3);
    expect(logged.filter((line) => !PRETTY.test(line))).toEqual([]);
    expect(logged).toContainEqual(expect.stringMatching(/^\[[\d:.]+\] INFO: run finished \{.*"stack":"web"/));
    expect(result.stderr).not.toContain(ESCAPE);
  });
});

describe("serve's log lines", () => {
  it("are readable lines on a terminal, and JSON there when asked", async () => {
    const repo = await TestRepo.create({ web: { site: { input: { replicas: 1 } } } });
    for (const format of ["", "json"]) {
      const data = await dataDir();
      const config = await writeServeConfig(data, { repository: { url: repo.dir }, shutdownGraceSeconds: 5 });
      const pidFile = path.join(data, "serve.pid");
      // The shell becomes the runner (exec), so its pid is the runner's, to signal it directly.
      const served = startInTerminal(
        `echo $$ > ${shellLine(pidFile)} && exec ${cli("serve", "--config", config)}`,
        env({
          GITOPS_RUNNER_API_TOKEN: "test-write-token-0123456789",
          ...(format ? { GITOPS_RUNNER_LOG_FORMAT: format } : {}),
        }),
      );
      await vi.waitFor(() => expect(served.text()).toContain("listening"), {
        timeout: 60_000,
        interval: 100,
      });
      process.kill(Number((await readFile(pidFile, "utf8")).trim()), "SIGTERM");
      expect(await served.exited).toBe(0);
      const shown = lines(served.text());
      if (format === "json") {
        expect(shown.map((line) => JSON.parse(line).msg)).toEqual(
          expect.arrayContaining(["listening", "stopped"]),
        );
      } else {
        expect(shown.filter((line) => !PRETTY.test(line))).toEqual([]);
        expect(shown).toContainEqual(
          expect.stringMatching(/^\[[\d:.]+\] INFO: listening \{"url":"http:\/\/127\.0\.0\.1:\d+"/),
        );
        expect(shown.at(-1)).toMatch(/^\[[\d:.]+\] INFO: stopped$/);
        expect(served.text()).toContain(ESCAPE);
      }
    }
  });

  it("are JSON lines without a terminal", async () => {
    const repo = await TestRepo.create({ web: { site: { input: { replicas: 1 } } } });
    const data = await dataDir();
    const served = await startServe(await writeServeConfig(data, { repository: { url: repo.dir } }));
    expect(served.logs.map((log) => log.msg)).toContain("listening");
    // startServe keeps a line that is not JSON as { text }.
    expect(served.logs.filter((log) => "text" in log)).toEqual([]);
    expect(await served.stop()).toBe(0);
  });
});

describe("redaction", () => {
  const logSecrets = shellLine(
    process.execPath,
    "--input-type=module",
    "--eval",
    [
      `import { createLogger } from ${JSON.stringify(path.join(repoRoot, "src", "composition.ts"))};`,
      "createLogger(process.env, { terminal: process.stderr.isTTY === true }).info(",
      '  { forge: { token: "tok-0123456789" }, env: { AWS_SECRET_ACCESS_KEY: "hunter2" } },',
      '  "configured",',
      ");",
    ].join("\n"),
  );

  it("hides tokens and environment values in readable lines and in JSON lines", async () => {
    const onTerminal = await runInTerminal(logSecrets, env());
    const piped = await runInTerminal(`${logSecrets} 2>&1 | cat`, env());
    expect(onTerminal.code).toBe(0);
    expect(piped.code).toBe(0);
    expect(lines(onTerminal.text)).toEqual([expect.stringMatching(PRETTY)]);
    expect(JSON.parse(piped.text)).toMatchObject({
      msg: "configured",
      forge: { token: "(redacted)" },
      env: { AWS_SECRET_ACCESS_KEY: "(redacted)" },
    });
    for (const text of [onTerminal.text, piped.text]) {
      expect(text).toContain("(redacted)");
      expect(text).not.toContain("hunter2");
      expect(text).not.toContain("tok-0123456789");
    }
  });
});
