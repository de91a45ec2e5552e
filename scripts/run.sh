#!/usr/bin/env bash
# Runs a command with the toolchain that scripts/setup.sh provided on PATH.
set -euo pipefail
env_file="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.toolchain/env.sh"
[[ -f "$env_file" ]] || {
  echo "run: $env_file is missing; run scripts/setup.sh first" >&2
  exit 1
}
# shellcheck source=/dev/null
source "$env_file"
exec "$@"
