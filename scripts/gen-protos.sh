#!/usr/bin/env bash
# Generates the Go stubs of the gRPC flow APIs netpol-guard follows whose Go modules cannot be
# imported (Calico's Goldmane, Antrea's Flow Aggregator) from the proto copies kept next to
# them (flows/*/proto, each with its licence and a README naming its origin).
#
#   scripts/gen-protos.sh          rewrite the stubs
#   scripts/gen-protos.sh --check  generate into a temporary directory and fail if the
#                                  checked-in stubs differ (the protoc version comment aside)
#
# Needs protoc (Debian: protobuf-compiler). Without it --check skips, unless CI is set: then
# protoc is installed with apt-get, or the check fails. The plugins are built with the Go
# toolchain: protoc-gen-go at the google.golang.org/protobuf version go.mod requires,
# protoc-gen-go-grpc at PROTOC_GEN_GO_GRPC_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
MODULE=github.com/netpol-guard/netpol-guard

# shellcheck source=lib.sh
source scripts/lib.sh
parse_check_flag "$@"

if ! command -v protoc >/dev/null; then
	if [ -z "${CI:-}" ]; then
		if $check; then
			echo "SKIP: protoc not found, so the generated protobuf stubs were not checked (install protobuf-compiler, or set CI=true to have this script install it)" >&2
			exit 0
		fi
		echo "protoc not found: install protobuf-compiler (apt-get install protobuf-compiler)" >&2
		exit 1
	fi
	echo "==> CI: installing protoc (protobuf-compiler)" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
	command -v protoc >/dev/null || {
		echo "protoc still not found after installing protobuf-compiler" >&2
		exit 1
	}
fi

# The well-known types (google/protobuf/timestamp.proto) ship next to protoc.
wkt="$(dirname "$(command -v protoc)")/../include"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/out"
go build -o "$work/bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
GOBIN="$work/bin" GOFLAGS= go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

out=.
if $check; then
	out="$work/out"
fi

# gen PKGDIR INCLUDE PROTO... generates the stubs of the PROTOs (paths under INCLUDE, which
# is how protoc and the Go registry name them) into package PKGDIR.
gen() {
	local pkgdir=$1 include=$2
	shift 2
	local pkg m=()
	pkg=$(basename "$pkgdir")
	for p in "$@"; do
		m+=("--go_opt=M$p=$MODULE/$pkgdir;$pkg" "--go-grpc_opt=M$p=$MODULE/$pkgdir;$pkg")
	done
	mkdir -p "$out/$pkgdir"
	if ! $check; then
		rm -f "$pkgdir"/*.pb.go
	fi
	PATH="$work/bin:$PATH" protoc -I "$include" -I "$wkt" \
		--go_out="$out" --go_opt=module="$MODULE" \
		--go-grpc_out="$out" --go-grpc_opt=module="$MODULE" \
		"${m[@]}" "$@"
}

gen flows/goldmane/goldmanepb flows goldmane/proto/api.proto
gen flows/antrea/antreapb flows/antrea/proto pkg/apis/flow/v1alpha1/flow.proto pkg/apis/flow/v1alpha1/service.proto

if ! $check; then
	exit 0
fi

# The stubs name the protoc that made them; a different protoc release alone is no drift.
strip() { grep -vE '^// (	|- )protoc +v' "$1" || true; }
status=0
for dir in flows/goldmane/goldmanepb flows/antrea/antreapb; do
	want=$(cd "$out/$dir" && ls -- *.pb.go)
	have=$(cd "$dir" 2>/dev/null && ls -- *.pb.go 2>/dev/null || true)
	if [ "$want" != "$have" ]; then
		echo "$dir: stub files differ from what scripts/gen-protos.sh generates:" >&2
		diff <(echo "$have") <(echo "$want") >&2 || true
		status=1
		continue
	fi
	for f in $want; do
		if ! diff -u <(strip "$dir/$f") <(strip "$out/$dir/$f") >"$work/diff"; then
			echo "$dir/$f is stale: run scripts/gen-protos.sh" >&2
			head -40 "$work/diff" >&2
			status=1
		fi
	done
done
if [ $status -eq 0 ]; then
	echo "Generated protobuf stubs are up to date"
fi
exit $status
