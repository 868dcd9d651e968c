#!/usr/bin/env bash
# Copy ONNX Runtime next to an installed libbridge (called by `make install`).
#   scripts/install-ort-lib.sh ARCH DEST [LIB]
# ARCH: the machine libbridge was built for (x86_64, aarch64, ...); DEST: the install's lib folder;
# LIB: the libonnxruntime file to copy (explicit ORT_LIB). Without LIB: this machine's build gets
# scripts/install-ort.sh's library; a cross build gets what `scripts/install-ort.sh TARGET` staged
# in .deps/onnxruntime-ARCH/, if anything (nothing is downloaded for a cross install: on a Jetson
# the system's GPU-enabled ONNX Runtime is usually the one to use, see docs/jetson.md).
# Every library is checked for ARCH first (ELF e_machine): a build host's x86_64 library in an
# aarch64 tree would only fail at run time, on the device. An explicit LIB that does not match is
# an error; a default one is skipped with a note. The CUDA / TensorRT provider libraries next to
# the ONNX Runtime library are copied too when they are there (onnxruntime-gpu and JetPack builds).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=$1 dest=$2 lib=${3:-}
explicit=1
if [ -z "$lib" ]; then
  explicit=0
  if [ "$arch" = "$(uname -m)" ]; then
    lib=$("$root/scripts/install-ort.sh")
  elif [ -e "$root/.deps/onnxruntime-$arch/libonnxruntime.so" ]; then
    lib="$root/.deps/onnxruntime-$arch/libonnxruntime.so"
  else
    echo "not installing ONNX Runtime: none staged for $arch (scripts/install-ort.sh <target> stages"
    echo "  PyPI's CPU build; ORT_LIB=<file> installs another; libbridge otherwise finds the system's)"
    exit 0
  fi
fi

# ELF e_machine of a file (decimal), or empty when it is not an ELF file.
machine() {
  [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || return 0
  od -An -j18 -N2 -tu2 "$1" | tr -d ' \n'
}
case "$arch" in
  x86_64) want=62 ;; aarch64) want=183 ;; riscv64) want=243 ;; arm*) want=40 ;; i?86) want=3 ;;
  *) echo "install-ort-lib: unknown architecture $arch" >&2; exit 1 ;;
esac

real=$(readlink -f "$lib")
[ -f "$real" ] || { echo "install-ort-lib: $lib: no such file" >&2; exit 1; }
got=$(machine "$real")
if [ "$got" != "$want" ]; then
  msg="$real is not an $arch library (ELF machine ${got:-none}, want $want)"
  if [ "$explicit" = 1 ]; then echo "install-ort-lib: $msg" >&2; exit 1; fi
  echo "not installing ONNX Runtime: $msg"
  exit 0
fi
dir=$(dirname "$lib") name=$(basename "$real")
echo "installing ONNX Runtime $real"
install -d "$dest"
install -m 755 "$real" "$dest/$name"
[ "$name" = libonnxruntime.so ] || ln -sfn "$name" "$dest/libonnxruntime.so"
# ONNX Runtime's own SONAME link, for loaders that ask for libonnxruntime.so.1.
case "$name" in libonnxruntime.so.1.*) ln -sfn "$name" "$dest/libonnxruntime.so.1" ;; esac
for p in shared cuda tensorrt; do
  f="$dir/libonnxruntime_providers_$p.so"
  [ -f "$f" ] || continue
  if [ "$(machine "$(readlink -f "$f")")" != "$want" ]; then echo "skipping $f: not an $arch library"; continue; fi
  echo "installing $(basename "$f")"
  install -m 755 "$(readlink -f "$f")" "$dest/libonnxruntime_providers_$p.so"
done
