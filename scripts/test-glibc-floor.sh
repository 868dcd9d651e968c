#!/usr/bin/env bash
# libbridge.so for aarch64 against a glibc floor (default 2.31, JetPack 5 / Ubuntu 20.04):
#   1. `make TARGET=aarch64-unknown-linux-gnu GLIBC=2.31 PROFILE=dev` (cargo-zigbuild, zig as the
#      linker; both installed into .deps/ by scripts/install-zig.sh) in its own target folder, so
#      it does not rebuild scripts/test-aarch64.sh's GNU-toolchain build;
#   2. no symbol of the library needs a newer glibc (readelf's version needs, the same list as
#      `objdump -T | grep GLIBC_`);
#   3. a C program linked against it runs under qemu-aarch64 (scripts/test-aarch64.sh installs
#      the cross compiler and qemu-user; this script expects them).
# Usage: scripts/test-glibc-floor.sh [GLIBC]   (not part of scripts/test.sh: ~6 min of building
# on two cores and a 100 MB zig download).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
floor=${1:-2.31}
target=aarch64-unknown-linux-gnu
dir=$root/target/glibc-$floor
make --no-print-directory TARGET=$target GLIBC="$floor" PROFILE=dev CARGO_TARGET_DIR="$dir" build
lib=$dir/$target/debug/libbridge.so
need=$(readelf -V "$lib" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
newest=$(printf '%s\n%s\n' "$need" "$floor" | sort -V | tail -n 1)
[ "$newest" = "$floor" ] || { echo "FAIL: $lib needs glibc $need, more than $floor"; exit 1; }
echo "ok: $lib needs glibc $need (floor $floor)"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '#include <bridge.h>\n#include <stdio.h>\nint main(void) { printf("%%s\\n", bridge_version_string()); return 0; }\n' >"$tmp/v.c"
cp "$lib" "$tmp/libbridge.so.0"
aarch64-linux-gnu-gcc -std=c99 "$tmp/v.c" -Iinclude "$tmp/libbridge.so.0" -o "$tmp/v"
out=$(QEMU_LD_PREFIX=/usr/aarch64-linux-gnu LD_LIBRARY_PATH="$tmp" qemu-aarch64 "$tmp/v")
[ -n "$out" ] || { echo "FAIL: the program printed no version"; exit 1; }
echo "ok: runs under qemu-aarch64: libbridge $out"
