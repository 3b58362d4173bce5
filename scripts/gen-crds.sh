#!/usr/bin/env bash
# Generates, from the Go types of apis/ (kubebuilder markers), their deepcopy functions and
# the CustomResourceDefinitions the chart ships (charts/netpol-guard/crds/).
#
#   scripts/gen-crds.sh          rewrite them
#   scripts/gen-crds.sh --check  generate into a temporary directory and fail if the
#                                checked-in files differ
#
# controller-gen is run from the Go module proxy at CONTROLLER_GEN_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."

CONTROLLER_GEN_VERSION=v0.23.0
CRD_DIR=charts/netpol-guard/crds

# shellcheck source=lib.sh
source scripts/lib.sh
parse_check_flag "$@"

controller_gen() {
	GOFLAGS=-mod=mod go run "sigs.k8s.io/controller-tools/cmd/controller-gen@${CONTROLLER_GEN_VERSION}" "$@"
}

generate() { # generate CRD_OUT: deepcopy in place (or into a copy), CRDs into CRD_OUT
	local root=$1 crds=$2
	(cd "$root" && controller_gen object paths=./apis/... &&
		controller_gen crd paths=./apis/... output:crd:artifacts:config="$crds")
}

if ! $check; then
	generate . "$PWD/$CRD_DIR"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A copy of the module's sources, so that generating deepcopy code does not touch the tree.
git ls-files -z --cached --others --exclude-standard -- go.mod go.sum apis | xargs -0 -I{} cp --parents {} "$tmp"
mkdir -p "$tmp/crds"
generate "$tmp" "$tmp/crds"
status=0
for f in "$tmp"/apis/*/zz_generated.deepcopy.go; do
	rel=${f#"$tmp"/}
	if ! diff -u "$rel" "$f"; then
		echo "$rel is out of date: run scripts/gen-crds.sh" >&2
		status=1
	fi
done
if ! diff -ru "$CRD_DIR" "$tmp/crds"; then
	echo "$CRD_DIR is out of date: run scripts/gen-crds.sh" >&2
	status=1
fi
exit $status
