#!/usr/bin/env bash
# Builds what a checkout runs: the BPF objects (scripts/build-bpf.sh → build/bpf)
# and the agent and CLI compiled to JavaScript (tsc -p tsconfig.build.json →
# dist/), which bin/flannel-bpf runs instead of the TypeScript sources: a
# shorter start (no tsx, no transpiling) and a smaller process.
#
# dist/.build-stamp carries the time the compile started; bin/flannel-bpf
# uses dist/ only while no src/**/*.ts is newer, so an edited tree never runs
# a stale build (it falls back to the sources until the next build).
# Usage: scripts/build.sh            (incremental; both steps skip what is current)
#        scripts/build.sh --js-only  (just dist/)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build: $*" >&2; exit 1; }

[ "${1:-}" = "--js-only" ] || bash scripts/build-bpf.sh

tsc=node_modules/.bin/tsc
[ -x "$tsc" ] || die "TypeScript is not installed (node_modules/.bin/tsc). Run: npm ci"

mkdir -p dist
stamp=$(mktemp dist/.build-stamp.XXXXXX)
trap 'rm -f "$stamp"' EXIT
rm -f dist/.build-stamp
# An incremental build trusts its .tsbuildinfo: without the outputs, start over.
[ -f dist/src/cli/main.js ] || rm -f dist/.tsbuildinfo
"$tsc" -p tsconfig.build.json || die "tsc failed; dist/ is not used until a build succeeds (bin/flannel-bpf runs the sources)"
mv "$stamp" dist/.build-stamp
trap - EXIT
echo "build: dist/ compiled ($(find dist/src -name '*.js' | wc -l) modules); bin/flannel-bpf runs it"
