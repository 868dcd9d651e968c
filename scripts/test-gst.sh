#!/usr/bin/env bash
# The GStreamer element `bridgerestore` (crate gst-plugin-bridge, gst/, libgstbridge.so):
#   1. GStreamer's development files and tools (apt-get when missing);
#   2. the crate's tests: caps arithmetic, frame layouts, and the harness tests that compare the
#      element's output with the SDK's for the same frames (NV12, padded RGB, SR, alpha);
#   3. gst-launch-1.0 pipelines with the built plugin: NV12 and RGB through the shipped denoiser
#      (every buffer must come out, with the right size), a ×4 SR package scaling the caps, and
#      a bad model path and odd-sized NV12 ending in an error exit.
# Usage: scripts/test-gst.sh. ONNX Runtime comes from scripts/install-ort.sh (ORT_DYLIB_PATH,
# which a release build of the plugin needs; this debug build would also find .deps/).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$SECONDS
stage() { echo "== [gst $((SECONDS - start)) s] $*"; }

stage "GStreamer development files and tools (apt-get when missing)"
need=()
pkg-config --exists gstreamer-1.0 gstreamer-check-1.0 2>/dev/null || need+=(libgstreamer1.0-dev)
pkg-config --exists gstreamer-video-1.0 2>/dev/null || need+=(libgstreamer-plugins-base1.0-dev)
command -v gst-launch-1.0 >/dev/null || need+=(gstreamer1.0-tools)
# videotestsrc is in plugins-base; checked after the tools exist.
if command -v gst-inspect-1.0 >/dev/null && ! gst-inspect-1.0 videotestsrc >/dev/null 2>&1; then
  need+=(gstreamer1.0-plugins-base)
elif ! command -v gst-inspect-1.0 >/dev/null; then
  need+=(gstreamer1.0-plugins-base)
fi
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "GStreamer $(pkg-config --modversion gstreamer-1.0)"
export ORT_DYLIB_PATH
ORT_DYLIB_PATH=$(scripts/install-ort.sh)

stage "crate tests (cargo test -p gst-plugin-bridge)"
cargo test --locked -p gst-plugin-bridge

stage "lints (cargo clippy -p gst-plugin-bridge -D warnings; scripts/test.sh lints the rest)"
cargo clippy --quiet --locked -p gst-plugin-bridge --all-targets -- -D warnings

stage "plugin build (libgstbridge.so) and gst-inspect-1.0"
cargo build --locked --quiet -p gst-plugin-bridge
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export GST_PLUGIN_PATH=$root/target/debug GST_REGISTRY=$tmp/registry.bin
gst-inspect-1.0 bridgerestore >"$tmp/inspect.txt"
grep -q "libgstbridge.so" "$tmp/inspect.txt" || { echo "FAIL: bridgerestore not found in target/debug/libgstbridge.so"; exit 1; }

# Runs a pipeline with -v and fakesink silent=false (one "chain" line per buffer); the output
# goes to $tmp/out.txt. gst-launch's own timeout guards against a hung pipeline.
launch() { timeout 300 gst-launch-1.0 -v "$@" >"$tmp/out.txt" 2>&1; }
buffers() { grep -c "fakesink0:sink) ($1 bytes" "$tmp/out.txt" || true; }
denoise=models/denoise.onnx
expect_buffers() { # NAME COUNT BYTES
  local n; n=$(buffers "$3")
  [ "$n" = "$2" ] || { cat "$tmp/out.txt" | tail -20; echo "FAIL: $1: $n of $2 buffers of $3 bytes reached the sink"; exit 1; }
  echo "ok: $1: $2 buffers of $3 bytes"
}

stage "NV12 64x64, 30 buffers, shipped denoiser, NFE 1"
launch videotestsrc num-buffers=30 ! video/x-raw,format=NV12,width=64,height=64 \
  ! bridgerestore model=$denoise nfe=1 ! fakesink silent=false
expect_buffers "NV12 64x64" 30 6144

stage "RGB 64x64, 5 buffers"
launch videotestsrc num-buffers=5 pattern=ball ! video/x-raw,format=RGB,width=64,height=64 \
  ! bridgerestore model=$denoise nfe=1 ! fakesink silent=false
expect_buffers "RGB 64x64" 5 12288

stage "x4 super-resolution: NV12 16x16 in, 64x64 out"
launch videotestsrc num-buffers=5 ! video/x-raw,format=NV12,width=16,height=16 \
  ! bridgerestore model=models/sr4.onnx nfe=1 ! fakesink silent=false
expect_buffers "SR x4 NV12 16x16 -> 64x64" 5 6144
grep -q "bridgerestore0.GstPad:src: caps = video/x-raw, format=(string)NV12, width=(int)64, height=(int)64" "$tmp/out.txt" \
  || { echo "FAIL: the source pad's caps are not 64x64 NV12"; exit 1; }
echo "ok: source caps 64x64"

stage "errors: a bad model path and odd-sized NV12 end in an error exit"
if launch videotestsrc num-buffers=5 ! video/x-raw,format=NV12,width=64,height=64 \
  ! bridgerestore model=/nonexistent/model.onnx ! fakesink; then
  echo "FAIL: a missing model did not fail the pipeline"; exit 1
fi
grep -q "cannot load model package /nonexistent/model.onnx" "$tmp/out.txt" \
  || { cat "$tmp/out.txt"; echo "FAIL: no element error naming the model"; exit 1; }
echo "ok: bad model path: $(grep -m1 "cannot load model package" "$tmp/out.txt")"
if launch videotestsrc num-buffers=5 ! video/x-raw,format=NV12,width=63,height=64 \
  ! bridgerestore model=$denoise ! fakesink; then
  echo "FAIL: odd-sized NV12 was accepted"; exit 1
fi
grep -q "can't handle caps" "$tmp/out.txt" || { cat "$tmp/out.txt"; echo "FAIL: odd NV12 not refused at linking"; exit 1; }
echo "ok: odd-sized NV12 refused: $(grep -m1 "can't handle caps" "$tmp/out.txt")"

stage "GStreamer element tests passed"
