#!/usr/bin/env bash
# The full-size crash test: 100,000 applicants streamed into a 6-partition topic of a Tansu
# broker while the real `worker` binary is killed with SIGKILL at 5 random (seeded) moments and
# restarted; prints inputs, kills, losses (must be 0), duplicates and time. Extra arguments go
# to the run, e.g. `scripts/crash-test.sh --kills 8 --seed 7` or `--all` for the broker outage
# and replica-kill scenarios at full size too. Logs of every process: target/tmp/reliability/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/setup.sh" --with-tansu
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$root/.onnxruntime/libonnxruntime.so}"
export PATH="$HOME/.cargo/bin:$PATH"

cargo bench --bench reliability -- --records 100000 --kills 5 --seed 1 "$@"
