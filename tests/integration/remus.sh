#!/usr/bin/env bash
# Replication pairs (xl remus) between two real ferryds ("hosts" A =
# 127.0.0.2 and B = 127.0.0.3, TLS from xl tls-setup), soft backend (and kvm
# where /dev/kvm opens), a verify guest throughout:
#  1. xl remus protects it: the report, xl list on both (protected; the
#     backup's copy NAME--backup, paused), remus-status's epochs going up
#  2. kill -9 the primary's ferryd: the backup runs it within the timeout,
#     verify resumes with zero mismatches, exactly one copy
#  3. failback: A starts again, xl remus from B to A; then remus-stop: A's
#     copy goes, B runs on
#  4. the backup's ferryd killed: the primary says unprotected and runs on
#  5. the primary's ferryd stopped on purpose (SIGTERM): a controlled
#     failover, the backup runs it from its last epoch
#  6. refused: a backup that holds a domain of that name; -b without -F; a
#     backup without the memory for the copy
#  8. xl remus -b -F (blackhole, no host): epochs go on, remus-stop ends it
#  7. with a witness (a real etcd the script starts): kill -9 the primary,
#     the backup runs it once it holds the lease; a witness that cannot be
#     reached refuses protection and the domain runs on
#  9. a backup presenting another host's certificate: refused, named, the
#     domain runs on
# 10. a witness over TLS (etcd requiring client certificates from the
#     hosts' CA): protected, the primary killed, the backup runs it
# Usage: tests/integration/remus.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-remus.XXXXXX)
A_ADDR=127.0.0.2 B_ADDR=127.0.0.3
declare -A PID=() ADDR=([A]=$A_ADDR [B]=$B_ADDR) PORTS=([A]=8112 [B]=8113)
HOST_MEMORY=512M
NAME=rvm
VERIFY_PAGES=8192 # ws=32M
TIMEOUT_MS=500

