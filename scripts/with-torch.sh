#!/usr/bin/env bash
# Run a command with libtorch set up for tch 0.24 (installs it first, idempotently).
#   scripts/with-torch.sh cargo test -p bridge-export --features train
#   scripts/with-torch.sh cargo run -p bridge-export --features train -- train ...
# Build time: torch-sys reads LIBTORCH (headers in $LIBTORCH/include, libraries in $LIBTORCH/lib).
# Run time:   the dynamic loader finds libtorch_cpu.so & co. through LD_LIBRARY_PATH.
# LIBTORCH_USE_PYTORCH is unset on purpose: it would make torch-sys ask a Python interpreter instead.
# A libtorch already on LD_LIBRARY_PATH (e.g. a GPU machine's own PyTorch) keeps precedence only if
# BRIDGE_TORCH_LIB names it: that directory is put first.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
libtorch=$("$root/scripts/install-torch.sh")
export LIBTORCH="$libtorch"
unset LIBTORCH_USE_PYTORCH LIBTORCH_INCLUDE LIBTORCH_LIB
lib="$libtorch/lib"
if [ -n "${BRIDGE_TORCH_LIB:-}" ]; then lib="$BRIDGE_TORCH_LIB:$lib"; fi
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ "$#" -eq 0 ]; then
  echo "export LIBTORCH=$LIBTORCH"
  echo "export LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  exit 0
fi
exec "$@"
