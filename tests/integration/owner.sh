#!/usr/bin/env bash
# One owner per domain, the two pause counts, and the fence, against two
# real ferryds (soft, plain TCP: "hosts" A = 127.0.2.2 and B = 127.0.2.3):
#  1. the fence holds: a target that takes go and goes silent (a Python
#     proxy in front of B swallows go) leaves A's copy fenced as
#     NAME--migratedaway; every verb that could run it or a copy of it is
#     refused with a message naming the fence and xl migrate-resolve, no
#     save file appears, an older save of it is not restored beside it,
#     and xl migrate-resolve --resume still runs it again, clean
#  2. xl pause / xl unpause during xl save -c into a slowly read FIFO, with
#     the guest dirtying fast: refused (the save holds the domain), and the
#     stream restores on B with zero mismatches (a torn save shows many)
#  3. xl save -c of a paused domain leaves it paused; xl save -p leaves it
#     paused so that one xl unpause runs it
#  4. during a live migration slowed by --bandwidth: xl destroy, xl save,
#     xl pause on the source and xl destroy/unpause of NAME--incoming on the
#     target are refused naming the migration, which then completes
#  5. during an xl restore fed slowly through a FIFO: xl save, destroy,
#     pause, mem-max of the half-built domain are refused, and the restore
#     completes clean
# Usage: tests/integration/owner.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-owner.XXXXXX)
A_ADDR=127.0.2.2 B_ADDR=127.0.2.3
A_PORT=8312 B_PORT=8313 PX_PORT=8314
declare -A PID=() ADDR=([A]=$A_ADDR [B]=$B_ADDR) PORTS=([A]=$A_PORT [B]=$B_PORT)
PXPID="" BGPIDS=()

cleanup() {
	local p
	for p in "${BGPIDS[@]}" $PXPID; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	stop_hosts
	[[ -n "${KEEP_TMP:-}" ]] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

quiet() { "$@" >/dev/null; }

# Plain TCP on both ends: the proxy reads the handshake as it goes by.
start_host() { # NAME
	local n=$1
	rm -f "$(sock "$n")"
	timeout 600 "$FERRYD" --foreground --backend soft --memory "$HOST_MEMORY" \
		--run-dir "$TMP/run-$n" --state-dir "$TMP/state-$n" \
		--listen "${ADDR[$n]}:${PORTS[$n]}" --insecure >>"$TMP/ferryd-$n.out" 2>&1 &
	PID[$n]=$!
	wait_socket "$(sock "$n")"
}

make_cfg() { # NAME MEMORY EXTRA
	cat >"$TMP/$1.cfg" <<CFG
name = "$1"
memory = $2
extra = "$3"
CFG
}
# The console logs of domain NAME on HOST, under every name it had
# (NAME--incoming, NAME--migratedaway).
conlogs() {
	cat "$TMP/state-$1/console/guest-$2.log" "$TMP/state-$1/console/guest-$2--"*.log \
		2>/dev/null
	return 0 # under pipefail, a name it never had is no failure
}
# wait_log HOST NAME PATTERN [SECONDS]: a console line matching PATTERN
wait_log() {
	local i
	for ((i = 0; i < ${4:-30} * 5; i++)); do
		conlogs "$1" "$2" | grep -q -- "$3" && return 0
		sleep 0.2
	done
	return 1
}
# wait_more HOST NAME PATTERN N: more than N console lines match PATTERN
wait_more() {
	local i
	for ((i = 0; i < 150; i++)); do
		(($(conlogs "$1" "$2" | grep -c -- "$3") > $4)) && return 0
		sleep 0.2
	done
	return 1
}
no_mismatch() { ! conlogs "$1" "$2" | grep -Eq 'verify: mismatch|mismatches=[1-9]'; }
# The last refused command's stderr (in $TMP/err) says every PATTERN.
err_says() {
	local p
	for p in "$@"; do grep -qi -- "$p" "$TMP/err" || return 1; done
}
# refused LABEL PATTERNS... -- COMMAND...: fails, and says every pattern
refused() {
	local what=$1 pats=()
	shift
	while [[ $1 != -- ]]; do pats+=("$1"); shift; done
	shift
	if "$@" >/dev/null 2>"$TMP/err"; then
		not_ok "$what: accepted"
	elif err_says "${pats[@]}"; then
		ok "$what"
	else
		not_ok "$what: said: $(head -c 400 "$TMP/err")"
	fi
}
state_is() { [[ "$(state "$1" "$2")" == "$3" ]]; }
# slowcopy SRC DST BYTES_PER_S: a slow reader or writer for a FIFO
slowcopy() {
	python3 - "$@" <<'PY'
import sys, time
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "wb") as o:
    while True:
        d = f.read(256 << 10)
        if not d:
            break
        o.write(d)
        time.sleep(len(d) / int(sys.argv[3]))
PY
}

