#!/usr/bin/env bash
# Builds the external dev/test servers from the pinned Go modules in tools/:
#
#   .tools/bin/ferretdb   tools/ferretdb (FerretDB, MongoDB wire protocol on SQLite)
#   .tools/bin/ferretdb-mongosh
#                         tools/ferretdb/mongosh (answers the compose healthcheck's
#                         `mongosh --eval "db.adminCommand('ping').ok"` in the FerretDB image)
#   .tools/bin/jaeger     tools/jaeger   (Jaeger v2 all-in-one, in-memory storage)
#   .tools/jaeger-ui/     tools/jaeger   (the Jaeger UI web app Jaeger serves: index.html,
#                                         static/; laid out with `jaeger`, see below)
#   .tools/bin/toxiproxy-server, .tools/bin/toxiproxy-cli
#                         tools/toxiproxy (Toxiproxy, a TCP proxy that injects network faults)
#   .tools/bin/mailpit    tools/mailpit  (Mailpit, a local SMTP server with an HTTP API that
#                                         keeps every mail it receives: dev and tests)
#   .tools/docker/cli-plugins/docker-compose, docker-buildx
#                         tools/compose, tools/buildx (the `docker compose` v5 and
#                         `docker buildx` CLI plugins, for a Docker CLI that has neither;
#                         use them with DOCKER_CONFIG=.tools/docker, as compose-chaos.sh does)
#   .tools/k8s/bin/*      tools/kubernetes (Kubernetes v1.34.4 control plane, kubelet,
#                         kube-proxy, kubectl, etcd, CoreDNS, metrics-server)
#
# Usage: scripts/build-tools.sh [ferretdb|jaeger|toxiproxy|mailpit|compose|kubernetes|all] [--force]   (default: ferretdb)
#
# `all` is ferretdb + jaeger + toxiproxy + mailpit; the Docker plugins (about 3 minutes) and the
# Kubernetes binaries (about 10-15 minutes on 2 cores with an empty Go build cache) are only
# built when asked for.
#
# Needs only Go (>= 1.24; an older `go` auto-downloads the required toolchain)
# and access to the Go module proxy. A tool is skipped when its binary is newer
# than every file of its module (go.mod, go.sum, *.go); --force rebuilds.
# Env: GO=/path/to/go to pick the Go binary.
#
# The Jaeger UI: a Jaeger built from the module proxy has no web UI (release builds
# embed a separately built jaeger-ui). tools/jaeger pins the Go module
# github.com/tonistiigi/jaeger-ui-rest, whose public/ folder is a production build of
# Jaeger UI with every file gzipped; `jaeger` unpacks it (gunzip) into .tools/jaeger-ui,
# the folder tools/jaeger/config.template.yaml serves (ui.assets_path). The folder is
# self-contained: copy it into an image and point JAEGER_UI_ASSETS at it.
set -euo pipefail

usage() {
	echo "usage: $0 [ferretdb|jaeger|toxiproxy|mailpit|compose|kubernetes|all] [--force]" >&2
	exit 2
}

target=""
force=0
for arg in "$@"; do
	case "$arg" in
	ferretdb | jaeger | toxiproxy | mailpit | compose | kubernetes | all)
		[[ -z "$target" ]] || usage
		target="$arg"
		;;
	-f | --force) force=1 ;;
	-h | --help) usage ;;
	*) usage ;;
	esac
done
target="${target:-ferretdb}"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="$repo/.tools/bin"

go_bin="${GO:-}"
if [[ -z "$go_bin" ]]; then
	if command -v go >/dev/null 2>&1; then
		go_bin="$(command -v go)"
	elif [[ -x /usr/local/go/bin/go ]]; then
		go_bin=/usr/local/go/bin/go
	else
		echo "build-tools: Go not found (put go on PATH or set GO=/path/to/go)" >&2
		exit 1
	fi
fi

# Succeeds if $1 (binary) exists and is newer than every module file in $2.
is_up_to_date() {
	local binary="$1" mod_dir="$2" f
	[[ -x "$binary" ]] || return 1
	for f in "$mod_dir"/go.mod "$mod_dir"/go.sum "$mod_dir"/*.go "$mod_dir"/*/*.go; do
		[[ -e "$f" ]] || continue
		[[ "$binary" -nt "$f" ]] || return 1
	done
	return 0
}

