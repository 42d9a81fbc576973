#!/usr/bin/env bash
# Prepares a bare CI machine for the tests: Docker engine and compose, a local base image
# (no registry is reachable here) that trusts the host's CA bundle, a local ACME
# server (pebble), a browser (chromium), and a fake NVIDIA hook so containers with a GPU device request can start
# without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null || ! command -v debootstrap >/dev/null; then
  step "Installing docker.io, docker-compose and debootstrap from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
fi

# Let's Encrypt's test ACME server, for the offline HTTPS test (tests/e2e/test_https.py).
if ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null; then
  step "Installing pebble (a local ACME server) from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble >/dev/null
fi

# A real browser on the hub's pages (tests/e2e/test_spawn_rush.py), driven by Playwright:
# Playwright's own browser download cannot reach its server from here.
if ! command -v chromium >/dev/null; then
  step "Installing chromium from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

fake_hook_dir=/opt/fake-nvidia/bin
if [ ! -x "$fake_hook_dir/nvidia-container-runtime-hook" ]; then
  step "Installing the fake nvidia-container-runtime-hook in $fake_hook_dir"
  mkdir -p "$fake_hook_dir"
  # Exits 0 so GPU device requests start; set WORKSHOP_FAKE_GPU_BROKEN to a file that exists
  # to make it fail like a host whose NVIDIA runtime is broken.
  cat >"$fake_hook_dir/nvidia-container-runtime-hook" <<'HOOK'
#!/bin/sh
[ -e /run/fake-nvidia-broken ] && { echo "fake NVIDIA hook: disabled by /run/fake-nvidia-broken" >&2; exit 1; }
exit 0
HOOK
  chmod +x "$fake_hook_dir/nvidia-container-runtime-hook"
fi

if ! docker info >/dev/null 2>&1; then
  step "Starting dockerd (log: /var/log/dockerd-ci.log)"
  PATH="$fake_hook_dir:$PATH" nohup dockerd >/var/log/dockerd-ci.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start: see /var/log/dockerd-ci.log" >&2; exit 1; }
fi

base_image=local/bookworm-py
# Builds reach PyPI and npm through this machine's TLS-inspecting proxy, so the base image
# trusts what this machine trusts, as a company's base image trusts its proxy
# (docs/organizers.md: "Behind a proxy that inspects TLS"). The label records which bundle.
host_ca=/etc/ssl/certs/ca-certificates.crt
host_ca_sum=$(sha256sum "$host_ca" | cut -c1-16)
if ! docker image inspect "$base_image" >/dev/null 2>&1; then
  step "Building the local base image $base_image with debootstrap (~1 min)"
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$rootfs" >/tmp/debootstrap.log 2>&1 \
    || { tail -20 /tmp/debootstrap.log >&2; exit 1; }
  tar -C "$rootfs" -c . | docker import - "$base_image" >/dev/null
  rm -rf "$rootfs"
fi
if [ "$(docker image inspect -f '{{index .Config.Labels "host-ca"}}' "$base_image")" != "$host_ca_sum" ]; then
  step "Making $base_image trust this machine's CA bundle"
  context=$(mktemp -d)
  cp "$host_ca" "$context/host-ca.crt"
  printf '%s\n' "FROM $base_image" \
    "COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt" \
    "RUN update-ca-certificates >/dev/null" \
    "LABEL host-ca=$host_ca_sum" > "$context/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$base_image" "$context" >/dev/null 2>"$context/log" \
    || { cat "$context/log" >&2; exit 1; }
  rm -rf "$context"
fi
echo "machine ready: $(docker --version), $(docker-compose --version), base image $base_image"
