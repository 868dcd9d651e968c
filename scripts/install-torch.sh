#!/usr/bin/env bash
# Install libtorch (C++ headers + CPU shared libraries) from the PyPI `torch` wheel into the
# project-local directory .deps/libtorch/ (idempotent; prints that directory).
#
# Why the wheel and not a libtorch zip: PyPI is reachable from every machine this project builds on,
# and the wheel's `torch/` folder *is* a libtorch tree (include/ + lib/). Nothing of Python is used
# at build or run time: torch-sys reads LIBTORCH=.deps/libtorch (see scripts/with-torch.sh).
#
# What is extracted (the NEEDED closure of libtorch_cpu.so, checked with readelf on torch 2.11.0):
#   lib/libtorch_cpu.so  -> libc10.so, libgomp.so.1, libcudart.so.13, libcupti.so.13 (+ glibc/libstdc++)
#   lib/libtorch.so      -> libtorch_cpu.so, libtorch_cuda.so   (torch-sys links -ltorch; the linker's
#                           --as-needed drops it because no symbol is used, so the missing CUDA library
#                           never matters on a CPU machine)
#   lib/libgomp.so       -> symlink to the wheel's libgomp.so.1 (torch-sys links -lgomp)
#   lib/libcudart.so.13, lib/libcupti.so.13: PyPI's torch is the CUDA build, and even its CPU library
#                           needs these two at load time (they load fine without a GPU or driver). They come
#                           from the wheels torch 2.11.0 pins: nvidia-cuda-runtime 13.0.96 and
#                           nvidia-cuda-cupti 13.0.85 (NVIDIA licence, copied to licenses/).
# libtorch_cuda.so is NOT extracted: torch-sys would then link it and a CPU-only machine could not run
# the binary. GPU runs load it at run time instead (dlopen; see export/src/train/).
#
# Wheel source, first hit wins: $TORCH_WHEEL (a .whl path), .whl/torch-$ver-*.whl, else
# `pip download` into .whl/ (kept, so a wiped .deps/ re-installs without the network). The two small
# NVIDIA wheels are looked up in .whl/ and downloaded there the same way.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ver=2.11.0   # tch 0.24.0 checks for exactly this version (and the two NVIDIA pins below are its deps)
dest="$root/.deps/libtorch"
stamp="$dest/build-version"    # torch-sys version-checks this file's content
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ver" ] && [ -f "$dest/lib/libtorch_cpu.so" ]; then
  echo "$dest"; exit 0
fi
case "$(uname -m)" in
  x86_64|aarch64) ;;
  *) echo "install-torch: no torch wheel for $(uname -m)" >&2; exit 1 ;;
esac
mkdir -p "$root/.whl"
# find_or_fetch GLOB SPEC: a wheel in .whl/ matching GLOB, else pip-download SPEC (this machine's tags).
find_or_fetch() {
  local hit
  hit=$(ls "$root"/.whl/$1 2>/dev/null | head -n1 || true)
  if [ -z "$hit" ]; then
    echo "install-torch: downloading $2 into .whl/" >&2
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$root/.whl" "$2" >&2
    hit=$(ls "$root"/.whl/$1 | head -n1)
  fi
  echo "$hit"
}
whl=${TORCH_WHEEL:-$(find_or_fetch "torch-$ver-*-manylinux*_$(uname -m).whl" "torch==$ver")}
[ -f "$whl" ] || { echo "install-torch: wheel $whl not found" >&2; exit 1; }
cudart=$(find_or_fetch "nvidia_cuda_runtime-13.0.96-*.whl" "nvidia-cuda-runtime==13.0.96")
cupti=$(find_or_fetch "nvidia_cuda_cupti-13.0.85-*.whl" "nvidia-cuda-cupti==13.0.85")

# Extract into a scratch dir next to the destination, then rename: an interrupted run never leaves
# a half tree that the idempotence check above would accept.
tmp="$dest.part.$$"; trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"; mkdir -p "$tmp"
python3 - "$tmp" "$whl" "$cudart" "$cupti" <<'PY'
import os, shutil, sys, zipfile
out, wheels = sys.argv[1], sys.argv[2:]
libs = {"libtorch_cpu.so", "libtorch.so", "libc10.so", "libgomp.so.1", "libcudart.so.13", "libcupti.so.13"}
for whl in wheels:
    tag = os.path.basename(whl).split("-")[0]
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            n = info.filename
            base = os.path.basename(n)
            if n.endswith("/"):
                continue
            if n.startswith("torch/include/"):
                rel = n[len("torch/"):]
            elif "/lib/" in n and base in libs:
                rel = "lib/" + base
            elif ".dist-info/" in n and base.upper().startswith(("LICENSE", "NOTICE")):
                rel = f"licenses/{tag}-{base}"
            else:
                continue
            path = os.path.join(out, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with z.open(info) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
missing = sorted(l for l in libs if not os.path.exists(os.path.join(out, "lib", l)))
if missing:
    sys.exit(f"install-torch: wheels lack {missing}")
PY
ln -sf libgomp.so.1 "$tmp/lib/libgomp.so"
echo "$ver" > "$tmp/build-version"
rm -rf "$dest"; mkdir -p "$(dirname "$dest")"; mv "$tmp" "$dest"
echo "$dest"
