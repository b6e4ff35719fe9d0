# syntax=docker/dockerfile:1
# Multi-stage build of the credit-risk binaries (worker, trainer, backfill).
#
#   docker build -t credit-risk .          (or `docker compose up --build`)
#   docker run --rm -e CREDIT_RISK__KAFKA__BROKERS=broker:9092 -p 9464:9464 credit-risk
#
# Without CREDIT_RISK__KAFKA__BROKERS the worker runs its embedded demonstration and exits.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---- Stage 1: build, with the same commands CI runs natively --------------------------------
# scripts/setup.sh (Debian packages for librdkafka's build, then the ONNX Runtime library from
# PyPI's wheel into .onnxruntime/), then `cargo build --release`.
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# setup.sh installs what is missing; installing it here keeps the layer cached. python3-pip is
# for setup-onnxruntime.sh (`pip download` of the onnxruntime wheel; nothing is pip-installed).
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libssl-dev pkg-config zlib1g-dev make g++ python3 python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Only what the build reads (.dockerignore keeps out target/ and a host's .onnxruntime/).
# config/default.toml is compiled into the binary; cargo reads every target the manifest
# declares, the benches too, even for `cargo build`. scripts/check-ops.sh builds from these alone.
COPY scripts ./scripts
RUN ./scripts/setup.sh
COPY Cargo.toml Cargo.lock ./
COPY config ./config
COPY crates ./crates
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
 && mkdir -p /out/bin \
 && find target/release -maxdepth 1 -type f -executable -exec cp {} /out/bin/ \; \
 && test -x /out/bin/worker \
 && cp -L .onnxruntime/libonnxruntime.so /out/

# ---- Stage 2: slim runtime ----------------------------------------------------------------------
# The binaries, the ONNX Runtime library, the model, the schemas and data sets (embedded mode,
# the load generator, the trainer) and the default config; configured only through environment variables
# (CREDIT_RISK__SECTION__KEY, see config/default.toml).
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# libssl3/zlib1g: librdkafka (TLS, compression); libstdc++6: ONNX Runtime; curl: HEALTHCHECK.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates libssl3 zlib1g libstdc++6 curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 scorer \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app \
      --shell /usr/sbin/nologin scorer
WORKDIR /app
# Every binary of the crate (worker, trainer, and any added later).
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/libonnxruntime.so /usr/local/lib/onnxruntime/libonnxruntime.so
COPY models ./models
COPY schemas ./schemas
COPY config ./config
COPY data ./data
ENV ORT_DYLIB_PATH=/usr/local/lib/onnxruntime/libonnxruntime.so \
    CREDIT_RISK__MODEL__DIR=/app/models \
    CREDIT_RISK__METRICS__ADDRESS=0.0.0.0:9464 \
    CREDIT_RISK__LOGGING__FORMAT=json
USER 10001:10001
EXPOSE 9464
# Liveness on the port of CREDIT_RISK__METRICS__ADDRESS (so overriding it does not break the
# check). /readyz is for orchestrators that route traffic; a worker without partitions is alive.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD port="${CREDIT_RISK__METRICS__ADDRESS##*:}"; \
      curl -fsS -o /dev/null "http://127.0.0.1:${port:-9464}/healthz" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/worker"]
