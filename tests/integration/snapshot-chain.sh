#!/usr/bin/env bash
# A scheduled chain of snapshots and a daemon killed mid-snapshot (issue 12's
# test list), on one ferryd (soft backend, no listener; its own temp dirs
# under /tmp/ferry-snapchain.*):
#  1. a verify guest dirtying memory while a ticker writes a xenstore key
#     (data/tick) every 50 ms; xl snapshot-schedule --every 1s --keep 12
#     takes a chain of at least 10, each after the first incremental on
#     the one before it
#  2. the first, a middle and the last snapshot exported: each carries a
#     different tick (the instant it was taken), in order
#  3. revert to each of the three, fully and lazily: verify resumes with
#     zero mismatches and the tick is that snapshot's, so the revert went
#     to the right instant (a revert to the wrong one verifies clean too)
#  4. delete the snapshot after the middle one and revert to its child
#  5. kill -9 ferryd while a second domain's snapshot is being written:
#     ferryd starts again, the partial snapshot is gone and its space back,
#     the repository verifies, and the chain still reverts (the domain,
#     gone with the daemon, found by the name it had)
#  6. dedup across domains: two guests with the same memory cost about one
#     snapshot with ferryd --snapshot-dedup host, two without (the default)
# Usage: tests/integration/snapshot-chain.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-snapchain.XXXXXX)
RUN=$TMP/run STATE=$TMP/state
export FERRY_SOCKET=$RUN/ferryd.sock
ferryd_pid=
TICKER=
VM=chainvm

