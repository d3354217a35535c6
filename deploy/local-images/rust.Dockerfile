# Stand-in for the public `rust:<version>-bookworm` image (the API Dockerfile's builder):
# Debian with the C toolchain cargo needs to link, and the Rust toolchain of the machine
# that builds it (scripts/local-images.sh copies `rustc --print sysroot` into the context as
# toolchain/), and that machine's certificate authorities (ca-certificates.crt: cargo fetches
# crates over TLS, and a network may inspect TLS with its own authority, as this one does).
# Same layout as the public image: CARGO_HOME=/usr/local/cargo on PATH.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY toolchain /usr/local/rust
ENV CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /usr/local/cargo/bin && rustc --version && cargo --version
