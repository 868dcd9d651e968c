#!/usr/bin/env bash
# libbridge's main job on a fresh machine: restore a shipped sample photo with a shipped model.
# Installs ONNX Runtime (scripts/install-ort.sh, from the PyPI wheel) and builds the `bridge`
# command (release) first; both steps are idempotent.
#   scripts/demo.sh                                   # denoise docs/assets/chelsea-256-noisy.png
#   scripts/demo.sh MODEL INPUT OUTPUT [bridge restore options...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
model=${1:-models/denoise.onnx}
input=${2:-docs/assets/chelsea-256-noisy.png}
output=${3:-restored.png}
shift $(( $# < 3 ? $# : 3 ))

echo "== ONNX Runtime (scripts/install-ort.sh)"
# A release build does not look for ONNX Runtime in the source tree: name the project's copy.
ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(scripts/install-ort.sh)}
export ORT_DYLIB_PATH
echo "ORT_DYLIB_PATH=$ORT_DYLIB_PATH"
echo "== building the bridge command (cargo build --release -p bridge --bin bridge)"
cargo build --quiet --release --locked -p bridge --bin bridge
bin="${CARGO_TARGET_DIR:-$root/target}/release/bridge"
echo "== bridge restore -m $model -i $input -o $output $*"
"$bin" restore -m "$model" -i "$input" -o "$output" "$@"
