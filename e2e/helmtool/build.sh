#!/usr/bin/env bash
# Builds the helm command for the chart tests from Go module sources
# (helm.sh/helm/v3, pinned by this directory's go.mod/go.sum) into a cache
# that later runs reuse:
#
#   ${NETPOL_GUARD_TOOLS_CACHE:-$HOME/.cache/netpol-guard/tools}/helm-<ver>_<hash>/bin/helm
#
# <hash> covers go.mod, go.sum, the Go version, the platform and the build
# flags, so a change to any of them builds anew and an unchanged one is reused
# (nothing is compiled, the script returns at once).
#
# Logs go to stderr; stdout is only the binary's path, on the last line, so that
#   export HELM="$(bash e2e/helmtool/build.sh)"
# points the chart tests (e2e/chart_test.go) at it.
#
# Environment:
#   NETPOL_GUARD_TOOLS_CACHE  cache root (default $HOME/.cache/netpol-guard/tools)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
# shellcheck source=../toolcache.sh
source ../toolcache.sh

# Flags as in Helm's own release build (its Makefile): static, trimmed,
# stripped, version-stamped, and told which Kubernetes minor its client
# libraries speak (the default for .Capabilities.KubeVersion and lint).
export CGO_ENABLED=0
helm_version="$(modver helm.sh/helm/v3)"   # e.g. v3.22.0
k8s_version="$(modver k8s.io/client-go)"   # e.g. v0.35.1
k8s_minor="${k8s_version#v0.}"; k8s_minor="${k8s_minor%%.*}"
ldflags="-s -w"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=${helm_version}"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=archive"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
	ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${k8s_minor}"
done

open_cache "helm-${helm_version}_$(build_hash "CGO_ENABLED=$CGO_ENABLED ldflags=$ldflags")"
bin="$cache/bin/helm"

if [[ -x "$bin" ]]; then
	log "reusing $bin"
else
	log "building helm ${helm_version} into $bin"
	tmp="$(mktemp -d "$cache/.build.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	start=$SECONDS
	# -mod=readonly: go.sum must already be complete (run `go mod tidy` here).
	go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm
	"$tmp/helm" version >&2
	mkdir -p "$(dirname "$bin")"
	mv -f "$tmp/helm" "$bin"
	log "built in $((SECONDS - start))s: $(du -h "$bin" | cut -f1)"
fi

echo "$bin"
