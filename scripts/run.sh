#!/usr/bin/env bash
# Runs a command with the toolchain that scripts/setup.sh provided on PATH (node
# and the engine). The rest of the environment is the caller's, TF_CLI_CONFIG_FILE
# included: the runner resolves the engine's CLI configuration itself.
set -euo pipefail
env_file="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.toolchain/env.sh"
[[ -f "$env_file" ]] || {
  echo "run: $env_file is missing; run scripts/setup.sh first" >&2
  exit 1
}
# shellcheck source=/dev/null
source "$env_file"
exec "$@"
