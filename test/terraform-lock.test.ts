import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { access, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { isRunnerError } from "../src/errors.ts";
import { primaryEngine, tempDir, terraformCli, terraformEnv } from "./support/toolchain.ts";

describe("a state lock held by someone else", () => {
  it("is a typed error that names the holder, and the state is left alone", async () => {
    const dir = await tempDir("lock");
    const marker = path.join(dir, "started");
    await writeFile(
      path.join(dir, "main.tf.json"),
      JSON.stringify({
        resource: {
          terraform_data: {
            slow: { input: 1, provisioner: [{ "local-exec": { command: `touch ${marker} && sleep 30` } }] },
          },
        },
      }),
    );
    const terraform = await terraformCli(primaryEngine());
    await terraform.init(dir);

    // Someone else's apply, holding the local backend's lock while its provisioner runs.
    const holder: ChildProcess = spawn(
      primaryEngine(),
      ["apply", "-auto-approve", "-input=false", "-no-color"],
      {
        cwd: dir,
        env: await terraformEnv(),
        stdio: "ignore",
      },
    );
    onTestFinished(async () => {
      if (holder.exitCode === null) {
        holder.kill("SIGKILL");
        await once(holder, "exit");
      }
    });
    await vi.waitFor(() => access(marker), { timeout: 30_000, interval: 100 });

    const error = await terraform.plan(dir, path.join(dir, "mine.tfplan")).catch((caught: unknown) => caught);
    expect(isRunnerError(error, "TERRAFORM_LOCKED")).toBe(true);
    expect((error as Error).message).toMatch(
      /^terraform plan: the state is locked \(ID [0-9a-f-]{36}\) by \S+@\S+, OperationTypeApply, \d{4}-\d\d-\d\d/,
    );
  });
});
