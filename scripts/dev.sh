#!/usr/bin/env bash
# Starts a local database (FerretDB, built if missing, data in .ferretdb-data/), a local
# mail server (Mailpit: SMTP on 127.0.0.1:1025, its web UI and API on http://localhost:8025,
# every mail the service sends lands there) and the service on http://localhost:8001.
# Ctrl-C stops them all.
#
#   scripts/dev.sh                 # database + service
#   scripts/dev.sh --with-jaeger   # also Jaeger with its web UI: http://localhost:16686
#                                  # (traces of the service: http://localhost:16686/search?service=aila-api)
#   AILA_PROFILE=release scripts/dev.sh   # the optimised (LTO) build instead of the dev build
#
# Set MONGO_URL to use another database (then no FerretDB is started), SMTP_URL another mail
# server (then no Mailpit is started).
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
builds=()
cleanup() {
	for pid in "${pids[@]}" "${builds[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# The database builds (Go) run while Rust compiles: on a fresh machine the two overlap
# instead of adding up. Their output goes to the terminal as usual.
if [[ -z "${MONGO_URL:-}" ]]; then
	scripts/build-tools.sh ferretdb &
	builds+=($!)
fi
if [[ "$with_jaeger" -eq 1 ]]; then
	scripts/build-tools.sh jaeger &
	builds+=($!)
fi
if [[ -z "${SMTP_URL:-}" ]]; then
	scripts/build-tools.sh mailpit &
	builds+=($!)
fi

# The dev profile (the one the tests build too, in the same target directory): a first
# build takes a few minutes where the LTO release profile takes many more. AILA_PROFILE=release
# (or any profile of Cargo.toml) runs another build.
profile="${AILA_PROFILE:-dev}"
cargo build --profile "$profile" --bin aila-api
for pid in "${builds[@]}"; do
	wait "$pid" || { echo "dev: a database build failed (see above)" >&2; exit 1; }
done
builds=()
case "$profile" in dev | test) out=debug ;; bench) out=release ;; *) out="$profile" ;; esac
bin="${CARGO_TARGET_DIR:-target}/$out/aila-api"

if [[ -z "${MONGO_URL:-}" ]]; then
	.tools/bin/ferretdb -listen-addr 127.0.0.1:27017 -data-dir .ferretdb-data &
	pids+=($!)
	export MONGO_URL="mongodb://127.0.0.1:27017"
fi

mailpit_ui="http://localhost:8025"
if [[ -z "${SMTP_URL:-}" ]]; then
	# Messages kept in memory (a temporary database Mailpit deletes at exit).
	.tools/bin/mailpit --smtp 127.0.0.1:1025 --listen 127.0.0.1:8025 --smtp-disable-rdns \
		--disable-version-check --quiet &
	pids+=($!)
	export SMTP_URL="smtp://127.0.0.1:1025"
	export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://localhost:${PORT:-8001}}"
	started_mailpit=1
fi

jaeger_ui="http://localhost:16686"
if [[ "$with_jaeger" -eq 1 ]]; then
	# Built above with its web UI laid out in .tools/jaeger-ui. Our config: OTLP on 4317/4318, UI and query API on 16686, nothing else bound.
	JAEGER_UI_ASSETS="${JAEGER_UI_ASSETS:-$repo/.tools/jaeger-ui}" \
		.tools/bin/jaeger --config tools/jaeger/config.template.yaml &
	pids+=($!)
	# The start-up log line then links its own trace in the UI.
	export JAEGER_UI_URL="${JAEGER_UI_URL:-$jaeger_ui}"
else
	export OTEL_SDK_DISABLED="${OTEL_SDK_DISABLED:-true}"
fi

"$bin" &
pids+=($!)
if [[ "$with_jaeger" -eq 1 ]]; then
	echo "dev: Jaeger UI at $jaeger_ui; the service's traces: $jaeger_ui/search?service=aila-api"
fi
if [[ "${started_mailpit:-0}" -eq 1 ]]; then
	echo "dev: Mailpit (the service's mails) at $mailpit_ui; API: $mailpit_ui/api/v1/messages"
fi
wait "${pids[-1]}"
