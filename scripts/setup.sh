#!/usr/bin/env bash
# Sets up a Debian machine (as root) for vip-manager's demo, tests and benchmarks:
# the Debian packages they use, the npm dependencies, and the build. Safe to run again.
#   bash scripts/setup.sh            # demo and tests
#   bash scripts/setup.sh --bench    # also the Go original (Debian's vip-manager 1.0.2) as a baseline
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(etcd-server etcd-client iproute2 openssl tcpdump systemd rpm patroni python3-etcd postgresql-15 postgresql-client-15)
if [[ "${1:-}" == "--bench" ]]; then packages+=(vip-manager); fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: run as root (it installs Debian packages, and the demo and tests create network namespaces)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
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

major=$(node -p 'process.versions.node.split(".")[0]')
if (( major < 20 )); then
  echo "setup: Node.js $(node --version) is too old; vip-manager needs Node.js 20 or newer (Debian 13 ships it)" >&2
  exit 1
fi

npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
