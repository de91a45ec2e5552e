import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { RunnerError } from "../errors.ts";
import { parseJsonFile } from "./cdktf-config.ts";

const annotationSchema = z.looseObject({
  constructPath: z.string(),
  level: z.string(),
  message: z.string(),
});

const manifestStackSchema = z.looseObject({
  name: z.string().min(1),
  constructPath: z.string(),
  dependencies: z.array(z.string()),
  synthesizedStackPath: z.string().min(1),
  workingDirectory: z.string().min(1),
  annotations: z.array(annotationSchema),
});

/** manifest.json as cdktf 0.21 and cdktn write it. */
const manifestSchema = z.looseObject({
  version: z.string(),
  stacks: z.record(z.string(), manifestStackSchema),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestStack = z.infer<typeof manifestStackSchema>;

export async function readManifest(outDir: string): Promise<Manifest> {
  const file = path.join(outDir, "manifest.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new RunnerError("SYNTH_MANIFEST_INVALID", `${file}: missing; the app must call app.synth()`, {
      cause: error,
    });
  }
  const manifest = parseJsonFile(file, text, manifestSchema, "SYNTH_MANIFEST_INVALID");
  for (const [key, stack] of Object.entries(manifest.stacks)) {
    for (const dependency of stack.dependencies) {
      if (!(dependency in manifest.stacks)) {
        throw new RunnerError(
          "SYNTH_MANIFEST_INVALID",
          `${file}: stacks.${key}.dependencies: names unknown stack "${dependency}"`,
        );
      }
    }
  }
  return manifest;
}
