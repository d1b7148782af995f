# Helpers the integration tests share; each sources this file first:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# (not a *.sh: scripts/test.sh runs every tests/integration/*.sh as a test).
# It offers:
#  - results: ok, not_ok, skip, check (counting passed, failed, skipped)
#  - kvm_usable: /dev/kvm opens read-write here
#  - wait_socket PATH: up to 10 s for a socket there
#  - one ferryd ($ferryd_pid): stop_ferryd; for a script with one:
#    one_ferryd_script, start_one_ferryd
#  - ferryds named A and B ($TMP/run-NAME, $TMP/state-NAME, PID[NAME]):
#    sock, xlh, start_host (on ${ADDR[NAME]}:${PORTS[NAME]}), stop_host,
#    stop_hosts, reap_host; a domain on one: exists, absent, state, running,
#    role
#  - the migrating domain $NAME: clean_on, copies, err_has, and its console
#    logs since a mark: conlogs, mark, since, wait_since, no_bad_since
# A script may define its own version of any of these after sourcing
# (balloon's ok names the backend; xl-basic's running and save-restore's
# exists ask their one ferryd; migrate's start_host takes an address and
# memory; pingpong's console helpers take a domain).

passed=0 failed=0 skipped=0
HOST_MEMORY=2G # start_host's --memory

