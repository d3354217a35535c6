#!/usr/bin/env bash
# The compose chaos run, for real: the docker-compose.yml stack up on a Docker engine, the
# database container killed, paused and stopped under load, then every check.
#
#   scripts/compose-chaos.sh             # from nothing: engine, plugins, images, run
#   scripts/compose-chaos.sh --keep-up   # leave the stack running afterwards (to look at
#                                        # Jaeger on :16686, Prometheus on :9090)
#
# 1. A Docker engine: `docker info` answers, or dockerd (Debian's docker.io, installed when
#    missing) is started here and stopped at the end.
# 2. `docker compose` and `docker buildx`: the CLI's own when it has them, else the plugins
#    scripts/build-tools.sh compose builds (used with DOCKER_CONFIG=.tools/docker).
# 3. The images, without a registry: scripts/local-images.sh (Debian base by debootstrap,
#    FerretDB standing in for mongo:7.0, Jaeger with its UI, Debian's Prometheus, Mailpit,
#    the API by the project's Dockerfile, in the dev profile unless AILA_IMAGE_PROFILE
#    says otherwise). Kept between runs.
# 4. `docker compose up --wait` with docker-compose.yml and deploy/local-images/compose.local.yml
#    (the registry images swapped for the local ones, nothing else), as project aila-chaos.
# 5. aila-chaos --backend compose: load at 40 requests/s, the `mongo` container killed
#    (SIGKILL), paused and stopped/started; it fails on a lost or duplicated write, a /health
#    that is not 200, a slow detection or recovery.
# 6. Jaeger (in its container) holds the API's start-up trace and request traces with their
#    database spans, and serves its UI; Prometheus (in its container) scraped the breaker's
#    transitions and the outage, and keeps exemplars whose trace ids Jaeger finds.
# 7. `docker compose down -v`: containers, network and volumes removed; images kept.
#
# Output: target/compose-chaos/ (record.json, timeline.svg, compose.log, summary.txt).
# Needs root (dockerd, debootstrap) on Debian or Ubuntu, Go and Rust. Env: AILA_CHAOS_SCHEDULE
# replaces the fault schedule, AILA_CHAOS_DURATION the run's length, AILA_IMAGE_PROFILE the
# API image's Cargo profile (dev by default here; release is the image users build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
keep_up=0
for arg in "$@"; do
	case "$arg" in
	--keep-up) keep_up=1 ;;
	*)
		echo "usage: $0 [--keep-up]" >&2
		exit 2
		;;
	esac
done

out="$repo/target/compose-chaos"
mkdir -p "$out" "$repo/.tools/tmp"
summary="$out/summary.txt"
: >"$summary"
say() { echo "compose-chaos: $*" | tee -a "$summary"; }
die() {
	echo "compose-chaos: FAILED: $*" | tee -a "$summary" >&2
	exit 1
}
run_start=$SECONDS

# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds; after SECONDS says
# what it gave up on and fails.
wait_for() {
	local what="$1" deadline="$2"
	shift 2
	local give_up_at=$((SECONDS + deadline))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= give_up_at)); then
			echo "compose-chaos: gave up waiting for $what after $deadline s" >&2
			return 1
		fi
		sleep 0.5
	done
}

# 1. The engine.
started_dockerd=""
if ! docker info >/dev/null 2>&1; then
	if ! command -v dockerd >/dev/null 2>&1; then
		[[ "$(id -u)" -eq 0 ]] || die "no Docker engine, and installing one needs root (apt-get install docker.io)"
		say "installing Debian's docker.io"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null ||
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null; }
	fi
	say "starting dockerd (log: .tools/tmp/dockerd.log)"
	dockerd >"$repo/.tools/tmp/dockerd.log" 2>&1 &
	started_dockerd=$!
	wait_for "the Docker engine" 60 docker info || die "dockerd did not answer within 60 s (.tools/tmp/dockerd.log)"
fi
command -v debootstrap >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null

export COMPOSE_FILE="docker-compose.yml:deploy/local-images/compose.local.yml"
export COMPOSE_PROJECT_NAME=aila-chaos
# config/loadtest.toml: the rate limits off (all the load comes from one address).
export APP_ENV=loadtest

teardown() {
	local status=$?
	if [[ "$keep_up" -eq 0 ]] && docker info >/dev/null 2>&1; then
		docker compose logs --no-color --timestamps >"$out/compose.log" 2>&1 || true
		docker compose down -v --remove-orphans >/dev/null 2>&1 || true
	fi
	if [[ -n "$started_dockerd" && "$keep_up" -eq 0 ]]; then
		kill "$started_dockerd" 2>/dev/null || true
		wait "$started_dockerd" 2>/dev/null || true
	fi
	exit "$status"
}
trap teardown EXIT INT TERM

# 2. The plugins.
if ! docker compose version >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1; then
	scripts/build-tools.sh compose
	export DOCKER_CONFIG="$repo/.tools/docker"
fi
say "$(docker version --format 'engine {{.Server.Version}}, CLI {{.Client.Version}}'), $(docker compose version)"

