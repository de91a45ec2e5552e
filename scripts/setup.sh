#!/usr/bin/env bash
# Provides what the runner and its tests need on a fresh machine, from package
# registries only, and says what it chose and why:
#   - the example stacks' dependencies (npm ci in stacks/ and stacks/demo,
#     install scripts off);
#   - a Terraform engine: the pinned OpenTofu (from PATH, from the cache, or built
#     from the Go module proxy) and, for a second test pass, a terraform on PATH;
#   - with `test`: the AWS provider in a project-owned filesystem mirror,
#     moto's server, aiosmtpd (SMTP) and schemathesis in virtual environments,
#     Debian's chromium for the browser tests, PostgreSQL's server binaries, and a
#     Gitea server (built from the Go module proxy) for the forge tests.
# Builds are cached outside the clone, keyed by version, so a second run costs
# seconds. It writes .toolchain/env.sh, which scripts/run.sh sources: node and
# the engine on PATH. It leaves TF_CLI_CONFIG_FILE alone: the runner finds the
# provider mirror in .toolchain/providers itself and writes its own CLI
# configuration for it, unless the user's configuration names another.
#
# Usage: scripts/setup.sh [runtime|test]    (default: test)
set -euo pipefail

purpose="${1:-test}"
case "$purpose" in runtime | test) ;; *)
  echo "setup: unknown purpose '$purpose' (expected runtime or test)" >&2
  exit 64
  ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${GITOPS_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitops-runner}"
toolchain="$root/.toolchain"
mkdir -p "$cache" "$toolchain"

say() { printf 'setup: %s\n' "$*" >&2; }
fail() {
  printf 'setup: error: %s\n' "$*" >&2
  exit 1
}
pinned() { node -p "require('$root/versions.json')$1"; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

# --- Node.js -----------------------------------------------------------------
# npm scripts put node_modules/.bin first on PATH, where the `node` package
# provides the pinned Node 24 on machines whose own Node is older.
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 24)); then
  fail "Node.js $(node --version) is too old; run 'npm ci' first, then use npm run/exec, which put the pinned Node $(pinned .node) on PATH"
fi
say "node $(node --version) at $(command -v node)"

# --- bubblewrap, the sandbox of synthesis and dependency installs ------------------
# The runner runs an app's synthesis and `npm ci` in bwrap, so that the app
# cannot read the runner's environment, processes or files. Without it the
# runner still works, unisolated, and warns at start; so a failure here is
# reported and the set-up goes on.
if ! command -v bwrap >/dev/null; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    say "sandbox: bwrap is missing; installing Debian's bubblewrap with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap >&2 2>/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bubblewrap >&2 ||
        say "sandbox: apt-get could not install bubblewrap (output above)"
    fi
  else
    say "sandbox: bwrap is missing and this is not a root shell with apt-get; install bubblewrap (Debian: apt-get install bubblewrap)"
  fi
fi
if command -v bwrap >/dev/null; then
  if problem="$(bwrap --unshare-pid --die-with-parent --ro-bind / / --proc /proc --dev /dev true 2>&1)"; then
    say "sandbox: $(bwrap --version) at $(command -v bwrap) (synthesis and dependency installs run in it)"
  else
    say "sandbox: bwrap at $(command -v bwrap) cannot start here ($problem); the runner will synthesize unisolated and warn"
  fi
else
  say "sandbox: no bwrap; the runner will synthesize unisolated and warn"
fi

# --- example stacks' dependencies ---------------------------------------------
# stacks/ holds the AWS app's dependencies; the demo (stacks/demo) has its own
# small lockfile, so that it installs without the AWS provider bindings.
for stacks_dir in "$root/stacks" "$root/stacks/demo"; do
  stacks_name="${stacks_dir#"$root/"}"
  stacks_lock_hash="$(sha256sum "$stacks_dir/package-lock.json" | cut -c1-16)"
  if [[ "$(cat "$stacks_dir/node_modules/.lock-hash" 2>/dev/null)" != "$stacks_lock_hash" ]]; then
    started=$(date +%s)
    npm ci --prefix "$stacks_dir" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
    echo "$stacks_lock_hash" >"$stacks_dir/node_modules/.lock-hash"
    say "$stacks_name: installed dependencies for lockfile $stacks_lock_hash in $(elapsed "$started")"
  else
    say "$stacks_name: dependencies already installed for lockfile $stacks_lock_hash"
  fi