ok() { passed=$((passed + 1)); echo "ok   - $*"; }
not_ok() { failed=$((failed + 1)); echo "FAIL - $*"; }
skip() { skipped=$((skipped + 1)); echo "skip - $*"; }
# fails COMMAND...: true when COMMAND fails (a refusal a check expects)
fails() { ! "$@"; }
check() { # check DESCRIPTION COMMAND...
	local what=$1; shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

kvm_usable() { python3 -c 'import os; os.close(os.open("/dev/kvm", os.O_RDWR))' 2>/dev/null; }

wait_socket() { # PATH
	local i
	for ((i = 0; i < 100; i++)); do [[ -S "$1" ]] && return 0; sleep 0.1; done
	return 1
}

# The one ferryd of a script, if it still runs.
stop_ferryd() {
	if [[ -n "${ferryd_pid:-}" ]] && kill -0 "$ferryd_pid" 2>/dev/null; then
		kill -TERM "$ferryd_pid" 2>/dev/null || true
		wait "$ferryd_pid" 2>/dev/null || true
	fi
	ferryd_pid=
}

# one_ferryd_script NAME BUILD_DIR: BUILD, XL and FERRYD (which must be
# built), TMP (a new /tmp/ferry-NAME.XXXXXX) and FERRY_SOCKET; at exit the
# script's one ferryd is stopped and TMP removed.
one_ferryd_script() {
	local f
	BUILD=$(cd "$2" && pwd) || exit 1
	XL=$BUILD/xl FERRYD=$BUILD/ferryd
	for f in "$XL" "$FERRYD"; do [[ -x $f ]] || { echo "missing $f (build first)"; exit 1; }; done
	TMP=$(mktemp -d "/tmp/ferry-$1.XXXXXX")
	export FERRY_SOCKET=$TMP/run/ferryd.sock
	ferryd_pid=
	trap 'stop_ferryd; rm -rf "$TMP"' EXIT
}
# start_one_ferryd BACKEND MEMORY: in $TMP/run and $TMP/state, its output
# in $TMP/ferryd.out; up to 10 s for its socket.
start_one_ferryd() {
	timeout 900 "$FERRYD" --foreground --on-stop destroy --backend "$1" --memory "$2" \
		--run-dir "$TMP/run" --state-dir "$TMP/state" >"$TMP/ferryd.out" 2>&1 &
	ferryd_pid=$!
	wait_socket "$FERRY_SOCKET"
}

sock() { echo "$TMP/run-$1/ferryd.sock"; }
xlh() { local h=$1; shift; timeout 120 "$XL" -S "$(sock "$h")" "$@"; }
exists() { xlh "$1" list "$2" >/dev/null 2>&1; }
absent() { ! exists "$1" "$2"; }
# state HOST DOMAIN: the xl list state column
state() { xlh "$1" list "$2" 2>/dev/null | awk 'NR == 2 { print $5 }'; }
running() { [[ "$(state "$1" "$2")" =~ ^(r|-b) ]]; }
# role HOST DOMAIN: a replication pair's role column (protected, backup...)
role() { xlh "$1" list "$2" 2>/dev/null | awk 'NR == 2 { print $7 }'; }

# start_host NAME BACKEND [TLSDIR [extra ferryd flags]]: ferryd NAME with
# HOST_MEMORY, TLS from TLSDIR (default $TMP/tls), run under FERRYD_WRAP
# if set; up to 10 s for its socket.
start_host() {
	local n=$1 b=$2 tls=${3:-$TMP/tls}
	shift 2
	(($# == 0)) || shift
	rm -f "$(sock "$n")"
	timeout 900 ${FERRYD_WRAP:-} "$FERRYD" --foreground --on-stop destroy --backend "$b" --memory "$HOST_MEMORY" \
		--run-dir "$TMP/run-$n" --state-dir "$TMP/state-$n" \
		--listen "${ADDR[$n]}:${PORTS[$n]}" --tls-dir "$tls" "$@" >>"$TMP/ferryd-$n.out" 2>&1 &
	PID[$n]=$!
	wait_socket "$(sock "$n")"
}
stop_host() {
	[[ -n "${PID[$1]:-}" ]] || return 0
	kill -TERM "${PID[$1]}" 2>/dev/null
	wait "${PID[$1]}" 2>/dev/null
	unset "PID[$1]"
}
stop_hosts() {
	local n
	for n in "${!PID[@]}"; do stop_host "$n"; done
}
# reap a ferryd something else killed
reap_host() {
	wait "${PID[$1]}" 2>/dev/null
	unset "PID[$1]"
	rm -f "$(sock "$1")"
}
# kill -9 the ferryd itself (not the timeout(1) around it)
kill9_host() {
	local p
	p=$(cat "$TMP/run-$1/ferryd.pid" 2>/dev/null)
	[[ -n "$p" ]] && kill -9 "$p"
	reap_host "$1"
}

# Nothing of NAME on HOST: no NAME, NAME--incoming or NAME--migratedaway.
clean_on() {
	local i
	for ((i = 0; i < 50; i++)); do
		if absent "$1" "$NAME" && absent "$1" "$NAME--incoming" &&
			absent "$1" "$NAME--migratedaway"; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}
# How many hosts run NAME (live ferryds only).
copies() {
	local n=0 h
	for h in A B; do
		[[ -S "$(sock $h)" ]] || continue
		running "$h" "$NAME" && n=$((n + 1))
	done
	echo $n
}
# The last xl migrate's errors, in $TMP/migrate.err, say PATTERN.
err_has() { grep -qi -- "$1" "$TMP/migrate.err"; }

# Console logs are append-only files; a migrated-in domain writes to the
# log of the name it was created under (NAME--incoming), so both count.
# mark HOST: remember their sizes; since HOST: what was written after.
conlogs() { ls "$TMP/state-$1/console/guest-$NAME.log" "$TMP/state-$1/console/guest-$NAME--"*.log 2>/dev/null; }
declare -A MARK=()
mark() {
	local f
	for f in $(conlogs "$1"); do MARK[$f]=$(stat -c %s "$f"); done
}
since() {
	local f
	for f in $(conlogs "$1"); do tail -c +$((${MARK[$f]:-0} + 1)) "$f"; done
}
# wait_since HOST PATTERN: up to 30 s for a line matching PATTERN after the mark
wait_since() {
	local i
	for ((i = 0; i < 150; i++)); do
		since "$1" | grep -q -- "$2" && return 0
		sleep 0.2
	done
	return 1
}
no_bad_since() { ! since "$1" | grep -Eq 'verify: mismatch|mismatches=[1-9]'; }
