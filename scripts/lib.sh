# Sourced by the generators (scripts/gen-crds.sh, scripts/gen-protos.sh), which rewrite
# generated files or, with --check, only compare them.

# parse_check_flag ARGS... sets check to true for --check and to false for no argument; for
# anything else it prints the usage and exits 2.
parse_check_flag() {
	check=false
	case "${1:-}" in
	--check) check=true ;;
	"") ;;
	*)
		echo "usage: $0 [--check]" >&2
		exit 2
		;;
	esac
}
