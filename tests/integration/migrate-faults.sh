#!/usr/bin/env bash
# Fault injection for live migration between two real ferryds ("hosts" A =
# 127.0.0.2 and B = 127.0.0.3, TLS). A small Python TCP proxy on
# 127.0.0.3 sits between A and B's listener; A migrates to the proxy, whose
# address carries B's certificate name, and the TLS bytes pass through
# untouched. The handshake messages are encrypted, so the proxy recognises
# them by their TLS record sizes (TLS 1.3, AES-GCM: plaintext + 1 + 16):
# ready (34 bytes with its NUL) is a 51-byte record from the target once the
# stream has gone by, go (44) a 61-byte record from the source after ready.
# Only the proxy's first connection (the migration) gets the fault; later
# ones (the source's ferry-query) are forwarded as they are.
#
# Cases, each ending with exactly one running copy across both daemons and
# the verify workload at zero mismatches:
#  1. connection cut mid-stream -> the source keeps running
#  2. target ferryd kill -9'd just before ready reaches the source ->
#     source fences, target restarts empty, the query says absent, resumed
#  3. connection cut right after go -> the query says running, moved
#  4. migrate-cancel after go ("too late") and before go (in the rounds and
#     during the handshake)
#  5. xl migrate --compress lz4|zstd|auto, --no-converge abort|force,
#     --downtime, --max-rounds, --json
#  6. an expired server certificate, and one naming another host
# Usage: tests/integration/migrate-faults.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-migfault.XXXXXX)
A_ADDR=127.0.0.2 B_ADDR=127.0.0.3
PROXY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/handshake-proxy.py
A_PORT=8102 B_PORT=8103 PX_PORT=8104
declare -A PID=() ADDR=([A]=$A_ADDR [B]=$B_ADDR) PORTS=([A]=$A_PORT [B]=$B_PORT)
NAME=fvm
VERIFY_PAGES=16384 # ws=64M
PXPID=

