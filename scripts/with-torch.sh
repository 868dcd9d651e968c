#!/usr/bin/env bash
# Run a command with libtorch set up for tch 0.24 (installs it first, idempotently).
#   scripts/with-torch.sh cargo test -p bridge-export --features train
#   scripts/with-torch.sh cargo run -p bridge-export --features train -- train ...
#   scripts/with-torch.sh            (no command: print the variables it would set)
#
# Build time: torch-sys reads LIBTORCH (headers in $LIBTORCH/include, libraries in $LIBTORCH/lib),
#   the project's copy in .deps/libtorch (scripts/install-torch.sh: CPU libraries of the PyPI
#   torch 2.11.0 wheel, no libtorch_cuda.so, so the binary links only libtorch_cpu + libc10 and runs
#   on any machine). LIBTORCH_USE_PYTORCH is unset on purpose: it would make torch-sys ask a Python
#   interpreter instead, and link libtorch_cuda when that Python's torch has it.
# Run time: the dynamic loader finds libtorch_cpu.so & co. through LD_LIBRARY_PATH. A directory put
#   before .deps/libtorch/lib takes precedence; its libtorch_cuda.so is what export's
#   train::device::load_cuda dlopens to train on a GPU. That directory is, first hit wins:
#   1. $BRIDGE_TORCH_LIB;
#   2. the torch/lib of the `python3` on PATH, if it has torch 2.11.0 (any local variant, e.g.
#      +cu130) with libtorch_cuda.so: the lent GPU machine's own PyTorch. Found without importing
#      torch (~50 ms). Set BRIDGE_TORCH_LIB= (empty) to skip.
# A machine without .deps/libtorch that has such a Python (the GPU machine: no cargo, no network)
# runs prebuilt binaries from that directory alone, without installing anything.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ver=2.11.0

if [ -z "${BRIDGE_TORCH_LIB+set}" ]; then
  # Locate torch without importing it (fast, and works even where `import torch` would fail).
  BRIDGE_TORCH_LIB=$(python3 - "$ver" 2>/dev/null <<'PY' || true
import importlib.util, os, re, sys
spec = importlib.util.find_spec("torch")
d = os.path.dirname(spec.origin)
with open(os.path.join(d, "version.py")) as f:
    v = re.search(r"__version__\s*=\s*'([^'+]+)", f.read()).group(1)
lib = os.path.join(d, "lib")
if v == sys.argv[1] and os.path.exists(os.path.join(lib, "libtorch_cuda.so")):
    print(lib)
PY
  )
fi

stamp="$root/.deps/libtorch/build-version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$ver" ]; then
  libtorch="$root/.deps/libtorch"
elif [ -n "$BRIDGE_TORCH_LIB" ] && [ -f "$BRIDGE_TORCH_LIB/libtorch_cpu.so" ]; then
  libtorch=""   # run-only machine: that PyTorch's libraries, nothing to build against
else
  libtorch=$("$root/scripts/install-torch.sh")
fi

unset LIBTORCH_USE_PYTORCH LIBTORCH_INCLUDE LIBTORCH_LIB
lib=""
if [ -n "$libtorch" ]; then
  export LIBTORCH="$libtorch"
  lib="$libtorch/lib"
fi
if [ -n "$BRIDGE_TORCH_LIB" ]; then lib="$BRIDGE_TORCH_LIB${lib:+:$lib}"; fi
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Release builds (training's ONNX Runtime parity check, the eager-vs-SDK example) do not look for
# ONNX Runtime in the source tree by themselves: name the project's copy if it is installed.
if [ -z "${ORT_DYLIB_PATH:-}" ] && [ -e "$root/.deps/onnxruntime/libonnxruntime.so" ]; then
  export ORT_DYLIB_PATH="$root/.deps/onnxruntime/libonnxruntime.so"
fi
if [ "$#" -eq 0 ]; then
  [ -n "$libtorch" ] && echo "export LIBTORCH=$LIBTORCH"
  [ -n "${ORT_DYLIB_PATH:-}" ] && echo "export ORT_DYLIB_PATH=$ORT_DYLIB_PATH"
  echo "export LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  exit 0
fi
exec "$@"