# ---- the proxy: takes go from the source and goes silent ------------------
# (It hangs up on the source at once rather than after the source's 10 s
# wait for the report: the same fence, sooner.)
cat >"$TMP/proxy.py" <<'PY'
import select, socket, sys, time

lhost, lport, thost, tport, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
READY = b"domain received, ready to unpause\0"
GO = b"domain is yours, you are cleared to unpause\0"


def touch(what):
    with open(marker, "a") as f:
        f.write(what + "\n")


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((lhost, lport))
ls.listen(1)
touch("listening")
c, _ = ls.accept()
ls.close()  # the source's queries after go find nobody
t = socket.create_connection((thost, tport))
ready, tail = False, b""
while True:
    r, _, _ = select.select([c, t], [], [])
    if t in r:
        d = t.recv(1 << 16)
        if not d:
            break
        ready = ready or READY in d
        c.sendall(d)
    if c in r:
        d = c.recv(1 << 16)
        if not d:
            break
        if ready and GO in tail + d:
            touch("go")
            break
        tail = (tail + d)[-len(GO):]
        t.sendall(d)
# Go is swallowed: B never hears it (it drops NAME--incoming after its
# wait), and the source never hears back.
c.close()
time.sleep(600)
PY
proxy_start() {
	rm -f "$TMP/proxy.mark"
	timeout 300 python3 "$TMP/proxy.py" $B_ADDR $PX_PORT $B_ADDR $B_PORT "$TMP/proxy.mark" \
		2>>"$TMP/proxy.log" &
	PXPID=$!
	local i
	for ((i = 0; i < 50; i++)); do
		grep -qx listening "$TMP/proxy.mark" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

start_host A || { not_ok "ferryd A starts"; exit 1; }
start_host B || { not_ok "ferryd B starts"; exit 1; }

# create HOST NAME CASE: creates NAME from $TMP/NAME.cfg and waits for a sweep
create() {
	if ! xlh "$1" create "$TMP/$2.cfg" >/dev/null 2>"$TMP/err"; then
		not_ok "$3: create $2 on $1: $(head -c 300 "$TMP/err")"
		return 1
	fi
	wait_log "$1" "$2" "verify: sweep" || { not_ok "$3: $2 sweeps on $1"; return 1; }
}

# ---- 1. the fence holds -----------------------------------------------------
case1() {
	D=m1 AWAY=m1--migratedaway
	FENCE=(fenced "migrate-resolve")
	make_cfg $D 128 "workload=verify ws=8M rate=4M"
	create A $D 1 || return
	xlh A save -c $D "$TMP/m1-before.save" >/dev/null 2>&1 || not_ok "1: an earlier save of $D"
	proxy_start || not_ok "1: the proxy listens"
	t1=$SECONDS
	refused "1: the migration to a target that goes silent after go ends fenced" \
		"$AWAY" migrate-resolve -- xlh A migrate --insecure $D "$B_ADDR:$PX_PORT"
	echo "# fenced after $((SECONDS - t1)) s"
	check "1: the proxy took go" grep -qx go "$TMP/proxy.mark"
	check "1: $AWAY is fenced on A (--f---)" state_is A $AWAY --f---
	refused "1: xl unpause" "${FENCE[@]}" -- xlh A unpause $AWAY
	refused "1: xl pause" "${FENCE[@]}" -- xlh A pause $AWAY
	refused "1: xl mem-set" "${FENCE[@]}" -- xlh A mem-set $AWAY 96m
	refused "1: xl mem-max" "${FENCE[@]}" -- xlh A mem-max $AWAY 120m
	for opt in -c -p ""; do
		refused "1: xl save ${opt:-(no option)}" "${FENCE[@]}" -- \
			xlh A save $opt $AWAY "$TMP/fenced$opt.save"
		check "1: xl save ${opt:-(no option)} left no file" test ! -e "$TMP/fenced$opt.save"
	done
	refused "1: xl migrate" "${FENCE[@]}" -- xlh A migrate --insecure $AWAY "$B_ADDR:$B_PORT"
	refused "1: xl destroy" "${FENCE[@]}" "migrate-resolve --destroy" -- xlh A destroy $AWAY
	refused "1: xl shutdown" "${FENCE[@]}" -- xlh A shutdown $AWAY
	refused "1: xl reboot" "${FENCE[@]}" -- xlh A reboot $AWAY
	refused "1: xl restore of an earlier save of $D beside its fenced copy" "${FENCE[@]}" -- \
		xlh A restore "$TMP/m1-before.save"
	check "1: $D does not run on A" fails exists A $D
	check "1: still fenced after all that" state_is A $AWAY --f---
	kill "$PXPID" 2>/dev/null
	wait "$PXPID" 2>/dev/null
	PXPID=
	sweeps=$(conlogs A $D | grep -c "verify: sweep")
	check "1: xl migrate-resolve --resume still works" quiet xlh A migrate-resolve --resume $D
	check "1: $D runs on A again" running A $D
	check "1: and sweeps again" wait_more A $D "verify: sweep" "$sweeps"
	check "1: no mismatch on A" no_mismatch A $D
	xlh A destroy $D >/dev/null 2>&1
}

# ---- 2. pause / unpause during a save ---------------------------------------
case2() {
	D=s1
	make_cfg $D 256 "workload=verify ws=64M rate=200M"
	create A $D 2 || return
	mkfifo "$TMP/save.fifo"
	# Reads the FIFO at 16 MiB/s into s1.save: the save takes about 4 s.
	slowcopy "$TMP/save.fifo" "$TMP/s1.save" $((16 << 20)) &
	reader=$!
	BGPIDS+=("$reader")
	# The FIFO's fsync may fail the save (not a regular file): the stream
	# that went through is what this case restores.
	xlh A save -c $D "$TMP/save.fifo" >/dev/null 2>"$TMP/save.err" &
	saver=$!
	BGPIDS+=("$saver")
	sleep 0.5
	flips=0 refusals=0
	# Short runs between pauses: a save that lets the guest run between its
	# pages and still finds it paused for the vCPU state ends torn, not failed.
	while kill -0 $saver 2>/dev/null; do
		xlh A unpause $D >/dev/null 2>>"$TMP/flip.err" || refusals=$((refusals + 1))
		sleep 0.05
		xlh A pause $D >/dev/null 2>>"$TMP/flip.err" || refusals=$((refusals + 1))
		flips=$((flips + 1))
		sleep 0.1
	done
	wait $saver
	wait $reader
	echo "# $flips unpause/pause pairs during the save, $refusals refused"
	# The last pair may straddle the save's end.
	check "2: unpause and pause during the save are refused, naming it" \
		bash -c "(($flips > 1 && $refusals >= 2 * $flips - 2)) && grep -q 'being saved to' '$TMP/flip.err'"
	# Whatever got in after the save ended.
	xlh A unpause $D >/dev/null 2>&1
	check "2: $D runs on A after save -c" running A $D
	check "2: the stream is complete" test -s "$TMP/s1.save"
	check "2: xl restore on B" xlh B restore "$TMP/s1.save"
	check "2: the restored guest checks every page: zero mismatches" \
		wait_log B $D "verify: resume pages=16384 mismatches=0"
	if ! no_mismatch B $D; then
		not_ok "2: torn save: $(conlogs B $D | grep -o 'verify: resume.*' | head -1)"
	fi
	xlh B destroy $D >/dev/null 2>&1
}

# ---- 3. saves restore the pause state they found ----------------------------
case3() {
	D=s3
	make_cfg $D 128 "workload=verify ws=8M rate=4M"
	create A $D 3 || return
	check "3: xl pause $D" xlh A pause $D
	check "3: xl save -c of the paused domain" xlh A save -c $D "$TMP/paused.save"
	check "3: it is still paused" state_is A $D --p---
	check "3: xl unpause runs it" xlh A unpause $D
	check "3: running" running A $D
	check "3: xl save -p" xlh A save -p $D "$TMP/leftpaused.save"
	check "3: it is left paused" state_is A $D --p---
	check "3: one xl unpause runs it" xlh A unpause $D
	check "3: running again" running A $D
	xlh A destroy $D >/dev/null 2>&1
}

# ---- 4. destroy and save during a live migration ----------------------------
case4() {
	D=m2
	make_cfg $D 128 "workload=verify ws=32M rate=2M"
	create A $D 4 || return
	xlh A migrate --insecure --bandwidth 4M $D "$B_ADDR:$B_PORT" >"$TMP/mig.out" 2>"$TMP/mig.err" &
	mig=$!
	BGPIDS+=("$mig")
	for ((i = 0; i < 50; i++)); do exists B $D--incoming && break; sleep 0.1; done
	check "4: the migration is under way ($D--incoming on B)" exists B $D--incoming
	HELD=("being migrated to $B_ADDR" "try again")
	refused "4: xl destroy during the migration" "${HELD[@]}" -- xlh A destroy $D
	refused "4: xl save during the migration" "${HELD[@]}" -- xlh A save $D "$TMP/during.save"
	refused "4: xl save -c during the migration" "${HELD[@]}" -- xlh A save -c $D "$TMP/during.save"
	check "4: no save file" test ! -e "$TMP/during.save"
	refused "4: xl pause during the migration" "${HELD[@]}" -- xlh A pause $D
	# Ballooning goes on during the rounds, as on Xen (balloon-migrate.sh
	# checks the memory arrives whole).
	check "4: xl mem-set during the migration's rounds" xlh A mem-set $D 96m
	refused "4: a second xl migrate" "${HELD[@]}" -- xlh A migrate --insecure $D "$B_ADDR:$B_PORT"
	refused "4: xl destroy of $D--incoming on B" "being received" -- xlh B destroy $D--incoming
	refused "4: xl unpause of $D--incoming on B" "being received" -- xlh B unpause $D--incoming
	check "4: xl list still answers during the migration" quiet xlh A list $D
	check "4: all that while the migration ran" kill -0 $mig
	check "4: the migration completes" wait $mig
	check "4: $D runs on B" running B $D
	check "4: resumed on B with zero mismatches" \
		wait_log B $D "verify: resume pages=8192 mismatches=0"
	check "4: nothing of it left on A" fails exists A $D
	xlh B destroy $D >/dev/null 2>&1
}

# ---- 5. verbs on a domain a restore is still loading ----------------------
case5() {
	D=r1
	make_cfg $D 128 "workload=verify ws=32M rate=4M"
	create A $D 5 || return
	check "5: xl save $D" xlh A save $D "$TMP/r1.save"
	mkfifo "$TMP/restore.fifo"
	# Feeds the saved file at 8 MiB/s: the restore takes about 4 s.
	slowcopy "$TMP/r1.save" "$TMP/restore.fifo" $((8 << 20)) &
	BGPIDS+=("$!")
	xlh A restore "$TMP/restore.fifo" >/dev/null 2>"$TMP/restore.err" &
	rst=$!
	BGPIDS+=("$rst")
	for ((i = 0; i < 50; i++)); do exists A $D && break; sleep 0.1; done
	check "5: the restore is under way ($D exists)" exists A $D
	HELD=("being restored" "try again")
	refused "5: xl save -c during the restore" "${HELD[@]}" -- xlh A save -c $D "$TMP/half.save"
	check "5: no save file" test ! -e "$TMP/half.save"
	refused "5: xl destroy during the restore" "${HELD[@]}" -- xlh A destroy $D
	refused "5: xl pause during the restore" "${HELD[@]}" -- xlh A pause $D
	refused "5: xl mem-max during the restore" "${HELD[@]}" -- xlh A mem-max $D 100m
	check "5: all that while the restore ran" kill -0 $rst
	check "5: the restore completes" wait $rst
	check "5: $D runs" running A $D
	check "5: resumed with zero mismatches" wait_log A $D "verify: resume pages=8192 mismatches=0"
	xlh A destroy $D >/dev/null 2>&1
}

for c in ${OWNER_CASES:-1 2 3 4 5}; do
	t0=$SECONDS
	case$c
	echo "# case $c: $((SECONDS - t0)) s"
done
echo "# passed $passed, failed $failed, skipped $skipped"
((failed == 0))
