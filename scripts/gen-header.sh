#!/usr/bin/env bash
# Regenerate include/bridge.h from ffi/src with cbindgen (ffi/cbindgen.toml). The test
# `header_is_current` (ffi/tests/header.rs) fails when the committed header is stale.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
BRIDGE_UPDATE_HEADER=1 cargo test --quiet --locked -p bridge-ffi --test header -- --nocapture
