#!/usr/bin/env bash
# Replication pairs across real network faults: two ferryds in network
# namespaces (hosts A 10.251.79.1 and B .2) and a real etcd (the witness,
# .254) in a third that joins them with a bridge. Both ferryds write a run
# log (ferryd --run-log: every start and stop of a domain's vCPUs, on the
# one monotonic clock the namespaces share), and the no-overlap of the two
# copies is proved from those logs, not by polling. A verify guest (rvm)
# throughout, and an idle guest (tick) whose numbered lines check output
# commit:
#  1. witness; the link between A and B cut, both still reach the witness:
#     the primary runs on unprotected, the backup drops its copy and never
#     runs it
#  2. witness; A cut off from everything: A fences itself, B takes both
#     domains over once it holds their leases; the run logs show A's last
#     stop before B's first start; verify is clean; tick's lines on B go on
#     from those A had shown, none lost or repeated; healed, A stays
#     fenced
#  3. no witness (xl remus warns), a link slowed to 16 Mbit/s (tc) under a
#     guest dirtying 32: no false failover, epochs late, the guest
#     throttled, then back to speed once the link is
#  4. output commit: the backup's ferryd stopped (SIGSTOP): nothing tick
#     prints meanwhile reaches xl console; continued, all of it does, in
#     order
#  5. the primary's ferryd killed (-9) while an epoch crosses the slowed
#     link: the backup drops the partial epoch and runs the last whole one
#  6. the witness away mid-pair (etcd stopped): the primary runs on the
#     backup's word (it cannot take over without the witness), protected,
#     and remus-status says so; etcd back, the lease is held again
#  7. the primary killed with epochs sent but not acknowledged (the
#     backup's ferryd stopped meanwhile): the backup, continued, commits
#     what arrived whole and runs it once it holds the lease
#  8. no witness, the backup's ferryd stalled past the timeout: the
#     primary gives up on it (BYE) and runs on; continued, the backup
#     drops its copy, never runs it
# Usage: tests/integration/remus-partition.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-remus-partition.XXXXXX)
NET=10.251.79
A_ADDR=$NET.1 B_ADDR=$NET.2 W_ADDR=$NET.254
declare -A PID=() ADDR=([A]=$A_ADDR [B]=$B_ADDR) PORTS=([A]=8112 [B]=8113)
NS_SUFFIX=$$
declare -A NS=([A]=ferry-rp-a-$NS_SUFFIX [B]=ferry-rp-b-$NS_SUFFIX [W]=ferry-rp-w-$NS_SUFFIX)
HOST_MEMORY=512M
NAME=rvm
VERIFY_PAGES=8192 # ws=32M
TIMEOUT_MS=500
WITNESS=etcd://$W_ADDR:2379
ETCD_PID=

