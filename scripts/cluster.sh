#!/usr/bin/env bash
# A one-node Kubernetes cluster on this machine, running deploy/kubernetes exactly as users
# apply it, with FerretDB standing in for MongoDB.
#
#   scripts/cluster.sh up       # build what is missing, start, import images, apply
#   scripts/cluster.sh up --without-database   # the same without FerretDB (apply it later:
#                               # kubectl apply -k deploy/local-cluster/ferretdb)
#   scripts/cluster.sh status   # processes, node, pods, Service address
#   scripts/cluster.sh down     # stop everything it started, clean up the host
#   scripts/cluster.sh env      # prints `export KUBECONFIG=...` and the Service address
#   scripts/cluster.sh deps     # only install the packages and build the binaries
#   scripts/cluster.sh packages # only install the Debian packages
#
# Needs root and Linux (containerd and the kubelet manage cgroups, mounts and iptables).
# Installs Debian's containerd, runc, containernetworking-plugins and iptables when missing.
# Kubernetes v1.34.4, etcd, CoreDNS and metrics-server come from tools/kubernetes
# (scripts/build-tools.sh kubernetes, 10-15 minutes on 2 cores the first time).
#
# Everything lives in .cluster/ (gitignored): etcd data, certificates, containerd's
# root/state/socket (its own, never a Docker engine's), kubelet root, pod logs, the
# database volume, logs/ of every process and pids/. Addresses: the bridge aila0 is
# 10.244.0.1 (node address; API server :6443, kubelet :10250, CoreDNS :53, metrics-server
# :4443), pods 10.244.0.0/24, Services 10.96.0.0/16; etcd and health ports on 127.0.0.1.
# Nothing listens on another address and no traffic leaves the machine.
#
# Images are made here without a registry (no Docker engine needed): a pause image (a
# static C program), localhost/aila-api:local (the aila-api binary of target/, or
# AILA_API_BIN, with the shared libraries it needs and config/) and
# localhost/ferretdb:local (.tools/bin/ferretdb), imported with `ctr images import`.
#
# Env: AILA_API_BIN (default: the newest of target/{release,debug}/aila-api, built with
# `cargo build --bin aila-api` when neither exists), CLUSTER_DIR (default .cluster).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$(realpath -m "${CLUSTER_DIR:-$repo/.cluster}")"
bin="$repo/.tools/k8s/bin"

NODE=aila-node
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
BRIDGE=aila0
ETCD_PORT=12379
API="https://$NODE_IP:6443"
APP_NS=aila
DB_NS=aila-db
API_IMAGE=localhost/aila-api:local
DB_IMAGE=localhost/ferretdb:local
PAUSE_IMAGE=localhost/pause:local
# Every process this script starts, in start order (down stops them in reverse).
PROCS=(etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet kube-proxy coredns metrics-server)

log() { echo "cluster: $*" >&2; }
die() {
	log "$*"
	exit 1
}

kctl() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
ctr_() { ctr --address "$dir/containerd/containerd.sock" -n k8s.io "$@"; }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_until() {
	local limit="$1" what="$2"
	shift 2
	local deadline=$((SECONDS + limit))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			log "timed out after ${limit}s waiting for $what"
			return 1
		fi
		sleep 0.2
	done
}

