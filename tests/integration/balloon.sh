#!/usr/bin/env bash
# Ballooning against a real ferryd: xl mem-set down and up through
# memory/target and the built-in guest's balloon driver, xl info's free
# memory following it, xl mem-max, populate past maxmem refused, verify
# clean throughout, then save/restore of the ballooned domain. On both
# backends (FERRY_TEST_BACKENDS, default "soft kvm"): the balloon driver
# talks Xen's hypercall ABI, which soft's workloads get as the guest
# kernel's do.
# Usage: tests/integration/balloon.sh BUILD_DIR  (KEEP=1 keeps its temp dir)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=${1:?usage: $0 BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-balloon.XXXXXX)
ferryd_pid=

cleanup() {
	stop_ferryd
	[[ -n "${KEEP:-}" ]] || rm -rf "$TMP"
}
trap cleanup EXIT

# lib.bash's, naming the backend B
ok() { passed=$((passed + 1)); echo "ok   - ${B:+$B: }$*"; }
not_ok() { failed=$((failed + 1)); echo "FAIL - ${B:+$B: }$*"; }
xl() { timeout 30 "$XL" "$@"; }
fails() { ! xl "$@" >"$TMP/refused.out" 2>&1; }
free_mb() { xl info | awk '$1 == "free_memory" { print $3 }'; }
mem_of() { xl list "$1" | awk -v n="$1" '$1 == n { print $3 }'; }
# The recent console holds output from before (and, restored, from before
# the save): count_console DOMAIN FIXED-STRING counts a line's copies, and
# wait_console DOMAIN FIXED-STRING [N] waits up to 60 s for more than N.
count_console() {
	timeout 2 "$XL" console "$1" >"$TMP/console.out" 2>&1 </dev/null || true
	grep -cF -- "$2" "$TMP/console.out" || true
}
wait_console() {
	local end=$((SECONDS + 60))
	while ((SECONDS < end)); do
		(($(count_console "$1" "$2") > ${3:-0})) && return 0
	done
	return 1
}
# Free memory moved by want MiB: xl info counts whole MiB (the pool is
# exact to the page, tests/hyp/test-balloon.c checks that), so a page
# count off by the truncation of either figure is at most 1 MiB.
near() { local d=$(($1 - $2)); ((d >= -1 && d <= 1)); }

for f in "$XL" "$FERRYD"; do
	[[ -x "$f" ]] || { echo "missing $f (build first)"; exit 1; }
done
cat >"$TMP/vm1.cfg" <<'CFG'
name = "vm1"
memory = 256
maxmem = 256
vcpus = 1
extra = "workload=verify ws=8M rate=4M"
CFG

start_ferryd() { # BACKEND RUN_DIR STATE_DIR: started, its socket there
	timeout 1200 "$FERRYD" --foreground --on-stop destroy --backend "$1" --memory 1G \
		--run-dir "$2" --state-dir "$3" >"$TMP/ferryd-$1.out" 2>&1 &
	ferryd_pid=$!
	wait_socket "$FERRY_SOCKET"
}

