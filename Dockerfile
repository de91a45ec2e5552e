# gitops-runner: the runner on Node 24 plus a pinned OpenTofu engine.
#
#   docker build -t gitops-runner .
#   docker run --init -p 8080:8080 -v gitops-runner-data:/data gitops-runner
#
# The default entry point is the long-lived runner (runner/main.js). For a
# one-shot CLI run, replace the entry point and pass the command's arguments:
#   docker run --rm --init --no-healthcheck -v gitops-runner-data:/data \
#     --entrypoint node gitops-runner /app/bin/gitops-runner.js plan --repo https://example.com/org/infra.git --json
# A repository on the host is mounted at /repo, which the image's git trusts
# although its files belong to another uid than the runner's:
#   docker run --rm --init --no-healthcheck -v "$PWD:/repo:ro" -v gitops-runner-data:/data \
#     --entrypoint node gitops-runner /app/bin/gitops-runner.js plan --repo /repo --json
# Mounted elsewhere, git refuses it ("detected dubious ownership"); name the path
# in a git configuration file given as GIT_CONFIG_GLOBAL ([safe] directory =
# <path>/.git). GIT_CONFIG_COUNT/KEY/VALUE settings reach git too, but git does not
# hand them to the process that reads a repository on a local path.
#
# Use --init (or an init of the orchestrator's): Node as PID 1 neither reaps
# orphaned grandchildren (providers, npm) nor stops on SIGTERM without a handler.
#
# The demo's dependencies are installed into the image (/app/seed/npm), so the
# embedded default starts with no registry at hand.
#
# Behind a TLS-inspecting proxy, add its certificate authority to both stages and
# pass --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt for npm.
#
# scripts/image-test.sh builds this image and checks it (health, the demo applied
# with no network, uid, stop, restart, the one-shot CLI on a mounted repository).
#
# Versions: keep these in step with versions.json (node) and with the `go` line
# of toolchain/opentofu/go.mod (Go). The runtime stage checks Node and OpenTofu
# against versions.json and fails the build on a mismatch.
ARG NODE_VERSION=24.21.0
ARG GO_VERSION=1.26.8

# --- OpenTofu, built the way scripts/setup.sh builds it for the tests ----------
# bookworm (the older Debian): setup.sh leaves cgo at Go's default (on where a C
# compiler exists, as in this image), so the binary links glibc dynamically; one
# linked against the older glibc runs on either Debian the node image may use.
FROM golang:${GO_VERSION}-bookworm AS tofu
WORKDIR /src/toolchain/opentofu
# go.mod pins github.com/opentofu/opentofu and repeats its replace directive;
# go.sum pins every module's checksum. Nothing else of the repository is needed.
COPY toolchain/opentofu/ ./
# The golang image sets GOTOOLCHAIN=local: a go.mod that needs a newer Go fails
# here instead of downloading another toolchain. Modules come from the default
# Go module proxy. Same command and flags as scripts/setup.sh; version.dev=no
# makes `tofu version` report a release, not a development build.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOFLAGS=-mod=mod go build -trimpath \
      -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
      -o /out/tofu github.com/opentofu/opentofu/cmd/tofu

# --- the runner ----------------------------------------------------------------
FROM node:${NODE_VERSION}-slim AS runtime
# Only for the build's npm (see the header); not kept in the image's environment.
ARG NODE_EXTRA_CA_CERTS

# git: the runner keeps a bare mirror per repository and checks commits out as
# worktrees. ca-certificates: HTTPS for git, npm installs of the watched apps'
# dependencies, and provider downloads by tofu. (Add openssh-client here to
# reach repositories over SSH.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# /repo is where a repository on the host is mounted for the one-shot CLI (see
# the header); git checks the owner of the repository folder it reads (the
# .git folder of a working copy).
RUN git config --system --add safe.directory /repo \
 && git config --system --add safe.directory /repo/.git

# A fixed non-root uid, so volume ownership is predictable across hosts. The
# home folder is needed: git, npm (its cache) and tofu get HOME. /data is
# created and owned here so that a new named volume inherits that ownership.
RUN groupadd --gid 10001 runner \
 && useradd --uid 10001 --gid 10001 --home-dir /home/runner --create-home \
      --shell /usr/sbin/nologin runner \
 && mkdir /data \
 && chown runner:runner /data