pid_of() {
	local f="$dir/pids/$1.pid"
	[[ -s "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

# start NAME COMMAND...: runs COMMAND in its own session, output in logs/NAME.log.
start() {
	local name="$1"
	shift
	if pid_of "$name" >/dev/null; then
		log "$name already running (pid $(pid_of "$name"))"
		return 0
	fi
	setsid "$@" >>"$dir/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$dir/pids/$name.pid"
}

check_host() {
	[[ "$(uname -s)" == Linux ]] || die "needs Linux (kubelet, containerd)"
	[[ "$(id -u)" -eq 0 ]] || die "needs root: containerd and the kubelet create cgroups, mounts, network namespaces and iptables rules"
}

install_packages() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
	command -v iptables >/dev/null || missing+=(iptables)
	command -v gcc >/dev/null || missing+=(gcc libc6-dev)
	command -v openssl >/dev/null || missing+=(openssl)
	((${#missing[@]} == 0)) && return 0
	log "installing ${missing[*]} (apt-get)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build_binaries() {
	"$repo/scripts/build-tools.sh" kubernetes >&2
	[[ -x "$repo/.tools/bin/ferretdb" ]] || "$repo/scripts/build-tools.sh" ferretdb >&2
}

# ---------------------------------------------------------------- certificates, configs

make_pki() {
	local pki="$dir/pki"
	[[ -s "$pki/admin.token" ]] && return 0
	mkdir -p "$pki"
	(
		cd "$pki"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=aila-local-ca" 2>/dev/null
		cat >apiserver.ext <<EOF
subjectAltName=IP:$NODE_IP,IP:10.96.0.1,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost
EOF
		openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
		openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile apiserver.ext 2>/dev/null
		# The aggregation layer (metrics.k8s.io): the API server proxies with this client
		# certificate, metrics-server trusts it through the front-proxy CA.
		openssl req -x509 -newkey rsa:2048 -nodes -keyout front-proxy-ca.key -out front-proxy-ca.crt -days 3650 -subj "/CN=aila-front-proxy-ca" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -keyout front-proxy-client.key -out front-proxy-client.csr -subj "/CN=front-proxy-client" 2>/dev/null
		openssl x509 -req -in front-proxy-client.csr -CA front-proxy-ca.crt -CAkey front-proxy-ca.key -CAcreateserial -out front-proxy-client.crt -days 3650 2>/dev/null
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
		openssl rand -hex 32 >admin.token.tmp
		echo "$(cat admin.token.tmp),admin,admin,system:masters" >tokens.csv
		mv admin.token.tmp admin.token
	)
	cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: $API
      certificate-authority: $pki/ca.crt
users:
  - name: admin
    user:
      token: $(cat "$pki/admin.token")
contexts:
  - name: local
    context: {cluster: local, user: admin, namespace: $APP_NS}
current-context: local
EOF
}

write_configs() {
	mkdir -p "$dir/containerd" "$dir/cni/net.d" "$dir/cni/ipam" "$dir/kubelet" "$dir/pod-logs" "$dir/volumes"
	cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$dir/containerd/containerd.sock"
[ttrpc]
  address = "$dir/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The pod sandbox may not lower oom_score_adj here (no CAP_SYS_RESOURCE).
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
EOF
	cat >"$dir/cni/net.d/10-aila.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "aila",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "firewall", "backend": "iptables"},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
	cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
protectKernelDefaults: false
localStorageCapacityIsolation: false
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
podLogsDir: $dir/pod-logs
podCIDR: $POD_CIDR
serializeImagePulls: false
# The images exist only here (no registry to pull them again): never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
syncFrequency: 10s
EOF
	cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $dir/kubeconfig
mode: iptables
hostnameOverride: $NODE
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack:
  maxPerCore: 0
iptables:
  minSyncPeriod: 0s
EOF
	cat >"$dir/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 {
  bind $NODE_IP
  errors
  kubernetes cluster.local in-addr.arpa {
    kubeconfig $dir/kubeconfig local
    pods insecure
  }
  cache 5
  loadbalance
}
# Names outside the cluster are not answered: no query leaves this machine.
.:53 {
  bind $NODE_IP
  errors
}
EOF
}

# The node's address lives on the pod bridge, which the CNI bridge plugin then reuses.
make_bridge() {
	if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
		ip link add "$BRIDGE" type bridge
	fi
	ip addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	# The bridge plugin (isGateway) turns IPv4 forwarding on; down restores this value.
	[[ -s "$dir/ip_forward.before" ]] || cat /proc/sys/net/ipv4/ip_forward >"$dir/ip_forward.before"
}

# ---------------------------------------------------------------- images

# make_image NAME:TAG ROOTFS ENTRYPOINT_JSON WORKDIR OUT: a one-layer image archive in the
# `docker save` format (what `ctr images import` reads).
make_image() {
	local ref="$1" rootfs="$2" entrypoint="$3" workdir="$4" out="$5"
	local work
	work="$(mktemp -d "$dir/images/tmp.XXXXXX")"
	tar -C "$rootfs" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$work/layer.tar" .
	local diff
	diff="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
	mkdir "$work/$diff"
	mv "$work/layer.tar" "$work/$diff/layer.tar"
	cat >"$work/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{"Entrypoint":$entrypoint,"WorkingDir":"$workdir",
   "Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff"]}}
EOF
	local cfg
	cfg="$(sha256sum "$work/config.json" | cut -d' ' -f1)"
	mv "$work/config.json" "$work/$cfg.json"
	echo "[{\"Config\":\"$cfg.json\",\"RepoTags\":[\"$ref\"],\"Layers\":[\"$diff/layer.tar\"]}]" >"$work/manifest.json"
	tar -C "$work" -cf "$out" manifest.json "$cfg.json" "$diff"
	rm -rf "$work"
}

# add_binary ROOTFS FILE DEST: copies FILE to ROOTFS/DEST and every shared library it
# loads (symlinks resolved: the files, not the links, go in).
add_binary() {
	local rootfs="$1" file="$2" dest="$3" lib
	mkdir -p "$rootfs/$(dirname "$dest")"
	cp -L "$file" "$rootfs/$dest"
	for lib in $(ldd "$file" 2>/dev/null | grep -o '/[^ ]*' || true); do
		[[ -e "$lib" ]] || continue
		mkdir -p "$rootfs/$(dirname "$lib")"
		cp -L "$lib" "$rootfs/$lib"
	done
}

api_binary() {
	if [[ -n "${AILA_API_BIN:-}" ]]; then
		[[ -x "$AILA_API_BIN" ]] || die "AILA_API_BIN=$AILA_API_BIN is not an executable"
		echo "$AILA_API_BIN"
		return
	fi
	local rel="$repo/target/release/aila-api" dbg="$repo/target/debug/aila-api"
	if [[ -x "$rel" && (! -x "$dbg" || "$rel" -nt "$dbg") ]]; then
		echo "$rel"
	elif [[ -x "$dbg" ]]; then
		echo "$dbg"
	else
		log "no aila-api binary in target/: cargo build --bin aila-api"
		(cd "$repo" && cargo build --bin aila-api --bin aila-healthcheck >&2)
		echo "$dbg"
	fi
}

build_images() {
	local images="$dir/images"
	mkdir -p "$images"
	rm -rf "$images"/tmp.* "$images"/rootfs-*

	if [[ ! -s "$images/pause.tar" ]]; then
		local r="$images/rootfs-pause"
		mkdir -p "$r"
		gcc -static -O2 -o "$r/pause" "$repo/tools/kubernetes/pause/pause.c"
		make_image "$PAUSE_IMAGE" "$r" '["/pause"]' / "$images/pause.tar"
	fi

	local api
	api="$(api_binary)"
	local r="$images/rootfs-api"
	mkdir -p "$r/app" "$r/tmp"
	add_binary "$r" "$api" /usr/local/bin/aila-api
	# A debug build carries ~250 MB of debug info: not needed in the image (faster import).
	command -v strip >/dev/null && strip --strip-debug "$r/usr/local/bin/aila-api"
	local hc
	hc="$(dirname "$api")/aila-healthcheck"
	[[ -x "$hc" ]] && add_binary "$r" "$hc" /usr/local/bin/aila-healthcheck
	# preStop runs `sleep 5` inside the container.
	add_binary "$r" "$(command -v sleep)" /usr/bin/sleep
	cp -r "$repo/config" "$r/app/config"
	make_image "$API_IMAGE" "$r" '["/usr/local/bin/aila-api"]' /app "$images/aila-api.tar"
	log "service image from $api"

	if [[ ! -s "$images/ferretdb.tar" || "$repo/.tools/bin/ferretdb" -nt "$images/ferretdb.tar" ]]; then
		r="$images/rootfs-ferretdb"
		mkdir -p "$r/tmp" "$r/data"
		add_binary "$r" "$repo/.tools/bin/ferretdb" /usr/local/bin/ferretdb
		make_image "$DB_IMAGE" "$r" '["/usr/local/bin/ferretdb"]' / "$images/ferretdb.tar"
	fi
	rm -rf "$images"/rootfs-*
}

import_images() {
	local f
	for f in pause ferretdb aila-api; do
		ctr_ images import --no-unpack=false "$dir/images/$f.tar" >/dev/null
	done
}

# ---------------------------------------------------------------- processes

start_control_plane() {
	local pki="$dir/pki"
	mkdir -p "$dir/etcd"
	start etcd "$bin/etcd" --name aila --data-dir "$dir/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
		--initial-cluster aila=http://127.0.0.1:12380 --unsafe-no-fsync --log-level warn
	# Authorization AlwaysAllow: one admin token, no other users; anonymous requests refused.
	start kube-apiserver "$bin/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
		--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
		--client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
		--anonymous-auth=false --authorization-mode AlwaysAllow \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--kubelet-preferred-address-types InternalIP \
		--requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
		--requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
		--requestheader-extra-headers-prefix X-Remote-Extra- \
		--proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
		--enable-aggregator-routing=true --profiling=false
	start containerd containerd --config "$dir/containerd/config.toml"
	wait_until 60 "the API server" kctl get --raw /readyz
	# HPA settings of this cluster (the manifests' own behavior still applies): evaluate
	# every 5 s, count a new pod's CPU once it has been ready 10 s.
	start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$dir/kubeconfig" \
		--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
		--use-service-account-credentials=false --controllers '*,-nodeipam' --leader-elect=false \
		--bind-address 127.0.0.1 --secure-port 10257 \
		--horizontal-pod-autoscaler-sync-period 5s \
		--horizontal-pod-autoscaler-initial-readiness-delay 10s \
		--horizontal-pod-autoscaler-cpu-initialization-period 30s
	start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$dir/kubeconfig" --leader-elect=false \
		--bind-address 127.0.0.1 --secure-port 10259
}

start_node() {
	wait_until 30 containerd ctr_ version
	import_images
	start kubelet "$bin/kubelet" --config "$dir/kubelet/config.yaml" --kubeconfig "$dir/kubeconfig" \
		--root-dir "$dir/kubelet/root" --hostname-override "$NODE" --node-ip "$NODE_IP"
	start kube-proxy "$bin/kube-proxy" --config "$dir/kube-proxy.yaml"
	start coredns "$bin/coredns" -conf "$dir/Corefile"
	mkdir -p "$dir/metrics-server"
	start metrics-server "$bin/metrics-server" --kubeconfig "$dir/kubeconfig" \
		--authentication-kubeconfig "$dir/kubeconfig" --authorization-kubeconfig "$dir/kubeconfig" \
		--bind-address "$NODE_IP" --secure-port 4443 --cert-dir "$dir/metrics-server" \
		--kubelet-insecure-tls --kubelet-preferred-address-types InternalIP --kubelet-use-node-status-port \
		--metric-resolution 10s --kubelet-request-timeout 5s
	wait_until 60 "node $NODE Ready" node_ready
}

node_ready() {
	[[ "$(kctl get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# ---------------------------------------------------------------- workloads

apply_addons() {
	# metrics.k8s.io, served by the metrics-server process on the node address (a Service
	# without selector and its Endpoints, which the cluster mirrors to an EndpointSlice:
	# kubectl's deprecation warning about Endpoints is left out).
	kctl apply -f - 2> >(grep -v 'Endpoints is deprecated' >&2) >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system}
spec:
  ports: [{name: https, port: 443, targetPort: 4443, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: metrics-server, namespace: kube-system}
subsets: [{addresses: [{ip: "$NODE_IP"}], ports: [{name: https, port: 4443, protocol: TCP}]}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  service: {name: metrics-server, namespace: kube-system, port: 443}
  group: metrics.k8s.io
  version: v1beta1
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local-cluster}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: ferretdb-data-0}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local-cluster
  claimRef: {namespace: $DB_NS, name: data-ferretdb-0}
  local: {path: $dir/volumes/ferretdb-0}
  nodeAffinity:
    required:
      nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$NODE]}]}]
