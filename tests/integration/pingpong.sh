#!/usr/bin/env bash
# Event channels and grants across migration: a ping and a pong domain
# exchange messages on host A (127.0.0.2) over an interdomain event channel
# and a granted page; pong moves to host B (127.0.0.3, TLS) and back, and
# the pair must exchange again. While pong is on B the pair cannot talk
# (Xen's interdomain channels are host-local): pong's port comes back
# unbound (formats/SPEC.md 5, EVTCHN) and its grant frames where they were
# (GNTTAB); back on A, pong publishes its port again and names its new
# domid in ping's data/pingpong/peer, and ping binds anew. A verify guest
# moves alongside and must resume with zero mismatches each time. Then
# ping moves to B and back, and the pair must exchange again (pong offers
# its port to ping's new domid, named in pong's data/pingpong/peer).
# Both backends: soft's workloads get Xen's hypercall ABI as the guest
# kernel's do.
# Usage: tests/integration/pingpong.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-pingpong.XXXXXX)
A_ADDR=127.0.0.2 B_ADDR=127.0.0.3
declare -A PID=() ADDR=([A]=$A_ADDR [B]=$B_ADDR) PORTS=([A]=8212 [B]=8213)
HOST_MEMORY=1G
VERIFY_PAGES=4096 # ws=16M

