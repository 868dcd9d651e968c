#!/usr/bin/env bash
# libbridge's C ABI checks (called by scripts/test.sh; runs alone from a fresh clone too):
#  1. cargo test -p bridge-ffi: the committed include/bridge.h is what cbindgen generates; the C
#     ABI test (ffi/tests/c/abi_test.c: bad-input matrix, formats, cancel, handles, panic) and
#     the C/C++ examples, compiled with gcc/g++ (-std=c99 -Wall -Wextra -Werror -pedantic) and
#     run; the C test under valgrind memcheck (0 errors, 0 definite leaks).
#  1b. abi_test.c again, built with -fsanitize=address,undefined: any report fails the script.
#  2. make install into a temporary prefix, then the examples built against the installed tree
#     with pkg-config (shared and static) and with CMake, and run.
# Installs missing tools (gcc, g++, make, pkg-config, valgrind, cmake) with apt-get, idempotently.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

need=()
for t in gcc:gcc g++:g++ make:make pkg-config:pkgconf valgrind:valgrind cmake:cmake realpath:coreutils; do
  command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]} (apt-get)"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== C ABI: header check, C/C++ examples, bad-input matrix, valgrind (cargo test -p bridge-ffi)"
cargo test --locked -p bridge-ffi

echo "== C ABI: make install, pkg-config and CMake builds against the installed tree"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
# PROFILE=test installs the library `cargo test` just built (a release build is `make install`).
make --no-print-directory install PREFIX="$prefix" PROFILE=test >"$tmp/install.log"
lib="$prefix/lib"
for f in libbridge.so.0.1.0 libbridge.a libonnxruntime.so pkgconfig/bridge.pc pkgconfig/bridge-static.pc \
         cmake/bridge/bridgeConfig.cmake cmake/bridge/bridgeConfigVersion.cmake; do
  [ -e "$lib/$f" ] || { echo "missing $lib/$f"; exit 1; }
done
[ "$(readlink "$lib/libbridge.so.0")" = libbridge.so.0.1.0 ] || { echo "libbridge.so.0 link"; exit 1; }
[ "$(readlink "$lib/libbridge.so")" = libbridge.so.0 ] || { echo "libbridge.so link"; exit 1; }
readelf -d "$lib/libbridge.so.0.1.0" | grep -q 'SONAME.*\[libbridge\.so\.0\]' || { echo "SONAME is not libbridge.so.0"; exit 1; }
[ -f "$prefix/include/bridge.h" ]

cargo run --quiet --locked --profile test -p bridge-ffi --example c-fixtures -- "$tmp/fixtures" >/dev/null
model="$tmp/fixtures/oracle_sr2.onnx"; photo="$tmp/fixtures/chelsea.ppm"

echo "== C ABI: abi_test.c under AddressSanitizer + UndefinedBehaviorSanitizer"
# The C side is instrumented; libbridge (Rust) is the normal libbridge.so `cargo test` built, so
# ASan sees its accesses only through intercepted calls (memcpy, …): the valgrind run above is
# what checks every byte libbridge touches. Leak detection is off because ONNX Runtime, which
# libbridge dlopen()s, keeps allocations until exit that LSan reports (valgrind checks definite
# leaks with a documented suppression file instead). Any ASan/UBSan report aborts the program.
built="${CARGO_TARGET_DIR:-$root/target}/debug/libbridge.so"
[ -f "$built" ] || { echo "missing $built (cargo test -p bridge-ffi builds it)"; exit 1; }
# Cargo writes only libbridge.so; the program needs its SONAME, libbridge.so.0.
asan_lib="$tmp/asan-lib"; mkdir -p "$asan_lib"
ln -sf "$built" "$asan_lib/libbridge.so"; ln -sf "$built" "$asan_lib/libbridge.so.0"
gcc -std=c99 -Wall -Wextra -Werror -pedantic -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
  -fno-omit-frame-pointer -I include ffi/tests/c/abi_test.c -L"$asan_lib" -lbridge -Wl,-rpath,"$asan_lib" \
  -pthread -lm -o "$tmp/abi_test_asan"
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$tmp/abi_test_asan" "$tmp/fixtures" >"$tmp/asan.log" 2>&1 || { cat "$tmp/asan.log"; echo "abi_test failed under ASan/UBSan"; exit 1; }
if grep -Eq "ERROR: AddressSanitizer|runtime error:" "$tmp/asan.log"; then cat "$tmp/asan.log"; exit 1; fi
grep "abi_test:" "$tmp/asan.log" | sed 's/^/asan+ubsan: /'
# libbridge must find ONNX Runtime next to itself: no ORT_DYLIB_PATH.
unset ORT_DYLIB_PATH

export PKG_CONFIG_PATH="$lib/pkgconfig"
cflags=(-std=c99 -Wall -Wextra -Werror -pedantic)
# shellcheck disable=SC2046
gcc "${cflags[@]}" examples/c/restore.c $(pkg-config --cflags --libs bridge) -o "$tmp/restore-pc"
out=$(LD_LIBRARY_PATH="$lib" "$tmp/restore-pc" "$model" "$photo" "$tmp/out-pc.ppm" 2>/dev/null)
echo "pkg-config (shared): $out"
case "$out" in *"ONNX Runtime $lib/"*) ;; *) echo "libbridge did not load ONNX Runtime from $lib"; exit 1 ;; esac
# shellcheck disable=SC2046
gcc "${cflags[@]}" examples/c/camera_loop.c $(pkg-config --cflags --libs bridge-static) -o "$tmp/camera-static"
ORT_DYLIB_PATH="$lib/libonnxruntime.so" "$tmp/camera-static" "$tmp/fixtures/unet.onnx" 12 64 48 16 \
  | sed 's/^/pkg-config (static): /'
ldd "$tmp/camera-static" | grep -q libbridge && { echo "static build links libbridge.so"; exit 1; }

cmake -S examples -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake.log"
cmake --build "$tmp/cmake-build" -j 2 >>"$tmp/cmake.log" || { cat "$tmp/cmake.log"; exit 1; }
"$tmp/cmake-build/restore" "$model" "$photo" "$tmp/out-cmake.ppm" 2>/dev/null | sed 's/^/cmake: /'
"$tmp/cmake-build/restore_cpp" "$model" "$photo" "$tmp/out-cmake-cpp.ppm" | sed 's/^/cmake: /'
"$tmp/cmake-build/camera_loop" "$tmp/fixtures/unet.onnx" 12 64 48 16 | sed 's/^/cmake: /'
cmp "$tmp/out-pc.ppm" "$tmp/out-cmake.ppm"
cmp "$tmp/out-pc.ppm" "$tmp/out-cmake-cpp.ppm"
# A version request the package cannot satisfy is refused.
mkdir -p "$tmp/cmake-v"
printf 'cmake_minimum_required(VERSION 3.16)\nproject(v C)\nfind_package(bridge 0.2 CONFIG REQUIRED)\n' >"$tmp/cmake-v/CMakeLists.txt"
if cmake -S "$tmp/cmake-v" -B "$tmp/cmake-v/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
  echo "find_package(bridge 0.2) accepted libbridge 0.1.0"; exit 1
fi
echo "== C ABI: all checks passed"
