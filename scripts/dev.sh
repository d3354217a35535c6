#!/usr/bin/env bash
# Starts a local database (FerretDB, built if missing, data in .ferretdb-data/) and the
# service on http://localhost:8001. Ctrl-C stops both.
#
#   scripts/dev.sh                 # database + service
#   scripts/dev.sh --with-jaeger   # also Jaeger (traces at http://localhost:16686/api/traces?service=aila-api)
#
# Set MONGO_URL to use another database (then no FerretDB is started).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

with_jaeger=0
for arg in "$@"; do
	case "$arg" in
	--with-jaeger) with_jaeger=1 ;;
	*) echo "usage: $0 [--with-jaeger]" >&2; exit 2 ;;
	esac
done

pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [[ -z "${MONGO_URL:-}" ]]; then
	scripts/build-tools.sh ferretdb
	.tools/bin/ferretdb -listen-addr 127.0.0.1:27017 -data-dir .ferretdb-data &
	pids+=($!)
	export MONGO_URL="mongodb://127.0.0.1:27017"
fi

if [[ "$with_jaeger" -eq 1 ]]; then
	scripts/build-tools.sh jaeger
	.tools/bin/jaeger &
	pids+=($!)
else
	export OTEL_SDK_DISABLED="${OTEL_SDK_DISABLED:-true}"
fi

cargo build --release --bin aila-api
target/release/aila-api &
pids+=($!)
wait "${pids[-1]}"