done

# --- OpenTofu ------------------------------------------------------------------
tofu_version="$(pinned .opentofu)"
tofu_cached="$cache/opentofu/$tofu_version/tofu"
tofu_bin=""

version_of() { TF_CLI_CONFIG_FILE=/dev/null "$1" version -json 2>/dev/null | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).terraform_version' 2>/dev/null || true; }

# The link this script puts in node_modules/.bin is not a tofu found on the machine.
tofu_on_path="$(PATH="${PATH//$root\/node_modules\/.bin/}" command -v tofu || true)"
if [[ -n "$tofu_on_path" && "$(version_of "$tofu_on_path")" == "$tofu_version" ]]; then
  tofu_bin="$tofu_on_path"
  say "engine: tofu $tofu_version at $tofu_bin (on PATH at the pinned version)"
elif [[ -x "$tofu_cached" ]]; then
  tofu_bin="$tofu_cached"
  say "engine: tofu $tofu_version at $tofu_bin (built earlier from the Go module proxy, cached)"
elif command -v go >/dev/null; then
  say "engine: building tofu $tofu_version from the Go module proxy (no pinned tofu on PATH or in $cache); this takes a few minutes once"
  started=$(date +%s)
  build_dir="$(mktemp -d)"
  if (cd "$root/toolchain/opentofu" && GOFLAGS=-mod=mod go build -trimpath \
    -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$build_dir/tofu" github.com/opentofu/opentofu/cmd/tofu) >&2; then
    mkdir -p "$(dirname "$tofu_cached")"
    mv "$build_dir/tofu" "$tofu_cached"
    tofu_bin="$tofu_cached"
    say "engine: tofu $tofu_version built in $(elapsed "$started"), cached at $tofu_bin"
  else
    say "engine: the OpenTofu build failed (output above)"
  fi
  rm -rf "$build_dir"
else
  say "engine: no Go toolchain to build OpenTofu $tofu_version"
fi

terraform_bin="$(command -v terraform || true)"
if [[ -n "$terraform_bin" ]]; then
  say "engine: terraform $(version_of "$terraform_bin") at $terraform_bin (on PATH; supported, tests give it a second pass)"
fi
if [[ -z "$tofu_bin" && -z "$terraform_bin" ]]; then
  fail "no Terraform engine: OpenTofu $tofu_version could not be built and no terraform is on PATH"
fi
primary_engine="${tofu_bin:-$terraform_bin}"
# npm run and npm exec put node_modules/.bin on PATH: the pinned tofu is found
# there by `npm exec -- gitops-runner`, as the runner finds tofu on any PATH.
if [[ -n "$tofu_bin" && -d "$root/node_modules/.bin" ]]; then
  ln -sfn "$(readlink -f "$tofu_bin")" "$root/node_modules/.bin/tofu"
fi
[[ -n "$tofu_bin" ]] || say "engine: using terraform at $terraform_bin until OpenTofu builds"

# --- AWS provider, in a project-owned filesystem mirror --------------------------
# cdktf writes the provider source as "aws": Terraform resolves it on
# registry.terraform.io, OpenTofu on registry.opentofu.org, so the mirror links
# the one binary under both host names. An unpacked mirror is linked, not
# copied, into each stack's .terraform by init.
mirror="$toolchain/providers"
provider_version="$(pinned .awsProvider.version)"
provider_file="terraform-provider-aws_v${provider_version}_x5"
provider_rel="hashicorp/aws/$provider_version/linux_amd64/$provider_file"
provider_bin=""

if [[ "$purpose" == test ]]; then
  for candidate_mirror in ${GITOPS_RUNNER_PROVIDER_MIRROR:-} /opt/tf-plugins "$HOME/.terraform.d/plugins" \
    "$HOME/.local/share/terraform/plugins" /usr/local/share/terraform/plugins /usr/share/terraform/plugins; do
    for host in registry.terraform.io registry.opentofu.org; do
      if [[ -z "$provider_bin" && -x "$candidate_mirror/$host/$provider_rel" ]]; then
        provider_bin="$candidate_mirror/$host/$provider_rel"
        say "provider: aws $provider_version from the filesystem mirror at $candidate_mirror (found on this machine)"
      fi
    done
  done
  provider_cached="$cache/aws-provider/$provider_version/$provider_file"
  if [[ -z "$provider_bin" && -x "$provider_cached" ]]; then
    provider_bin="$provider_cached"
    say "provider: aws $provider_version at $provider_bin (built earlier from the Go module proxy, cached)"
  fi
  if [[ -z "$provider_bin" ]]; then
    say "provider: no mirror carries aws $provider_version; building it from the Go module proxy (tens of minutes once)"
    started=$(date +%s)
    build_dir="$(mktemp -d)"
    if (cd "$root/toolchain/aws-provider" && GOFLAGS=-mod=mod go mod tidy &&
      GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$build_dir/$provider_file" \
        github.com/hashicorp/terraform-provider-aws) >&2; then
      mkdir -p "$(dirname "$provider_cached")"
      mv "$build_dir/$provider_file" "$provider_cached"
      provider_bin="$provider_cached"
      say "provider: aws $provider_version built in $(elapsed "$started"), cached at $provider_bin"
    fi
    rm -rf "$build_dir"
    [[ -n "$provider_bin" ]] || fail "the AWS provider $provider_version is in no filesystem mirror and could not be built (output above); set GITOPS_RUNNER_PROVIDER_MIRROR to a mirror that holds it"
  fi
  rm -rf "$mirror"
  for host in registry.terraform.io registry.opentofu.org; do
    mkdir -p "$(dirname "$mirror/$host/$provider_rel")"
    ln -s "$provider_bin" "$mirror/$host/$provider_rel"
  done
fi

# A tool from PyPI in a virtual environment of its own, cached by version; prints its program's path.
# Usage: pypi_tool NAME REQUIREMENT VERSION PROGRAM
pypi_tool() {
  local name="$1" requirement="$2" version="$3" program="$4"
  local venv="$cache/$name/$version" started
  if [[ ! -x "$venv/bin/$program" ]]; then
    started=$(date +%s)
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement==$version" >&2
    say "$name: installed $requirement $version in $venv in $(elapsed "$started")"
  else
    say "$name: $requirement $version in $venv (cached)"
  fi
  echo "$venv/bin/$program"
}

# --- moto, an AWS API on loopback for the tests --------------------------------------
moto_server=""
if [[ "$purpose" == test ]]; then
  moto_server="$(pypi_tool moto "moto[server]" "$(pinned .moto)" moto_server)"
elif [[ -x "$cache/moto/$(pinned .moto)/bin/moto_server" ]]; then
  # A runtime set-up keeps what an earlier test set-up provided.
  moto_server="$cache/moto/$(pinned .moto)/bin/moto_server"
fi

# --- aiosmtpd, an SMTP server on loopback for the email notification tests -------------
smtp_python=""
if [[ "$purpose" == test ]]; then
  smtp_version="$(pinned .aiosmtpd)"
  smtp_venv="$cache/aiosmtpd/$smtp_version"
  if [[ ! -x "$smtp_venv/bin/python" ]] || ! "$smtp_venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    started=$(date +%s)
    rm -rf "$smtp_venv"
    python3 -m venv "$smtp_venv"
    "$smtp_venv/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$smtp_version" >&2
    say "smtp: installed aiosmtpd $smtp_version in $smtp_venv in $(elapsed "$started")"
  else
    say "smtp: aiosmtpd $smtp_version in $smtp_venv (cached)"
  fi
  smtp_python="$smtp_venv/bin/python"
fi

# --- schemathesis, which tests the HTTP API against its OpenAPI document ---------------------
schemathesis_bin=""
if [[ "$purpose" == test ]]; then
  schemathesis_bin="$(pypi_tool schemathesis schemathesis "$(pinned .schemathesis)" st)"
fi

# --- Chromium, for the dashboard's browser tests (driven by playwright-core, which downloads nothing) ----
chromium_bin=""
if [[ "$purpose" == test ]]; then
  chromium_bin="$(command -v chromium || true)"
  if [[ -z "$chromium_bin" ]]; then
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null ||
      fail "Chromium is missing and this is not a root shell with apt-get; install Debian's chromium"
    say "chromium: missing; installing Debian's chromium with apt-get"
    started=$(date +%s)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2 2>/dev/null ||
      (DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2) ||
      fail "apt-get could not install chromium (output above)"
    chromium_bin="$(command -v chromium)"
    say "chromium: installed in $(elapsed "$started")"
  fi
  say "chromium: $("$chromium_bin" --version 2>/dev/null | head -1) at $chromium_bin"
fi

# --- PostgreSQL's server, for the store's tests and the replica tests ---------------------
if [[ "$purpose" == test ]]; then
  pg_bin="$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)"
  if [[ -z "$pg_bin" ]]; then
    say "postgres: no initdb on PATH or in /usr/lib/postgresql; installing Debian's postgresql"
    started=$(date +%s)
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2 ||
      (apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2) ||
      fail "PostgreSQL's server binaries are missing and apt-get could not install them"
    say "postgres: installed in $(elapsed "$started")"
  else
    say "postgres: server binaries at $(dirname "$pg_bin")"
  fi
fi

# --- Gitea, a real forge for the pull-request tests --------------------------------------
# Built from its module source (a writable copy, so that its own go.mod and replace
# directives apply) with SQLite; kept with the templates and options it reads at run
# time, since a build without the bindata tag serves them from STATIC_ROOT_PATH.
gitea_home=""
if [[ "$purpose" == test ]]; then
  gitea_version="$(pinned .gitea)"
  gitea_cached="$cache/gitea/$gitea_version"
  if [[ -x "$gitea_cached/gitea" && -d "$gitea_cached/static/templates" ]]; then
    gitea_home="$gitea_cached"
    say "gitea: $gitea_version at $gitea_cached (built earlier from the Go module proxy, cached)"
  elif command -v go >/dev/null; then
    say "gitea: building $gitea_version from the Go module proxy (about 4 minutes on two cores, once)"
    started=$(date +%s)
    build_dir="$(mktemp -d)"
    if module="$(go mod download -json "code.gitea.io/gitea@v$gitea_version" | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).Dir')" &&
      cp -r "$module" "$build_dir/src" && chmod -R u+w "$build_dir/src" &&
      (cd "$build_dir/src" && CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -tags "sqlite sqlite_unlock_notify" \
        -ldflags "-s -w -X main.Version=$gitea_version" -o "$build_dir/gitea" .) >&2; then
      rm -rf "$gitea_cached" && mkdir -p "$gitea_cached/static"
      cp -r "$build_dir/src/templates" "$build_dir/src/options" "$build_dir/src/public" "$gitea_cached/static/"
      mv "$build_dir/gitea" "$gitea_cached/gitea"
      gitea_home="$gitea_cached"
      say "gitea: $gitea_version built in $(elapsed "$started"), cached at $gitea_cached"
    else
      say "gitea: the build failed (output above); the Gitea tests will say so"
    fi
    rm -rf "$build_dir"
  else
    say "gitea: no Go toolchain to build Gitea $gitea_version; the Gitea tests will say so"
  fi
fi

# --- Node's compile cache of the runner's sources ------------------------------------
# bin/compile-cache.js: filled now, the first start after this set-up strips no TypeScript.
if node "$root/bin/fill-compile-cache.js"; then
  say "compile cache: filled with the runner's sources"
else
  say "compile cache: not filled; the runner fills it as it runs"
fi

# --- the environment for scripts/run.sh ----------------------------------------------
{
  echo "# Written by scripts/setup.sh ($purpose); sourced by scripts/run.sh."
  echo "export PATH=\"$(dirname "$(command -v node)"):$(dirname "$primary_engine"):\$PATH\""
  echo "export GITOPS_RUNNER_TERRAFORM=\"$primary_engine\""
  echo "export GITOPS_RUNNER_TEST_ENGINES=\"${tofu_bin}${tofu_bin:+${terraform_bin:+:}}${terraform_bin}\""
  echo "export GITOPS_RUNNER_TEST_MOTO_SERVER=\"$moto_server\""
  echo "export GITOPS_RUNNER_TEST_SMTP_PYTHON=\"$smtp_python\""
  echo "export GITOPS_RUNNER_TEST_GITEA=\"$gitea_home\""
  echo "export GITOPS_RUNNER_TEST_SCHEMATHESIS=\"$schemathesis_bin\""
  echo "export GITOPS_RUNNER_TEST_CHROMIUM=\"$chromium_bin\""
} >"$toolchain/env.sh"
if [[ -d "$mirror" ]]; then
  say "ready: engine $primary_engine, provider mirror $mirror (the runner finds it; TF_CLI_CONFIG_FILE is left as it is)"
else
  say "ready: engine $primary_engine"
fi
