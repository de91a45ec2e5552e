import { describe, expect, it } from "vitest";
import { exec } from "../src/process/exec.ts";
import { secretRedactor } from "../src/terraform/redact.ts";
import { tempDir } from "./support/toolchain.ts";

/** A step's output reaches the run's log while the step runs, in whole lines, and redacted. */

describe("output as it comes", () => {
  it("hands on whole lines while the child runs, and the last line when it ends", async () => {
    const dir = await tempDir("live-output");
    const pieces: string[] = [];
    let firstAt: number | undefined;
    const script = 'for i in 1 2 3; do echo "line $i"; sleep 0.4; done; printf "partial"; printf " end"';
    const result = await exec("/bin/sh", ["-c", script], {
      step: "test",
      cwd: dir,
      env: { PATH: process.env.PATH ?? "" },
      timeoutMs: 30_000,
      onOutput: (text) => {
        firstAt ??= Date.now();
        pieces.push(text);
      },
    });
    // The first line came while the child still had most of its second to run.
    expect(Date.now() - (firstAt ?? Date.now())).toBeGreaterThan(500);
    expect(pieces.every((piece) => piece.endsWith("\n"))).toBe(true);
    expect(pieces.join("")).toBe("line 1\nline 2\nline 3\npartial end\n");
    expect(result.stdout).toBe("line 1\nline 2\nline 3\npartial end");
  });

  it("hides each line of a secret that spans lines, so that a log redacted a few lines at a time keeps it hidden", () => {
    const key = "-----BEGIN KEY-----\nMIIEabcdefgh\n-----END KEY-----";
    const redact = secretRedactor([key, "tok"]);
    expect(redact(`before\n${key}\nafter`)).toBe("before\n(redacted)\nafter");
    expect(redact("MIIEabcdefgh\n")).toBe("(redacted)\n");
    // Shorter than four characters: left alone, or every log would be blanked.
    expect(redact("tok")).toBe("tok");
  });
});
