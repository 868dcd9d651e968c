#!/usr/bin/env bash
# libbridge: run every test. Installs what the tests need (idempotently) first:
# ONNX Runtime (scripts/install-ort.sh), libtorch for the training parity test
# (scripts/with-torch.sh → scripts/install-torch.sh), the C toolchain for the C ABI checks
# (scripts/test-c.sh, apt-get), GStreamer for the bridgerestore element (scripts/test-gst.sh,
# apt-get), the aarch64 cross toolchain and qemu-user (scripts/test-aarch64.sh,
# apt-get + rustup target). Usage: scripts/test.sh (from anywhere; CI calls it through .ci/run).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
golden=${BRIDGE_GOLDEN_DIR:-$root/tests/golden}
start=$SECONDS
stage() { echo "== [$((SECONDS - start)) s] $*"; }

# A clean CI clone gains nothing from incremental compilation, which only costs disk (CI shares
# one; a linker once died of SIGBUS on a full disk). The free space is printed for that reason.
if [[ -n "${CI:-}" ]]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi
stage "free disk space for target/: $(df -h --output=avail . 2>/dev/null | tail -1 | tr -d ' ')"

# Style and lints gate the run (rustfmt.toml; clippy at zero warnings). The GStreamer crate is
# linted by scripts/test-gst.sh's build, after it has installed GStreamer's headers.
stage "format (cargo fmt --check) and lints (cargo clippy -D warnings)"
cargo fmt --all --check
cargo clippy --quiet --locked --workspace --all-targets --exclude gst-plugin-bridge -- -D warnings

stage "ONNX Runtime (scripts/install-ort.sh) and the test photographs (scripts/fetch-data.sh)"
scripts/install-ort.sh
scripts/fetch-data.sh

stage "unit and end-to-end tests (cargo test --workspace; the C ABI and GStreamer crates separately below)"
BRIDGE_GOLDEN_DIR="$golden" cargo test --workspace --locked --exclude bridge-ffi --exclude gst-plugin-bridge

stage "golden replay (bridge replay)"
cargo run --quiet --locked -p bridge --bin bridge -- replay "$golden"/*.json

stage "training: lints with feature train, then libtorch vs reference vs ONNX Runtime parity after a few training steps"
# The workspace lint above builds bridge-export without libtorch; its training code is linted here.
scripts/with-torch.sh cargo clippy --quiet --locked -p bridge-export --features train --all-targets -- -D warnings
scripts/with-torch.sh cargo test --locked -p bridge-export --features train

stage "GPU acceptance script, CPU path (scripts/gpu-check.sh --cpu; reuses the training build)"
scripts/gpu-check.sh --cpu --out target/gpu-check-cpu.json

stage "C ABI (scripts/test-c.sh: header, examples, bad-input matrix, valgrind, make install, pkg-config, CMake)"
scripts/test-c.sh

stage "GStreamer element bridgerestore (scripts/test-gst.sh: apt-get GStreamer, harness tests, gst-launch pipelines)"
scripts/test-gst.sh

stage "aarch64: cross build, golden replay and restore under qemu-user (scripts/test-aarch64.sh)"
scripts/test-aarch64.sh "$golden"

stage "all tests passed"
