"use strict";
// Loaded with `--require` (NODE_OPTIONS) into the app's Node processes during
// synthesis. cdktf validates each terraform_data resource (and import and move
// blocks) by running `${TERRAFORM_BINARY_NAME} version` through execSync: one
// engine process per resource. The runner already knows the engine's version;
// this answers exactly that command with it and passes every other call on.
const childProcess = require("node:child_process");
const { syncBuiltinESMExports } = require("node:module");

const version = process.env.GITOPS_RUNNER_ENGINE_VERSION;
if (version) {
  // cdktf's own default when the variable is unset.
  const versionCommand = `${process.env.TERRAFORM_BINARY_NAME || "terraform"} version`;
  const execSync = childProcess.execSync;
  childProcess.execSync = function engineVersionOrExecSync(command, options, ...rest) {
    if (command !== versionCommand) return execSync.call(this, command, options, ...rest);
    const output = Buffer.from(`${version}\n`);
    const encoding = typeof options === "string" ? options : options?.encoding;
    return encoding && encoding !== "buffer" ? output.toString(encoding) : output;
  };
  syncBuiltinESMExports();
}