WORKDIR /app

# Dependencies first, for layer caching. --omit=dev leaves out the `node`
# devDependency (the pinned Node for machines with an older one; the base image
# has Node 24) and the test tools. --ignore-scripts: no install scripts run.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

COPY --from=tofu /out/tofu /usr/local/bin/tofu

# The sources run as they are (Node 24 type stripping); there is no build step.
# Owned by root and not writable by the runner user. stacks/ carries the demo
# app the embedded default runs; its node_modules is not copied (.dockerignore):
# the runner installs an app's dependencies itself, cached by lockfile hash.
COPY versions.json ./
COPY bin/ ./bin/
COPY src/ ./src/
COPY runner/ ./runner/
COPY stacks/ ./stacks/

# The demo's dependencies, installed now by the runner's own installer into a
# read-only seed that the runner consults before it runs npm (same key: the
# lockfile's hash). The embedded default then needs no registry at first start,
# and writes nothing to /data/cache for it.
RUN --mount=type=cache,target=/root/.npm \
    node runner/seed-dependencies.ts /app/seed/npm /app/stacks/demo

# Fail the build if the image's Node or OpenTofu is not what versions.json pins.
RUN tofu version -json > /tmp/tofu-version.json \
 && node -e " \
      const pinned = require('/app/versions.json'); \
      const tofu = require('/tmp/tofu-version.json').terraform_version; \
      if (process.versions.node !== pinned.node || tofu !== pinned.opentofu) { \
        console.error('versions.json pins node ' + pinned.node + ' and opentofu ' + pinned.opentofu \
          + '; the image has node ' + process.versions.node + ' and opentofu ' + tofu); \
        process.exit(1); \
      }" \
 && rm /tmp/tofu-version.json

# Node's compile cache of the runner's sources (bin/compile-cache.js), filled
# now from every module (bin/fill-compile-cache.js) with the entry point's
# flags: the runner then never loads Node's TypeScript transformer, about
# 17 MB less for its whole life.
# Node keeps a cache per uid, so the runner's uid fills it; it is then handed
# to root, read-only for the runner like the sources it was made from.
ENV NODE_COMPILE_CACHE=/app/compile-cache
RUN install --directory --owner=runner --group=runner /app/compile-cache \
 && setpriv --reuid=10001 --regid=10001 --clear-groups \
      node --max-semi-space-size=1 /app/bin/fill-compile-cache.js \
 && chown -R root:root /app/compile-cache \
 && chmod -R u=rwX,go=rX /app/compile-cache

# GITOPS_RUNNER_TERRAFORM names the engine binary outright (otherwise the runner
# looks for tofu, then terraform, on PATH). GITOPS_RUNNER_LISTEN_HOST: the HTTP
# server answers on every interface of the container, not only its loopback.
# GITOPS_RUNNER_DEPENDENCY_SEED: the seed of installed dependencies above.
# HOME is set explicitly because the runner hands it to git, npm and tofu,
# whatever uid lookup the runtime does. MALLOC_ARENA_MAX (two malloc arenas)
# and the entry point's --max-semi-space-size=1 (a small young generation)
# keep an idle runner's memory about 30 MB lower, as npm start does.
ENV GITOPS_RUNNER_DATA_DIR=/data \
    MALLOC_ARENA_MAX=2 \
    GITOPS_RUNNER_DEPENDENCY_SEED=/app/seed/npm \
    GITOPS_RUNNER_TERRAFORM=/usr/local/bin/tofu \
    GITOPS_RUNNER_LISTEN_HOST=0.0.0.0 \
    HOME=/home/runner

# Everything the runner keeps: runner.db, repository mirrors, dependency cache,
# local state files, applied folders. Losing it loses Terraform state.
VOLUME ["/data"]

USER 10001:10001

EXPOSE 8080

# slim has no curl; Node's global fetch does the request.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

ENTRYPOINT ["node", "--max-semi-space-size=1", "/app/runner/main.js"]
