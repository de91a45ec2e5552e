// The deployable runner's entry point: `gitops-runner serve`. With no
// arguments it runs the embedded default (the demo stacks shipped in stacks/demo,
// the embedded database in the data directory); `--config FILE` points it at a
// repository. Other commands are the `gitops-runner` CLI's (bin/gitops-runner.js).
// JavaScript, like the CLI's entry, so that Node's compile cache is on before
// any TypeScript loads.
import { useCompileCache } from "../bin/compile-cache.js";

useCompileCache();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(["serve", ...process.argv.slice(2)], process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  terminal: process.stderr.isTTY === true,
});