cleanup() {
	stop_hosts
	[[ -n "${KEEP_TMP:-}" ]] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

domid() { xlh "$1" list "$2" 2>/dev/null | awk 'NR == 2 { print $2 }'; }

# Console logs are append-only; a migrated-in domain writes to the log of
# the name it was created under (NAME--incoming). Not lib.bash's: these
# take the domain's name (three domains move here).
conlogs() { ls "$TMP/state-$1/console/guest-$2.log" "$TMP/state-$1/console/guest-$2--"*.log 2>/dev/null; }
declare -A MARK=()
mark() { # HOST NAME
	local f
	for f in $(conlogs "$1" "$2"); do MARK[$f]=$(stat -c %s "$f"); done
}
since() { # HOST NAME
	local f
	for f in $(conlogs "$1" "$2"); do tail -c +$((${MARK[$f]:-0} + 1)) "$f"; done
}
wait_since() { # HOST NAME PATTERN [TRIES of 0.2 s]
	local i
	for ((i = 0; i < ${4:-150}; i++)); do
		since "$1" "$2" | grep -q -- "$3" && return 0
		sleep 0.2
	done
	return 1
}
no_bad_since() { ! since "$1" vm | grep -Eq 'verify: mismatch|mismatches=[1-9]'; }
# The newest round_trips count HOST NAME printed since its mark (0: none).
rounds() { since "$1" "$2" | sed -n 's/.*pingpong: round_trips=\([0-9]*\).*/\1/p' | tail -1 | grep . || echo 0; }
# rounds_above HOST NAME N: its count passes N within 30 s
rounds_above() {
	local i
	for ((i = 0; i < 150; i++)); do
		(($(rounds "$1" "$2") > $3)) && return 0
		sleep 0.2
	done
	return 1
}

move() { # NAME FROM TO
	local name=$1 from=$2 to=$3
	mark "$to" "$name"
	if ! xlh "$from" migrate "$name" "${ADDR[$to]}:${PORTS[$to]}" >/dev/null 2>"$TMP/migrate.err"; then
		not_ok "$name $from -> $to: xl migrate: $(cat "$TMP/migrate.err")"
		return 1
	fi
	ok "$name $from -> $to: migrated"
}

cfg() { # NAME MEMORY EXTRA
	printf 'name = "%s"\nmemory = %s\nextra = "%s"\n' "$1" "$2" "$3" >"$TMP/$1.cfg"
}

run_backend() { # BACKEND
	local b=$1 t0=$SECONDS pong ping n before
	echo "# backend $b"
	start_host A "$b" || { not_ok "$b: ferryd A starts"; return; }
	start_host B "$b" || { not_ok "$b: ferryd B starts"; return; }
	# A fresh ferryd numbers domains from 1: pong is 1, ping 2.
	cfg pong 64 "workload=pingpong role=pong peer=2"
	cfg ping 64 "workload=pingpong role=ping peer=1"
	cfg vm 128 "workload=verify ws=16M rate=4M"
	for n in pong ping vm; do
		mark A $n
		xlh A create "$TMP/$n.cfg" >/dev/null 2>&1 || { not_ok "$b: create $n on A"; return; }
	done
	pong=$(domid A pong) ping=$(domid A ping)
	check "$b: pong is domain 1 and ping domain 2 ($pong, $ping)" test "$pong.$ping" = "1.2"
	check "$b: ping counts round trips on A" rounds_above A ping 0
	check "$b: pong counts round trips on A" rounds_above A pong 0
	check "$b: verify sweeps on A" wait_since A vm "verify: sweep"

	# Away: pong and the verify guest to B.
	before=$(rounds A ping)
	mark A ping
	move pong A B || return
	check "$b: pong resumed on B" wait_since B pong "pingpong: pong resumed"
	check "$b: ping notices pong went away" wait_since A ping "unreachable"
	move vm A B || return
	check "$b: verify resumes on B with zero mismatches" \
		wait_since B vm "verify: resume pages=$VERIFY_PAGES mismatches=0"

	# And back: the pair must exchange again.
	mark A ping
	mark A pong
	move pong B A || return
	check "$b: pong resumed on A" wait_since A pong "pingpong: pong resumed as domain $(domid A pong)"
	check "$b: ping follows pong to its new domid $(domid A pong)" \
		wait_since A ping "peer is now domain $(domid A pong)"
	check "$b: ping binds pong's port again" wait_since A ping "pingpong: ping port=.* bound"
	check "$b: ping counts round trips again (beyond $before)" rounds_above A ping "$before"
	check "$b: pong counts round trips again" rounds_above A pong "$(rounds A pong)"
	move vm B A || return
	check "$b: verify resumes on A with zero mismatches" \
		wait_since A vm "verify: resume pages=$VERIFY_PAGES mismatches=0"
	mark A vm
	check "$b: verify sweeps on A again" wait_since A vm "verify: sweep"
	check "$b: verify found no mismatch" no_bad_since A

	# Ping away and back: on B it finds no pong; back on A it names its
	# new domid in pong's data/pingpong/peer, pong offers its port and
	# grant to that domid and ping binds again.
	before=$(rounds A ping)
	move ping A B || return
	check "$b: ping resumed on B" wait_since B ping "pingpong: ping resumed as domain"
	n=$(rounds A pong)
	mark A pong
	move ping B A || return
	check "$b: pong follows ping to its new domid $(domid A ping)" \
		wait_since A pong "peer is now domain $(domid A ping)"
	check "$b: ping binds pong's port again" wait_since A ping "pingpong: ping port=.* bound"
	check "$b: ping counts round trips again (beyond $before)" rounds_above A ping "$before"
	check "$b: pong counts round trips again (beyond $n)" rounds_above A pong "$n"
	check "$b: nothing crashed" test -z "$(grep -l 'failed:' "$TMP"/state-*/console/guest-p*.log 2>/dev/null)"
	for n in ping pong vm; do xlh A destroy "$n" 2>/dev/null; done
	stop_host A
	stop_host B
	echo "# backend $b: $((SECONDS - t0)) s"
}

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f"; exit 1; }; done
timeout 60 "$XL" tls-setup --dir "$TMP/tls" --host $A_ADDR --host $B_ADDR 2>/dev/null ||
	{ echo "xl tls-setup failed"; exit 1; }
T0=$SECONDS
for b in ${FERRY_TEST_BACKENDS:-soft kvm}; do
	if [[ $b == kvm ]] && ! kvm_usable; then
		skip "kvm: /dev/kvm is not usable here"
		continue
	fi
	run_backend "$b"
done
echo "# total $((SECONDS - T0)) s"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
