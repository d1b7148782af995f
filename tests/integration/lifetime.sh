#!/usr/bin/env bash
# ferryd's lifetime is every domain's lifetime (soft backend, no listener):
# SIGTERM saves every domain (--on-stop save, the default) and the next
# start restores them: a verify guest under load resumes clean with its
# console continuing and no second boot, a paused guest stays paused;
# --on-stop destroy leaves nothing to restore; a domain not saved within
# --stop-timeout, or into a full state dir, is named and destroyed and
# ferryd still exits; a corrupt save is reported at start and kept; the
# records of domains a kill -9 lost are reported and removed; a copy left
# fenced by a SIGTERM past a migration's go (through migrate-faults.sh's
# proxy, 127.0.3.2 -> 127.0.3.3) is saved fenced, comes back fenced with
# where it went, and migrate-resolve settles it from there. Section 1 keeps
# the pool in a --pool-file: the restarted ferryd finds it backed.
# Usage: tests/integration/lifetime.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-lifetime.XXXXXX)
RUN=$TMP/run STATE=$TMP/state SAVED=$TMP/state/saved
export FERRY_SOCKET=$RUN/ferryd.sock
ferryd_pid=
MOUNTED=
POOL=/dev/shm/ferry-lifetime-pool.$$

cleanup() {
	stop_ferryd
	for p in ${PX_PID:-} ${B_PID:-}; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[[ -z $MOUNTED ]] || umount "$MOUNTED" 2>/dev/null
	rm -f "$POOL"
	[[ -n ${KEEP:-} ]] || rm -rf "$TMP"
}
trap cleanup EXIT

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f (build first)"; exit 1; }; done

