# syntax=docker/dockerfile:1
# Multi-stage build of the credit-risk worker, trainer and tools.
#
# Stage 1 builds the release binaries with the same commands CI runs natively
# (scripts/setup.sh for system packages and the ONNX Runtime library, then cargo build).
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libssl-dev pkg-config zlib1g-dev make g++ python3 python3-pip \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN ./scripts/setup-onnxruntime.sh \
 && cargo build --release --locked --bins

# Stage 2: a slim runtime with the binaries, the ONNX Runtime library, the models and the
# default config; configured through environment variables (CREDIT_RISK__SECTION__KEY).
FROM debian:bookworm-slim AS runtime
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates libssl3 zlib1g curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app --shell /usr/sbin/nologin scorer
WORKDIR /app
COPY --from=build /src/target/release/worker /src/target/release/trainer /usr/local/bin/
COPY --from=build /src/.onnxruntime/libonnxruntime.so.1.31.1 /usr/local/lib/libonnxruntime.so.1.31.1
COPY models ./models
COPY config ./config
COPY data ./data
ENV ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so.1.31.1 \
    CREDIT_RISK__MODEL__DIR=/app/models \
    CREDIT_RISK__METRICS__ADDRESS=0.0.0.0:9464 \
    CREDIT_RISK__LOGGING__FORMAT=json
USER scorer
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:9464/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/worker"]
