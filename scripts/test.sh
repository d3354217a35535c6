#!/usr/bin/env bash
# The whole test suite, on a fresh machine: builds what is missing (FerretDB, Jaeger and
# its web UI, Toxiproxy, Mailpit), installs the Python packages the compatibility tests use (bcrypt,
# PyJWT) and the Debian packages the observability tests drive (prometheus, chromium), then runs
# every Rust test against real server processes.
#
#   scripts/test.sh            # everything, tests/cluster on a real one-node Kubernetes
#                              # included where a kubelet can run (Linux, root: builds
#                              # tools/kubernetes, installs containerd & co; ~3 minutes
#                              # once built, 10-15 minutes to build them)
#   AILA_CLUSTER_TESTS=0 scripts/test.sh   # everything but the cluster tests
#   AILA_COMPOSE_CHAOS=0 scripts/test.sh   # everything but the compose chaos run (last, where
#                              # root on Linux: scripts/compose-chaos.sh, a Docker engine
#                              # and images built here; ~5 minutes the first time, 3.6 GB
#                              # in /var/lib/docker; it runs after the Go caches are freed,
#                              # not beside the other builds, to keep the disk peak down)
#   scripts/test.sh -- NAME    # extra arguments go to `cargo test`
#
# MONGOD_BIN=/path/to/mongod makes the tests use a real mongod instead of FerretDB.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# Disk: from nothing, a run takes about 18 GB at its peak (measured: see README, *Two
# commands*). Say so at once when less is free, instead of failing later in a linker.
need_gb=18
free_gb="$(df -P -BG . | awk 'NR == 2 { sub("G", "", $4); print $4 }')"
if [[ "$free_gb" =~ ^[0-9]+$ ]] && ((free_gb < need_gb)); then
	echo "test: WARNING: ${free_gb} GB free on the checkout's file system; a run from nothing needs about ${need_gb} GB" \
		"(less with target/, .tools/ and the Go caches already filled). Free some space, or point" \
		"CARGO_TARGET_DIR, GOCACHE and GOMODCACHE at a larger disk." >&2
fi

# The Go builds (FerretDB, Jaeger, Toxiproxy, Mailpit) run while Rust compiles the tests: on a fresh machine
# the two overlap instead of adding up.
builds=()
cleanup() {
	for pid in "${builds[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
if [[ -z "${MONGOD_BIN:-}" ]]; then
	scripts/build-tools.sh ferretdb &
	builds+=($!)
fi
scripts/build-tools.sh jaeger &
builds+=($!)
# The gray-fault tests (aila-testkit's Toxiproxy client, aila-chaos --test gray).
scripts/build-tools.sh toxiproxy &
builds+=($!)
# The mail tests (tests/api/mail.rs): a real SMTP server with an HTTP API.
scripts/build-tools.sh mailpit &
builds+=($!)
# The cluster tests (tests/cluster), where a kubelet can run (Linux, root) unless
# AILA_CLUSTER_TESTS=0: their Debian packages now (apt-get), their Go build alongside the
# others. Elsewhere the test target says why it skipped.
if [[ "${AILA_CLUSTER_TESTS:-1}" != 0 && "$(uname -s)" == Linux && "$(id -u)" -eq 0 ]]; then
	scripts/cluster.sh packages
	scripts/build-tools.sh kubernetes &
	builds+=($!)
fi

# The compose chaos run (scripts/compose-chaos.sh, after the Rust tests), where it can run
# (Linux, root) unless AILA_COMPOSE_CHAOS=0: the Docker CLI plugins it needs, built now
# alongside the other Go builds when the CLI lacks them.
compose_chaos=0
if [[ "${AILA_COMPOSE_CHAOS:-1}" != 0 && "$(uname -s)" == Linux && "$(id -u)" -eq 0 ]]; then
	compose_chaos=1
	if ! docker compose version >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1; then
		scripts/build-tools.sh compose &
		builds+=($!)
	fi
fi

if ! python3 -c 'import bcrypt, jwt' 2>/dev/null; then
	echo "test: installing bcrypt and PyJWT for the compatibility tests"
	python3 -m pip install --quiet --disable-pip-version-check bcrypt pyjwt
fi

# tests/observability: exemplars through a real Prometheus, the Jaeger UI in headless Chromium.
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
	if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		echo "test: installing ${missing[*]} (Debian packages) for the observability tests"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	else
		echo "test: ${missing[*]} missing; install them (apt-get install ${missing[*]}) and run again" >&2
		exit 1
	fi
fi

[[ "${1:-}" == "--" ]] && shift
# The whole workspace: the service's suites, the tools' own tests (the chaos run needs the
# service binary, built in the same invocation). Compile first (while Go builds), then run
# once the servers are built.
cargo test --workspace --all-targets --no-run
for pid in "${builds[@]}"; do
	wait "$pid" || { echo "test: a server build failed (see above)" >&2; exit 1; }
done
builds=()
# AILA_TRIM_GO_CACHES=1 (set by .ci/run): once the servers are built, the Go build and module
# caches (about 10 GB after a build from nothing, mostly Kubernetes) are only needed to
# rebuild them; free that space before the tests (the cluster's images need some).
if [[ "${AILA_TRIM_GO_CACHES:-0}" == 1 ]]; then
	go_bin="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
	echo "test: freeing the Go caches ($(du -sh "$("$go_bin" env GOCACHE)" "$("$go_bin" env GOMODCACHE)" 2>/dev/null | cut -f1 | paste -sd+))"
	"$go_bin" clean -cache -modcache
fi
# The tests' temporary files (theirs and those of the servers they start) go to a folder of
# their own, which must be empty at the end: anything left there is a test, or a server it
# started, that does not clean up after itself (a killed Mailpit once left its database in
# /tmp at every start).
test_tmp="$repo/target/test-tmp"
rm -rf "$test_tmp"
mkdir -p "$test_tmp"
TMPDIR="$test_tmp" cargo test --workspace --all-targets "$@"
left="$(find "$test_tmp" -mindepth 1 -maxdepth 2 | head -n 20)"
if [[ -n "$left" ]]; then
	echo "test: the tests passed but left these in $test_tmp (a test or a server it started" \
		"does not remove its temporary files; find which, and make it clean up):" >&2
	echo "$left" >&2
	exit 1
fi
# Not with a test filter (scripts/test.sh -- NAME): that asks for some Rust tests only.
if [[ "$compose_chaos" == 1 && $# -eq 0 ]]; then
	echo "test: the compose chaos run (scripts/compose-chaos.sh)"
	scripts/compose-chaos.sh
fi
