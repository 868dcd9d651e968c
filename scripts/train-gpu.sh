#!/usr/bin/env bash
# Train the four demo models at once on a GPU machine (one device session), each within a time
# budget, and bring the packages back. The same training runs on the CPU with the commands in
# each model card; this script only fits them onto a lent GPU.
#
#   scripts/train-gpu.sh --stage         here: build the release trainer, strip it, and write a
#                                        compact copy of the training photos (the trainer's own
#                                        1024-px shrink, JPEG q95) into .device-stage/train-gpu/
#                                        (git-ignored; ~30 MB with the binary)
#   scripts/train-gpu.sh --run [BUDGET]  the GPU machine (no cargo there): run the carried trainer,
#                                        four jobs in parallel, each fitting its step count into
#                                        BUDGET seconds (default 360); packages and logs to $OUT
#
# Device call (the device gets a copy of this checkout; carry the staged folder):
#   run(command="bash scripts/train-gpu.sh --run 360", carry=[".device-stage/train-gpu"], timeout_s=560)
# libtorch there is the machine's PyTorch 2.11 (CUDA): the binary dlopens libtorch_cuda.so
# (export/src/train/device.rs) and trains on cuda:0 when it loads.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
stage=.device-stage/train-gpu

# task|family|extra training arguments (the family of each card). Every job fine-tunes the shipped
# package (--init models/TASK.onnx: same family, task and U-Net) and spends half of its time draws
# on the NFE-1 grid, the shipped default (chosen on the validation photos); pick the default NFE of
# the result on the validation photos again (`bridge eval -p VAL --nfe 1,2,5`, see the cards).
# Deblurring keeps half of its inputs rounded to 8 bits (models/deblur.md, stage 3) and its Wiener
# pre-pass (--prepass, stage 4: the shipped package's network refines Wiener's output).
jobs=$(cat <<'EOF'
sr4|i2sb|--focus-nfe 1 --nfe 1 --init models/sr4.onnx
denoise|rdbm|--focus-nfe 1 --nfe 1 --init models/denoise.onnx
deblur|ddbm-vp|--focus-nfe 1 --nfe 1 --init models/deblur.onnx --input-8bit-p 0.5 --prepass
jpeg|rdbm|--focus-nfe 1 --nfe 1 --init models/jpeg.onnx
EOF
)
# Shared by all four (see the cards): the demo U-Net, batch 24 of 128² crops, colour augmentation.
common=(--unet demo --steps 200000 --batch 24 --crop 128 --lr 3e-4 --warmup 200 --ema 0.999
  --gray-p 0.1 --permute-channels --seed 0 --log-every 500 --ckpt-every 100000000 --quiet)

case "${1:-}" in
  --stage)
    target=${CARGO_TARGET_DIR:-$root/target}
    scripts/fetch-data.sh >/dev/null
    scripts/with-torch.sh cargo build --locked --quiet --release -p bridge-export --features train --bin bridge-export
    mkdir -p "$stage"
    strip -o "$stage/bridge-export" "$target/release/bridge-export"
    rm -rf "$stage/data"
    scripts/with-torch.sh "$target/release/bridge-export" shrink --split train --out "$stage/data" --max-side 1024 --quality 95
    du -sh "$stage" "$stage"/*
    ;;
  --run)
    budget=${2:-360}
    out=${OUT:-$root/target/train-gpu}
    mkdir -p "$out" /tmp/train-gpu
    torch_lib=$(python3 -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
    export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export BRIDGE_DATA_DIR="$root/$stage/data"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt" || true
    pids=()
    while IFS='|' read -r task family extra; do
      # shellcheck disable=SC2086
      "$stage/bridge-export" train --family "$family" --task "$task" $extra "${common[@]}" \
        --data-threads 3 --time-budget "$budget" \
        --out "$out/$task.onnx" --ckpt "/tmp/train-gpu/$task.ckpt.safetensors" \
        >"$out/$task.log" 2>&1 &
      pids+=($!)
    done <<<"$jobs"
    status=0
    for p in "${pids[@]}"; do wait "$p" || status=1; done
    tail -n 4 "$out"/*.log
    ls -la "$out"
    exit $status
    ;;
  *)
    sed -n '2,18p' "$0"
    exit 2
    ;;
esac
