import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { expect } from "vitest";

/**
 * Compares what people read with its golden file, exactly. After an intended
 * change, UPDATE_GOLDEN=1 rewrites the file; review its diff like code.
 */
export async function expectGolden(file: string, text: string): Promise<void> {
  if (process.env.UPDATE_GOLDEN === "1") {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, text);
    return;
  }
  const golden = await readFile(file, "utf8").catch(() => {
    throw new Error(`${file} is missing: run the test with UPDATE_GOLDEN=1 and review the file`);
  });
  expect(text).toBe(golden);
}
