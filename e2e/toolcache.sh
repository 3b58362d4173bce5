# Sourced by e2e/tools/build.sh and e2e/helmtool/build.sh, run in the directory whose
# go.mod/go.sum pin the tool: the cache both build into,
#
#   ${NETPOL_GUARD_TOOLS_CACHE:-$HOME/.cache/netpol-guard/tools}/<key>/
#
# and how a key is made, so that a change to what a build depends on builds anew and an
# unchanged one is reused.

# log MESSAGE... writes a line to stderr, named by the build script's directory
# ("e2e/tools: …"); stdout is the script's answer alone.
log() { printf 'e2e/%s: %s\n' "$(basename "$PWD")" "$*" >&2; }

# modver MODULE prints the version of MODULE that go.mod requires.
modver() { go list -m -f '{{.Version}}' "$1"; }

# build_hash FLAGS prints 12 hex digits of go.mod, go.sum, the Go version, the platform and
# FLAGS (the build flags, as one line).
build_hash() {
	{
		cat go.mod go.sum
		go env GOVERSION GOOS GOARCH
		echo "$1"
	} | sha256sum | cut -c1-12
}

# open_cache KEY sets cache to KEY's directory, makes it, and holds its lock (fd 9) until
# the script exits: one builder at a time per key, as parallel test packages may all call
# the build scripts.
open_cache() {
	cache="${NETPOL_GUARD_TOOLS_CACHE:-$HOME/.cache/netpol-guard/tools}/$1"
	mkdir -p "$cache"
	if command -v flock >/dev/null; then
		exec 9>"$cache/.lock"
		flock 9
	fi
}