cleanup() {
	stop_hosts
	[[ -z $ETCD_PID ]] || kill "$ETCD_PID" 2>/dev/null
	[[ -z $ETCD_TLS_PID ]] || kill "$ETCD_TLS_PID" 2>/dev/null
	[[ -n "${KEEP_TMP:-}" ]] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

# remus FROM TO [xl remus options]: the report in $TMP/report.json
remus() {
	local from=$1 to=$2
	shift 2
	xlh "$from" remus --json --timeout $TIMEOUT_MS "$@" "$NAME" "${ADDR[$to]}:${PORTS[$to]}" \
		>"$TMP/report.json" 2>"$TMP/remus.err"
}
blackhole() { xlh "$1" remus -b -F --json "$NAME" >"$TMP/report.json" 2>"$TMP/remus.err"; }
json_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@" 2>/dev/null; }
status_get() { # HOST KEY
	xlh "$1" remus-status --json "$NAME" >"$TMP/status.json" 2>/dev/null &&
		json_get "$TMP/status.json" "$2"
}
epochs_grow() { # HOST
	local a b
	a=$(status_get "$1" epochs) || return 1
	sleep 0.5
	b=$(status_get "$1" epochs) || return 1
	((b > a))
}
wait_role() { # HOST DOMAIN ROLE
	local i
	for ((i = 0; i < 50; i++)); do
		[[ "$(role "$1" "$2")" == "$3" ]] && return 0
		sleep 0.1
	done
	return 1
}
wait_running() { # HOST: up to 5 s
	local i
	for ((i = 0; i < 50; i++)); do
		running "$1" "$NAME" && return 0
		sleep 0.1
	done
	return 1
}
# The domain runs on HOST from a failover: verify's resume check is clean.
took_over() { # LABEL HOST
	check "$1: $NAME runs on $2" wait_running "$2"
	check "$1: verify: resume with zero mismatches on $2" \
		wait_since "$2" "verify: resume pages=$VERIFY_PAGES mismatches=0"
	check "$1: no mismatch on $2" no_bad_since "$2"
	check "$1: exactly one running copy" test "$(copies)" = 1
}
protect() { # LABEL FROM TO
	check "$1: xl remus $2 -> $3 returns protected" remus "$2" "$3" -i 50
	check "$1: the report says protected" test "$(json_get "$TMP/report.json" state)" = protected
	check "$1: xl list on $2 says protected" wait_role "$2" "$NAME" protected
	check "$1: the backup's copy is $NAME--backup, paused" \
		test "$(state "$3" "$NAME--backup")" = "--p---"
	check "$1: xl list on $3 says backup" wait_role "$3" "$NAME--backup" backup
	check "$1: epochs go on" epochs_grow "$2"
}

run_backend() {
	local b=$1
	start_host A "$b" && start_host B "$b" || { not_ok "$b: the hosts start"; return; }
	printf 'name = "%s"\nmemory = 128\nextra = "workload=verify ws=32M rate=4M"\n' "$NAME" \
		>"$TMP/$NAME.cfg"
	check "$b: xl create on A" xlh A create "$TMP/$NAME.cfg"
	check "$b: the guest sweeps" wait_since A "verify: sweep pages=$VERIFY_PAGES mismatches=0"

	# 1. protection
	protect "$b: 1" A B
	check "$b: 1: remus-status shows pauses and bytes" \
		python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(not (s["pause_p99_ms"] > 0 and s["bytes_per_epoch"] > 0))' "$TMP/status.json"
	check "$b: 1: a second xl remus is refused" fails remus A B
	check "$b: 1: xl migrate of a protected domain is refused" \
		fails xlh A migrate "$NAME" "$B_ADDR:${PORTS[B]}"
	check "$b: 1: xl save of it too" fails xlh A save "$NAME" "$TMP/protected.save"
	check "$b: 1: and it still runs, protected" wait_role A "$NAME" protected

	# 2. the primary dies
	mark B
	kill9_host A
	took_over "$b: 2 (primary killed)" B
	check "$b: 2: it runs under its own name, not in a pair" test -z "$(role B "$NAME")"

	# 3. failback to A, then remus-stop
	start_host A "$b" || { not_ok "$b: A starts again"; return; }
	protect "$b: 3" B A
	check "$b: 3: remus-stop" xlh B remus-stop "$NAME"
	check "$b: 3: A drops its copy" bash -c "for i in \$(seq 50); do $XL -S $(sock A) list $NAME--backup >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1"
	check "$b: 3: B runs on, not in a pair" bash -c "sleep 0.3; [[ -z \"\$($XL -S $(sock B) list $NAME | awk 'NR == 2 { print \$7 }')\" ]]"
	check "$b: 3: exactly one running copy" test "$(copies)" = 1

	# 4. the backup dies
	protect "$b: 4" B A
	mark B
	kill9_host A
	check "$b: 4: B says unprotected" wait_role B "$NAME" unprotected
	check "$b: 4: B's guest sweeps on, clean" wait_since B "verify: sweep pages=$VERIFY_PAGES mismatches=0"
	check "$b: 4: exactly one running copy" test "$(copies)" = 1

	# 5. the primary's ferryd stopped on purpose: handover
	start_host A "$b" || { not_ok "$b: A starts again"; return; }
	xlh B remus-stop "$NAME" >/dev/null 2>&1 # the unprotected pair's leftovers, if any
	sleep 0.3
	protect "$b: 5" B A
	mark A
	stop_host B
	took_over "$b: 5 (primary stopped)" A

	# 6. refusals
	start_host B "$b" || { not_ok "$b: B starts again"; return; }
	printf 'name = "%s"\nmemory = 64\nextra = "workload=idle"\n' "$NAME" >"$TMP/other.cfg"
	check "$b: 6: B holds another $NAME" xlh B create "$TMP/other.cfg"
	check "$b: 6: xl remus to it is refused" fails remus A B
	check "$b: 6: the refusal names the reason" grep -q "exists here" "$TMP/remus.err"
	check "$b: 6: A's guest runs on" running A "$NAME"
	check "$b: 6: -b without -F is refused" fails xlh A remus -b "$NAME" "$B_ADDR:${PORTS[B]}"
	xlh B destroy "$NAME" >/dev/null 2>&1
	printf 'name = "hog"\nmemory = 448\nextra = "workload=idle"\n' >"$TMP/hog.cfg"
	check "$b: 6: B's memory taken by another domain" xlh B create "$TMP/hog.cfg"
	check "$b: 6: xl remus to a backup without the memory is refused" fails remus A B
	check "$b: 6: the refusal names the memory" grep -q "MiB free" "$TMP/remus.err"
	check "$b: 6: nothing of it on B" absent B "$NAME--backup"
	check "$b: 6: A's guest runs on" running A "$NAME"
	xlh B destroy hog >/dev/null 2>&1

	# 8 (before 7, which leaves B running it). a blackhole: epochs made and dropped
	check "$b: 8: xl remus -b -F without a host" blackhole A
	check "$b: 8: the report says blackhole" test "$(json_get "$TMP/report.json" state)" = blackhole
	check "$b: 8: epochs go on" epochs_grow A
	check "$b: 8: remus-stop" xlh A remus-stop "$NAME"
	check "$b: 8: A's guest runs on, not in a pair" bash -c "sleep 0.5; [[ -z \"\$($XL -S $(sock A) list $NAME | awk 'NR == 2 { print \$7 }')\" ]]"

	# 7. a witness
	if [[ -n $ETCD ]]; then
		xlh B destroy "$NAME" >/dev/null 2>&1
		check "$b: 7: xl remus --witness" remus A B -i 50 --witness "$ETCD"
		check "$b: 7: protected" wait_role A "$NAME" protected
		mark B
		kill9_host A
		took_over "$b: 7 (primary killed, witness)" B
		check "$b: 7: the takeover is recorded at the witness" \
			bash -c "curl -s -X POST $ETCD_HTTP/v3/kv/range -d '{\"key\":\"$(printf '/ferry/remus/%s/state' "$(uuid_of B)" | base64 -w0)\"}' | grep -q \"$(printf 'taken over' | base64 -w0 | cut -c1-12)\""
		start_host A "$b" || { not_ok "$b: A starts again"; return; }
		check "$b: 7: an unreachable witness is refused" fails remus B A --witness etcd://127.0.0.1:9
		check "$b: 7: the error names the witness" grep -q "witness etcd://127.0.0.1:9" "$TMP/remus.err"
		check "$b: 7: B runs on" running B "$NAME"
		check "$b: 7: nothing of it on A" absent A "$NAME--backup"
	fi

	# 9. a backup that presents another host's certificate (same CA)
	local p=A q=B
	running B "$NAME" && p=B q=A
	stop_host $q
	start_host $q "$b" "$TMP/tls" --tls-name "${ADDR[$p]}" || { not_ok "$b: 9: $q starts"; return; }
	check "$b: 9: xl remus to a backup with $p's certificate is refused" fails remus $p $q
	check "$b: 9: the error names the certificate" \
		bash -c "grep -qi certificate '$TMP/remus.err' && grep -q '${ADDR[$p]}' '$TMP/remus.err'"
	check "$b: 9: nothing of it on $q" absent $q "$NAME--backup"
	check "$b: 9: $p's guest runs on, not in a pair" \
		bash -c "[[ -z \"\$($XL -S $(sock $p) list $NAME | awk 'NR == 2 { print \$7 }')\" ]]"
	check "$b: 9: exactly one running copy" test "$(copies)" = 1

	# 10. a witness over TLS that requires our CA's client certificates
	if [[ -n $ETCD_TLS ]]; then
		stop_host $q
		start_host $q "$b" || { not_ok "$b: 10: $q starts"; return; }
		check "$b: 10: etcd refuses a client without a certificate" \
			fails curl -sf --cacert "$TMP/tls/ca.pem" "$ETCD_TLS/version"
		check "$b: 10: xl remus --witness $ETCD_TLS" remus $p $q -i 50 --witness "$ETCD_TLS"
		check "$b: 10: protected" wait_role $p "$NAME" protected
		check "$b: 10: the lease is held there" \
			bash -c "$(declare -f etcd_tls_curl); TMP=$TMP A_ADDR=$A_ADDR; etcd_tls_curl /v3/kv/range -X POST -d '{\"key\":\"$(printf '/ferry/remus/%s/owner' "$(uuid_of $p)" | base64 -w0)\"}' | grep -q '\"lease\"'"
		mark $q
		kill9_host $p
		took_over "$b: 10 (primary killed, TLS witness)" $q
	fi
	stop_hosts
}

uuid_of() { xlh "$1" list -l "$NAME" 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d, list) else d; print(d.get("uuid") or d["config"]["uuid"])'; }
ETCD= ETCD_HTTP= ETCD_PID=
start_etcd() {
	command -v etcd >/dev/null || return 1
	etcd --data-dir "$TMP/etcd" --listen-client-urls http://127.0.0.1:8122 \
		--advertise-client-urls http://127.0.0.1:8122 --listen-peer-urls http://127.0.0.1:8123 \
		--initial-advertise-peer-urls http://127.0.0.1:8123 \
		--initial-cluster default=http://127.0.0.1:8123 \
		--heartbeat-interval 50 --election-timeout 500 >"$TMP/etcd.out" 2>&1 &
	ETCD_PID=$!
	for ((i = 0; i < 100; i++)); do
		curl -s http://127.0.0.1:8122/version >/dev/null 2>&1 && break
		sleep 0.1
	done
	ETCD=etcd://127.0.0.1:8122 ETCD_HTTP=http://127.0.0.1:8122
}

# The same over TLS, requiring client certificates from the hosts' CA.
ETCD_TLS= ETCD_TLS_PID=
start_etcd_tls() {
	etcd --name tls --data-dir "$TMP/etcd-tls" --listen-client-urls https://127.0.0.1:8124 \
		--advertise-client-urls https://127.0.0.1:8124 --listen-peer-urls http://127.0.0.1:8125 \
		--initial-advertise-peer-urls http://127.0.0.1:8125 \
		--initial-cluster tls=http://127.0.0.1:8125 --client-cert-auth \
		--trusted-ca-file "$TMP/tls/ca.pem" --cert-file "$TMP/tls/127.0.0.1.pem" \
		--key-file "$TMP/tls/127.0.0.1.key" \
		--heartbeat-interval 50 --election-timeout 500 >"$TMP/etcd-tls.out" 2>&1 &
	ETCD_TLS_PID=$!
	for ((i = 0; i < 100; i++)); do
		etcd_tls_curl /version >/dev/null 2>&1 && break
		sleep 0.1
	done
	ETCD_TLS=https://127.0.0.1:8124
}
etcd_tls_curl() { # PATH [curl args]
	local path=$1
	shift
	curl -sf --cacert "$TMP/tls/ca.pem" --cert "$TMP/tls/$A_ADDR.pem" --key "$TMP/tls/$A_ADDR.key" \
		"https://127.0.0.1:8124$path" "$@"
}

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f"; exit 1; }; done
start_etcd || skip "witness cases: etcd is not installed (scripts/deps.sh installs etcd-server)"

# 127.0.0.1: the TLS witness's certificate, from the hosts' CA
timeout 60 "$XL" tls-setup --dir "$TMP/tls" --host $A_ADDR --host $B_ADDR --host 127.0.0.1 \
	2>/dev/null || { echo "xl tls-setup failed"; exit 1; }
[[ -z $ETCD ]] || start_etcd_tls ||
	{ echo "etcd over TLS did not start"; cat "$TMP/etcd-tls.out"; exit 1; }
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
echo "# total $((SECONDS - T0)) s"
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
