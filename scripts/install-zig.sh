#!/usr/bin/env bash
# Install zig (from the PyPI `ziglang` wheel) and cargo-zigbuild (from crates.io, `cargo install`)
# into project-local folders (idempotent) and print the folder to put in front of PATH; there
# `zig` and `cargo-zigbuild` are found. Used by `make GLIBC=...` (a build against an older glibc,
# e.g. JetPack 5's 2.31: docs/jetson.md).
#   PATH="$(scripts/install-zig.sh):$PATH" cargo zigbuild --target aarch64-unknown-linux-gnu.2.31 ...
# ZIG_VERSION and ZIGBUILD_VERSION override the pinned versions.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
zig_ver=${ZIG_VERSION:-0.17.0}
zb_ver=${ZIGBUILD_VERSION:-0.24.0}
dest="$root/.deps/zig-$zig_ver"
bin="$dest/bin"
if [ ! -x "$dest/ziglang/zig" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  a=$(uname -m)
  python3 -m pip download -q --no-deps --only-binary=:all: --platform "manylinux_2_12_$a" --platform "manylinux2010_$a" \
    --platform "manylinux_2_17_$a" --platform "manylinux2014_$a" -d "$tmp" "ziglang==$zig_ver" >&2
  rm -rf "$dest.part"
  mkdir -p "$dest.part"
  # The wheel's ziglang/ folder is zig's release tree (the binary and its lib/ of libc headers
  # and sources, which it needs next to it).
  python3 - "$tmp"/ziglang-*.whl "$dest.part" <<'PY'
import sys, zipfile, os
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if info.filename.startswith("ziglang/") and not info.is_dir():
            path = z.extract(info, dest)
            if info.filename == "ziglang/zig":
                os.chmod(path, 0o755)
PY
  rm -rf "$dest"
  mv "$dest.part" "$dest"
fi
mkdir -p "$bin"
ln -sf ../ziglang/zig "$bin/zig"
zb="$root/.deps/cargo-zigbuild"
if ! "$zb/bin/cargo-zigbuild" --version 2>/dev/null | grep -q " $zb_ver\$"; then
  cargo install --quiet --locked --root "$zb" cargo-zigbuild --version "$zb_ver" >&2
fi
ln -sf ../../cargo-zigbuild/bin/cargo-zigbuild "$bin/cargo-zigbuild"
"$bin/zig" version >/dev/null || { echo "install-zig: $bin/zig does not run" >&2; exit 1; }
echo "$bin"
