#!/usr/bin/env bash
# Builds the real control-plane binaries for the e2e tests from Go module
# sources (k8s.io/kubernetes, go.etcd.io/etcd/server/v3), pinned by this
# directory's go.mod/go.sum, into a cache that later runs reuse:
#
#   ${NETPOL_GUARD_TOOLS_CACHE:-$HOME/.cache/netpol-guard/tools}/<key>/bin/
#       kube-apiserver  etcd  kubectl
#
# <key> names the versions and hashes go.mod, go.sum, the Go version, the
# platform and the build flags, so a change to any of them builds anew and an
# unchanged one is reused (nothing is compiled, the script returns at once).
#
# Logs go to stderr; stdout is only the bin dir, on the last line, so that
#   export KUBEBUILDER_ASSETS="$(e2e/tools/build.sh)"
# points envtest at the binaries.
#
# Environment:
#   NETPOL_GUARD_TOOLS_CACHE  cache root (default $HOME/.cache/netpol-guard/tools)
#   NETPOL_GUARD_NO_KUBECTL=1 do not build kubectl (saves a few minutes)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
# shellcheck source=../toolcache.sh
source ../toolcache.sh

# Flags as in Kubernetes' own release build (hack/lib/golang.sh): static,
# trimmed, stripped, with the same build tags.
export CGO_ENABLED=0
tags="selinux,notest,grpcnotrace"

k8s_version="$(modver k8s.io/kubernetes)"        # e.g. v1.37.2
etcd_version="$(modver go.etcd.io/etcd/server/v3)" # e.g. v3.7.0
k8s_time="$(go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"

# Version stamping as in hack/lib/version.sh, so `kube-apiserver --version`
# and /version report the real release instead of v0.0.0-master.
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	ldflags+=" -X '${pkg}.gitVersion=${k8s_version}'"
	ldflags+=" -X '${pkg}.gitMajor=${major}'"
	ldflags+=" -X '${pkg}.gitMinor=${minor}'"
	ldflags+=" -X '${pkg}.gitTreeState=archive'"
	ldflags+=" -X '${pkg}.buildDate=${k8s_time:-1970-01-01T00:00:00Z}'"
done

bins=(kube-apiserver etcd)
[[ "${NETPOL_GUARD_NO_KUBECTL:-}" == 1 ]] || bins+=(kubectl)

open_cache "k8s-${k8s_version}_etcd-${etcd_version}_$(build_hash "CGO_ENABLED=$CGO_ENABLED tags=$tags ldflags=$ldflags")"
bindir="$cache/bin"

have_all() {
	local b
	for b in "${bins[@]}"; do [[ -x "$bindir/$b" ]] || return 1; done
}

if have_all; then
	log "reusing $bindir"
else
	log "building ${bins[*]} (k8s.io/kubernetes ${k8s_version}, etcd ${etcd_version}) into $bindir"
	log "a first build takes ~15 min on 2 cores; later runs reuse the cache"
	tmp="$(mktemp -d "$cache/.build.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	start=$SECONDS
	k8s_pkgs=(k8s.io/kubernetes/cmd/kube-apiserver)
	[[ " ${bins[*]} " == *" kubectl "* ]] && k8s_pkgs+=(k8s.io/kubernetes/cmd/kubectl)
	# -mod=readonly: go.sum must already be complete (run `go mod tidy` here).
	go build -mod=readonly -trimpath -tags "$tags" -ldflags "$ldflags" \
		-o "$tmp/" "${k8s_pkgs[@]}"
	# The etcd server's main package is the root of go.etcd.io/etcd/server/v3
	# (its default binary name would be "server").
	go build -mod=readonly -trimpath -tags "$tags" -ldflags "-s -w" \
		-o "$tmp/etcd" go.etcd.io/etcd/server/v3
	"$tmp/kube-apiserver" --version >&2
	"$tmp/etcd" --version >&2
	[[ ! -e "$tmp/kubectl" ]] || "$tmp/kubectl" version --client >&2
	mkdir -p "$bindir"
	for b in "${bins[@]}"; do mv -f "$tmp/$b" "$bindir/$b"; done
	log "built in $((SECONDS - start))s: $(cd "$bindir" && du -sh "${bins[@]}" | tr '\n\t' '  ')"
fi

echo "$bindir"