cleanup() {
	kill -CONT "$(cat "$TMP/run-A/ferryd.pid" 2>/dev/null)" 2>/dev/null
	[[ -z $ETCD_PID ]] || kill -CONT "$ETCD_PID" 2>/dev/null
	stop_hosts
	[[ -z $ETCD_PID ]] || kill "$ETCD_PID" 2>/dev/null
	wait 2>/dev/null
	for n in A B W; do ip netns del "${NS[$n]}" 2>/dev/null; done
	[[ -n "${KEEP_TMP:-}" ]] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

nsx() { local n=$1; shift; ip netns exec "${NS[$n]}" "$@"; }
# The bridge in W; A's and B's veths on it.
net_up() {
	local n
	for n in A B W; do ip netns add "${NS[$n]}" || return 1; done
	nsx W ip link set lo up && nsx W ip link add br0 type bridge &&
		nsx W ip addr add $W_ADDR/24 dev br0 && nsx W ip link set br0 up || return 1
	for n in A B; do
		ip link add eth0 netns "${NS[$n]}" type veth peer name "w${n,}" netns "${NS[W]}" &&
			nsx W ip link set "w${n,}" master br0 && nsx W ip link set "w${n,}" up &&
			nsx "$n" ip link set lo up && nsx "$n" ip addr add "${ADDR[$n]}/24" dev eth0 &&
			nsx "$n" ip link set eth0 up || return 1
	done
	return 0
}
# A and B cannot reach each other; both still reach W.
cut_ab() { nsx A ip route add blackhole "$B_ADDR/32" && nsx B ip route add blackhole "$A_ADDR/32"; }
heal_ab() { nsx A ip route del blackhole "$B_ADDR/32"; nsx B ip route del blackhole "$A_ADDR/32"; }
# HOST's cable pulled at the bridge: it reaches nobody, silently.
isolate() { nsx W ip link set "w${1,}" down; }
# HOST's egress at 16 Mbit/s (tc tbf)
slow() { nsx "$1" tc qdisc add dev eth0 root tbf rate 16mbit burst 64k latency 400ms; }
rejoin() { nsx W ip link set "w${1,}" up; }

start_etcd() {
	command -v etcd >/dev/null || return 1
	# ip netns exec execs etcd: $! is etcd itself (stopped and killed below)
	ip netns exec "${NS[W]}" etcd --data-dir "$TMP/etcd" --listen-client-urls "http://$W_ADDR:2379" \
		--advertise-client-urls "http://$W_ADDR:2379" --listen-peer-urls "http://127.0.0.1:2380" \
		--initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster default=http://127.0.0.1:2380 \
		--heartbeat-interval 50 --election-timeout 500 >"$TMP/etcd.out" 2>&1 &
	ETCD_PID=$!
	for ((i = 0; i < 100; i++)); do
		nsx W curl -s "http://$W_ADDR:2379/version" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# host NAME: ferryd in its namespace, with its run log
host() {
	FERRYD_WRAP="ip netns exec ${NS[$1]}" start_host "$1" soft "$TMP/tls" \
		--run-log "$TMP/runlog-$1"
}

# remus FROM TO DOMAIN [xl remus options]
remus() {
	local from=$1 to=$2 dom=$3
	shift 3
	xlh "$from" remus --json --timeout $TIMEOUT_MS "$@" "$dom" "${ADDR[$to]}:${PORTS[$to]}" \
		>"$TMP/report.json" 2>"$TMP/remus.err"
}
domid() { xlh "$1" list "$2" 2>/dev/null | awk 'NR == 2 { print $2 }'; }
wait_for() { # SECONDS COMMAND...: until COMMAND holds
	local end=$((SECONDS + $1))
	shift
	while ((SECONDS < end)); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}
role_is() { [[ "$(role "$1" "$2")" == "$3" ]]; }
status_get() { # HOST DOMAIN KEY
	xlh "$1" remus-status --json "$2" 2>/dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$3"
}

# in_flight HOST DOMAIN MS: its last ack is older than MS (an epoch is out)
in_flight() { python3 -c 'import sys; sys.exit(not float(sys.argv[1]) > float(sys.argv[2]))' \
	"$(status_get "$1" "$2" last_ack_age_ms)" "$3" 2>/dev/null; }
witness_is() { [[ "$(status_get "$1" "$2" witness)" == "$3" ]]; }
epochs_grow() { # HOST DOMAIN
	local a
	a=$(status_get "$1" "$2" epochs) || return 1
	sleep 0.5
	(($(status_get "$1" "$2" epochs) > a))
}
# resumed_past HOST N: its last takeover ran from an epoch after N
resumed_past() {
	local e
	e=$(sed -n 's/.*runs from epoch \([0-9]*\).*/\1/p' "$TMP/state-$1/ferryd.log" | tail -1)
	echo "# $1 runs from epoch $e"
	[[ -n $e && -n $2 ]] && ((e > $2))
}
uncapped() { [[ "$(status_get "$1" "$2" throttle_pct)" == 100 ]]; }

# no_overlap HOST1 DOMID1 HOST2 DOMID2: from the two run logs, the two
# copies never ran at once (a start while the other ran is an overlap);
# prints the gap between one's last stop and the other's first start.
no_overlap() {
	python3 - "$TMP/runlog-$1" "d$2" "$TMP/runlog-$3" "d$4" <<'EOF'
import sys
ev = []
for f, d, who in ((sys.argv[1], sys.argv[2], 0), (sys.argv[3], sys.argv[4], 1)):
    for line in open(f):
        ns, dom, what = line.split()
        if dom == d:
            ev.append((int(ns), who, what == "run"))
ev.sort()
running = [False, False]
handoff = None
for ns, who, run in ev:
    if run and running[1 - who]:
        sys.exit("overlap: copy %d started at %d while copy %d ran" % (who, ns, 1 - who))
    if run and not running[who] and handoff is None and any(e[1] != who for e in ev if e[0] < ns):
        last_stop = max(e[0] for e in ev if e[1] != who and e[0] < ns)
        handoff = (ns - last_stop) / 1e6
    running[who] = run
print("# %.1f ms from one copy's last stop to the other's start" % handoff if handoff is not None
      else "# one copy only ran")
EOF
}
# never_ran HOST DOMID: no start of it in HOST's run log
never_ran() { ! awk -v d="d$2" '$2 == d && $3 == "run" { f = 1 } END { exit !f }' "$TMP/runlog-$1"; }
# last_is HOST DOMID run|stop: its last transition
last_is() { [[ "$(awk -v d="d$2" '$2 == d { w = $3 } END { print w }' "$TMP/runlog-$1")" == "$3" ]]; }

# Console: tick's heartbeat numbers as xl console on HOST shows them.
ticks() { timeout 0.5 "$XL" -S "$(sock "$1")" console "$2" </dev/null 2>/dev/null |
	sed -n 's/.*idle: heartbeat n=\([0-9]*\).*/\1/p'; }
# consecutive FILE: numbers one after another, none missing or repeated
consecutive() { awk 'NR > 1 && $1 != p + 1 { exit 1 } { p = $1 } END { exit NR < 2 }' "$1"; }

# goes_on_from BEFORE AFTER [N]: AFTER starts with BEFORE and goes on by at
# least N (default 1) more, consecutive throughout
goes_on_from() {
	local nb
	nb=$(wc -l <"$1")
	consecutive "$2" && [[ "$(head -n "$nb" "$2")" == "$(cat "$1")" ]] &&
		(($(wc -l <"$2") >= nb + ${3:-1}))
}
sweeps_clean() { # HOST: a clean sweep since the mark, nothing bad
	since "$1" | grep -q "verify: .* pages=$VERIFY_PAGES mismatches=0" &&
		! since "$1" | grep -Eq 'verify: mismatch|mismatches=[1-9]'
}

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f"; exit 1; }; done
if ! net_up; then
	skip "network namespaces, veth or bridge are not available here"
	echo "$passed passed, $failed failed, $skipped skipped"
	exit 0
fi
if ! slow A || ! nsx A tc qdisc del dev eth0 root; then
	skip "tc's tbf qdisc is not available here (the slowed-link cases need it)"
	echo "$passed passed, $failed failed, $skipped skipped"
	exit 0
fi
start_etcd || { echo "etcd did not start (scripts/deps.sh installs etcd-server)"; cat "$TMP/etcd.out"; exit 1; }
timeout 60 "$XL" tls-setup --dir "$TMP/tls" --host $A_ADDR --host $B_ADDR 2>/dev/null ||
	{ echo "xl tls-setup failed"; exit 1; }
T0=$SECONDS
host A && host B || { echo "the hosts did not start"; exit 1; }
printf 'name = "%s"\nmemory = 128\nextra = "workload=verify ws=32M rate=4M"\n' "$NAME" >"$TMP/$NAME.cfg"
printf 'name = "tick"\nmemory = 64\nextra = "workload=idle"\n' >"$TMP/tick.cfg"
check "xl create rvm and tick on A" xlh A create "$TMP/$NAME.cfg" && xlh A create "$TMP/tick.cfg"
mark A
check "rvm sweeps" wait_since A "verify: sweep pages=$VERIFY_PAGES mismatches=0"

# 1. A <-> B cut, the witness reachable from both
check "1: xl remus A -> B with the witness" remus A B "$NAME" -i 50 --witness "$WITNESS"
dA=$(domid A "$NAME") dB=$(domid B "$NAME--backup")
check "1: protected, B holds $NAME--backup (d$dB)" role_is B "$NAME--backup" backup
mark A
check "1: the link between A and B is cut" cut_ab
check "1: A runs on, unprotected" wait_for 10 role_is A "$NAME" unprotected
check "1: B drops its copy" wait_for 10 absent B "$NAME--backup"
check "1: B never ran it (run log)" never_ran B "$dB"
check "1: A's copy runs (run log: its last transition is a start)" wait_for 2 last_is A "$dA" run
check "1: verify sweeps clean on A" wait_for 10 sweeps_clean A
check "1: exactly one running copy" test "$(copies)" = 1
heal_ab

# 2. A cut off from everything; tick protected too
check "2: xl remus A -> B again" remus A B "$NAME" -i 50 --witness "$WITNESS"
check "2: and tick" remus A B tick -i 50 --witness "$WITNESS"
dA=$(domid A "$NAME") dB=$(domid B "$NAME--backup") tA=$(domid A tick) tB=$(domid B tick--backup)
sleep 1.5
ticks A tick >"$TMP/ticks-before"
mark B
check "2: A's cable is pulled" isolate A
check "2: B runs rvm" wait_for 10 running B "$NAME"
check "2: B runs tick" wait_for 10 running B tick
check "2: verify: resume with zero mismatches on B" \
	wait_since B "verify: resume pages=$VERIFY_PAGES mismatches=0"
check "2: A's rvm is stopped (fenced)" last_is A "$dA" stop
check "2: A's tick is stopped (fenced)" last_is A "$tA" stop
check "2: rvm never ran on both hosts at once (run logs)" no_overlap A "$dA" B "$dB"
check "2: tick neither" no_overlap A "$tA" B "$tB"
ticks B tick >"$TMP/ticks-after"
check "2: A had shown tick's lines" test -s "$TMP/ticks-before"
check "2: tick's lines on B go on from A's, none lost or repeated" \
	goes_on_from "$TMP/ticks-before" "$TMP/ticks-after"
check "2: rejoined, A's copies stay stopped" rejoin A
sleep 2
check "2: A's rvm stayed stopped (run log)" last_is A "$dA" stop
check "2: and tick" last_is A "$tA" stop
check "2: exactly one running copy" test "$(copies)" = 1
check "2: verify sweeps clean on B" wait_for 10 sweeps_clean B
xlh A destroy "$NAME" >/dev/null 2>&1
xlh A destroy tick >/dev/null 2>&1

# 3. no witness, a slowed link
check "3: xl remus B -> A without a witness" remus B A "$NAME" -i 50
check "3: it warns that a partition leaves two copies" grep -q "both copies run" "$TMP/remus.err"
dB=$(domid B "$NAME") dA=$(domid A "$NAME--backup")
check "3: the link slowed to 16 Mbit/s" slow B
mark B
sleep 8
check "3: still protected" role_is B "$NAME" protected
check "3: epochs came late" test "$(status_get B "$NAME" late)" -gt 0
check "3: the guest was throttled" grep -q "remus: epochs take .* capped at" "$TMP/state-B/ferryd.log"
check "3: A's copy never ran (run log)" never_ran A "$dA"
check "3: verify sweeps clean on B" wait_for 10 sweeps_clean B
nsx B tc qdisc del dev eth0 root
check "3: the cap goes once the link is fast" wait_for 30 uncapped B "$NAME"
check "3: remus-stop" xlh B remus-stop "$NAME"

# 4. output commit: acks withheld
check "4: xl remus tick B -> A, timeout 5 s" remus B A tick -i 50 --timeout 5000
# remus() passes --timeout 500 first; the last one given wins
sleep 1.5
# Stopped for about 3 s of its 5 s timeout; tick prints a line a second.
kill -STOP "$(cat "$TMP/run-A/ferryd.pid")"
sleep 0.3
ticks B tick >"$TMP/ticks-held"
sleep 1.5
ticks B tick >"$TMP/ticks-held2"
check "4: with the backup stopped, nothing new reaches xl console" cmp -s "$TMP/ticks-held" "$TMP/ticks-held2"
kill -CONT "$(cat "$TMP/run-A/ferryd.pid")"
sleep 2
ticks B tick >"$TMP/ticks-released"
check "4: continued, what was held comes out, none lost or repeated" \
	goes_on_from "$TMP/ticks-held" "$TMP/ticks-released" 3
check "4: still protected" role_is B tick protected
check "4: remus-stop" xlh B remus-stop tick

# 5. the primary killed while an epoch is on the (slowed) link
check "5: xl remus rvm B -> A" remus B A "$NAME" -i 50
slow B
check "5: an epoch is in flight for 300 ms" wait_for 20 in_flight B "$NAME" 300
mark A
kill9_host B
nsx B tc qdisc del dev eth0 root
check "5: A runs rvm" wait_for 10 running A "$NAME"
check "5: verify: resume with zero mismatches on A (the partial epoch dropped)" \
	wait_since A "verify: resume pages=$VERIFY_PAGES mismatches=0"
check "5: no mismatch since" wait_for 10 sweeps_clean A
check "5: exactly one running copy" test "$(copies)" = 1

# 6. the witness away mid-pair (etcd stopped): the pair runs on the backup's word
host B || not_ok "6: B starts again"
check "6: xl remus rvm A -> B with the witness" remus A B "$NAME" -i 50 --witness "$WITNESS"
dA=$(domid A "$NAME")
kill -STOP "$ETCD_PID"
check "6: with etcd stopped, remus-status says the witness is away" \
	wait_for 5 witness_is A "$NAME" away
sleep 2
check "6: still protected" role_is A "$NAME" protected
check "6: epochs go on" epochs_grow A "$NAME"
check "6: A's copy runs (run log)" wait_for 2 last_is A "$dA" run
kill -CONT "$ETCD_PID"
check "6: etcd back, the lease is held again" wait_for 10 witness_is A "$NAME" held
check "6: verify sweeps clean on A" wait_for 10 sweeps_clean A
check "6: exactly one running copy" test "$(copies)" = 1

# 7. the primary killed after sending epochs the backup had not acknowledged
# (its ferryd stopped for well under the timeout), with the witness
check "7: remus-stop, then xl remus again with a 3 s timeout" \
	bash -c "$XL -S $(sock A) remus-stop $NAME && sleep 0.5"
check "7: protected" remus A B "$NAME" -i 50 --timeout 3000 --witness "$WITNESS"
sleep 1
b_pid=$(cat "$TMP/run-B/ferryd.pid")
kill -STOP "$b_pid"
sleep 0.3
acked=$(status_get A "$NAME" epochs) # no ack can come now
mark B
kill9_host A
kill -CONT "$b_pid"
check "7: B runs rvm once it holds the lease" wait_for 10 running B "$NAME"
check "7: verify: resume with zero mismatches on B" \
	wait_since B "verify: resume pages=$VERIFY_PAGES mismatches=0"
check "7: no mismatch since" wait_for 10 sweeps_clean B
check "7: B ran from a later epoch than A saw acknowledged ($acked)" resumed_past B "$acked"
check "7: exactly one running copy" test "$(copies)" = 1

# 8. no witness: the backup's ferryd stalled past the timeout (SIGSTOP); the
# primary gives up on it and runs on; continued, the backup reads that it
# was given up on and drops its copy, though its ack of what came before
# fails on the closed link
mv "$TMP/runlog-A" "$TMP/runlog-A.1" # a new ferryd numbers its domains from 1 again
host A || not_ok "8: A starts again"
check "8: xl remus rvm B -> A without a witness" remus B A "$NAME" -i 50
dA=$(domid A "$NAME--backup")
a_pid=$(cat "$TMP/run-A/ferryd.pid")
kill -STOP "$a_pid"
check "8: B gives up on the stalled backup and runs on" wait_for 10 role_is B "$NAME" unprotected
kill -CONT "$a_pid"
check "8: A drops its copy" wait_for 10 absent A "$NAME--backup"
check "8: A's copy never ran (run log)" never_ran A "$dA"
check "8: exactly one running copy" test "$(copies)" = 1
check "8: verify sweeps clean on B" wait_for 10 sweeps_clean B

echo "# total $((SECONDS - T0)) s"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
