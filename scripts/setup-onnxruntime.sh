#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library that `ort` loads at run time (feature `load-dynamic`).
#
# Why: ort's own binary download cannot reach its CDN here, but PyPI's onnxruntime wheel carries
# the very same libonnxruntime.so. We download the wheel (no install) and unzip the one file into
# .onnxruntime/ (git-ignored). Idempotent: does nothing when the library is already there.
set -euo pipefail

ORT_VERSION="${ORT_VERSION:-1.31.1}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.onnxruntime"
lib="$dest/libonnxruntime.so.$ORT_VERSION"

if [ -f "$lib" ]; then
  echo "onnxruntime $ORT_VERSION already at $lib"
  exit 0
fi

mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "onnxruntime==$ORT_VERSION"
wheel="$(ls "$tmp"/onnxruntime-*.whl | head -n 1)"
python3 - "$wheel" "$dest" "$ORT_VERSION" <<'PY'
import sys, zipfile, os
wheel, dest, version = sys.argv[1:4]
name = f"onnxruntime/capi/libonnxruntime.so.{version}"
with zipfile.ZipFile(wheel) as z:
    data = z.read(name)
out = os.path.join(dest, f"libonnxruntime.so.{version}")
with open(out + ".part", "wb") as f:
    f.write(data)
os.replace(out + ".part", out)
PY
ln -sf "libonnxruntime.so.$ORT_VERSION" "$dest/libonnxruntime.so"
echo "onnxruntime $ORT_VERSION installed at $lib"