# build_tool NAME PACKAGE [extra go build args...]: builds PACKAGE of tools/NAME into
# .tools/bin/NAME. BIN_NAME=other overrides the binary's name, MOD_NAME=other the module
# folder (one module, several binaries).
build_tool() {
	local name="$1" pkg="$2"
	shift 2
	local mod_dir="$repo/tools/${MOD_NAME:-$name}"
	local out="$bin_dir/${BIN_NAME:-$name}"

	if [[ "$force" -eq 0 ]] && is_up_to_date "$out" "$mod_dir"; then
		echo "build-tools: $name is up to date ($out); use --force to rebuild"
		return 0
	fi

	mkdir -p "$bin_dir"
	local tmp="$out.tmp.$$"
	echo "build-tools: building $name ($pkg) ..."
	local start=$SECONDS
	# -mod=readonly: never rewrite the committed go.mod/go.sum.
	# -buildvcs=false: do not depend on git state of the surrounding repo.
	if ! (cd "$mod_dir" && "$go_bin" build -mod=readonly -buildvcs=false -trimpath "$@" -o "$tmp" "$pkg"); then
		rm -f "$tmp"
		echo "build-tools: building $name FAILED after $((SECONDS - start))s" >&2
		return 1
	fi
	mv -f "$tmp" "$out"
	local size
	size="$(du -h "$out" | cut -f1)"
	echo "build-tools: built $out ($size) in $((SECONDS - start))s"
}

build_ferretdb() {
	# Our own main package embeds github.com/FerretDB/FerretDB/ferretdb.
	# With our module as the main module, FerretDB's build/version package does
	# not require build/version/version.txt, so no vendoring is needed.
	build_tool ferretdb . -ldflags "-s -w"
	MOD_NAME=ferretdb BIN_NAME=ferretdb-mongosh build_tool ferretdb-mongosh ./mongosh -ldflags "-s -w"
}

build_jaeger() {
	# Built straight from the module cache (tool directive in tools/jaeger/go.mod).
	local version
	version="$(cd "$repo/tools/jaeger" && "$go_bin" list -mod=readonly -m -f '{{.Version}}' github.com/jaegertracing/jaeger)"
	build_tool jaeger github.com/jaegertracing/jaeger/cmd/jaeger \
		-ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version"
}

# Unpacks the pinned UI module's public/ (every file gzipped) into .tools/jaeger-ui.
# `go mod download` checks the module against tools/jaeger/go.sum. Skipped when the
# folder already holds this module version (.tools/jaeger-ui/.module), unless --force.
layout_jaeger_ui() {
	local module=github.com/tonistiigi/jaeger-ui-rest
	local out="$repo/.tools/jaeger-ui"
	local mod_dir="$repo/tools/jaeger"
	local start=$SECONDS info version src
	if ! (cd "$mod_dir" && "$go_bin" mod download "$module"); then
		echo "build-tools: downloading $module FAILED (module proxy reachable? go.sum matches?)" >&2
		return 1
	fi
	info="$(cd "$mod_dir" && "$go_bin" list -mod=readonly -m -f '{{.Path}}@{{.Version}} {{.Dir}}' "$module")"
	version="${info%% *}"
	src="${info#* }/public"
	if [[ "$force" -eq 0 && -f "$out/index.html" && "$(cat "$out/.module" 2>/dev/null)" == "$version" ]]; then
		echo "build-tools: jaeger-ui is up to date ($out, $version)"
		return 0
	fi
	if [[ ! -f "$src/index.html" ]]; then
		echo "build-tools: $version has no public/index.html ($src); is the pin right?" >&2
		return 1
	fi
	local tmp="$out.tmp.$$" f rel
	rm -rf "$tmp"
	mkdir -p "$tmp"
	while IFS= read -r -d '' f; do
		rel="${f#"$src"/}"
		mkdir -p "$tmp/$(dirname "$rel")"
		if ! gzip -dc "$f" >"$tmp/$rel"; then
			rm -rf "$tmp"
			echo "build-tools: $rel of $version is not gzip data; cannot lay out the UI" >&2
			return 1
		fi
	done < <(find "$src" -type f -print0)
	echo "$version" >"$tmp/.module"
	chmod -R u+w,a+rX "$tmp"
	rm -rf "$out"
	mv "$tmp" "$out"
	echo "build-tools: laid out Jaeger UI ($version, $(du -sh "$out" | cut -f1)) in $out in $((SECONDS - start))s"
}

build_toxiproxy() {
	# Both commands straight from the module cache (tool directives in tools/toxiproxy/go.mod);
	# the version is stamped the way Toxiproxy's own release build does.
	local version
	version="$(cd "$repo/tools/toxiproxy" && "$go_bin" list -mod=readonly -m -f '{{.Version}}' github.com/Shopify/toxiproxy/v2)"
	local ldflags="-s -w -X github.com/Shopify/toxiproxy/v2.Version=${version#v}"
	MOD_NAME=toxiproxy BIN_NAME=toxiproxy-server build_tool toxiproxy-server \
		github.com/Shopify/toxiproxy/v2/cmd/server -ldflags "$ldflags"
	MOD_NAME=toxiproxy BIN_NAME=toxiproxy-cli build_tool toxiproxy-cli \
		github.com/Shopify/toxiproxy/v2/cmd/cli -ldflags "$ldflags"
}

