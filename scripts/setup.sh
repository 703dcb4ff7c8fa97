#!/usr/bin/env bash
# Sets up a Debian machine (as root) for vip-manager's demo, tests and benchmarks:
# the Debian packages they use, a Node.js 20 or newer (the pinned runtime the packages embed,
# where the machine has none or an older one), the npm dependencies, and the build.
# Safe to run again.
#   bash scripts/setup.sh            # demo and tests
#   bash scripts/setup.sh --bench    # also the Go original (Debian's vip-manager 1.0.2) as a baseline
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests run, beyond etcd and iproute2: packaging (dpkg-deb is always there; rpm,
# binutils' readelf), the arm64 package's runtime under qemu-user with the arm64 C++ runtime,
# stock Debian roots for the install tests (debootstrap), the Patroni bed, promtool for the
# alert rules (prometheus), man for the man page, ping for the LAN tests, git (the set-up test
# copies the checkout's files into a stock root), GNU time (the start-up bench's peak RSS).
# test/ops/setup-commands.test.ts fails when a test, the demo or a bench runs a command that
# none of these (nor a stock minbase Debian) provides.
packages=(etcd-server etcd-client iproute2 iputils-ping openssl tcpdump systemd rpm binutils git time
  debootstrap qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross
  patroni python3-etcd prometheus man-db groff-base)
# PostgreSQL for the Patroni bed: 15 on Debian 12 (what it was measured with), the
# distribution's own major elsewhere (Debian 13 has 17 only).
if [[ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" == bookworm ]]; then
  packages+=(postgresql-15 postgresql-client-15)
else
  packages+=(postgresql postgresql-client)
fi
if [[ "${1:-}" == "--bench" ]]; then packages+=(vip-manager); fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: run as root (it installs Debian packages, and the demo and tests create network namespaces)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# A Node.js 20 or newer with npm that was here before is used as it is. Otherwise the pinned
# runtime is installed below, bootstrapped with Debian's node and npm (Debian 12's nodejs is 18).
own_node=0
if command -v node >/dev/null && command -v npm >/dev/null \
  && (( $(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0) >= 20 )); then
  own_node=1
elif ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if (( ${#missing[@]} > 0 )); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # Debian's etcd-server and vip-manager ship units; neither may start on its own here
  # (policy-rc.d exit 101 = "action forbidden"). Only ours is removed afterwards.
  own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { (( own_policy )) && rm -f /usr/sbin/policy-rc.d; exit 1; }
  if (( own_policy )); then rm -f /usr/sbin/policy-rc.d; fi
fi

# Prometheus's package enables its service for the next boot; these tests only run promtool
# and their own prometheus processes.
if [[ " ${missing[*]:-} " == *" prometheus "* ]]; then systemctl disable prometheus.service >/dev/null 2>&1 || true; fi

# Where the machine had no Node.js 20 or newer, install the runtime the packages embed
# (packaging/runtime.json) with the pinned npm: fetched from the npm registry with the npm at
# hand, checked against the pinned hashes, under /opt/vip-manager-node, and linked into
# /usr/local/bin, which comes first in PATH. So a fresh Debian 12 and a fresh Debian 13 build and
# test with the very runtime the packages ship.
if (( ! own_node )); then
  echo "setup: no Node.js >= 20 with npm was installed; installing the pinned runtime"
  bin=$(node scripts/runtime.mjs install --prefix /opt/vip-manager-node)
  for tool in node npm npx; do ln -sfn "$bin/$tool" "/usr/local/bin/$tool"; done
  hash -r
  export PATH="/usr/local/bin:$PATH"
  echo "setup: using Node.js $(node --version) and npm $(npm --version) from $bin"
fi

npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
