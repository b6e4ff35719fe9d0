#!/usr/bin/env bash
# Decode + preprocess ((b) of the worker bench, one thread) of this checkout against another
# commit, side by side: the two bench binaries run alternately, PAIRS times, 1,000,000 records
# each, and the median ratio is printed (this machine's speed drifts between runs; pairs taken
# back to back are compared under the same conditions).
#
#   scripts/compare-decode.sh REV [PAIRS]      e.g. scripts/compare-decode.sh 9316da8 9
#
# The other commit is checked out into a temporary worktree and built into target/compare-REV
# (a first build takes minutes; COMPARE_TARGET=DIR names another build directory to reuse). Needs ORT_DYLIB_PATH or .onnxruntime/ (scripts/setup.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rev="${1:?usage: compare-decode.sh REV [PAIRS]}"
pairs="${2:-9}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$root/.onnxruntime/libonnxruntime.so}"

bench_binary() { # DIR TARGET: builds the worker bench in DIR, prints its executable
  (cd "$1" && CARGO_TARGET_DIR="$2" cargo bench --bench worker --no-run --message-format=json 2>/dev/null) |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "worker" and "bench" in m["target"]["kind"] and m.get("executable"):
        print(m["executable"])'
}

other="$(mktemp -d)"
trap 'git -C "$root" worktree remove --force "$other" >/dev/null 2>&1 || true' EXIT
git -C "$root" worktree add --detach --quiet "$other" "$rev"
old="$(bench_binary "$other" "${COMPARE_TARGET:-$root/target/compare-$rev}")"
new="$(bench_binary "$root" "$root/target")"
rate() { (cd "$1" && "$2" --child decode --records 1000000 2>/dev/null) |
  sed -n 's/.*"records_per_s":\([0-9.]*\).*/\1/p'; }
for _ in $(seq 1 "$pairs"); do
  echo "$(rate "$other" "$old") $(rate "$root" "$new")"
done | python3 -c "
import statistics, sys
pairs = [tuple(map(float, line.split())) for line in sys.stdin if line.strip()]
for then, now in pairs:
    print(f'$rev {then/1e6:.3f}M  this checkout {now/1e6:.3f}M records/s  ratio {now/then:.3f}')
ratios = [now / then for then, now in pairs]
print(f'median: $rev {statistics.median(p[0] for p in pairs)/1e6:.3f}M, this checkout '
      f'{statistics.median(p[1] for p in pairs)/1e6:.3f}M records/s, ratio {statistics.median(ratios):.3f} '
      f'(range {min(ratios):.3f}-{max(ratios):.3f}, {len(pairs)} pairs)')
"