build_mailpit() {
	# Straight from the module cache (tool directive in tools/mailpit/go.mod), the version
	# stamped as Mailpit's release build does. The module carries no build of the web UI's
	# JavaScript (server/ui/dist is made by npm in Mailpit's release): the HTTP API and
	# SMTP work in full, the web page shows no app.
	local version
	version="$(cd "$repo/tools/mailpit" && "$go_bin" list -mod=readonly -m -f '{{.Version}}' github.com/axllent/mailpit)"
	build_tool mailpit github.com/axllent/mailpit \
		-ldflags "-s -w -X github.com/axllent/mailpit/config.Version=$version"
}

# The Docker CLI plugins, straight from the module cache (tool directives in tools/compose
# and tools/buildx), where the Docker CLI finds them under DOCKER_CONFIG.
build_compose() {
	local version
	version="$(cd "$repo/tools/compose" && "$go_bin" list -mod=readonly -m -f '{{.Version}}' github.com/docker/compose/v5)"
	bin_dir="$repo/.tools/docker/cli-plugins" BIN_NAME=docker-compose build_tool compose \
		github.com/docker/compose/v5/cmd -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=$version"
	version="$(cd "$repo/tools/buildx" && "$go_bin" list -mod=readonly -m -f '{{.Version}}' github.com/docker/buildx)"
	bin_dir="$repo/.tools/docker/cli-plugins" BIN_NAME=docker-buildx build_tool buildx \
		github.com/docker/buildx/cmd/buildx -ldflags "-s -w -X github.com/docker/buildx/version.Version=$version"
}

# The Kubernetes binaries: one `go build` of every main package of the module
# (Go shares the work between them), into .tools/k8s/bin. They are rebuilt only
# when one of them is missing or older than a file of the module.
build_kubernetes() {
	local mod_dir="$repo/tools/kubernetes"
	local out_dir="$repo/.tools/k8s/bin"
	local names=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd coredns metrics-server)
	local pkgs=(
		k8s.io/kubernetes/cmd/kube-apiserver
		k8s.io/kubernetes/cmd/kube-controller-manager
		k8s.io/kubernetes/cmd/kube-scheduler
		k8s.io/kubernetes/cmd/kubelet
		k8s.io/kubernetes/cmd/kube-proxy
		./kubectl
		./etcd
		./coredns
	)
	if [[ "$force" -eq 0 ]]; then
		local name f stale=0
		for name in "${names[@]}"; do
			[[ -x "$out_dir/$name" ]] || stale=1
			for f in "$mod_dir"/go.mod "$mod_dir"/go.sum "$mod_dir"/*/*.go "$mod_dir"/metrics-server/go.mod "$mod_dir"/metrics-server/go.sum; do
				[[ ! -e "$f" || "$out_dir/$name" -nt "$f" ]] || stale=1
			done
		done
		if [[ "$stale" -eq 0 ]]; then
			echo "build-tools: kubernetes is up to date ($out_dir); use --force to rebuild"
			return 0
		fi
	fi
	local tmp="$out_dir.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	echo "build-tools: building kubernetes (${names[*]}) ..."
	local start=$SECONDS
	# The version the binaries report (kubectl version, the node's kubelet version).
	local vpkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
	local ldflags="-s -w" v
	for v in "${vpkgs[@]}"; do
		ldflags+=" -X $v.gitVersion=v1.34.4 -X $v.gitMajor=1 -X $v.gitMinor=34 -X $v.gitTreeState=clean"
	done
	if ! (cd "$mod_dir" && "$go_bin" build -mod=readonly -buildvcs=false -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}") ||
		! (cd "$mod_dir/metrics-server" && "$go_bin" build -mod=readonly -buildvcs=false -trimpath \
			-ldflags "-s -w -X sigs.k8s.io/metrics-server/pkg/version.gitVersion=v0.8.0" \
			-o "$tmp/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server); then
		rm -rf "$tmp"
		echo "build-tools: building kubernetes FAILED after $((SECONDS - start))s" >&2
		return 1
	fi
	mkdir -p "$out_dir"
	local name
	for name in "${names[@]}"; do
		mv -f "$tmp/$name" "$out_dir/$name"
	done
	rm -rf "$tmp"
	echo "build-tools: built $out_dir ($(du -sh "$out_dir" | cut -f1)) in $((SECONDS - start))s"
}

total_start=$SECONDS
case "$target" in
ferretdb) build_ferretdb ;;
jaeger)
	build_jaeger
	layout_jaeger_ui
	;;
toxiproxy) build_toxiproxy ;;
mailpit) build_mailpit ;;
compose) build_compose ;;
kubernetes) build_kubernetes ;;
all)
	build_ferretdb
	build_jaeger
	layout_jaeger_ui
	build_toxiproxy
	build_mailpit
	;;
esac
echo "build-tools: done in $((SECONDS - total_start))s"
