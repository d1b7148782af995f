#!/bin/bash
# Every exported (non-static) symbol of a library carries its module's
# prefix (design brief section 8): lists each library's defined global
# symbols (nm -g --defined-only) and fails on any that starts with none of
# the prefixes its module may use. A module's private cross-file functions
# take its prefix with a double underscore (hyp__, ctl__), so they pass too.
# A new module adds its line here.
#   usage: check-prefixes.sh [BUILD_DIR]   (default build/)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}

# library (path under the build dir): allowed prefixes
allowed=(
	"common/libferry_common.a: ferry_ log_ afile_ size_"
	"formats/libferry_formats.a: fmt_"
	"stream/libferry_stream.a: strm_"
	"xenstore/libferry_xenstore.a: xs_"
	# The guest's workloads as a hosted library: wl_, and pv_ for the
	# guest's side of Xen's PV interfaces (hypercalls, rings, xenstore).
	"guests/libferry_workloads.a: wl_ pv_"
	"guests/libferry_soft_guest.a: wl_"
	# hyp_, and the subsystems design section 8 names under hyp.
	"hyp/libferry_hyp.a: hyp_ evtchn_ gnttab_ sched_"
	"devices/libferry_devices.a: dev_"
	"logdirty/libferry_logdirty.a: ld_"
	"migrate/libferry_migrate.a: mig_"
	"restore/libferry_restore.a: rst_"
	"snapshot/libferry_snapshot.a: snap_"
	"ha/libferry_ha.a: ha_"
	"toolstack/libferry_toolstack.a: xlm_"
)

rc=0 checked=0
for entry in "${allowed[@]}"; do
	lib=${entry%%:*}
	read -r -a prefixes <<<"${entry#*:}"
	a=$build/$lib
	if [ ! -f "$a" ]; then
		# A library that moved or was renamed must be listed again, not
		# skipped silently.
		echo "check-prefixes: $lib not built in $build" >&2
		rc=1
		continue
	fi
	checked=$((checked + 1))
	# Names the toolchain adds (sanitizers, __x86.get_pc_thunk) start with
	# an underscore pair or a dot.
	while read -r sym; do
		ok=0
		for p in "${prefixes[@]}"; do
			[[ $sym == "$p"* ]] && ok=1 && break
		done
		if ((!ok)); then
			echo "check-prefixes: $lib exports $sym (allowed: ${prefixes[*]})" >&2
			rc=1
		fi
	done < <(nm -g --defined-only "$a" | awk 'NF == 3 { print $3 }' |
		grep -v -e '^__' -e '^\.' | sort -u)
done
# Every library the build made is listed above.
while read -r a; do
	lib=${a#"$build"/}
	if ! printf '%s\n' "${allowed[@]}" | grep -q "^$lib:"; then
		echo "check-prefixes: $lib has no allowed prefixes listed" >&2
		rc=1
	fi
done < <(find "$build" -name 'libferry_*.a' -not -path '*/_deps/*' | sort)
((rc)) || echo "check-prefixes: $checked libraries, every export prefixed"
exit $rc