cleanup() {
	proxy_stop
	stop_hosts
	[[ -n "${KEEP_TMP:-}" ]] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

# migrate FROM HOST:PORT [options]: report in $TMP/report.json, errors in $TMP/migrate.err
migrate() {
	local from=$1 to=$2
	shift 2
	xlh "$from" migrate --json "$@" "$NAME" "$to" >"$TMP/report.json" 2>"$TMP/migrate.err"
}
json_ok() { python3 -c 'import json,sys; json.load(sys.stdin)' <"$TMP/report.json" 2>/dev/null; }
json_get() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" <"$TMP/report.json" 2>/dev/null; }

# Ends a case where the migration failed: the domain runs on A again.
still_on_a() { # LABEL
	local what=$1
	check "$what: $NAME runs on A under its name" running A "$NAME"
	check "$what: no mismatch on A since before the migration" no_bad_since A
	mark A
	check "$what: a sweep after the fault with zero mismatches" \
		wait_since A "verify: sweep pages=$VERIFY_PAGES mismatches=0"
	check "$what: no mismatch on A since the fault" no_bad_since A
	check "$what: nothing of it on B" clean_on B
	check "$what: exactly one running copy" test "$(copies)" = 1
}
# Ends a case where the domain moved A -> B.
moved_to_b() { # LABEL
	local what=$1
	check "$what: $NAME runs on B" running B "$NAME"
	check "$what: verify: resume with zero mismatches on B" \
		wait_since B "verify: resume pages=$VERIFY_PAGES mismatches=0"
	check "$what: no mismatch on B" no_bad_since B
	check "$what: nothing of it left on A" clean_on A
	check "$what: exactly one running copy" test "$(copies)" = 1
}
# Brings the domain back to A (a plain migration) for the next case.
back_to_a() {
	mark A
	migrate B "$A_ADDR:$A_PORT" || { not_ok "$1: back to A: $(cat "$TMP/migrate.err")"; return 1; }
	wait_since A "verify: resume pages=$VERIFY_PAGES mismatches=0" ||
		{ not_ok "$1: back to A: no clean resume"; return 1; }
}
fresh_domain() { # BACKEND [extra]
	xlh A destroy "$NAME" 2>/dev/null
	xlh B destroy "$NAME" 2>/dev/null
	cat >"$TMP/$NAME.cfg" <<CFG
name = "$NAME"
memory = 512
extra = "${2:-workload=verify ws=64M rate=20M}"
CFG
	mark A
	xlh A create "$TMP/$NAME.cfg" >/dev/null 2>&1 && wait_since A "verify: sweep"
}

# ---- the proxy: tests/integration/handshake-proxy.py ---------------------
# proxy_start MODE [ARG]: forwards 127.0.0.3:PX_PORT to B's listener
proxy_start() {
	rm -f "$TMP/proxy.mark"
	timeout 300 python3 "$PROXY" $B_ADDR $PX_PORT $B_ADDR $B_PORT "$1" "${2:-}" \
		"$TMP/proxy.mark" 2>>"$TMP/proxy.log" &
	PXPID=$!
	wait_marker listening 5
}
proxy_stop() {
	[[ -n "$PXPID" ]] || return 0
	kill "$PXPID" 2>/dev/null
	wait "$PXPID" 2>/dev/null
	PXPID=
}
marker_has() { grep -qx "$1" "$TMP/proxy.mark" 2>/dev/null; }
wait_marker() { # WORD SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do marker_has "$1" && return 0; sleep 0.1; done
	return 1
}
PX="$B_ADDR:$PX_PORT"

# B's xl list never shows NAME--incoming while CMD runs
watch_incoming() { # CMD...
	local seen=0
	"$@" &
	local p=$!
	while kill -0 $p 2>/dev/null; do
		exists B "$NAME--incoming" && seen=1
		sleep 0.05
	done
	wait $p
	local rc=$?
	echo $seen >"$TMP/incoming.seen"
	return $rc
}

# Both ferryds still alive (a crash would cascade through every later case).
alive() { # LABEL
	local h
	for h in A B; do
		if [[ -n "${PID[$h]:-}" ]] && ! kill -0 "$(cat "$TMP/run-$h/ferryd.pid" 2>/dev/null)" 2>/dev/null; then
			not_ok "$1: ferryd $h died: $(tail -c 300 "$TMP/ferryd-$h.out" | tail -1)"
			reap_host "$h"
			stop_host A
			stop_host B
			return 1
		fi
	done
}

# ---- the cases ----------------------------------------------------------
run_backend() { # BACKEND
	local b=$1 p t t0 rounds
	echo "# backend $b"
	start_host A "$b" "$TMP/tls" || { not_ok "$b: ferryd A starts"; return; }
	start_host B "$b" "$TMP/tls" || { not_ok "$b: ferryd B starts"; return; }
	fresh_domain "$b" || { not_ok "$b: create $NAME on A"; return; }

	# 1. cut mid-stream (16 MiB into the stream: the first round is ~64 MiB)
	t0=$SECONDS
	proxy_start cut-bytes $((16 << 20))
	mark A
	migrate A "$PX"
	t=$?
	proxy_stop
	check "$b 1 cut mid-stream: xl migrate fails" test $t -ne 0
	check "$b 1 cut mid-stream: the proxy cut it" marker_has cut
	still_on_a "$b 1 cut mid-stream"
	echo "# case 1: $((SECONDS - t0)) s"
	alive "$b after case 1" || return

	# 2. target kill -9'd when ready comes; restarted empty while A asks
	t0=$SECONDS
	: >"$TMP/state-B/ferryd.log"
	proxy_start kill-at-ready "$TMP/run-B/ferryd.pid"
	mark A
	migrate A "$PX" &
	p=$!
	if wait_marker killed 60; then
		reap_host B
		local fenced=0 i
		for ((i = 0; i < 100; i++)); do
			[[ "$(state A "$NAME--migratedaway")" == "--f---" ]] && { fenced=1; break; }
			sleep 0.1
		done
		check "$b 2 target killed after ready: A fences ($NAME--migratedaway, --f---)" test $fenced = 1
		check "$b 2 target killed after ready: xl unpause is refused while fenced" \
			fails xlh A unpause "$NAME--migratedaway" 2>/dev/null
		sleep 2 # a few of A's queries find nobody
		check "$b 2 target killed after ready: B restarts" start_host B "$b" "$TMP/tls"
	else
		not_ok "$b 2 target killed after ready: the proxy saw ready and killed B"
	fi
	wait $p
	t=$?
	proxy_stop
	check "$b 2 target killed after ready: xl migrate fails" test $t -ne 0
	check "$b 2 target killed after ready: the error says it runs here again" err_has "runs here again"
	check "$b 2 target killed after ready: A resolved by asking (log: absent)" \
		grep -q "is absent" "$TMP/state-B/ferryd.log"
	still_on_a "$b 2 target killed after ready"
	echo "# case 2: $((SECONDS - t0)) s"
	alive "$b after case 2" || return

	# 3. cut after go: the target runs it, A learns it by asking
	t0=$SECONDS
	proxy_start cut-after-go
	mark A
	mark B
	migrate A "$PX"
	t=$?
	proxy_stop
	check "$b 3 cut after go: the proxy cut after go" bash -c "grep -qx go '$TMP/proxy.mark' && grep -qx cut '$TMP/proxy.mark'"
	check "$b 3 cut after go: xl migrate succeeds" test $t = 0
	check "$b 3 cut after go: resolved by query" grep -q '"resolved_by_query":true' "$TMP/report.json"
	moved_to_b "$b 3 cut after go"
	back_to_a "$b 3"
	echo "# case 3: $((SECONDS - t0)) s"
	alive "$b after case 3" || return

	# 4a. cancel after go: too late
	t0=$SECONDS
	proxy_start delay-after-go 4
	mark A
	mark B
	migrate A "$PX" &
	p=$!
	if wait_marker held 60; then
		# by the name given to xl migrate (the copy here is NAME--migratedaway by now)
		xlh A migrate-cancel "$NAME" >"$TMP/cancel.out" 2>&1
		t=$?
		check "$b 4 cancel after go: xl migrate-cancel $NAME fails" test $t -ne 0
		check "$b 4 cancel after go: xl migrate-cancel $NAME says too late" \
			grep -qi "too late" "$TMP/cancel.out"
		grep -qi "too late" "$TMP/cancel.out" || echo "#   it said: $(cat "$TMP/cancel.out")"
		xlh A migrate-cancel "$NAME--migratedaway" >"$TMP/cancel.out" 2>&1
		t=$?
		check "$b 4 cancel after go: xl migrate-cancel $NAME--migratedaway fails" test $t -ne 0
		check "$b 4 cancel after go: xl migrate-cancel $NAME--migratedaway says too late" \
			grep -qi "too late" "$TMP/cancel.out"
		grep -qi "too late" "$TMP/cancel.out" || echo "#   it said: $(cat "$TMP/cancel.out")"
	else
		not_ok "$b 4 cancel after go: the proxy held the report"
	fi
	wait $p
	t=$?
	proxy_stop
	check "$b 4 cancel after go: xl migrate succeeds" test $t = 0
	check "$b 4 cancel after go: not resolved by query" grep -q '"resolved_by_query":false' "$TMP/report.json"
	moved_to_b "$b 4 cancel after go"
	back_to_a "$b 4"

	# 4b. cancel in the handshake, before go (ready held by the proxy)
	proxy_start delay-ready
	mark A
	migrate A "$PX" &
	p=$!
	if wait_marker ready 60; then
		check "$b 4 cancel before go (handshake): xl migrate-cancel is accepted" \
			xlh A migrate-cancel "$NAME"
	else
		not_ok "$b 4 cancel before go (handshake): the proxy held ready"
	fi
	wait $p
	t=$?
	proxy_stop
	check "$b 4 cancel before go (handshake): xl migrate fails" test $t -ne 0
	check "$b 4 cancel before go (handshake): the error says cancelled" err_has cancel
	still_on_a "$b 4 cancel before go (handshake)"

	# 4c. cancel in the rounds
	mark A
	migrate A "$B_ADDR:$B_PORT" --bandwidth 20M &
	p=$!
	sleep 1.5
	check "$b 4 cancel in the rounds: xl migrate-cancel is accepted" xlh A migrate-cancel "$NAME"
	wait $p
	t=$?
	check "$b 4 cancel in the rounds: xl migrate fails" test $t -ne 0
	check "$b 4 cancel in the rounds: the error says cancelled" err_has cancel
	still_on_a "$b 4 cancel in the rounds"
	echo "# case 4: $((SECONDS - t0)) s"
	alive "$b after case 4" || return

	# 5. xl options end to end
	t0=$SECONDS
	for c in lz4 zstd auto; do
		mark B
		check "$b 5 --compress $c: xl migrate succeeds" migrate A "$B_ADDR:$B_PORT" --compress $c
		moved_to_b "$b 5 --compress $c"
		cp "$TMP/report.json" "$TMP/report-$c.json"
		back_to_a "$b 5 $c"
	done
	check "$b 5 --json: valid JSON" json_ok
	for k in total_s downtime_ms bytes_sent rounds pages_per_round predicted_downtime_ms \
		decision codec compressed_pct_per_round; do
		check "$b 5 --json: has $k" test -n "$(json_get $k)"
	done
	check "$b 5 --json (auto): one compressed share per round, stop-and-copy too" \
		python3 -c 'import json,sys; r=json.load(sys.stdin)
sys.exit(not (r["codec_auto"] and len(r["compressed_pct_per_round"]) == len(r["codec_per_round"]) == len(r["pages_per_round"]) == r["rounds"] + 1))' \
		<"$TMP/report-auto.json"

	# guest memory like a real guest's: lz4 compresses round 0's frames,
	# and the report says so
	fresh_domain "$b" "workload=verify ws=64M rate=20M data=mix" ||
		{ not_ok "$b 5: data=mix $NAME on A"; return; }
	mark B
	check "$b 5 data=mix --compress lz4: xl migrate succeeds" migrate A "$B_ADDR:$B_PORT" --compress lz4
	moved_to_b "$b 5 data=mix --compress lz4"
	check "$b 5 data=mix --compress lz4: most of round 0's frames went compressed" \
		python3 -c 'import json,sys; r=json.load(sys.stdin)
sys.exit(not (r["codec"] == "lz4" and not r["codec_auto"] and r["codec_per_round"][0] == "lz4" and r["compressed_pct_per_round"][0] >= 50))' \
		<"$TMP/report.json"

	# a hot guest that cannot converge in 3 rounds to 1 ms: the link is
	# capped so that a round outlasts the rewrite of the whole working set
	# even when the guest gets little CPU beside the sender and the receiver
	# (uncapped, a starved vCPU dirtied nothing in an 11 ms round and the
	# migration fitted 1 ms)
	fresh_domain "$b" "workload=verify ws=16M rate=400M" || { not_ok "$b 5: hot $NAME on A"; return; }
	VERIFY_PAGES=4096
	mark A
	migrate A "$B_ADDR:$B_PORT" --no-converge abort --downtime 1 --max-rounds 3 --bandwidth 50M
	t=$?
	check "$b 5 --no-converge abort: xl migrate fails" test $t -ne 0
	check "$b 5 --no-converge abort: the error says it gave up" \
		grep -Eqi 'converge|timed out|gave up|abort' "$TMP/migrate.err"
	still_on_a "$b 5 --no-converge abort"
	mark B
	migrate A "$B_ADDR:$B_PORT" --no-converge force --downtime 1 --max-rounds 3 --bandwidth 50M
	t=$?
	check "$b 5 --no-converge force: xl migrate succeeds" test $t = 0
	rounds=$(json_get rounds)
	check "$b 5 --no-converge force: rounds ($rounds) <= 3" test "${rounds:-99}" -le 3
	check "$b 5 --no-converge force: pages_per_round has rounds+1 entries" \
		python3 -c 'import json,sys; r=json.load(sys.stdin); sys.exit(len(r["pages_per_round"]) != r["rounds"] + 1)' <"$TMP/report.json"
	moved_to_b "$b 5 --no-converge force"
	VERIFY_PAGES=16384
	fresh_domain "$b" || { not_ok "$b 5: recreate $NAME"; return; }
	echo "# case 5: $((SECONDS - t0)) s"
	alive "$b after case 5" || return

	# 6. certificates: refused before anything is created on B
	if ((!CERTS)); then
		xlh A destroy "$NAME" 2>/dev/null
		stop_host A
		stop_host B
		return
	fi
	t0=$SECONDS
	stop_host B
	: >"$TMP/state-B/ferryd.log"
	start_host B "$b" "$TMP/tls-expired" || { not_ok "$b 6: ferryd B (expired cert) starts"; return; }
	mark A
	watch_incoming migrate A "$B_ADDR:$B_PORT"
	t=$?
	check "$b 6 expired server certificate: xl migrate fails" test $t -ne 0
	check "$b 6 expired server certificate: the error says expired" err_has expired
	check "$b 6 expired server certificate: no $NAME--incoming ever on B" test "$(cat "$TMP/incoming.seen")" = 0
	check "$b 6 expired server certificate: B's log names the refusal" \
		grep -Eqi 'refused a connection.*(certificate|alert)' "$TMP/state-B/ferryd.log"
	still_on_a "$b 6 expired server certificate"
	stop_host B
	: >"$TMP/state-B/ferryd.log"

	# B presents A's certificate (same CA, names 127.0.0.2)
	start_host B "$b" "$TMP/tls" --tls-name $A_ADDR || { not_ok "$b 6: ferryd B (A's cert) starts"; return; }
	mark A
	watch_incoming migrate A "$B_ADDR:$B_PORT"
	t=$?
	check "$b 6 certificate of another host: xl migrate fails" test $t -ne 0
	check "$b 6 certificate of another host: the error names the mismatch" \
		bash -c "grep -qi certificate '$TMP/migrate.err' && grep -q '$A_ADDR' '$TMP/migrate.err'"
	check "$b 6 certificate of another host: no $NAME--incoming ever on B" test "$(cat "$TMP/incoming.seen")" = 0
	check "$b 6 certificate of another host: B's log names the refusal" \
		grep -Eqi 'refused a connection.*(certificate|alert)' "$TMP/state-B/ferryd.log"
	still_on_a "$b 6 certificate of another host"
	stop_host B
	: >"$TMP/state-B/ferryd.log"

	# A presents an expired client certificate: B refuses it itself
	start_host B "$b" "$TMP/tls" || { not_ok "$b 6: ferryd B restarts"; return; }
	stop_host A
	start_host A "$b" "$TMP/tls-expired-a" || { not_ok "$b 6: ferryd A (expired) starts"; return; }
	fresh_domain "$b" || { not_ok "$b 6: create on A"; return; }
	mark A
	watch_incoming migrate A "$B_ADDR:$B_PORT"
	t=$?
	check "$b 6 expired client certificate: xl migrate fails" test $t -ne 0
	check "$b 6 expired client certificate: no $NAME--incoming ever on B" test "$(cat "$TMP/incoming.seen")" = 0
	check "$b 6 expired client certificate: B's log says expired" \
		grep -Eqi 'refused a connection.*expired' "$TMP/state-B/ferryd.log"
	check "$b 6 expired client certificate: the error says why" err_has "certificate"
	still_on_a "$b 6 expired client certificate"
	echo "# case 6: $((SECONDS - t0)) s"
	alive "$b after case 6" || return

	xlh A destroy "$NAME" 2>/dev/null
	stop_host A
	stop_host B
}

# An expired certificate for HOST from the CA in DIR: openssl ca with
# explicit dates (x509 -days cannot go negative).
expired_cert() { # TLSDIR HOST OUTDIR
	local d=$1 h=$2 o=$3 w="$TMP/ossl"
	mkdir -p "$w" "$o"
	: >"$w/index.txt"
	echo 01 >"$w/serial"
	cat >"$w/ca.cnf" <<EOF
[ ca ]
default_ca = c
[ c ]
database = $w/index.txt
new_certs_dir = $w
serial = $w/serial
default_md = sha256
policy = p
x509_extensions = ext
unique_subject = no
[ p ]
commonName = supplied
[ ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:$h
EOF
	timeout 30 openssl ecparam -name prime256v1 -genkey -noout -out "$o/$h.key" 2>/dev/null &&
		timeout 30 openssl req -new -key "$o/$h.key" -subj "/CN=$h" -out "$w/$h.csr" 2>/dev/null &&
		timeout 30 openssl ca -batch -config "$w/ca.cnf" -cert "$d/ca.pem" -keyfile "$d/ca.key" \
			-in "$w/$h.csr" -out "$o/$h.pem" -startdate 20200101000000Z \
			-enddate 20200102000000Z -notext >/dev/null 2>&1 &&
		cp "$d/ca.pem" "$o/" && chmod 600 "$o/$h.key"
}

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f"; exit 1; }; done
command -v python3 >/dev/null || { echo "python3 is needed"; exit 1; }
timeout 60 "$XL" tls-setup --dir "$TMP/tls" --host $A_ADDR --host $B_ADDR 2>/dev/null ||
	{ echo "xl tls-setup failed"; exit 1; }
CERTS=1
if ! command -v openssl >/dev/null; then
	CERTS=0
elif ! expired_cert "$TMP/tls" $B_ADDR "$TMP/tls-expired" ||
	! expired_cert "$TMP/tls" $A_ADDR "$TMP/tls-expired-a"; then
	CERTS=0
fi
T0=$SECONDS
for b in ${FERRY_TEST_BACKENDS:-soft kvm}; do
	if [[ $b == kvm ]] && ! kvm_usable; then
		skip "kvm: /dev/kvm is not usable here"
		continue
	fi
	ts=$SECONDS
	run_backend "$b"
	echo "# backend $b: $((SECONDS - ts)) s"
done
((CERTS)) || skip "certificate cases: the openssl CLI is missing or could not issue an expired certificate"
echo "# total $((SECONDS - T0)) s"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
