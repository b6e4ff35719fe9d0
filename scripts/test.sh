#!/usr/bin/env bash
# The test suite, with all set-up: formatting, lints, unit and integration tests (against the
# in-process mock broker and a Tansu broker process on loopback), and the operations checks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/setup.sh" --with-tansu
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$root/.onnxruntime/libonnxruntime.so}"
export PATH="$HOME/.cargo/bin:$PATH"

cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
# Prometheus rules and their unit tests, dashboard queries, compose file and Dockerfile.
"$root/scripts/check-ops.sh"
