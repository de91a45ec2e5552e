// Fills Node's compile cache (compile-cache.js) with every module of the
// runner, so that even the first start after an install or an upgrade loads
// no TypeScript transformer. The set-up and the image build run it; the
// runner itself also fills the cache as it goes.
import { globSync } from "node:fs";
import { flushCompileCache } from "node:module";
import { fileURLToPath } from "node:url";
import { useCompileCache } from "./compile-cache.js";

useCompileCache();
const sources = new URL("../src/", import.meta.url);
for (const file of globSync("**/*.ts", { cwd: fileURLToPath(sources) }))
  await import(new URL(file, sources).href);
flushCompileCache();
