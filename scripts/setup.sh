#!/usr/bin/env bash
# Installs what flannel-bpf needs on Debian 12 (run as root). Idempotent: a
# second run installs nothing and takes a second.
#   system packages: clang, libbpf, bpftool, iproute2, iptables, ping, iperf3,
#                    sockperf, etcd, the CNI plugins, util-linux (nsenter/setpriv)
#   bpffs mounted at /sys/fs/bpf
#   npm packages (npm ci) when package-lock.json changed
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root (installs packages, mounts bpffs; the tests load BPF programs)" >&2
  exit 1
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js >= 20 is required (found $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

PACKAGES=(clang llvm libbpf-dev libbpf1 bpftool linux-libc-dev iproute2 iptables iputils-ping iperf3 sockperf
  etcd-server etcd-client containernetworking-plugins util-linux procps ethtool tcpdump)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Do not start the distribution's etcd service: tests and the lab run their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.fbpf && chmod +x /usr/sbin/policy-rc.d.fbpf
  had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ $had_policy -eq 0 ] && cp /usr/sbin/policy-rc.d.fbpf /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ $had_policy -eq 0 ] && rm -f /usr/sbin/policy-rc.d
  rm -f /usr/sbin/policy-rc.d.fbpf
else
  say "system packages present"
fi

# bpffs: pins live there.
if ! mount | grep -q ' /sys/fs/bpf type bpf'; then
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf
  say "mounted bpffs at /sys/fs/bpf"
fi

# npm packages, only when the lock file changed since the last install.
stamp=node_modules/.fbpf-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
else
  say "npm packages up to date"
fi
