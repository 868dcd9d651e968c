#!/usr/bin/env bash
# Install ONNX Runtime's shared library from the PyPI `onnxruntime` wheel into a project-local
# directory (idempotent; prints the library path).
#   scripts/install-ort.sh                             # this machine: .deps/onnxruntime/ (1.31.1)
#   scripts/install-ort.sh aarch64-unknown-linux-gnu   # cross target: .deps/onnxruntime-aarch64/ (1.20.1)
# Debug and test builds of the SDK find .deps/onnxruntime by themselves (after an explicit path
# option, ORT_DYLIB_PATH, their own folder and the system loader); a release build does not look
# in the source tree: run it with ORT_DYLIB_PATH=$(scripts/install-ort.sh), or put the library
# next to it or in its ../lib (`make install` does that for libbridge).
# A cross target's library is for the target machine (make TARGET=... install, qemu tests); its
# default version is 1.20.1, the ONNX Runtime release JetPack-class systems ship, which the SDK's
# API level (ort api-17) supports. ORT_VERSION overrides either default.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${1:-}
host_arch=$(uname -m)
arch=${target%%-*}
[ -n "$arch" ] || arch=$host_arch
if [ "$arch" = "$host_arch" ]; then
  ver=${ORT_VERSION:-1.31.1}
  dest="$root/.deps/onnxruntime"
else
  ver=${ORT_VERSION:-1.20.1}
  dest="$root/.deps/onnxruntime-$arch"
fi
lib="$dest/libonnxruntime.so.$ver"
if [ -f "$lib" ]; then echo "$lib"; exit 0; fi
case "$arch" in
  x86_64|aarch64) plat=(--platform "manylinux_2_28_$arch" --platform "manylinux_2_27_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch") ;;
  *) echo "install-ort: no onnxruntime wheel for $arch" >&2; exit 1 ;;
esac
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
  "${plat[@]}" -d "$tmp" "onnxruntime==$ver" >&2
mkdir -p "$dest"
python3 - "$tmp"/onnxruntime-*.whl "$dest" <<'PY'
import sys, zipfile, os
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if n.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime") and ".so" in base:
            with z.open(n) as src, open(os.path.join(dest, base + ".part"), "wb") as out:
                out.write(src.read())
            os.replace(os.path.join(dest, base + ".part"), os.path.join(dest, base))
PY
[ -f "$lib" ] || { echo "install-ort: $lib missing after extraction" >&2; exit 1; }
ln -sf "$(basename "$lib")" "$dest/libonnxruntime.so"
echo "$lib"