cleanup() {
	[[ -z $TICKER ]] || kill "$TICKER" 2>/dev/null
	stop_ferryd
	[[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f (build first)"; exit 1; }; done

xl() { timeout 120 "$XL" "$@"; }
start() { # [ferryd flags]
	rm -f "$FERRY_SOCKET"
	timeout 900 "$FERRYD" --foreground --on-stop destroy --backend soft --memory 1G \
		--run-dir "$RUN" --state-dir "$STATE" "$@" >>"$TMP/ferryd.out" 2>&1 &
	ferryd_pid=$!
	wait_socket "$FERRY_SOCKET"
}
domid() { xl list "$1" 2>/dev/null | awk 'NR == 2 { print $2 }'; }
tick() { xl xenstore-read "/local/domain/$(domid "$1")/data/tick" 2>/dev/null; }
console() { timeout 2 "$XL" console "$1" 2>/dev/null; }
# wait_console DOMAIN PATTERN COUNT: up to 30 s for COUNT lines
wait_console() {
	local end=$((SECONDS + 30))
	while ((SECONDS < end)); do
		(($(console "$1" | grep -c -- "$2") >= $3)) && return 0
		sleep 0.2
	done
	return 1
}
# Every revert here starts from a snapshot taken before any revert, so the
# console history it brings back holds no resume line: one is this one's.
resumed_clean() {
	wait_console "$1" "verify: resume pages=8192 mismatches=0" 1 &&
		! console "$1" | grep -qE 'verify: mismatch|mismatches=[1-9]'
}
# snaps DOMAIN: complete snapshots, oldest first, "NAME PARENT" a line
snaps() {
	xl snapshot-list --json "$1" >"$TMP/list.json" 2>/dev/null || return 1
	python3 -c '
import json, sys
v = [s for s in json.load(open(sys.argv[1]))["snapshots"] if s["state"] == "complete"]
for s in sorted(v, key=lambda s: (s["time"], s["name"])):
    print(s["name"], s.get("parent") or "-")' "$TMP/list.json"
}
nsnaps() { snaps "$1" | wc -l; }
at_least() { (($("${@:2}") >= $1)); }
# stream_tick FILE: data/tick's value in an exported stream's xenstore
# record (its "key NUL value NUL" pairs, formats/SPEC.md 6.1)
stream_tick() {
	python3 -c '
import sys
b = open(sys.argv[1], "rb").read()
i = b.find(b"data/tick\0")
if i < 0: sys.exit("no data/tick in " + sys.argv[1])
v = b[i + 10:b.index(b"\0", i + 10)]
print(v.decode())' "$1"
}
until_true() { # SECONDS COMMAND...: polls every 0.05 s
	local n=$(($1 * 20))
	shift
	while ((n-- > 0)); do "$@" && return 0; sleep 0.05; done
	return 1
}
cfg() { # NAME MEMORY EXTRA
	printf 'name = "%s"\nmemory = %s\nextra = "%s"\n' "$1" "$2" "$3" >"$TMP/$1.cfg"
}

start || { not_ok "ferryd starts"; exit 1; }

# ---- 1. a scheduled chain under load ---------------------------------------
cfg "$VM" 128 "workload=verify ws=32M rate=8M"
check "xl create $VM (verify, 32 MiB at 8 MiB/s)" xl create "$TMP/$VM.cfg"
check "the guest sweeps" wait_console "$VM" "verify: sweep" 1
id=$(domid "$VM")
(
	i=0
	while :; do
		i=$((i + 1))
		"$XL" xenstore-write "/local/domain/$id/data/tick" "$i" 2>/dev/null
		sleep 0.05
	done
) &
TICKER=$!
check "xl snapshot-schedule $VM --every 1s --keep 12" \
	xl snapshot-schedule "$VM" --every 1s --keep 12
check "ten snapshots are taken within 60 s" until_true 60 at_least 10 nsnaps "$VM"
check "xl snapshot-schedule $VM --off" xl snapshot-schedule "$VM" --off
kill "$TICKER" 2>/dev/null
wait "$TICKER" 2>/dev/null
TICKER=
snaps "$VM" >"$TMP/chain"
mapfile -t NAMES < <(awk '{ print $1 }' "$TMP/chain")
n=${#NAMES[@]}
echo "# chain of $n: ${NAMES[*]}"
chained() { # each after the first has the one before as parent
	awk 'NR > 1 && $2 != prev { exit 1 } { prev = $1 }' "$TMP/chain"
}
check "each snapshot's parent is the one before it" chained
FIRST=${NAMES[0]} MID=${NAMES[$((n / 2))]} LAST=${NAMES[$((n - 1))]}

# ---- 2. three instants -----------------------------------------------------
declare -A T=()
for s in "$FIRST" "$MID" "$LAST"; do
	check "xl snapshot-export $VM $s" xl snapshot-export "$VM" "$s" "$TMP/$s.export"
	T[$s]=$(stream_tick "$TMP/$s.export")
done
echo "# ticks: first ${T[$FIRST]}, middle ${T[$MID]}, last ${T[$LAST]}"
check "the three carry different ticks, in order" \
	test "${T[$FIRST]:-0}" -lt "${T[$MID]:-0}" -a "${T[$MID]:-0}" -lt "${T[$LAST]:-0}"

# ---- 3. revert to each, fully and lazily ----------------------------------
revert() { # [--lazy] SNAPSHOT
	local s=${*: -1} flags=("${@:1:$#-1}")
	check "snapshot-revert ${flags[*]} $VM $s" xl snapshot-revert "${flags[@]}" "$VM" "$s"
	check "... verify resumes with zero mismatches" resumed_clean "$VM"
	check "... the tick is $s's (${T[$s]})" test "$(tick "$VM")" = "${T[$s]}"
}
lazy_done() { grep -c 'lazy restore: every page in' "$TMP/ferryd.out" 2>/dev/null; }
for s in "$FIRST" "$MID" "$LAST"; do
	revert "$s"
	before=$(lazy_done)
	revert --lazy "$s"
	check "... and every page came in" until_true 30 at_least $((before + 1)) lazy_done
done

# ---- 4. delete in the middle -----------------------------------------------
NEXT=${NAMES[$((n / 2 + 1))]} CHILD=${NAMES[$((n / 2 + 2))]}
check "xl snapshot-delete $VM $NEXT (after the middle)" xl snapshot-delete "$VM" "$NEXT"
check "xl snapshot-export $VM $CHILD (its child)" \
	xl snapshot-export "$VM" "$CHILD" "$TMP/$CHILD.export"
T[$CHILD]=$(stream_tick "$TMP/$CHILD.export")
revert "$CHILD"
check "xl snapshot-verify $VM: the whole chain is sound" xl snapshot-verify "$VM"

# ---- 5. kill -9 mid-snapshot ------------------------------------------------
cfg big 512 "workload=dirty ws=384M rate=400M data=mix"
check "xl create big (512 MiB, dirtying 400 MiB/s)" xl create "$TMP/big.cfg"
sleep 3
repo_bytes() { du -sb "$STATE/snapshots" | awk '{ print $1 }'; }
size0=$(repo_bytes)
xl snapshot-create -n partial big >/dev/null 2>&1 &
creator=$!
# A full snapshot of big takes ~0.7 s here: killed as soon as it is listed.
being_written() { "$XL" snapshot-list big 2>/dev/null | grep -q 'partial.*being written'; }
check "the snapshot of big is being written" until_true 30 being_written
real=$(cat "$RUN/ferryd.pid") # ferryd_pid is timeout's
kill -9 "$real"
wait "$ferryd_pid" 2>/dev/null
wait "$creator" 2>/dev/null
ferryd_pid=
check "ferryd starts again after kill -9" start
listed_all() { xl snapshot-list >"$TMP/all.txt" 2>&1 && grep -q "$LAST" "$TMP/all.txt"; }
check "xl snapshot-list lists the chain after the restart" listed_all
check "the partial snapshot is gone" bash -c "! grep -q partial '$TMP/all.txt'"
size1=$(repo_bytes)
echo "# repository: $size0 bytes before, $size1 after the restart"
check "its space is back (within 1 MiB)" test "$size1" -le $((size0 + (1 << 20)))
check "xl snapshot-verify: the repository is sound" xl snapshot-verify "$VM"
check "$VM is gone with the daemon" bash -c "! '$XL' list '$VM' >/dev/null 2>&1"
revert "$LAST"
check "ferryd logged no error" bash -c "! grep -q 'error:' '$STATE/ferryd.log'"
xl destroy "$VM" >/dev/null 2>&1

# ---- 6. dedup across domains, per repository -------------------------------
# Two idle guests whose working sets are the same 16 MiB (idle's fill is a
# function of the page's index alone): with --snapshot-dedup host the
# second's snapshot stores almost nothing new; in a repository made without
# it (the default), as much as the first. A fresh state dir each.
# twins FLAGS...: the bytes each of two twins' first snapshots wrote; a
# step that fails says which on stderr, with ferryd's last lines
twins() {
	local b1 b2 d i
	twins_fail() {
		echo "# twins $*: $1 failed; ferryd said:" >&2
		tail -5 "$TMP/ferryd.out" | sed 's/^/#   /' >&2
		return 1
	}
	stop_ferryd
	STATE=$TMP/state-twins$#
	start "$@" || { twins_fail "ferryd start" "$@"; return 1; }
	for d in t1 t2; do
		cfg "$d" 64 "workload=idle ws=16M fill=16M"
		xl create "$TMP/$d.cfg" >"$TMP/twins.err" 2>&1 ||
			{ twins_fail "xl create $d: $(tail -1 "$TMP/twins.err")" "$@"; return 1; }
	done
	for d in t1 t2; do
		for ((i = 0; i < 450; i++)); do
			grep -q "idle: filled" "$STATE/console/guest-$d.log" 2>/dev/null && break
			sleep 0.2
		done
		((i < 450)) || { twins_fail "$d's fill (90 s)" "$@"; return 1; }
	done
	b1=$(xl snapshot-create --json t1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["bytes"])')
	b2=$(xl snapshot-create --json t2 | python3 -c 'import json, sys; print(json.load(sys.stdin)["bytes"])')
	echo "$b1 $b2"
}
twins >"$TMP/twins-default"
read -r d1 d2 <"$TMP/twins-default"
echo "# default repository: the twins' snapshots wrote $d1 and $d2 bytes"
check "by default each domain's snapshot stores its own pages" \
	test "${d2:-0}" -gt $((${d1:-0} * 3 / 4)) -a "${d1:-0}" -gt $((15 << 20))
twins --snapshot-dedup host >"$TMP/twins-host"
read -r h1 h2 <"$TMP/twins-host"
echo "# --snapshot-dedup host: the twins' snapshots wrote $h1 and $h2 bytes"
check "with --snapshot-dedup host the second twin's costs under a quarter of the first's" \
	test "${h2:-1}" -lt $((${h1:-0} / 4)) -a "${h1:-0}" -gt $((15 << 20))

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
