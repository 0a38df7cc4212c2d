#!/usr/bin/env bash
# Compiles every bpf/*.c entry file into build/bpf/<name>.o.
# Usage: scripts/build-bpf.sh        (rebuilds only what changed)
# Environment (for upgrade tests and experiments):
#   BPF_OUT_DIR=dir        write the program objects there instead of build/bpf (fixtures are skipped)
#   BPF_CFLAGS_EXTRA=...   extra clang flags (e.g. -mcpu=v3: the same programs, different instructions)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-bpf: $*" >&2; exit 1; }

CLANG=${CLANG:-clang}
command -v "$CLANG" >/dev/null 2>&1 || die "clang not found. Install it with: apt-get install clang (or run: bash scripts/setup.sh)"
[ -f /usr/include/bpf/bpf_helpers.h ] || die "libbpf headers not found (/usr/include/bpf/bpf_helpers.h). Install them with: apt-get install libbpf-dev (or run: bash scripts/setup.sh)"
arch_inc="/usr/include/$(uname -m)-linux-gnu"
[ -f "$arch_inc/asm/types.h" ] || die "asm/types.h not found under $arch_inc. Install it with: apt-get install linux-libc-dev"

headers=$(ls bpf/include/*.h bpf/lib/*.h)
built=0
# compile <dir of .c files> <output dir>: one object per entry file, rebuilt when it or a header changed.
compile() {
  local srcdir=$1 out=$2
  mkdir -p "$out"
  for src in "$srcdir"/*.c; do
    local name obj
    name=$(basename "$src" .c)
    obj="$out/$name.o"
    if [ -f "$obj" ] && [ -z "$(find "$src" $headers scripts/build-bpf.sh -newer "$obj" 2>/dev/null)" ]; then
      continue
    fi
    # shellcheck disable=SC2086
    "$CLANG" -O2 -g -target bpf -Wall -Werror ${BPF_CFLAGS_EXTRA:-} -I"$arch_inc" -Ibpf -c "$src" -o "$obj.tmp"
    mv "$obj.tmp" "$obj"
    built=$((built + 1))
  done
}
if [ -n "${BPF_OUT_DIR:-}" ]; then
  compile bpf "$BPF_OUT_DIR"
  echo "build-bpf: $built object(s) rebuilt in $BPF_OUT_DIR"
  exit 0
fi
compile bpf build/bpf
# Test fixtures (objects the tests load on purpose: a verifier rejection, a stale map layout).
compile test/fixtures/bpf build/test-bpf
echo "build-bpf: $built object(s) rebuilt; $(ls build/bpf/*.o | wc -l) programs in build/bpf, $(ls build/test-bpf/*.o | wc -l) fixtures in build/test-bpf"
