#!/usr/bin/env bash
# Fuzzes the worker's record decoder with cargo-fuzz (libFuzzer) for a fixed time, under both
# shipped schemas.
#
#   ./scripts/fuzz.sh [SECONDS]      default 120
#
# Needs the nightly toolchain (installed with rustup when missing) and cargo-fuzz (installed
# from crates.io when missing). Seeds: a German Credit record, retail-loan records, and a few
# broken ones; the fuzzer's findings, if any, land in fuzz/artifacts/decode_record/ and fail the run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-120}"
export PATH="$HOME/.cargo/bin:$PATH"

"$root/scripts/setup.sh"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

corpus="$root/fuzz/corpus/decode_record"
mkdir -p "$corpus"
if [ -z "$(ls -A "$corpus")" ]; then
  # Seeds: byte 0 = key length, then the key, then the payload (see the fuzz target).
  python3 - "$root/data/retail_loan_book.csv" "$corpus" <<'PY'
import csv, json, os, sys
book, corpus = sys.argv[1], sys.argv[2]
example = {"checking_account": "below_0_dm", "duration_months": 6,
  "credit_history": "critical_account", "purpose": "radio_television",
  "credit_amount_dm": 1169, "savings": "unknown_or_none",
  "employment_since": "at_least_7_years", "installment_rate_percent": 4,
  "personal_status_sex": "male_divorced_separated", "other_debtors": "none",
  "residence_since": 4, "property": "real_estate", "age_years": 67,
  "other_installment_plans": "none", "housing": "own", "existing_credits": 2,
  "job": "skilled", "dependents": 1, "telephone": "registered", "foreign_worker": "yes"}
seeds = [json.dumps(example).encode(), b"{}", b"null", b"[1,2]", b'{"age_years": 900}',
         json.dumps(dict(example, purpose="spaceship")).encode(),
         json.dumps(dict(example, age_years="NaN")).encode()]
# The retail-loan schema's records: numbers, booleans, optional fields left empty or given.
kinds = {"annual_income": float, "debt_to_income": float, "employment_years": int,
         "delinquencies_2y": int, "revolving_utilisation": float, "open_accounts": int,
         "loan_amount": float, "term_months": int, "age_years": int}
with open(book) as rows:
    for row in list(csv.DictReader(rows))[:20]:
        record = {}
        for name, text in row.items():
            if name in ("application_id", "defaulted", "true_pd") or text == "":
                continue
            record[name] = (text == "true") if name == "verified_income" else kinds.get(name, str)(text)
        seeds.append(json.dumps(record).encode())
for i, payload in enumerate(seeds):
    key = f"app-{i}".encode()
    with open(os.path.join(corpus, f"seed-{i}"), "wb") as out:
        out.write(bytes([len(key)]) + key + payload)
PY
fi

cd "$root/fuzz"
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$root/.onnxruntime/libonnxruntime.so}" \
  cargo +nightly fuzz run decode_record "$corpus" -- -max_total_time="$seconds" -max_len=20000
echo "fuzzing ran ${seconds} s without a finding"
