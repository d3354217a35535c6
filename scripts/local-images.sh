#!/usr/bin/env bash
# Builds, without any image registry, every image docker-compose.yml runs, from parts this
# machine can reach: Debian's packages, crates, the Go module proxy.
#
#   aila-local/debian:bookworm-slim   debootstrap --variant=minbase bookworm, trimmed and set up
#                                     as Debian's slim images are, `docker import`
#   aila-local/rust:<rustc>-bookworm  + gcc, libc6-dev, this machine's Rust toolchain and CAs
#   aila-local/mongo:7.0              FerretDB (tools/ferretdb) standing in for mongo:7.0
#   aila-local/jaeger:2.12.0          Jaeger v2 (tools/jaeger, v1.75.0 = v2.12.0) + its UI
#   aila-local/prometheus:2.42        Debian's prometheus package
#   aila-local/mailpit:v1.33.1        Mailpit (tools/mailpit)
#   aila-api:local                    the project's own Dockerfile, its two base images
#                                     given as build arguments (the two first above)
#
# deploy/local-images/compose.local.yml swaps docker-compose.yml's registry images for
# these and changes nothing else. The Dockerfiles of the stand-ins are in deploy/local-images.
#
# Usage: scripts/local-images.sh [--force]
#   --force   rebuild the Debian base image too (the others always go through docker build,
#             whose layer cache makes an unchanged image take a second or two).
# Env: AILA_IMAGE_PROFILE, the Cargo profile of aila-api:local (default release, as the
#   Dockerfile's; dev builds in a few minutes instead of ten from nothing).
# Needs: a running Docker engine with BuildKit (the buildx plugin; scripts/build-tools.sh
# compose builds one), debootstrap (root), Go for the tools. Prints each image's size.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
force=0
for arg in "$@"; do
	case "$arg" in
	--force) force=1 ;;
	*)
		echo "usage: $0 [--force]" >&2
		exit 2
		;;
	esac
done

say() { echo "local-images: $*"; }
die() {
	echo "local-images: $*" >&2
	exit 1
}

docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd, or run scripts/compose-chaos.sh, which starts one)"
docker buildx version >/dev/null 2>&1 ||
	die "docker has no buildx plugin (BuildKit is needed for the API Dockerfile's cache mounts): scripts/build-tools.sh compose builds one into .tools/docker/cli-plugins"

base=aila-local/debian:bookworm-slim
staging="$repo/.tools/tmp/images"
mkdir -p "$staging"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# build NAME TAG: docker build of deploy/local-images/NAME.Dockerfile over the staging
# folder .tools/tmp/images/NAME (filled by the caller), on the Debian base.
build() {
	local name="$1" tag="$2" start=$SECONDS
	if ! docker build --quiet --build-arg "BASE_IMAGE=$base" -t "$tag" \
		-f "deploy/local-images/$name.Dockerfile" "$staging/$name" >/dev/null; then
		die "building $tag FAILED (deploy/local-images/$name.Dockerfile); run it again without --quiet to see why"
	fi
	say "$tag $(size "$tag") in $((SECONDS - start))s"
}

size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

# A fresh folder for one image's build context.
stage() {
	rm -rf "${staging:?}/$1"
	mkdir -p "$staging/$1"
	echo "$staging/$1"
}

# Hard links where the file system allows, copies elsewhere.
put() { cp -al "$@" 2>/dev/null || cp -a "$@"; }

total_start=$SECONDS

# 1. The Debian base: debootstrap (minbase: apt, bash, coreutils), apt lists and package
# files removed, imported as an image.
if [[ "$force" -eq 1 ]] || ! image_exists "$base"; then
	command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install -y debootstrap"
	start=$SECONDS
	rootfs="$staging/debian-rootfs"
	rm -rf "$rootfs"
	mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
	if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$staging/debootstrap.log" 2>&1; then
		tail -20 "$staging/debootstrap.log" >&2
		die "debootstrap from $mirror FAILED (log: $staging/debootstrap.log)"
	fi
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
	# What Debian's own container images set (debuerreotype's slim variant): apt keeps no
	# package cache (without this, each image's `apt-get install` layer carried ~90 MB of
	# /var/cache/apt/*.bin), and dpkg installs no documentation, man pages or translations.
	cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT
	cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
DPKG
	find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
	rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
	tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - "$base" >/dev/null
	rm -rf "$rootfs"
	say "$base $(size "$base") in $((SECONDS - start))s (debootstrap from $mirror)"
else
	say "$base present (--force rebuilds it)"
fi

# 2. The tools the stand-ins carry (each skipped when up to date).
scripts/build-tools.sh ferretdb >/dev/null
scripts/build-tools.sh jaeger >/dev/null
scripts/build-tools.sh mailpit >/dev/null

# 3. The stand-ins.
dir="$(stage mongo)"
put .tools/bin/ferretdb .tools/bin/ferretdb-mongosh "$dir/"
mv "$dir/ferretdb-mongosh" "$dir/mongosh"
build mongo aila-local/mongo:7.0

dir="$(stage jaeger)"
put .tools/bin/jaeger "$dir/"
put .tools/jaeger-ui "$dir/jaeger-ui"
cp tools/jaeger/config.template.yaml "$dir/config.yaml"
build jaeger aila-local/jaeger:2.12.0

dir="$(stage prometheus)"
build prometheus aila-local/prometheus:2.42

dir="$(stage mailpit)"
put .tools/bin/mailpit "$dir/"
build mailpit aila-local/mailpit:v1.33.1

# 4. The Rust builder: this machine's toolchain (bin and lib of its sysroot: rustc, cargo,
# the standard library, rust-lld) and certificate authorities.
rust_version="$(rustc --version | awk '{split($2, v, "."); print v[1] "." v[2]}')"
rust_image="aila-local/rust:$rust_version-bookworm"
dir="$(stage rust)"
sysroot="$(rustc --print sysroot)"
mkdir -p "$dir/toolchain"
put "$sysroot/bin" "$sysroot/lib" "$dir/toolchain/"
cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$dir/ca-certificates.crt"
build rust "$rust_image"
rm -rf "${dir:?}/toolchain"

# 5. The API, by the project's Dockerfile, with the Cargo profile AILA_IMAGE_PROFILE
# (release, the Dockerfile's own default, unless said otherwise; the compose chaos run
# says dev).
profile="${AILA_IMAGE_PROFILE:-release}"
start=$SECONDS
if ! docker build --quiet \
	--build-arg "BUILDER_IMAGE=$rust_image" --build-arg "RUNTIME_IMAGE=$base" \
	--build-arg "CARGO_PROFILE=$profile" \
	-t aila-api:local . >/dev/null; then
	die "building aila-api:local FAILED; see: docker build --build-arg BUILDER_IMAGE=$rust_image --build-arg RUNTIME_IMAGE=$base --build-arg CARGO_PROFILE=$profile ."
fi
say "aila-api:local $(size aila-api:local) ($profile profile) in $((SECONDS - start))s"
say "done in $((SECONDS - total_start))s"
