#!/bin/sh
# iptables-wrapper: run the image's iptables in the mode the host uses (iptables-legacy or iptables-nft).
#
# The agent writes flannel's FLANNEL-POSTRTG / FLANNEL-FWD chains with iptables-save / iptables-restore in
# the node's network namespace. They must land in the same backend as kube-proxy's and the host's rules:
# an ACCEPT in nft does not override a DROP policy set through iptables-legacy, and the other way round.
# Debian 12 ships both backends (nft by default); this picks one the first time iptables runs in the
# container, the way kubernetes-sigs/iptables-wrappers does for kube-proxy's and flannel's images:
#   1. the kubelet's hint chains (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY in the mangle table) say which
#      mode the node uses;
#   2. otherwise the backend that holds more rules wins (nft on a tie).
#
#   iptables-wrapper --install   (image build) point iptables, iptables-save, iptables-restore here
#   iptables-wrapper --detect    print the mode that would be chosen
#   iptables[-save|-restore] …    (through the links) choose, re-point the links, run the real command
#
# IPTABLES_WRAPPER_SBIN (default /usr/sbin) is where the commands live; tests point it at stubs.
set -eu

sbin=${IPTABLES_WRAPPER_SBIN:-/usr/sbin}
commands="iptables iptables-save iptables-restore"

has_hint() {
	"$sbin/iptables-$1-save" -t mangle 2>/dev/null | grep -Eq '^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) '
}

count_rules() {
	n=$("$sbin/iptables-$1-save" 2>/dev/null | grep -c '^-' || true)
	echo "${n:-0}"
}

detect() {
	if has_hint nft; then echo nft; return; fi
	if has_hint legacy; then echo legacy; return; fi
	legacy=$(count_rules legacy)
	nft=$(count_rules nft)
	if [ "$legacy" -gt "$nft" ]; then echo legacy; else echo nft; fi
}

# Point $sbin/<cmd> at $sbin/<cmd with -mode inserted>, atomically (symlink + rename).
point() {
	for cmd in $commands; do
		target="iptables-$1${cmd#iptables}"
		ln -sf "$target" "$sbin/.$cmd.wrapper-tmp"
		mv -f "$sbin/.$cmd.wrapper-tmp" "$sbin/$cmd"
	done
}

case "${1:-}" in
--install)
	for cmd in $commands; do
		ln -sf iptables-wrapper "$sbin/.$cmd.wrapper-tmp"
		mv -f "$sbin/.$cmd.wrapper-tmp" "$sbin/$cmd"
	done
	exit 0
	;;
--detect)
	detect
	exit 0
	;;
esac

mode=$(detect)
# A read-only root filesystem cannot be re-pointed: then every call detects again (slower, same result).
point "$mode" 2>/dev/null || true
name=$(basename "$0")
case "$name" in
iptables | iptables-save | iptables-restore) ;;
*) echo "iptables-wrapper: run me as iptables, iptables-save or iptables-restore (or with --install / --detect)" >&2; exit 2 ;;
esac
exec "$sbin/iptables-$mode${name#iptables}" "$@"