# 3. The images, and the chaos tool. The API image in Cargo's dev profile unless
# AILA_IMAGE_PROFILE says otherwise: the run tests behaviour under faults, not speed, and a
# release build (fat LTO) from nothing takes about ten minutes of a 2-core machine, a dev
# build about four. AILA_IMAGE_PROFILE=release runs the very image users build.
AILA_IMAGE_PROFILE="${AILA_IMAGE_PROFILE:-dev}" scripts/local-images.sh | tee -a "$summary"
cargo build --quiet -p aila-chaos
chaos="${CARGO_TARGET_DIR:-$repo/target}/debug/aila-chaos"

# 4. Up, from a clean slate (a previous run's volume would carry its data).
docker compose down -v --remove-orphans >/dev/null 2>&1 || true
up_start=$SECONDS
docker compose up -d --wait --wait-timeout 180 --pull never ||
	{ docker compose ps -a; docker compose logs --no-color --tail 30; die "docker compose up --wait"; }
say "up to healthy in $((SECONDS - up_start)) s: $(docker compose ps --format '{{.Service}}={{.Health}}{{.State}}' | sort | paste -sd' ')"
wait_for "Jaeger" 60 curl -fsS http://localhost:16686/api/services || die "Jaeger's query API does not answer on :16686"
wait_for "Prometheus" 60 curl -fsS http://localhost:9090/-/ready || die "Prometheus is not ready on :9090"

# 5. The chaos run.
schedule="${AILA_CHAOS_SCHEDULE:-kill@8s+4s,freeze@20s+4s,restart@32s}"
duration="${AILA_CHAOS_DURATION:-45s}"
say "aila-chaos --backend compose --schedule $schedule --duration $duration"
chaos_status=0
"$chaos" --backend compose --url http://localhost:8001 --schedule "$schedule" \
	--duration "$duration" --out "$out" | tee "$out/chaos.txt" || chaos_status=$?
[[ "$chaos_status" -eq 0 ]] || die "aila-chaos exited with $chaos_status (see $out/chaos.txt, $out/timeline.svg)"

# The run's own record: a 429 means the rate limits shaped the load (APP_ENV=loadtest turns
# them off; the load comes from one address), which would make the run prove less.
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
n = sum(1 for q in r["requests"] if q.get("status") == 429)
sys.exit(f"{n} requests answered 429: the rate limits are on (APP_ENV=loadtest?)" if n else 0)
' "$out/record.json" || die "the load was rate-limited"

# 6. Traces and metrics, read from the containers. Each check reads JSON on stdin.
check() { python3 -c "import json, sys; d = json.load(sys.stdin); $1"; }
jaeger() { curl -fsS --get "http://localhost:16686$1" "${@:2}"; }
page="$(curl -fsS http://localhost:16686/search)"
[[ "$page" != *"This is not the Jaeger UI"* && "$page" == *'<div id="jaeger-ui-root"'* ]] ||
	die "Jaeger serves no UI on :16686 (its placeholder page, or no jaeger-ui-root)"
jaeger /api/traces --data-urlencode service=aila-api --data-urlencode operation=startup --data-urlencode limit=5 |
	check '
names = {s["operationName"] for t in d["data"] for s in t["spans"]}
missing = {"db.connect", "db.ping", "db.indexes"} - names
sys.exit(f"start-up trace lacks {sorted(missing)}: {sorted(names)}" if missing else 0)' ||
	die "no start-up trace with connect, ping and index spans in Jaeger"
jaeger /api/traces --data-urlencode service=aila-api --data-urlencode 'operation=POST /api/persons' --data-urlencode limit=20 |
	check '
db = [t for t in d["data"] if any(g["key"] == "db.system.name" and g["value"] == "mongodb"
                                   for s in t["spans"] for g in s["tags"])]
n = len(d["data"])
sys.exit(0 if db else f"none of {n} POST /api/persons traces holds a database span")' ||
	die "no request trace with a database span in Jaeger"
say "Jaeger: UI served; the start-up trace and request traces with database spans found"

prom() { curl -fsS --get "http://localhost:9090/api/v1/$1" "${@:2}"; }
# The breaker opened and closed during the run (the counter survives the scrape interval,
# which a 4 s outage could fall between).
transitions="$(prom query --data-urlencode 'query=sum(aila_db_circuit_breaker_transitions_total)' |
	check 'r = d["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)')"
((transitions >= 2)) || die "Prometheus scraped $transitions breaker transitions (at least 2 expected)"
now="$(date +%s)"
trace_id="$(prom query_exemplars --data-urlencode 'query=aila_http_server_request_duration_seconds_bucket' \
	--data-urlencode "start=$((now - 900))" --data-urlencode "end=$now" |
	check '
ids = [e["labels"]["trace_id"] for s in d["data"] for e in s["exemplars"] if "trace_id" in e["labels"]]
print(ids[-1]) if ids else sys.exit("no exemplar with a trace_id")')" ||
	die "Prometheus keeps no exemplar with a trace id"
jaeger "/api/traces/$trace_id" >/dev/null || die "the exemplar's trace $trace_id is not in Jaeger"
say "Prometheus: $transitions breaker transitions; exemplar trace $trace_id found in Jaeger"

say "passed in $((SECONDS - run_start)) s (images: $(docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^aila' | paste -sd, ))"
