#!/usr/bin/env bash
# CBM3D reference scores for pairs folders (`bridge-export pairs`): the Python `bm3d` package
# (Mäkinen et al.'s reference binaries, from PyPI) run on each degraded image, PSNR over RGB in
# [0, 1] against the clean image, mean over images — the same score as `bridge eval`. A reference
# measurement only: no maintained BM3D crate exists for Rust, so `bridge eval` and the cards' tests
# do not compute it (their classical baseline is NLM, `sdk/src/baseline/nlm.rs`); the denoise and
# JPEG cards quote these numbers.
#   scripts/cbm3d.sh /tmp/denoise-test /tmp/denoise-unseen          (denoise: the folder's sigma)
#   scripts/cbm3d.sh --tune-on /tmp/jpeg-val /tmp/jpeg-test /tmp/jpeg-unseen
# JPEG pairs have no noise sigma: CBM3D as a deblocker needs one, so --tune-on picks it on a
# validation pairs folder (the best mean PSNR over a coarse grid, then a finer one around it) and
# scores the other folders with that sigma — the baseline at its best, tuned like our defaults.
# Installs its own virtual environment in .deps/cbm3d-venv (idempotent; pinned versions).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.deps/cbm3d-venv"
if ! "$venv/bin/python" -c "import bm3d, png" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q bm3d==4.0.3 bm4d==4.2.5 numpy==2.4.6 scipy==1.17.1 PyWavelets==1.9.0 pypng==0.20220715.0
fi
exec "$venv/bin/python" - "$@" <<'PY'
import functools, json, os, sys
import bm3d, numpy as np, png

def load(path):
    # pypng reads the pairs' 16-bit RGB PNGs as they are (Pillow would cut them to 8 bits).
    w, h, rows, info = png.Reader(filename=path).asDirect()
    a = np.vstack([np.asarray(r, dtype=np.float64) for r in rows]).reshape(h, w, info["planes"])
    return a / (2 ** info["bitdepth"] - 1)

def degradation(folder):
    path = os.path.join(folder, "degradation.json")
    try:
        with open(path) as f:
            return json.load(f)["degradation"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"{folder}: not a pairs folder from `bridge-export pairs` ({path}: {e})")

@functools.cache
def pairs(folder):
    """The folder's (name, clean, degraded) images, read once: tuning scores them at every sigma."""
    names = sorted(os.listdir(os.path.join(folder, "clean")))
    return [(n, load(os.path.join(folder, "clean", n)), load(os.path.join(folder, "degraded", n))) for n in names]

def score(folder, sigma, verbose):
    """Mean PSNR of CBM3D with `sigma` (8-bit levels) over the folder's pairs."""
    scores = []
    for name, clean, degraded in pairs(folder):
        out = np.clip(bm3d.bm3d_rgb(degraded, sigma / 255.0), 0.0, 1.0)
        scores.append(10.0 * np.log10(1.0 / np.mean((out - clean) ** 2)))
        if verbose:
            print(f"{name}: {scores[-1]:.2f} dB", flush=True)
    if not scores:
        sys.exit(f"{folder}: no pairs")
    return float(np.mean(scores)), len(scores)

def tune(folder):
    """The sigma with the best mean PSNR on `folder`: steps of 5 up from 5 while the score still
    rises (strong JPEG blocking wants a sigma far above the pixel error), then steps of 1 around
    the best."""
    tried = {}
    def at(s):
        if s not in tried:
            tried[s] = score(folder, s, False)[0]
            print(f"tuning on {folder}: sigma {s:g} -> {tried[s]:.2f} dB", flush=True)
        return tried[s]
    best = 5
    while at(best + 5) > at(best):
        best += 5
    return max(range(max(1, best - 4), best + 5), key=at)

args = sys.argv[1:]
tune_on = None
if args[:1] == ["--tune-on"]:
    if len(args) < 2:
        sys.exit("--tune-on needs a validation pairs folder")
    tune_on, args = args[1], args[2:]
if not args:
    sys.exit("usage: scripts/cbm3d.sh [--tune-on VAL_PAIRS] PAIRS...")
tune_deg = degradation(tune_on) if tune_on is not None else None
tuned = None
for folder in args:
    deg = degradation(folder)
    if deg.get("kind") == "gaussian-noise":
        sigma, how = deg["sigma"], "the folder's"
    elif deg.get("kind") == "jpeg":
        if tune_on is None:
            sys.exit(f"{folder}: JPEG pairs need --tune-on VAL_PAIRS to choose CBM3D's sigma")
        if tune_deg != deg:
            sys.exit(f"{tune_on} is not degraded like {folder} ({tune_deg} vs {deg})")
        if tuned is None:
            tuned = tune(tune_on)
        sigma, how = tuned, f"tuned on {tune_on}"
    else:
        sys.exit(f"{folder}: CBM3D scores denoising and JPEG pairs only (degradation {deg})")
    mean, n = score(folder, sigma, True)
    print(f"{folder}: CBM3D (sigma {sigma:g}, {how}) mean PSNR {mean:.2f} dB over {n} images", flush=True)
PY
