# syntax=docker/dockerfile:1
# Usher: build with Rust on Debian, run on debian-slim as a non-root user.
#   docker build -t usher .
#   docker run -p 8080:8080 -p 9090:9090 -e JWT_SECRET=... -e STRIPE_WEBHOOK_SECRET=whsec_... -e REDIS_URL=redis://... -e REDIS_PASSWORD=... usher

# Built as the load benchmark measures it: the release profile in Cargo.toml (fat LTO, one
# codegen unit), profile-guided by pgo/usher.profdata (docs/benchmarks.md#profile-guided-build-2026-12-03).
FROM rust:1.95-slim-bookworm AS build
# cmake builds zlib-ng for Pingora; libssl-dev and pkg-config for its OpenSSL TLS.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev g++ make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies first, in their own layer: rebuilt only when Cargo.toml, Cargo.lock, the
# patched Pingora crate (patches/) or the profile (pgo/) change.
COPY Cargo.toml Cargo.lock ./
COPY patches ./patches
# The profile guides every crate, the dependencies too; the same Rust release trained it.
COPY pgo ./pgo
ENV RUSTFLAGS=-Cprofile-use=/src/pgo/usher.profdata
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && for bench in router config security signatures; do echo 'fn main() {}' > "benches/$bench.rs"; done \
 && cargo build --release --locked --bin usher \
 && rm -rf src target/release/.fingerprint/usher-* target/release/deps/usher-* target/release/deps/libusher-*

# The build names its git revision (usher_build_info, /health): pass it, since the image
# is built without .git (docker build --build-arg USHER_GIT_REVISION=$(git rev-parse --short=12 HEAD)).
ARG USHER_GIT_REVISION=unknown
ENV USHER_GIT_REVISION=$USHER_GIT_REVISION
COPY build.rs ./
COPY src ./src
COPY routes.yaml ./
COPY schemas ./schemas
RUN cargo build --release --locked --bin usher

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/usher /usr/local/bin/usher
# The shipped configuration; a Kubernetes ConfigMap mounted at /etc/usher replaces it.
COPY routes.yaml /etc/usher/routes.yaml
COPY schemas /etc/usher/schemas
# Usher writes nothing to disk (logs go to stdout and stderr): a read-only root filesystem works.
USER 10001:10001
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["usher", "probe", "--config", "/etc/usher/routes.yaml"]
ENTRYPOINT ["usher"]
CMD ["run", "--config", "/etc/usher/routes.yaml"]