EOF
}

apply_workloads() {
	mkdir -p "$dir/volumes/ferretdb-0"
	((with_database)) && kctl apply -k "$repo/deploy/local-cluster/ferretdb" >/dev/null
	kctl create namespace "$APP_NS" --dry-run=client -o yaml | kctl apply -f - >/dev/null
	# The Secret exactly as deploy/kubernetes/secret.example.yaml tells users to create it.
	if ! kctl -n "$APP_NS" get secret aila-api >/dev/null 2>&1; then
		kctl -n "$APP_NS" create secret generic aila-api \
			--from-literal=MONGO_URL="mongodb://ferretdb.$DB_NS.svc.cluster.local:27017/" \
			--from-literal=JWT_SECRET="$(openssl rand -hex 32)" >/dev/null
	fi
	kctl -n "$APP_NS" apply -k "$repo/deploy/local-cluster" >/dev/null
}

service_address() {
	local ip
	ip="$(kctl -n "$APP_NS" get service aila-api -o jsonpath='{.spec.clusterIP}' 2>/dev/null)" || return 1
	[[ -n "$ip" ]] && echo "http://$ip:8001"
}

cmd_up() {
	check_host
	if pid_of kube-apiserver >/dev/null; then
		log "already up ($dir); scripts/cluster.sh down first to start afresh"
		return 0
	fi
	if ip link show "$BRIDGE" >/dev/null 2>&1; then
		die "the bridge $BRIDGE exists: another cluster of this script runs (or did not stop cleanly); run scripts/cluster.sh down in its checkout (CLUSTER_DIR=... for another folder)"
	fi
	install_packages
	build_binaries
	mkdir -p "$dir/logs" "$dir/pids"
	local t0=$SECONDS
	build_images
	make_pki
	write_configs
	make_bridge
	start_control_plane
	start_node
	apply_addons
	apply_workloads
	wait_until 90 "the aila-api pods to run" pods_running "$APP_NS" app.kubernetes.io/name=aila-api 2
	if ((with_database)); then
		wait_until 60 "the database pod to be ready" kctl -n "$DB_NS" wait --for=condition=Ready pod/ferretdb-0 --timeout=1s
	fi
	log "up in $((SECONDS - t0))s: KUBECONFIG=$dir/kubeconfig, Service $(service_address)"
}

