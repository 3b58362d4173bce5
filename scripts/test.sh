#!/usr/bin/env bash
# The project's test command: formatting, vet, the control plane the e2e tests need, and
# every test with the race detector, then a short run of each fuzz target.
# Run from anywhere: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" $unformatted >&2
	exit 1
fi

echo "==> generated protobuf stubs"
bash scripts/gen-protos.sh --check

echo "==> generated deepcopy functions and CRDs"
bash scripts/gen-crds.sh --check

echo "==> go vet"
go vet ./...

echo "==> nftables and iproute2 for the agent's tests on real kernel conntrack"
if ! command -v nft >/dev/null || ! command -v ip >/dev/null; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables iproute2
fi

echo "==> chromium for the check -o html picture test (headless; required under CI=true)"
if [ "${CI:-}" = "true" ] && ! command -v chromium >/dev/null; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

echo "==> control plane for the e2e tests (built from Go module sources once, then cached)"
if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
	KUBEBUILDER_ASSETS="$(bash e2e/tools/build.sh)"
	export KUBEBUILDER_ASSETS
fi
echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"

echo "==> helm for the chart tests (built from Go module sources once, then cached)"
if [ -z "${HELM:-}" ]; then
	HELM="$(bash e2e/helmtool/build.sh)"
	export HELM
fi
echo "HELM=$HELM"

echo "==> the netpol-guard binary the end-to-end tests run (built once, shared by them all)"
if [ -z "${NETPOL_GUARD_BINARY:-}" ]; then
	bindir="$(mktemp -d)"
	trap 'rm -rf "$bindir"' EXIT
	go build -o "$bindir/netpol-guard" .
	NETPOL_GUARD_BINARY="$bindir/netpol-guard"
	export NETPOL_GUARD_BINARY
fi

echo "==> go test -race"
go test -race -count=1 -timeout 40m ./...

echo "==> fuzz targets (a few seconds each, on top of their seed corpora)"
# Every (package, target) pair: two packages may name a target alike.
grep -rHoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed -E 's|^(.*)/[^/]+_test\.go:func |\1 |' | sort -u |
	while read -r pkg target; do
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="${FUZZTIME:-5s}" -fuzzminimizetime=100x "$pkg" </dev/null
	done
