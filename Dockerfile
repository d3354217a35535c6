# The AÏLA API image: built with the Rust toolchain, run on a small Debian with a non-root
# user. Two binaries of this package go in: `aila-api` (the service, the same binary the
# tests run) and `aila-healthcheck` (GET /health on localhost; the image has no curl).
#
#   docker build -t aila-api .
#   docker run -p 8001:8001 -e MONGO_URL=mongodb://host.docker.internal:27017 aila-api
#
# The base images are build arguments, today's public images by default. Where no registry
# is reachable, scripts/local-images.sh builds stand-ins from Debian's packages and passes
#   --build-arg BUILDER_IMAGE=aila-local/rust:1.95-bookworm
#   --build-arg RUNTIME_IMAGE=aila-local/debian:bookworm-slim
# (a Rust toolchain with gcc and the C library headers, CARGO_HOME=/usr/local/cargo; a
# Debian with apt). Needs BuildKit (the cache mounts below), which every current docker
# has. No `# syntax=` line: it would pull the Dockerfile frontend from a registry, and the
# frontend built into BuildKit understands everything used here.

ARG BUILDER_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# The workspace's member crates (the tools): cargo reads every member's manifest, even
# when it builds only the service's binaries.
COPY tools ./tools
# Cargo.toml declares tests/cluster (harness = false) as a target: cargo wants its file.
COPY tests ./tests
# The Cargo profile: `release` (fat LTO, one codegen unit, stripped) for the image users
# run. The compose chaos run (scripts/compose-chaos.sh) passes `--build-arg
# CARGO_PROFILE=dev`: the same code, built in a few minutes instead of ten on a fresh
# 2-core machine, the binaries stripped here.
ARG CARGO_PROFILE=release
# The caches keep the registry and the compiled dependencies between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile "$CARGO_PROFILE" --locked --bin aila-api --bin aila-healthcheck \
 && out_dir="target/$([ "$CARGO_PROFILE" = dev ] && echo debug || echo "$CARGO_PROFILE")" \
 && mkdir -p /out \
 && cp "$out_dir/aila-api" "$out_dir/aila-healthcheck" /out/ \
 && strip /out/aila-api /out/aila-healthcheck

FROM ${RUNTIME_IMAGE} AS runtime
# CA certificates for mongodb+srv:// (Atlas) over TLS; nothing else.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 aila \
 && useradd --system --uid 10001 --gid aila --no-create-home --shell /usr/sbin/nologin aila
WORKDIR /app
COPY --from=builder /out/aila-api /out/aila-healthcheck /usr/local/bin/
# config/default.toml and config/{APP_ENV}.toml are read from the working folder.
COPY config ./config
USER 10001:10001
ENV HOST=0.0.0.0 \
    PORT=8001
EXPOSE 8001
# Liveness only: /health answers 200 from memory while the process lives, whatever the
# database does. (Readiness, /readiness, is for load balancers and Kubernetes.)
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/aila-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/aila-api"]
