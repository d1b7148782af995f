#!/usr/bin/env bash
# A guest that balloons while it migrates (issue 11): a 1 GiB verify guest
# at mem-set 512 starts moving A -> B over a 100 MB/s link and is given
# all its memory back while the rounds run (the balloon populates: new
# frames mapped over the guest mapping), then moves B -> A and gives
# 512 MiB back while the rounds run (decrease: the range remapped to
# zeros). Each migration must succeed, the guest resume on the target with
# zero verify mismatches and hold what it ballooned to. Before the fix the
# first failed with "reading the dirty log: Operation not permitted": the
# remapped range had left log-dirty's write tracking.
# Hosts A = 127.0.5.2 and B = 127.0.5.3 (TLS from xl tls-setup); soft only:
# kvm's dirty log follows its memslots, which populate does not remap.
# Usage: tests/integration/balloon-migrate.sh BUILD_DIR  (KEEP_TMP=1 keeps it)
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-balloon-migrate.XXXXXX)
A_ADDR=127.0.5.2 B_ADDR=127.0.5.3
P=$((20000 + RANDOM % 20000))
declare -A PID=() ADDR=([A]=$A_ADDR [B]=$B_ADDR) PORTS=([A]=$P [B]=$P)
HOST_MEMORY=2G
NAME=bvm
VERIFY_PAGES=65536 # ws=256M

cleanup() {
	stop_hosts
	[[ -n "${KEEP_TMP:-}" ]] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

mem_of() { xlh "$1" list "$NAME" 2>/dev/null | awk -v n="$NAME" '$1 == n { print $3 }'; }
mem_is() { [[ "$(mem_of "$1")" == "$2" ]]; }
# wait_until TENTHS COMMAND...: up to TENTHS x 0.1 s for COMMAND to succeed
wait_until() {
	local i n=$1
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
# How often ferryd HOST turned log-dirty on; logdirty_after HOST N: more
# than N times (the first round has begun then).
logdirty_ons() { grep -c 'logdirty: d[0-9]*: wp on' "$TMP/ferryd-$1.out"; }
logdirty_after() { (($(logdirty_ons "$1") > $2)); }
# The balloon driver's line for a target reached, in KiB.
reached() { echo "balloon: target $(($1 * 1024)) KiB, current $(($1 * 1024)) KiB"; }

# migrate_ballooning FROM TO_ADDR MIB LABEL: xl migrate at 100 MB/s, and
# once its rounds run, xl mem-set gives the guest's balloon the target MIB
# (allowed during a migration's rounds, as on Xen).
migrate_ballooning() {
	local from=$1 to=$2 mib=$3 what=$4 p t id n
	n=$(logdirty_ons "$from")
	id=$(xlh "$from" list "$NAME" 2>/dev/null | awk 'NR == 2 { print $2 }')
	xlh "$from" migrate --json --bandwidth 100M "$NAME" "$to:$P" \
		>"$TMP/report.json" 2>"$TMP/migrate.err" &
	p=$!
	check "$what: log-dirty is on (the rounds run)" wait_until 300 logdirty_after "$from" "$n"
	check "$what: xl mem-set $mib while the migration runs" \
		xlh "$from" mem-set "$NAME" "$mib"
	check "$what: the balloon reaches $mib MiB before the migration ends" \
		wait_since "$from" "$(reached "$mib")"
	check "$what: the migration was still running then" kill -0 $p
	wait $p
	t=$?
	check "$what: xl migrate succeeds" test $t = 0
	[[ $t = 0 ]] || sed 's/^/# /' "$TMP/migrate.err"
}

# After a move to TO: the guest runs there, verify resumed with zero
# mismatches and keeps sweeping clean, and it holds MIB.
landed() { # TO MIB LABEL
	local to=$1 mib=$2 what=$3
	check "$what: the domain runs on the target" running "$to" "$NAME"
	check "$what: verify resumes with zero mismatches" \
		wait_since "$to" "verify: resume pages=$VERIFY_PAGES mismatches=0"
	check "$what: verify sweeps again on the target" wait_since "$to" "verify: sweep"
	check "$what: no mismatch on the target" no_bad_since "$to"
	check "$what: xl list on the target shows $mib MiB" wait_until 600 mem_is "$to" "$mib"
	check "$what: nothing left on the source" clean_on "$([[ $to == A ]] && echo B || echo A)"
	check "$what: exactly one running copy" test "$(copies)" = 1
}

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f (build first)"; exit 1; }; done
timeout 60 "$XL" tls-setup --dir "$TMP/tls" --host $A_ADDR --host $B_ADDR >/dev/null 2>&1 ||
	{ echo "xl tls-setup failed"; exit 1; }
start_host A soft || { echo "ferryd A did not start"; exit 1; }
start_host B soft || { echo "ferryd B did not start"; exit 1; }
cat >"$TMP/$NAME.cfg" <<CFG
name = "$NAME"
memory = 1024
maxmem = 1024
extra = "workload=verify ws=256M rate=60M"
CFG
check "xl create on A" xlh A create "$TMP/$NAME.cfg"
mark A
check "verify sweeps on A" wait_since A "verify: sweep pages=$VERIFY_PAGES mismatches=0"
check "xl mem-set 512 on A" xlh A mem-set "$NAME" 512
check "the balloon reaches 512 MiB" wait_since A "$(reached 512)"
check "xl list shows 512" wait_until 600 mem_is A 512

# Up: populate maps fresh frames over the range log-dirty tracks.
mark A
mark B
migrate_ballooning A $B_ADDR 1024 "balloon up, A -> B"
landed B 1024 "balloon up, A -> B"

# Down: decrease maps zeros over the range log-dirty tracks.
mark A
mark B
migrate_ballooning B $A_ADDR 512 "balloon down, B -> A"
landed A 512 "balloon down, B -> A"

xlh A destroy "$NAME" >/dev/null 2>&1
if ((failed)); then
	for h in A B; do
		echo "--- ferryd $h output"
		grep -Ei 'error|warn|fail' "$TMP/ferryd-$h.out" | tail -20
	done
fi
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