xl() { timeout 60 "$XL" "$@"; }
state_of() { xl list "$1" 2>/dev/null | awk -v n="$1" '$1 == n { print $5 }'; }
conlog() { echo "$STATE/console/guest-$1.log"; }
# wait_log DOMAIN PATTERN COUNT: up to 30 s for COUNT lines in its console log
wait_log() {
	local i n
	for ((i = 0; i < 300; i++)); do
		n=$(grep -c -- "$2" "$(conlog "$1")" 2>/dev/null)
		((${n:-0} >= $3)) && return 0
		sleep 0.1
	done
	return 1
}
cfg() { # NAME MEMORY EXTRA
	printf 'name = "%s"\nmemory = %s\nextra = "%s"\n' "$1" "$2" "$3" >"$TMP/$1.cfg"
}
start() { # [ferryd flags]: up to 60 s for the control socket (restores come first)
	local i
	rm -f "$FERRY_SOCKET"
	timeout 600 "$FERRYD" --foreground --backend soft --memory 2G --run-dir "$RUN" \
		--state-dir "$STATE" "$@" >>"$TMP/ferryd.out" 2>&1 &
	ferryd_pid=$!
	for ((i = 0; i < 600; i++)); do [[ -S $FERRY_SOCKET ]] && return 0; sleep 0.1; done
	return 1
}
# term MAX_S: SIGTERM, wait; true if it exited 0 within MAX_S seconds
term() {
	local t0=$SECONDS rc
	kill -TERM "$ferryd_pid"
	wait "$ferryd_pid"
	rc=$?
	ferryd_pid=
	echo "stop took $((SECONDS - t0)) s, exit $rc" >>"$TMP/stops"
	((rc == 0 && SECONDS - t0 <= $1))
}
# The log since this point: logmark, then logsince
logmark() { LOGMARK=$(stat -c %s "$STATE/ferryd.log" 2>/dev/null || echo 0); }
logsince() { tail -c +$((LOGMARK + 1)) "$STATE/ferryd.log"; }
loghas() { logsince | grep -qE -- "$1"; }
# Nothing in saved/ but what failed restores kept (temporaries included)
no_saves() { ! ls -A "$SAVED" | grep -qv '\.failed'; }
no_records() { ! ls "$STATE"/domains/*.json >/dev/null 2>&1; }

cfg lt-verify 128 "workload=verify ws=32M rate=20M"
cfg lt-idle 64 "workload=idle"
cfg lt-bad 64 "workload=idle"
cfg lt-big 1536 "workload=verify ws=1400M rate=4000M"
cfg lt-crash 64 "workload=idle"
cfg lt-full 128 "workload=verify ws=32M rate=20M"

# ---- 1. SIGTERM saves; the next start restores ------------------------------
start --pool-file "$POOL" || { not_ok "ferryd starts"; exit 1; }
xl create "$TMP/lt-verify.cfg" >/dev/null 2>&1 && xl create -p "$TMP/lt-idle.cfg" >/dev/null 2>&1 &&
	xl create "$TMP/lt-bad.cfg" >/dev/null 2>&1
check "three domains created, one paused" test "$(state_of lt-idle)" = "--p---"
check "the verify guest sweeps under load" wait_log lt-verify "verify: sweep" 3
sweeps_before=$(xl console lt-verify </dev/null 2>/dev/null | grep -c "verify: sweep")
logmark
check "SIGTERM: ferryd saves and exits 0 within 60 s" term 60
all_saved() { loghas "saved 'lt-verify' to" && loghas "saved 'lt-idle' \(paused\) to" && loghas "saved 'lt-bad' to"; }
check "the log names each domain saved" all_saved
check "saved/ holds a save and a stop record for each" \
	test -s "$SAVED/lt-verify.save" -a -s "$SAVED/lt-idle.json" -a -s "$SAVED/lt-bad.save"
check "no domain record is left in domains/" no_records
# A corrupt save: keep half of lt-bad's.
bad_size=$(($(stat -c %s "$SAVED/lt-bad.save" 2>/dev/null || echo 0) / 2))
[[ ! -e $SAVED/lt-bad.save ]] || truncate -s "$bad_size" "$SAVED/lt-bad.save"

logmark
check "ferryd starts again (with --on-stop destroy), on the same --pool-file" \
	start --on-stop destroy --pool-file "$POOL"
kept_mib() { logsince | sed -n 's/.*memory pool: .*, \([0-9]*\) MiB of it backed from before.*/\1/p'; }
check "it finds the memory the stopped ferryd's domains held still backed" \
	test "$(kept_mib)" -ge 32
check "the verify guest is back and runs" \
	bash -c "[[ \$(timeout 20 '$XL' list lt-verify | awk 'NR == 2 { print \$5 }') =~ ^(r|-b) ]]"
check "the paused guest is back, still paused" test "$(state_of lt-idle)" = "--p---"
check "the verify guest resumed clean" wait_log lt-verify "verify: resume pages=8192 mismatches=0" 1
sweeps_after_resume() { # up to 30 s
	local i
	for ((i = 0; i < 300; i++)); do
		sed -n '/verify: resume/,$p' "$(conlog lt-verify)" |
			grep -q 'verify: sweep pages=8192 mismatches=0' && return 0
		sleep 0.1
	done
	return 1
}
check "its sweeps continue after the resume" sweeps_after_resume
check "no second boot (one boot banner in its console log)" \
	test "$(grep -c 'ferry-guest: booted' "$(conlog lt-verify)")" = 1
check "its console ring continues (the lines before the stop and new ones)" \
	bash -c "(( \$(timeout 5 '$XL' console lt-verify </dev/null 2>/dev/null | grep -c 'verify: sweep') > $sweeps_before ))"
check "no mismatch anywhere" bash -c "! grep -q 'verify: mismatch\|mismatches=[1-9]' '$(conlog lt-verify)'"
check "the log and xl dmesg say what was restored" \
	bash -c "timeout 20 '$XL' dmesg | grep -q 'restored lt-verify from $SAVED/lt-verify.save saved at stop' &&
		timeout 20 '$XL' dmesg | grep -q 'restored lt-idle from .*paused, as it was'"
check "the corrupt save is reported at start" \
	loghas "cannot restore 'lt-bad' saved at stop .*kept the save as $SAVED/lt-bad.save.failed"
check "and kept, as it was" test "$(stat -c %s "$SAVED/lt-bad.save.failed" 2>/dev/null)" = "$bad_size"
check "lt-bad is not half there" bash -c "! timeout 20 '$XL' list lt-bad >/dev/null 2>&1"
check "the restored domains' saves are gone" \
	test ! -e "$SAVED/lt-verify.save" -a ! -e "$SAVED/lt-idle.save" -a ! -e "$SAVED/lt-idle.json"
check "the paused guest unpauses" xl unpause lt-idle

# ---- 2. --on-stop destroy leaves nothing ------------------------------------
logmark
check "SIGTERM with --on-stop destroy exits 0 within 30 s" term 30
destroyed_unsaved() { loghas "destroying 'lt-verify'" && ! loghas "saved 'lt-" && no_saves; }
check "it destroyed the domains, saving nothing" destroyed_unsaved
check "no domain record is left" no_records

# ---- 3. the failed restore is reported again; a save past --stop-timeout ----
logmark
check "ferryd starts (--stop-timeout 1)" start --stop-timeout 1
check "nothing was restored" bash -c "[[ \$(timeout 20 '$XL' list | wc -l) == 1 ]]"
check "the kept save is reported again" loghas "lt-bad.save.failed: kept from a restore that failed"
xl create "$TMP/lt-big.cfg" >/dev/null 2>&1
check "a big guest fills its working set" wait_log lt-big "verify: sweep" 1
logmark
check "SIGTERM: ferryd still exits 0 within 1 + 20 s" term 21
check "the log names the domain not saved in time, destroyed" \
	loghas "'lt-big' \(d[0-9]+\) not saved: --stop-timeout 1 s passed; destroying it"
check "nothing of it is left to restore, no temporary either" no_saves

# ---- 4. a full state dir ----------------------------------------------------
if mkdir -p "$SAVED" && mount -t tmpfs -o size=4M tmpfs "$SAVED" 2>/dev/null; then
	MOUNTED=$SAVED
	start
	xl create "$TMP/lt-full.cfg" >/dev/null 2>&1
	wait_log lt-full "verify: sweep" 1
	logmark
	check "full state dir: SIGTERM still exits 0 within 30 s" term 30
	check "full state dir: the domain is named, with the reason, and destroyed" \
		loghas "'lt-full' \(d[0-9]+\) not saved: .*No space left.*; destroying it"
	check "full state dir: no partial save is left" no_saves
	umount "$SAVED" && MOUNTED=
else
	skip "full state dir: cannot mount a small tmpfs here (not root?)"
fi

# ---- 5. kill -9 loses the domains; the next start says so --------------------
start
xl create "$TMP/lt-crash.cfg" >/dev/null 2>&1
# ferryd itself, not the timeout(1) around it
kill -KILL "$(pgrep -P "$ferryd_pid" -x ferryd)"
wait "$ferryd_pid" 2>/dev/null
ferryd_pid=
logmark
check "after kill -9, ferryd starts" start --on-stop destroy
check "it reports the domain the crash lost" \
	loghas "domain 'lt-crash' \(was domain [0-9]+\) was lost: ferryd ended without a stop"
check "and removes its stale record" no_records
check "clean stop" term 30

# ---- 6. SIGTERM past a migration's go: saved fenced, back fenced ----------
# A (this script's ferryd) migrates to B at 127.0.3.3 through
# handshake-proxy.py (migrate-faults.sh's), which holds B's report after go; SIGTERM to A
# then leaves its copy fenced, and the stop must save it so.
A_ADDR=127.0.3.2 B_ADDR=127.0.3.3 B_PORT=8412 PX_PORT=8413
B_SOCK=$TMP/run-B/ferryd.sock
xlb() { timeout 60 "$XL" -S "$B_SOCK" "$@"; }
PROXY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/handshake-proxy.py
fence_case() {
	local i mig_pid
	timeout 60 "$XL" tls-setup --dir "$TMP/tls" --host $A_ADDR --host $B_ADDR >/dev/null 2>&1 &&
		[[ -s $PROXY ]] || { not_ok "fenced: set-up (certificates, proxy)"; return; }
	timeout 300 "$FERRYD" --foreground --on-stop destroy --backend soft --memory 1G \
		--run-dir "$TMP/run-B" --state-dir "$TMP/state-B" --listen $B_ADDR:$B_PORT \
		--tls-dir "$TMP/tls" >>"$TMP/ferryd-B.out" 2>&1 &
	B_PID=$!
	wait_socket "$B_SOCK" || { not_ok "fenced: ferryd B starts"; return; }
	start --tls-dir "$TMP/tls" --tls-name $A_ADDR || { not_ok "fenced: ferryd A starts"; return; }
	xl create "$TMP/lt-fence.cfg" >/dev/null 2>&1 && wait_log lt-fence "verify: sweep" 1
	timeout 120 python3 "$PROXY" $B_ADDR $PX_PORT $B_ADDR $B_PORT delay-after-go 8 \
		"$TMP/proxy.mark" 2>>"$TMP/proxy.log" &
	PX_PID=$!
	for ((i = 0; i < 50; i++)); do grep -qs listening "$TMP/proxy.mark" && break; sleep 0.1; done
	xl migrate lt-fence $B_ADDR:$PX_PORT >"$TMP/migrate.out" 2>&1 &
	mig_pid=$!
	for ((i = 0; i < 300; i++)); do grep -qs held "$TMP/proxy.mark" && break; sleep 0.1; done
	check "fenced: the proxy holds B's report after go" grep -qs held "$TMP/proxy.mark"
	logmark
	check "fenced: SIGTERM past go: ferryd A exits 0 within 30 s" term 30
	wait "$mig_pid"
	check "fenced: A saved its copy as fenced, with where it went" \
		grep -q "\"fenced\":true.*\"host\":\"$B_ADDR:$PX_PORT\"" "$SAVED/lt-fence--migratedaway.json"
	check "fenced: ferryd A starts again" start --tls-dir "$TMP/tls" --tls-name $A_ADDR
	check "fenced: the copy is back fenced (--f---)" \
		test "$(state_of lt-fence--migratedaway)" = "--f---"
	check "fenced: xl unpause is refused" bash -c "! timeout 20 '$XL' unpause lt-fence--migratedaway 2>/dev/null"
	check "fenced: the log says it came back fenced and where it went" \
		loghas "restored lt-fence--migratedaway from .* fenced, as it was \(it went to $B_ADDR:$PX_PORT"
	check "fenced: xl migrate-resolve asks B (from the fence record) and drops A's copy" \
		bash -c "timeout 60 '$XL' migrate-resolve lt-fence >'$TMP/resolve.out' 2>&1 &&
			! timeout 20 '$XL' list lt-fence--migratedaway >/dev/null 2>&1"
	check "fenced: B runs the domain" \
		bash -c "[[ \$(timeout 20 '$XL' -S '$B_SOCK' list lt-fence | awk 'NR == 2 { print \$5 }') =~ ^(r|-b) ]]"
	check "fenced: clean stop" term 30
}
cfg lt-fence 128 "workload=verify ws=8M rate=4M"
B_PID= PX_PID=
fence_case
for p in $PX_PID $B_PID; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done

cat "$TMP/stops"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
