#!/usr/bin/env bash
# Installs every system prerequisite of hoist's build and tests (idempotent),
# starts containerd with a hoist-owned config when none is running, and prints
# the versions found. Run as root (it is what `make deps` calls).
set -euo pipefail

PACKAGES=(
  containerd runc            # container runtime
  iptables nftables conntrack iproute2 kmod   # data paths and their inspection
  busybox-static             # shell applets inside the testbox image
  docker-registry            # local registry for image pull tests
  etcd-server etcd-client    # external-etcd tests and the etcd benchmark peer
  clang llvm libbpf-dev      # eBPF programs (make generate)
  containernetworking-plugins  # reference CNI plugins: benchmark peer
  curl ca-certificates git make
)

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: must run as root (apt-get install, containerd)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's docker-registry and etcd packages start services on systems with an
# init; hoist's tests start their own instances on private ports instead.

# containerd for `make up` (tests start private ones).
HOIST_CONTAINERD_DIR=${HOIST_CONTAINERD_DIR:-/var/lib/hoist/containerd}
SOCK=/run/containerd/containerd.sock
if ! ctr --address "$SOCK" version >/dev/null 2>&1; then
  mkdir -p "$HOIST_CONTAINERD_DIR" /run/containerd
  cat > "$HOIST_CONTAINERD_DIR/config.toml" <<TOML
# Written by hoist's deps.sh: the system containerd for \`hoist up\`.
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
# hoist's kubelet uses containerd's Go client directly, not CRI.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
TOML
  echo "deps: starting containerd with $HOIST_CONTAINERD_DIR/config.toml"
  setsid nohup containerd --config "$HOIST_CONTAINERD_DIR/config.toml" \
    >/var/log/hoist-containerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 100); do
    ctr --address "$SOCK" version >/dev/null 2>&1 && break
    sleep 0.1
  done
  ctr --address "$SOCK" version >/dev/null 2>&1 || { echo "deps: containerd did not start; see /var/log/hoist-containerd.log" >&2; exit 1; }
fi

echo "deps: versions found"
printf '  %-14s %s\n' \
  go "$(go version 2>/dev/null | awk '{print $3}')" \
  containerd "$(containerd --version | awk '{print $3}')" \
  runc "$(runc --version | head -1 | awk '{print $3}')" \
  iptables "$(iptables --version)" \
  nft "$(nft --version)" \
  etcd "$(etcd --version 2>/dev/null | head -1)" \
  registry "$(docker-registry --version 2>/dev/null | head -1 || echo present)" \
  clang "$(clang --version | head -1)" \
  busybox "$(busybox | head -1 | awk '{print $2}')" \
  kubectl "$(kubectl version --client 2>/dev/null | head -1)"
