#!/usr/bin/env node
// The gitops-runner command. Node 24 runs the TypeScript sources directly.
import { main } from "../src/cli/main.ts";

const code = await main(process.argv.slice(2), process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  terminal: process.stderr.isTTY === true,
});
process.exitCode = code;