# pods_running NAMESPACE SELECTOR N: at least N pods of SELECTOR are Running.
pods_running() {
	local n
	n="$(kctl -n "$1" get pods -l "$2" --field-selector=status.phase=Running -o name 2>/dev/null | wc -l)"
	((n >= $3))
}

# ---------------------------------------------------------------- down

stop_pid() {
	local name="$1" pid
	pid="$(pid_of "$name")" || {
		rm -f "$dir/pids/$name.pid"
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 10))
	while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	rm -f "$dir/pids/$name.pid"
}

# Removes the chains of kube-proxy, the kubelet (KUBE-*) and the CNI firewall/portmap
# plugins (CNI-*) from the iptables and ip6tables tables, with the jumps to them.
clean_iptables() {
	local ipt table line chain
	for ipt in iptables ip6tables; do
		command -v "$ipt" >/dev/null || continue
		for table in filter nat mangle raw; do
			"$ipt" -t "$table" -S >/dev/null 2>&1 || continue
			while read -r line; do
				eval "$ipt -t $table ${line/#-A/-D}" 2>/dev/null || true
			done < <("$ipt" -t "$table" -S | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j (KUBE|CNI)-')
			for chain in $("$ipt" -t "$table" -S | awk '/^-N (KUBE|CNI)-/ {print $2}'); do
				"$ipt" -t "$table" -F "$chain" 2>/dev/null || true
			done
			for chain in $("$ipt" -t "$table" -S | awk '/^-N (KUBE|CNI)-/ {print $2}'); do
				"$ipt" -t "$table" -X "$chain" 2>/dev/null || true
			done
		done
	done
}

cmd_down() {
	check_host
	[[ -d "$dir" ]] || {
		log "nothing to stop ($dir does not exist)"
		return 0
	}
	local t0=$SECONDS
	# Pods first, through the kubelet, so their networks are torn down by CNI.
	if pid_of kube-apiserver >/dev/null && pid_of kubelet >/dev/null; then
		# A terminating namespace accepts no new pod; its pods go with a short grace period.
		kctl delete namespace "$APP_NS" "$DB_NS" --wait=false >/dev/null 2>&1 || true
		local ns
		for ns in "$APP_NS" "$DB_NS"; do
			kctl -n "$ns" delete pods --all --grace-period=1 --wait=false >/dev/null 2>&1 || true
		done
		wait_until 30 "the pods to stop" no_pod_tasks || true
	fi
	local i
	for ((i = ${#PROCS[@]} - 1; i >= 0; i--)); do
		if [[ "${PROCS[$i]}" == containerd ]] && pid_of containerd >/dev/null; then
			# Whatever is still running: kill its tasks (the shims exit with them).
			local task
			for task in $(ctr_ tasks ls -q 2>/dev/null); do
				ctr_ tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
			done
			wait_until 10 "the tasks to exit" no_running_tasks || true
			for task in $(ctr_ tasks ls -q 2>/dev/null); do
				ctr_ tasks rm -f "$task" >/dev/null 2>&1 || true
			done
		fi
		stop_pid "${PROCS[$i]}"
	done
	# Shims left by a containerd that died first.
	local shim
	for shim in $(pgrep -f "containerd-shim-runc-v2 -namespace k8s.io -id [0-9a-f]+ -address $dir/" || true); do
		kill -KILL "$shim" 2>/dev/null || true
	done
	"$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
	clean_iptables
	# Mounts under the cluster folder (pod volumes, rootfs, shm), deepest first.
	local m
	for m in $(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	# Network namespaces of pod sandboxes that nothing uses any more.
	local ns
	for ns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do
		[[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]] && ip netns delete "$ns" 2>/dev/null || true
	done
	rm -f /var/lib/cni/results/aila-* 2>/dev/null || true
	ip link delete "$BRIDGE" 2>/dev/null || true
	[[ -s "$dir/ip_forward.before" ]] && cat "$dir/ip_forward.before" >/proc/sys/net/ipv4/ip_forward
	rm -rf "$dir"
	log "down in $((SECONDS - t0))s"
}

no_pod_tasks() {
	[[ -z "$(kctl get pods -A -o name 2>/dev/null)" ]] && no_running_tasks
}

no_running_tasks() {
	! ctr_ tasks ls 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING"' | grep -q .
}

cmd_status() {
	local name pid up=1
	for name in "${PROCS[@]}"; do
		if pid="$(pid_of "$name")"; then
			printf '%-24s running (pid %s)\n' "$name" "$pid"
		else
			printf '%-24s stopped\n' "$name"
			up=0
		fi
	done
	if pid_of kube-apiserver >/dev/null; then
		kctl get nodes -o wide 2>/dev/null || true
		kctl get pods -A -o wide 2>/dev/null || true
		echo "Service: $(service_address || echo none)   KUBECONFIG=$dir/kubeconfig"
	fi
	((up == 1))
}

cmd_env() {
	echo "export KUBECONFIG=$dir/kubeconfig"
	echo "export PATH=$bin:\$PATH"
	echo "export AILA_SERVICE=$(service_address || true)"
}

with_database=1
case "${1:-}" in
up)
	case "${2:-}" in
	"") ;;
	--without-database) with_database=0 ;;
	*)
		echo "usage: $0 up [--without-database]" >&2
		exit 2
		;;
	esac
	cmd_up
	;;
down) cmd_down ;;
status) cmd_status ;;
env) cmd_env ;;
deps)
	check_host
	install_packages
	build_binaries
	;;
packages)
	check_host
	install_packages
	;;
*)
	echo "usage: $0 up [--without-database]|down|status|env|deps|packages" >&2
	exit 2
	;;
esac
