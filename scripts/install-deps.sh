#!/usr/bin/env bash
# Installs everything Brindle's build, demo and tests use on a fresh Debian 12 machine (as root).
set -euo pipefail
packages=(iptables ipset nftables conntrack iproute2 bird2 etcd-server etcd-client python3 procps psmisc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian enables these services on install; Brindle starts its own instances inside namespaces.
for svc in bird etcd; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain first" >&2; exit 1; }
