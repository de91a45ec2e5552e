#!/usr/bin/env bash
# Runs a command beside a private Docker daemon, then stops the daemon and puts
# the host back as it was, whatever happened:
#
#   bash scripts/image-docker.sh docker build --network host -t gitops-runner .
#
# - Debian's docker.io (dockerd, containerd, runc, and a docker CLI that drives
#   BuildKit) is installed with apt when missing. Run as root.
# - containerd and dockerd get their own sockets and state under /run/gitops-runner-docker
#   and their own data root under the cache ($GITOPS_RUNNER_CACHE, default
#   ~/.cache/gitops-runner), in docker/: images and the build cache are kept there
#   between runs. One run at a time holds it (a lock file beside it).
# - The daemon has no bridge, no iptables rules and no IP forwarding of its own
#   (--bridge none --iptables=false --ip-forward=false): containers run with
#   --network none, builds with --network host. Even so, the FORWARD policy,
#   ip_forward, the docker0 interface and the iptables rules are recorded before
#   and checked after; what changed is put back, and a host that cannot be put
#   back fails the run.
# - The command runs with DOCKER_HOST set to the private daemon, DOCKER_BUILDKIT=1,
#   and the package's own docker CLI first on PATH (a newer CLI elsewhere on PATH
#   may lack BuildKit).
set -euo pipefail

cache="${GITOPS_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitops-runner}"
data_root="$cache/docker"
run_dir=/run/gitops-runner-docker

say() { printf 'image-docker: %s\n' "$*" >&2; }
fail() {
  printf 'image-docker: error: %s\n' "$*" >&2
  exit 1
}

