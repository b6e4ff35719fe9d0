#!/usr/bin/env bash
# One-time set-up of what the build and the tests need beyond cargo itself. Idempotent: every
# step checks first and does nothing when its piece is already there.
#
#   - Debian packages for librdkafka's build (OpenSSL headers for TLS/SASL, pkg-config, zlib).
#   - The ONNX Runtime shared library (scripts/setup-onnxruntime.sh).
#   - Tansu, a Kafka-protocol broker, for the end-to-end tests, and moto's S3 server (Tansu's
#     persistent storage in the broker-outage test) (only with --with-tansu).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

with_tansu=false
for arg in "$@"; do
  case "$arg" in
    --with-tansu) with_tansu=true ;;
    *) echo "usage: $0 [--with-tansu]" >&2; exit 2 ;;
  esac
done

missing=()
for package in libssl-dev pkg-config zlib1g-dev make g++; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

"$root/scripts/setup-onnxruntime.sh"

if $with_tansu; then
  if command -v tansu >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/tansu" ]; then
    echo "tansu already installed"
  else
    echo "==> installing tansu (first build takes 15-20 minutes)"
    cargo install tansu --version 0.6.0 --locked --features dynostore
  fi
  if command -v moto_server >/dev/null 2>&1; then
    echo "moto_server already installed"
  else
    echo "==> installing moto's S3 server (Tansu's storage in the broker-outage test)"
    python3 -m pip install --quiet 'moto[server]'
  fi
fi
