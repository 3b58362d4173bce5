#!/usr/bin/env bash
# The local demo: a real kube-apiserver and etcd on this machine, the example shop and its
# flows, the netpol-guard webhook in front, and the real kubectl applying the example
# default-deny (rejected) and the same lock-down done right (admitted).
# Run from anywhere: scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
	echo "==> Building kube-apiserver, etcd and kubectl from Go module sources (the first run takes about 14 minutes on 2 cores; later runs reuse the cache)" >&2
	KUBEBUILDER_ASSETS="$(bash e2e/tools/build.sh)"
	export KUBEBUILDER_ASSETS
fi
exec go run ./e2e/demo "$@"
