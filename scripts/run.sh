#!/usr/bin/env bash
# The main job on an embedded default, with all set-up: builds the service and runs it.
# Extra arguments go to the worker.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/setup.sh"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$root/.onnxruntime/libonnxruntime.so}"
cargo run --release --bin worker -- "$@"
