#!/usr/bin/env bash
# Builds the image and checks it as an operator runs it, beside a private Docker
# daemon (scripts/image-docker.sh, which puts the host back afterwards):
#   1. the base images: stand-ins made from Debian and this machine's tools when
#      they cannot be pulled (scripts/image-bases.sh);
#   2. the build, timed, and the image's size;
#   3. a container on a new volume with no network (--network none):
#      - the health check turns healthy;
#      - the embedded default applies the demo, from the dependencies in the image;
#      - the runner runs as uid 10001;
#      - `docker stop` ends it within the grace period, exit code 0;
#      - a new container on the same volume keeps the state: the API token, the
#        recorded apply runs, the Terraform state, the stack in sync;
#   4. the one-shot CLI against a repository of the host mounted at /repo (files
#      of another uid than the runner's): plan, then apply; and refused, for the
#      dubious ownership, when mounted elsewhere.
# It prints each check and its timing; any failure exits non-zero.
#
# Usage: bash scripts/image-test.sh     (as root; about 5 GB of disk on a cold run)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${GITOPS_RUNNER_DOCKER:-}" ]]; then
  exec bash "$root/scripts/image-docker.sh" bash "$root/scripts/image-test.sh" "$@"
fi

image=gitops-runner:test
container="gitops-runner-test-$$"
volume="gitops-runner-test-data-$$"
cli_volume="gitops-runner-test-cli-$$"
grace=10
work="$(mktemp -d "${TMPDIR:-/tmp}/gitops-runner-image-test.XXXXXX")"
passed=0
failed=0