run_backend() { # BACKEND
	local b=$1 RUN="$TMP/run-$1" STATE="$TMP/state-$1" free0 free1 n
	export FERRY_SOCKET="$RUN/ferryd.sock"
	echo "# backend $b"
	check "ferryd listens" start_ferryd "$b" "$RUN" "$STATE"
	check "xl create" xl create "$TMP/vm1.cfg"
	check "verify sweeps" wait_console vm1 "verify: sweep pages=2048 mismatches=0"
	check "the balloon saw the initial target" \
		wait_console vm1 "balloon: target 262144 KiB, current 262144 KiB"
	free0=$(free_mb)

	# Down: the guest gives 128 MiB back, the pool gets them.
	check "xl mem-set vm1 128" xl mem-set vm1 128
	check "the balloon reached 128 MiB" \
		wait_console vm1 "balloon: target 131072 KiB, current 131072 KiB"
	check "xl list shows 128" test "$(mem_of vm1)" = 128
	free1=$(free_mb)
	check "xl info free memory grew by 128 MiB ($free0 -> $free1)" near $((free1 - free0)) 128

	# Below what the guest can give: it stops at its workload's arena.
	check "xl mem-set vm1 4" xl mem-set vm1 4
	check "the balloon stops at the arena" wait_console vm1 "(the rest is the workload's"
	check "the domain still holds more than 4 MiB" test "$(mem_of vm1)" -gt 4
	n=$(count_console vm1 "balloon: target 131072 KiB, current 131072 KiB")
	check "xl mem-set vm1 128 again" xl mem-set vm1 128
	check "back at 128 MiB" wait_console vm1 "balloon: target 131072 KiB, current 131072 KiB" "$n"

	# mem-max: refused below what the domain holds; a target above it is
	# refused by xl, and a guest going past it (the target written behind
	# xl's back) is stopped by the hypervisor.
	check "xl mem-max below the current size is refused" fails mem-max vm1 100
	check "  with the reason" grep -q "below what it holds" "$TMP/refused.out"
	check "xl mem-max vm1 192" xl mem-max vm1 192
	check "xl mem-set above maxmem is refused" fails mem-set vm1 256
	check "  with the reason" grep -q "above its maxmem" "$TMP/refused.out"
	check "xenstore-write memory/target 262144" \
		xl xenstore-write "/local/domain/1/memory/target" 262144
	check "populate past maxmem is refused" wait_console vm1 "(refused: maxmem reached)"
	check "the domain stops at maxmem (192)" test "$(mem_of vm1)" = 192
	check "xl mem-max vm1 256" xl mem-max vm1 256
	n=$(count_console vm1 "balloon: target 262144 KiB, current 262144 KiB")
	check "xl mem-set vm1 256 (the same target again: the balloon retries)" xl mem-set vm1 256
	check "back up to 256 MiB" wait_console vm1 "balloon: target 262144 KiB, current 262144 KiB" "$n"
	check "xl list shows 256" test "$(mem_of vm1)" = 256
	check "xl info free memory back ($(free_mb) vs $free0)" near "$(free_mb)" "$free0"

	# Ballooned again, then saved and restored: the holes travel as XTAB.
	n=$(count_console vm1 "balloon: target 131072 KiB, current 131072 KiB")
	check "xl mem-set vm1 128 (for the save)" xl mem-set vm1 128
	check "at 128 MiB again" wait_console vm1 "balloon: target 131072 KiB, current 131072 KiB" "$n"
	check "xl list shows 128" test "$(mem_of vm1)" = 128
	timeout 2 "$XL" console vm1 >"$TMP/console.out" 2>&1 </dev/null || true
	check "verify saw no mismatch" bash -c \
		"! grep -E 'mismatches=[1-9]|verify: mismatch' '$TMP/console.out'"
	check "xl save" xl save vm1 "$TMP/vm1-$b.save"
	check "the stream lists the 128 MiB of holes as XTAB (32 records without data)" bash -c \
		"test \$(timeout 30 '$XL' stream-dump '$TMP/vm1-$b.save' | grep -c 'pfns 1024 (0 with data)') = 32"
	check "xl info free memory is all back after the save" near "$(free_mb)" 1024
	# Paused, then unpaused: an unpaused restore lets the guest reconnect to
	# xenstore before ferryd has attached its ring (ctl-save.c makes the
	# entries after rst_restore_domain unpaused it), and a watch set in that
	# window can be lost; not this test's subject.
	check "xl restore -p" xl restore -p "$TMP/vm1-$b.save"
	check "xl unpause" xl unpause vm1
	check "restored with the same holes: 128 MiB" test "$(mem_of vm1)" = 128
	check "xl info free memory as before the save" near "$(free_mb)" "$free1"
	check "verify is clean after the restore" \
		wait_console vm1 "verify: resume pages=2048 mismatches=0"
	check "the restored balloon follows mem-set" xl mem-set vm1 160
	check "restored balloon at 160 MiB" \
		wait_console vm1 "balloon: target 163840 KiB, current 163840 KiB"
	timeout 2 "$XL" console vm1 >"$TMP/console.out" 2>&1 </dev/null || true
	check "still no mismatch" bash -c "! grep -E 'mismatches=[1-9]|verify: mismatch' '$TMP/console.out'"
	check "xl destroy" xl destroy vm1

	kill -TERM "$ferryd_pid"
	if wait "$ferryd_pid"; then ok "ferryd stops cleanly"; else not_ok "ferryd stops cleanly"; fi
	ferryd_pid=
}

for b in ${FERRY_TEST_BACKENDS:-soft kvm}; do
	if [[ $b == kvm ]] && ! kvm_usable; then
		skip "kvm: /dev/kvm is not usable here"
		continue
	fi
	f0=$failed B=$b
	run_backend "$b"
	if ((failed > f0)); then
		echo "--- ferryd output ($b)"
		tail -50 "$TMP/ferryd-$b.out" || true
	fi
done
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
