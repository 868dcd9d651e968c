#!/usr/bin/env bash
# Cross-build libbridge for 64-bit Arm Linux (Jetson class) and run it under qemu-user:
#   1. libbridge.so (crate bridge-ffi) and the `bridge` CLI for aarch64-unknown-linux-gnu with the
#      Debian cross toolchain (installed with apt-get when missing, as is qemu-user);
#   2. a golden replay (the bridge math on Arm);
#   3. a 64x64 restore with a shipped model through ONNX Runtime's aarch64 build (PyPI 1.20.1, the
#      release JetPack-class systems use; scripts/install-ort.sh aarch64-unknown-linux-gnu),
#      compared with the same restore on this machine: at most 1 level apart in any sample;
#   4. `make TARGET=... install` into a staging tree (only aarch64 files in it; the host's x86_64
#      ONNX Runtime refused) and the C example built against that tree, run under qemu.
# Usage: scripts/test-aarch64.sh [GOLDEN_DIR]   (default: $BRIDGE_GOLDEN_DIR, else tests/golden,
#        else ../shared/golden).
# ONNX Runtime is always passed explicitly (--ort-lib), never found by libbridge's own search.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target=aarch64-unknown-linux-gnu
golden=${1:-${BRIDGE_GOLDEN_DIR:-}}
if [ -z "$golden" ]; then
  if [ -d tests/golden ]; then golden=tests/golden; else golden=$root/../shared/golden; fi
fi
start=$SECONDS
stage() { echo "== [aarch64 $((SECONDS - start)) s] $*"; }

stage "cross toolchain and qemu-user (apt-get when missing)"
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi
qemu-aarch64 --version | head -n 1
# qemu-user finds the target's dynamic loader and libc here.
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu

stage "ONNX Runtime for aarch64 (scripts/install-ort.sh $target)"
ort_arm=$(scripts/install-ort.sh "$target")
ort_host=$(scripts/install-ort.sh)
echo "$ort_arm"

stage "cross build: libbridge.so and bridge for $target (dev profile)"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# Two builds, as `make TARGET=... PROFILE=dev` and a CLI build do them (one build of both would
# unify the SDK's features and rebuild libbridge.so whenever either is built alone).
cargo build --locked --quiet --target "$target" -p bridge-ffi --lib
cargo build --locked --quiet --target "$target" -p bridge --bin bridge
cargo build --locked --quiet -p bridge --bin bridge
arm_dir=target/$target/debug
for f in "$arm_dir/bridge" "$arm_dir/libbridge.so"; do
  m=$(od -An -j18 -N2 -tu2 "$f" | tr -d ' ')
  [ "$m" = 183 ] || { echo "FAIL: $f is not an aarch64 ELF file (e_machine $m)"; exit 1; }
done
echo "aarch64 ELF: $arm_dir/bridge, $arm_dir/libbridge.so"

stage "golden replay under qemu-aarch64 ($golden) vs this machine"
# Every file (~8 s under qemu). Families this build does not know yet fail on both machines
# alike (scripts/test.sh judges those); here each file's verdict must be the same on Arm and a
# file that passes here must pass there.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
files=("$golden"/*.json)
[ -e "${files[0]}" ] || { echo "FAIL: no golden files in $golden"; exit 1; }
qemu-aarch64 "$arm_dir/bridge" replay "${files[@]}" >"$tmp/replay-arm.txt" || true
target/debug/bridge replay "${files[@]}" >"$tmp/replay-host.txt" || true
python3 - "$tmp/replay-arm.txt" "$tmp/replay-host.txt" <<'PY'
import sys
def verdicts(p):
    return {l.split()[1]: (l.split()[0], l.split()[2]) for l in open(p) if l.startswith(("PASS ", "FAIL "))}
arm, host = verdicts(sys.argv[1]), verdicts(sys.argv[2])
bad = [f for f in host if arm.get(f, ("missing",))[0] != host[f][0]]
passed = [f for f in host if host[f][0] == "PASS"]
same = sum(arm.get(f) == host[f] for f in passed)
print(f"golden replay: {len(passed)} of {len(host)} files pass on this machine, all of them on aarch64;"
      f" {same} with the same max_rel_err to 4 digits")
if bad or not passed or set(arm) != set(host):
    print("FAIL: aarch64 verdicts differ for", bad or "the file list"); sys.exit(1)
PY

stage "64x64 restore (models/denoise.onnx) on aarch64 under qemu vs this machine"
# Two network calls: each costs ~10 s of emulated CPU time, against ~10 ms natively.
args=(restore -m models/denoise.onnx -i docs/assets/chelsea-64.png --nfe 2 --seed 7 --threads 2 -q)
qemu-aarch64 "$arm_dir/bridge" "${args[@]}" -o "$tmp/arm.png" --ort-lib "$ort_arm"
target/debug/bridge "${args[@]}" -o "$tmp/host.png" --ort-lib "$ort_host"
# ONNX Runtime's Arm kernels may round a few samples differently: at most 1 level (of 255).
scripts/pngdiff.py "$tmp/arm.png" "$tmp/host.png" --max-diff 1

stage "make TARGET=$target install (staged) and the C example against it, under qemu"
dest=$tmp/stage
make --no-print-directory -s TARGET="$target" PROFILE=dev NO_BUILD=1 install DESTDIR="$dest" PREFIX=/usr ORT_LIB="$ort_arm"
for f in $(find "$dest" -type f -name '*.so*'); do
  m=$(od -An -j18 -N2 -tu2 "$f" | tr -d ' ')
  [ "$m" = 183 ] || { echo "FAIL: installed $f is not aarch64 (e_machine $m)"; exit 1; }
done
if make --no-print-directory -s TARGET="$target" PROFILE=dev NO_BUILD=1 install DESTDIR="$tmp/bad" PREFIX=/usr ORT_LIB="$ort_host" >"$tmp/bad.log" 2>&1; then
  echo "FAIL: make install copied an x86_64 ONNX Runtime into an aarch64 tree"; exit 1
fi
grep -q "is not an aarch64 library" "$tmp/bad.log" || { cat "$tmp/bad.log"; exit 1; }
echo "an x86_64 ONNX Runtime is refused for the aarch64 tree"
aarch64-linux-gnu-gcc -std=c99 -O1 examples/c/restore.c -I"$dest/usr/include" -L"$dest/usr/lib" -lbridge \
  -Wl,-rpath,'$ORIGIN/../lib' -o "$tmp/restore"
mkdir -p "$dest/usr/bin" && mv "$tmp/restore" "$dest/usr/bin/restore"
python3 - "$tmp/arm.png" "$tmp/in.ppm" <<'PY'
import sys
sys.path.insert(0, "scripts")
from pngdiff import read_png
w, h, c, depth, s = read_png("docs/assets/chelsea-64.png")
assert c == 3 and depth == 8
open(sys.argv[2], "wb").write(b"P6\n%d %d\n255\n" % (w, h) + bytes(s))
PY
# libbridge finds ONNX Runtime in its own folder of the installed tree.
qemu-aarch64 "$dest/usr/bin/restore" models/denoise.onnx "$tmp/in.ppm" "$tmp/c.ppm" 1 7
python3 - "$tmp/c.ppm" <<'PY'
import sys
d, head = open(sys.argv[1], "rb").read(), b"P6\n64 64\n255\n"
assert d.startswith(head) and len(d) == len(head) + 64 * 64 * 3, f"bad PPM from the C example: {d[:20]!r}, {len(d)} bytes"
print(f"C example: 64x64 PPM written ({len(d)} bytes)")
PY
stage "aarch64 checks passed"
