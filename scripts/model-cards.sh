#!/usr/bin/env bash
# Evaluate the demo models for their cards: for each task, write the held-out pairs
# (`bridge-export pairs`: the 12 test photographs, 256×256 centre crops, degradation seed 2024)
# and run `bridge eval` over them (seed 0) at the package's default sampler for several NFEs
# (NFE 1 included), plus an alternative sampler at the package's NFE (DDBM: the generic implicit
# step with η = 1). The table also holds the input and the classical baseline that knows the
# degradation (`--baseline auto` reads the pairs' degradation.json: Wiener for deblur,
# back-projection for sr4, NLM for denoise and jpeg; `sdk/src/baseline/`).
# Writes models/<task>.eval.md (table) and models/<task>.png (plot).
#   scripts/model-cards.sh [TASK...]        (default: sr4 denoise deblur jpeg)
# Installs what it needs (ONNX Runtime, libtorch for bridge-export, the photographs).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
tasks=("$@"); [ ${#tasks[@]} -gt 0 ] || tasks=(sr4 denoise deblur jpeg)
target=${CARGO_TARGET_DIR:-$root/target}
# Release builds do not look for ONNX Runtime in the source tree: name the project's copy.
ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(scripts/install-ort.sh)}
export ORT_DYLIB_PATH
scripts/fetch-data.sh >/dev/null
scripts/with-torch.sh cargo build --quiet --release --locked -p bridge-export --features train --bin bridge-export
cargo build --quiet --release --locked -p bridge --bin bridge
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for task in "${tasks[@]}"; do
  model=models/$task.onnx
  # The alternative sampler shown beside the package's default (any sampler the family allows).
  # samplers: default,alternative; nfes: the default sampler's sweep; alt_nfe: the package's NFE.
  case "$task" in
    sr4) samplers=i2sb-ot-ode,i2sb nfes=1,2,5,10 alt_nfe=5 alt_args=() ;;
    denoise) samplers=rdbm,implicit nfes=1,2,5,10 alt_nfe=5 alt_args=() ;;
    deblur) samplers=dbim,implicit nfes=1,2,5 alt_nfe=2 alt_args=(--eta 1) ;;
    jpeg) samplers=rdbm,implicit nfes=1,2,5,10 alt_nfe=5 alt_args=() ;;
  esac
  scripts/with-torch.sh "$target/release/bridge-export" pairs --task "$task" --out "$tmp/$task"
  default=${samplers%%,*}; alt=${samplers#*,}
  # The input, the classical baseline and the package's default sampler across NFEs (table + plot) ...
  "$target/release/bridge" eval -m "$model" -p "$tmp/$task" --sampler "$default" --nfe "$nfes" \
    --baseline auto --seed 0 --markdown "$tmp/$task.md" --plot "models/$task.png" >/dev/null
  # ... and another sampler of the same family at the default NFE (its rows join the table).
  "$target/release/bridge" eval -m "$model" -p "$tmp/$task" --sampler "$alt" --nfe "$alt_nfe" "${alt_args[@]}" \
    --baseline none --seed 0 --markdown "$tmp/$task.alt.md" >/dev/null
  python3 - "$tmp/$task.md" "$tmp/$task.alt.md" "models/$task.eval.md" "$tmp/$task" "$task" <<'PY'
import sys
main, alt, out, tmpdir, task = sys.argv[1:]
lines = open(main).read().split("\n")
extra = [l for l in open(alt).read().split("\n") if l.startswith("| ") and not l.startswith("| input") and not l.startswith("| sampler")]
last = max(i for i, l in enumerate(lines) if l.startswith("| "))
lines[last + 1:last + 1] = extra
text = "\n".join(lines).replace(f"pairs `{tmpdir}`", f"pairs from `bridge-export pairs --task {task} --out PAIRS`")
open(out, "w").write(text)
print(text)
PY
done