say() { printf 'image-test: %s\n' "$*" >&2; }
pass() {
  passed=$((passed + 1))
  say "ok: $*"
}
flunk() {
  failed=$((failed + 1))
  say "FAILED: $*"
}
cleanup() {
  docker rm --force "$container" >/dev/null 2>&1 || true
  docker volume rm --force "$volume" "$cli_volume" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Runs the command until it succeeds or the deadline (seconds) passes.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# GET an API path inside the container, with the token the runner generated on the
# volume; prints the value of a JavaScript expression over the JSON `body`.
api() {
  docker exec "$container" node -e '
    const [route, expression] = process.argv.slice(1);
    const token = require("node:fs").readFileSync("/data/api-token", "utf8").trim();
    fetch(`http://127.0.0.1:8080${route}`, { headers: { authorization: `Bearer ${token}` } })
      .then(async (response) => {
        if (!response.ok) throw new Error(`${route}: HTTP ${response.status}`);
        const body = await response.json();
        process.stdout.write(String(new Function("body", `return (${expression})`)(body)));
      })
      .catch((error) => { console.error(error.message); process.exit(1); });' "$1" "$2"
}

health() { docker inspect --format '{{.State.Health.Status}}' "$container"; }
is_healthy() { [[ "$(health)" == healthy ]]; }
demo_state() { api /api/stacks 'body.stacks.find((stack) => stack.name === "demo")?.state ?? "absent"'; }
demo_in_sync() { [[ "$(demo_state)" == in-sync ]]; }
apply_runs() { api '/api/runs?kind=apply' 'body.runs.map((run) => `${run.id}:${run.status}`).sort().join(" ")'; }
# The demo stack's Terraform state: lineage and serial.
demo_tfstate() {
  docker exec "$container" sh -c 'cat /data/state/*/stacks/demo/demo/terraform.tfstate' |
    docker exec -i "$container" node -e '
      const state = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
      process.stdout.write(`${state.lineage} serial ${state.serial}, ${state.resources.length} resources`);'
}

start_container() {
  docker run --detach --name "$container" --init --network none \
    --volume "$volume:/data" "$image" >/dev/null
}

# Stops the container and checks that it ended by itself within the grace period.
check_stop() {
  local started_ms took_ms code
  started_ms=$(($(date +%s%N) / 1000000))
  docker stop --time "$grace" "$container" >/dev/null
  took_ms=$(($(date +%s%N) / 1000000 - started_ms))
  code="$(docker inspect --format '{{.State.ExitCode}}' "$container")"
  if ((took_ms < grace * 1000)) && [[ "$code" == 0 ]]; then
    pass "$1: docker stop took ${took_ms} ms (grace ${grace}s), exit code $code"
  else
    flunk "$1: docker stop took ${took_ms} ms (grace ${grace}s), exit code $code"
  fi
}

# --- 1. base images ----------------------------------------------------------------
started=$SECONDS
bash "$root/scripts/image-bases.sh"
say "base images ready in $((SECONDS - started))s"

# --- 2. build ------------------------------------------------------------------------
build_args=()
# The stand-ins carry this machine's certificate authorities (TLS-inspecting
# proxies included) in the image's bundle; npm reads it only when told to.
if [[ -n "${NODE_EXTRA_CA_CERTS:-}" ]]; then
  build_args+=(--build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt)
fi
started=$SECONDS
if ! docker build --network host --progress plain "${build_args[@]}" --tag "$image" "$root" >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  say "FAILED: the image does not build (last lines above)"
  exit 1
fi
build_seconds=$((SECONDS - started))
cached_steps="$(grep -c '^#[0-9]* CACHED' "$work/build.log" || true)"
size_mb=$(($(docker image inspect --format '{{.Size}}' "$image") / 1000000))
say "built $image in ${build_seconds}s ($cached_steps steps from the build cache); image size ${size_mb} MB"
# Keep the build cache for the next run (the Go module and build caches take about
# 3 GB), but not images the new build replaced, nor build steps beyond that.
docker image prune --force >/dev/null
docker builder prune --force --keep-storage 4GB >/dev/null
say "Docker data root $(du -sh "$(docker info --format '{{.DockerRootDir}}')/.." | cut -f1) after pruning"

# --- 3. the long-lived runner, with no network ------------------------------------
docker volume create "$volume" >/dev/null
started=$SECONDS
start_container

if wait_until 180 is_healthy; then
  pass "health check: healthy after $((SECONDS - started))s"
else
  flunk "health check: '$(health)' after $((SECONDS - started))s"
  docker logs --tail 30 "$container" >&2
fi

if wait_until 180 demo_in_sync; then
  pass "demo applied with no network: stack demo in-sync after $((SECONDS - started))s, apply runs $(apply_runs)"
else
  flunk "demo applied with no network: stack demo is '$(demo_state)' after $((SECONDS - started))s"
  docker logs --tail 30 "$container" >&2
fi
cache_use="$(docker exec "$container" sh -c 'du -sk /data/cache 2>/dev/null | cut -f1' || true)"
if [[ "${cache_use:-0}" -lt 1024 ]]; then
  pass "dependencies from the image: /data/cache holds ${cache_use:-0} KB"
else
  flunk "dependencies from the image: /data/cache holds ${cache_use} KB"
fi

init_pid="$(docker inspect --format '{{.State.Pid}}' "$container")"
runner_uid="$(ps -o uid= --ppid "$init_pid" | tr -d ' ')"
exec_uid="$(docker exec "$container" id -u)"
if [[ "$runner_uid" == 10001 && "$exec_uid" == 10001 && "$(ps -o uid= -p "$init_pid" | tr -d ' ')" == 10001 ]]; then
  pass "uid: init and runner processes run as 10001 ($(ps -o args= --ppid "$init_pid"))"
else
  flunk "uid: runner process uid '$runner_uid', docker exec id -u '$exec_uid'"
fi

# The compile cache filled at build time serves every module of the runner: no TypeScript is
# stripped at start (the transformer would keep about 17 MB), nothing is written.
cache_debug="$(docker exec --env NODE_DEBUG_NATIVE=COMPILE_CACHE "$container" node /app/bin/gitops-runner.js --help 2>&1 >/dev/null)"
cache_hits="$(grep -c 'retrieving transpile cache for StrippedTypeScript .*success' <<<"$cache_debug" || true)"
cache_strips="$(grep -c 'no transpile cache for StrippedTypeScript' <<<"$cache_debug" || true)"
if [[ "$cache_hits" -gt 10 && "$cache_strips" == 0 ]]; then
  pass "compile cache: the CLI read $cache_hits TypeScript modules from the image's cache and stripped none"
else
  flunk "compile cache: $cache_hits modules from the cache, $cache_strips stripped at start"
fi
say "idle runner in the container: RSS $(($(ps -o rss= --ppid "$init_pid" | tr -d ' ') / 1024)) MB"

token_before="$(docker exec "$container" sha256sum /data/api-token)"
runs_before="$(apply_runs || true)"
tfstate_before="$(demo_tfstate || true)"
check_stop "stop"

docker rm "$container" >/dev/null
started=$SECONDS
start_container
if wait_until 180 is_healthy && wait_until 60 demo_in_sync; then
  token_after="$(docker exec "$container" sha256sum /data/api-token)"
  runs_after="$(apply_runs)"
  tfstate_after="$(demo_tfstate)"
  if [[ -n "$runs_before" && "$token_after" == "$token_before" && "$runs_after" == "$runs_before" &&
    -n "$tfstate_before" && "$tfstate_after" == "$tfstate_before" ]]; then
    pass "restart: a new container on the volume is healthy after $((SECONDS - started))s with the same API token, apply runs ($runs_after) and state ($tfstate_after); demo in-sync"
  else
    flunk "restart: token same? $([[ "$token_after" == "$token_before" ]] && echo yes || echo no); apply runs '$runs_before' -> '$runs_after'; state '$tfstate_before' -> '$tfstate_after'"
  fi
else
  flunk "restart: health '$(health)', demo '$(demo_state || true)' after $((SECONDS - started))s"
fi
check_stop "stop after the restart"
docker rm "$container" >/dev/null

# --- 4. the one-shot CLI on a repository of the host ----------------------------------
repo="$work/repo"
mkdir "$repo"
cp -r "$root/stacks/demo/." "$repo/"
rm -rf "$repo/node_modules"
git -C "$repo" init --quiet --initial-branch=main
git -C "$repo" add --all
git -C "$repo" -c user.name=gitops-runner -c user.email=image-test@gitops-runner.invalid commit --quiet -m "The demo app"
head="$(git -C "$repo" rev-parse HEAD)"
docker volume create "$cli_volume" >/dev/null

# Prints the exit code, then the --json document's commit and each stack's status (or its error).
one_shot() {
  local mount_point="$1"
  shift
  local code=0
  docker run --rm --init --no-healthcheck --network none \
    --volume "$repo:$mount_point:ro" --volume "$cli_volume:/data" \
    --entrypoint node "$image" /app/bin/gitops-runner.js "$@" --repo "$mount_point" --json \
    >"$work/cli.json" 2>"$work/cli.log" || code=$?
  printf '%s ' "$code"
  docker run --rm -i --network none --entrypoint node "$image" -e '
    const report = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
    const stacks = report.stacks.map((stack) => `${stack.name}=${stack.status}`).join(",");
    process.stdout.write(`${report.commit} ${stacks || report.error?.message}`);' <"$work/cli.json" 2>/dev/null ||
    tail -n 5 "$work/cli.log"
}

started=$SECONDS
expect_one_shot() {
  local want="$1" what="$2"
  shift 2
  local got
  got="$(one_shot "$@")"
  if [[ "$got" == "$want" ]]; then
    pass "one-shot CLI: $what ($((SECONDS - started))s)"
  else
    flunk "one-shot CLI: $what: expected '$want', got '$got'"
  fi
  started=$SECONDS
}
expect_one_shot "2 $head demo=changes" "plan of the mounted repository at /repo exits 2" /repo plan
expect_one_shot "0 $head demo=applied" "apply of it exits 0" /repo apply
got="$(one_shot /src plan)"
if [[ "$got" == "1 null git: cannot clone /src: fatal: detected dubious ownership"* ]]; then
  pass "one-shot CLI: mounted elsewhere (/src), git refuses it for its owner: exit 1"
else
  flunk "one-shot CLI: mounted at /src: expected exit 1 with dubious ownership, got '$got'"
fi

# --- summary ----------------------------------------------------------------------------
say "image $image: ${size_mb} MB, built in ${build_seconds}s"
echo "image-test: $passed passed, $failed failed"
((failed == 0))
