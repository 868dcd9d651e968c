#!/usr/bin/env bash
# CBM3D reference scores for denoising pairs folders (`bridge-export pairs --task denoise`):
# the Python `bm3d` package (Mäkinen et al.'s reference binaries, from PyPI) run on each degraded
# image with the folder's known sigma, PSNR over RGB in [0, 1] against the clean image, mean over
# images — the same score as `bridge eval`. A reference measurement only: no maintained BM3D crate
# exists for Rust, so `bridge eval` and the cards' tests do not compute it (their classical
# baseline is NLM, `sdk/src/baseline/nlm.rs`); the denoise card quotes these numbers.
#   scripts/cbm3d.sh /tmp/denoise-pairs /tmp/denoise-unseen
# Installs its own virtual environment in .deps/cbm3d-venv (idempotent; pinned versions).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.deps/cbm3d-venv"
if ! "$venv/bin/python" -c "import bm3d, png" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q bm3d==4.0.3 bm4d==4.2.5 numpy==2.4.6 scipy==1.17.1 PyWavelets==1.9.0 pypng==0.20220715.0
fi
exec "$venv/bin/python" - "$@" <<'PY'
import json, os, sys
import bm3d, numpy as np, png

def load(path):
    # pypng reads the pairs' 16-bit RGB PNGs as they are (Pillow would cut them to 8 bits).
    w, h, rows, info = png.Reader(filename=path).asDirect()
    a = np.vstack([np.asarray(r, dtype=np.float64) for r in rows]).reshape(h, w, info["planes"])
    return a / (2 ** info["bitdepth"] - 1)

for folder in sys.argv[1:]:
    deg = json.load(open(os.path.join(folder, "degradation.json")))["degradation"]
    if deg.get("kind") != "gaussian-noise":
        sys.exit(f"{folder}: CBM3D scores denoising pairs only (degradation {deg})")
    sigma = deg["sigma"] / 255.0
    scores = []
    for name in sorted(os.listdir(os.path.join(folder, "clean"))):
        clean = load(os.path.join(folder, "clean", name))
        noisy = load(os.path.join(folder, "degraded", name))
        out = np.clip(bm3d.bm3d_rgb(noisy, sigma), 0.0, 1.0)
        scores.append(10.0 * np.log10(1.0 / np.mean((out - clean) ** 2)))
        print(f"{name}: {scores[-1]:.2f} dB", flush=True)
    print(f"{folder}: CBM3D (sigma {deg['sigma']}) mean PSNR {np.mean(scores):.2f} dB over {len(scores)} images", flush=True)
PY
