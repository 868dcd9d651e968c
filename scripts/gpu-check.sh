#!/usr/bin/env bash
# One-shot GPU acceptance: one JSON with the CUDA EP restores (host loop, device loop, CUDA
# graphs), a TensorRT fp16 restore, each compared with the host loop's output, an NV12 frame
# restored from planes in CUDA memory (BRIDGE_IMAGE_MEMORY_CUDA's path), and a 20-step loop
# at 512² of a ~20M-parameter U-Net through libbridge against an eager libtorch loop of the same
# network on the same GPU (goal ≥ 2.5×). The work is export/examples/gpu_check.rs.
#
#   scripts/gpu-check.sh --cpu [--out FILE]   this machine / CI: build, then the same sequence on
#                                             the CPU at 64² (CUDA graphs, TensorRT: "skipped: no CUDA")
#   scripts/gpu-check.sh --build              build and strip the binary for the GPU machine:
#                                             .device-stage/gpu_check (git-ignored)
#   scripts/gpu-check.sh [--out FILE] [ARGS]  the GPU machine: run the carried binary (no cargo there)
#
# The GPU binary comes from
#   scripts/with-torch.sh cargo build --locked --profile test -p bridge-export \
#     --features train,bridge/cuda,bridge/tensorrt --example gpu_check
# (target/debug/examples/gpu_check, 150 MB with debug info; `--build` strips it to 2.7 MB: it
# links libtorch dynamically). On a device session (the device machine gets a copy of the
# SESSION's checkout, so stage in that checkout):
#   1. here: scripts/gpu-check.sh --build; CHUNK_MB=32 bash ../shared/tools/stage-ort-gpu (32 MB
#      chunks keep a chunk plus the ~24 MB working tree under the 64 MiB carry limit: 6 chunks);
#   2. there, back to back in one warm lease (idle release: 30 s): one call per chunk c0..c4
#      carrying [".device-stage/cK", ".device-stage/unstage.sh"] running
#      `bash .device-stage/unstage.sh .device-stage/cK`, then the last chunk together with the run:
#      carry [".device-stage/c5", ".device-stage/unstage.sh", ".device-stage/gpu_check"], run
#      `bash .device-stage/unstage.sh .device-stage/c5 >/dev/null; bash scripts/gpu-check.sh --out $OUT/gpu-check.json`
#      (~30 s; 3.5 min of device time in all with the machine's start, measured 2026-12-04).
# GPU_CHECK_BIN overrides the binary's path. Exit status 1 when a libbridge part failed (the
# JSON says which); TensorRT without its libraries on the machine is "skipped", not a failure.
# On the GPU machine the ONNX Runtime GPU libraries are taken from /tmp/ort/lib (unstage.sh's
# folder) unless ORT_DYLIB_PATH is set, CUDA/cuDNN/TensorRT from the machine's Python packages
# (nvidia/*/lib, tensorrt_libs) and libtorch from its PyPI torch 2.11 (scripts/with-torch.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bin=${GPU_CHECK_BIN:-.device-stage/gpu_check}
# $1: extra features (the GPU build adds the CUDA and TensorRT providers; the CPU path builds
# what `cargo test -p bridge-export --features train` in scripts/test.sh already compiled).
build() {
  scripts/with-torch.sh cargo build --locked --quiet --profile test -p bridge-export \
    --features "train$1" --example gpu_check
}

case "${1:-}" in
  --build)
    build ,bridge/cuda,bridge/tensorrt
    mkdir -p .device-stage
    strip -o "$bin" target/debug/examples/gpu_check
    ls -la "$bin"
    exit 0 ;;
  --cpu)
    shift
    build ""
    ort=$(scripts/install-ort.sh)
    # Two threads: the CI machine's cores (the timings are not the point on this path).
    exec scripts/with-torch.sh target/debug/examples/gpu_check --cpu --ort-lib "$ort" --threads 2 "$@" ;;
esac

# The GPU machine.
[ -x "$bin" ] || { echo "gpu-check: $bin missing: build it here with scripts/gpu-check.sh --build and carry it" >&2; exit 1; }
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$(ls /tmp/ort/lib/libonnxruntime.so.* 2>/dev/null | head -n 1)
  [ -n "$ORT_DYLIB_PATH" ] || { echo "gpu-check: no ONNX Runtime GPU build: run .device-stage/unstage.sh first (see above)" >&2; exit 1; }
  export ORT_DYLIB_PATH
fi
# CUDA, cuDNN, cuBLAS... (and TensorRT when installed) from the machine's Python packages.
nv=$(python3 - <<'PY' 2>/dev/null || true
import glob, importlib.util, os
dirs = []
for pkg in ("nvidia", "tensorrt_libs"):
    s = importlib.util.find_spec(pkg)
    if s is None:
        continue
    for base in s.submodule_search_locations or []:
        dirs += sorted(glob.glob(os.path.join(base, "*", "lib"))) if pkg == "nvidia" else [base]
print(":".join(dirs))
PY
)
export LD_LIBRARY_PATH="$(dirname "$ORT_DYLIB_PATH")${nv:+:$nv}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || true
exec scripts/with-torch.sh "$bin" --ort-lib "$ORT_DYLIB_PATH" "$@"
