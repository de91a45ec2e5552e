#!/usr/bin/env node
// The gitops-runner command. Node 24 runs the TypeScript sources directly,
// through its compile cache (compile-cache.js) once it holds them.
import { useCompileCache } from "./compile-cache.js";

useCompileCache();
const { main } = await import("../src/cli/main.ts");
const code = await main(process.argv.slice(2), process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  terminal: process.stderr.isTTY === true,
});
process.exitCode = code;