(($# > 0)) || fail "usage: scripts/image-docker.sh COMMAND [ARG]..."
((EUID == 0)) || fail "dockerd runs as root here; run this as root"

# --- Debian's docker.io -----------------------------------------------------------
if [[ ! -x /usr/sbin/dockerd || ! -x /usr/bin/docker || ! -x /usr/bin/containerd ]]; then
  say "installing Debian's docker.io (dockerd 20.10, containerd, runc, its docker CLI)"
  started=$(date +%s)
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >&2
  say "docker.io installed in $(($(date +%s) - started))s"
fi

mkdir -p "$data_root" "$run_dir"
exec 9>"$data_root.lock"
flock -n 9 || fail "another run uses the Docker data root $data_root (lock $data_root.lock)"

# --- the host as found --------------------------------------------------------------
forward_policy() { iptables -S FORWARD | awk '$1 == "-P" { print $3 }'; }
ip_forward() { cat /proc/sys/net/ipv4/ip_forward; }
docker0() { if ip link show docker0 >/dev/null 2>&1; then echo present; else echo absent; fi; }
iptables_rules() { iptables-save | sed -E '/^#/d; s/\[[0-9]+:[0-9]+\]//'; }

policy_before="$(forward_policy)"
forward_before="$(ip_forward)"
docker0_before="$(docker0)"
iptables_rules >"$run_dir/iptables.before"
say "host before: FORWARD policy $policy_before, ip_forward $forward_before, docker0 $docker0_before"

containerd_pid=""
dockerd_pid=""

# Ends a daemon this script started: TERM, then KILL after a deadline.
stop_daemon() {
  local name="$1" pid="$2" deadline="$3"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  local waited=0
  while kill -0 "$pid" 2>/dev/null && ((waited < deadline * 10)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) did not stop within ${deadline}s; killing it"
    kill -KILL "$pid"
  fi
  wait "$pid" 2>/dev/null || true
}

teardown() {
  local status=$? problems=()
  set +e
  stop_daemon dockerd "$dockerd_pid" 60
  stop_daemon containerd "$containerd_pid" 30
  # Shims of containers the daemon could not stop: found by this run's own socket.
  for proc in /proc/[0-9]*; do
    if tr '\0' ' ' 2>/dev/null <"$proc/cmdline" | grep -q -- "-address $run_dir/containerd.sock "; then
      say "killing a leftover containerd shim, pid ${proc#/proc/}"
      kill -KILL "${proc#/proc/}" 2>/dev/null
    fi
  done
  # Mounts the daemons left behind (overlay layers, the exec root), deepest first.
  while read -r mount; do
    umount "$mount" 2>/dev/null || umount -l "$mount" || problems+=("$mount is still mounted")
  done < <(awk -v a="$data_root/" -v b="$run_dir/" 'index($5, a) == 1 || index($5, b) == 1 { print $5 }' \
    /proc/self/mountinfo | sort -r)

  if [[ "$(forward_policy)" != "$policy_before" ]]; then
    say "restoring the FORWARD policy: $(forward_policy) -> $policy_before"
    iptables -P FORWARD "$policy_before"
  fi
  if [[ "$(ip_forward)" != "$forward_before" ]]; then
    say "restoring ip_forward: $(ip_forward) -> $forward_before"
    echo "$forward_before" >/proc/sys/net/ipv4/ip_forward
  fi
  if [[ "$docker0_before" == absent && "$(docker0)" == present ]]; then
    say "removing the docker0 interface"
    ip link delete docker0
  fi

  [[ "$(forward_policy)" == "$policy_before" ]] || problems+=("FORWARD policy is $(forward_policy), was $policy_before")
  [[ "$(ip_forward)" == "$forward_before" ]] || problems+=("ip_forward is $(ip_forward), was $forward_before")
  [[ "$(docker0)" == "$docker0_before" ]] || problems+=("docker0 is $(docker0), was $docker0_before")
  if ! iptables_rules | diff -u "$run_dir/iptables.before" - >&2; then
    problems+=("the iptables rules differ from before (diff above)")
  fi
  if ((${#problems[@]} > 0)); then
    printf 'image-docker: error: the host was not restored: %s\n' "${problems[@]}" >&2
    status=1
  else
    say "host after: FORWARD policy $(forward_policy), ip_forward $(ip_forward), docker0 $(docker0), iptables rules unchanged"
  fi
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- containerd and dockerd ---------------------------------------------------------
cat >"$run_dir/containerd.toml" <<EOF
version = 2
root = "$data_root/containerd"
state = "$run_dir/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$run_dir/containerd.sock"
[ttrpc]
  address = "$run_dir/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
echo '{}' >"$run_dir/daemon.json"

started=$(date +%s)
containerd --config "$run_dir/containerd.toml" >"$run_dir/containerd.log" 2>&1 9>&- &
containerd_pid=$!
dockerd \
  --config-file "$run_dir/daemon.json" \
  --data-root "$data_root/engine" \
  --exec-root "$run_dir/exec" \
  --pidfile "$run_dir/dockerd.pid" \
  --host "unix://$run_dir/docker.sock" \
  --containerd "$run_dir/containerd.sock" \
  --storage-driver overlay2 \
  --bridge none --iptables=false --ip-forward=false --ip-masq=false \
  >"$run_dir/dockerd.log" 2>&1 9>&- &
dockerd_pid=$!

mkdir -p "$run_dir/bin" "$data_root/client"
ln -sfn /usr/bin/docker "$run_dir/bin/docker"
export PATH="$run_dir/bin:$PATH"
export DOCKER_HOST="unix://$run_dir/docker.sock"
export DOCKER_CONFIG="$data_root/client"
export DOCKER_BUILDKIT=1

deadline=$((SECONDS + 60))
until docker version >/dev/null 2>&1; do
  if ! kill -0 "$dockerd_pid" 2>/dev/null || ! kill -0 "$containerd_pid" 2>/dev/null; then
    tail -n 20 "$run_dir/containerd.log" "$run_dir/dockerd.log" >&2
    fail "the daemon exited during start-up (logs above, in $run_dir)"
  fi
  ((SECONDS < deadline)) || fail "dockerd did not answer within 60s (log: $run_dir/dockerd.log)"
  sleep 0.2
done
say "dockerd $(docker version --format '{{.Server.Version}}') up in $(($(date +%s) - started))s; data root $data_root (overlay2), socket $run_dir/docker.sock"

set +e
GITOPS_RUNNER_DOCKER="$DOCKER_HOST" "$@" 9>&-
status=$?
set -e
exit "$status"
