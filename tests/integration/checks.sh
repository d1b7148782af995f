#!/usr/bin/env bash
# ferryd's own checks and a migration target's reason (soft backend):
#  - --memory above the host's RAM plus swap is refused;
#  - two ferryds cannot share a state dir (STATE_DIR/ferryd.lock);
#  - a symlinked RUN_DIR/ferryd.pid is refused and its target left alone;
#  - a run or state dir others can write, or (as root) one another user
#    owns, is refused;
#  - a target out of memory refuses a migration and the source's error
#    says the target's reason; a target killed mid-stream gives no reason,
#    and the error says the target closed the connection, without guessing.
# Hosts A = 127.0.4.2 and B = 127.0.4.3, TLS.
# Usage: tests/integration/checks.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-checks.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
declare -A PID=() ADDR=([A]=127.0.4.2 [B]=127.0.4.3) PORTS=([A]=$PORT [B]=$PORT)
NAME=ck
ferryd_pid=

cleanup() {
	stop_hosts
	stop_ferryd
	rm -rf "$TMP"
}
trap cleanup EXIT

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f (build first)"; exit 1; }; done

# refuses LABEL PATTERN ferryd-args...: a foreground ferryd exits at once,
# non-zero, saying PATTERN (one that would run is stopped after 5 s: a fail)
refuses() {
	local what=$1 pat=$2 rc
	shift 2
	timeout 5 "$FERRYD" --foreground --on-stop destroy --backend soft --memory 64M "$@" >"$TMP/refuse.out" 2>&1
	rc=$?
	if ((rc == 0 || rc == 124)) || ! grep -qF -- "$pat" "$TMP/refuse.out"; then
		not_ok "$what (exit $rc: $(tail -1 "$TMP/refuse.out"))"
		return 1
	fi
	ok "$what"
}

# ---- ferryd's flags and directories ---------------------------------------
echo "# ferryd"
refuses "--memory 100T is more than this host can back" "more than this host can back" \
	--memory 100T --run-dir "$TMP/run-m" --state-dir "$TMP/state-m"

timeout 120 "$FERRYD" --foreground --on-stop destroy --backend soft --memory 64M --run-dir "$TMP/run-1" \
	--state-dir "$TMP/state-1" >"$TMP/ferryd-1.out" 2>&1 &
ferryd_pid=$!
if wait_socket "$TMP/run-1/ferryd.sock"; then
	refuses "a second ferryd on the same state dir (another run dir) is refused" \
		"already owns state dir $TMP/state-1" --run-dir "$TMP/run-2" --state-dir "$TMP/state-1"
else
	not_ok "a first ferryd starts"
fi
stop_ferryd

mkdir -m 0700 "$TMP/run-s"
echo precious >"$TMP/victim"
ln -s "$TMP/victim" "$TMP/run-s/ferryd.pid"
refuses "a symlinked RUN_DIR/ferryd.pid is refused" "ferryd.pid is a symbolic link" \
	--run-dir "$TMP/run-s" --state-dir "$TMP/state-s"
check "... and its target is untouched" test "$(cat "$TMP/victim")" = precious

mkdir -m 0700 "$TMP/run-w" "$TMP/state-w"
chmod 0777 "$TMP/run-w"
refuses "a run dir others can write is refused" "run dir $TMP/run-w is writable by others" \
	--run-dir "$TMP/run-w" --state-dir "$TMP/state-w"
chmod 0700 "$TMP/run-w"
chmod 0770 "$TMP/state-w"
refuses "a state dir others can write is refused" "state dir $TMP/state-w is writable by others" \
	--run-dir "$TMP/run-w" --state-dir "$TMP/state-w"
if (($(id -u) == 0)); then
	mkdir -m 0700 "$TMP/run-o"
	chown nobody "$TMP/run-o"
	refuses "a run dir root does not own is refused" "run dir $TMP/run-o belongs to uid" \
		--run-dir "$TMP/run-o" --state-dir "$TMP/state-w2"
else
	skip "a run dir root does not own: not root here"
fi

# ---- a migration target's reason --------------------------------------------
echo "# migration"
timeout 60 "$XL" tls-setup --dir "$TMP/tls" --host "${ADDR[A]}" --host "${ADDR[B]}" 2>/dev/null ||
	{ echo "xl tls-setup failed"; exit 1; }
# migrate: A -> B, errors in $TMP/migrate.err
migrate() { xlh A migrate "$@" "$NAME" "${ADDR[B]}:$PORT" >/dev/null 2>"$TMP/migrate.err"; }

HOST_MEMORY=1G start_host A soft || not_ok "ferryd A starts"
HOST_MEMORY=256M start_host B soft || not_ok "ferryd B (256M) starts"
cat >"$TMP/$NAME.cfg" <<CFG
name = "$NAME"
memory = 512
extra = "workload=verify ws=64M rate=20M"
CFG
if xlh A create "$TMP/$NAME.cfg" 2>/dev/null; then
	check "target out of memory: xl migrate fails" fails migrate
	check "target out of memory: the error gives the target's reason" \
		grep -qE "failed: the target refused: .*512 MiB" "$TMP/migrate.err"
	check "target out of memory: ... without the source's guess" \
		bash -c "! grep -q 'e.g. not enough memory' '$TMP/migrate.err'"
	check "target out of memory: $NAME runs on A" running A "$NAME"
	stop_host B

	HOST_MEMORY=1G start_host B soft || not_ok "ferryd B (1G) starts"
	migrate --bandwidth 20M &
	p=$!
	for ((i = 0; i < 100; i++)); do exists B "$NAME--incoming" && break; sleep 0.05; done
	sleep 0.5
	kill -9 "$(cat "$TMP/run-B/ferryd.pid")"
	reap_host B
	wait $p
	t=$?
	check "target killed mid-stream: xl migrate fails" test $t -ne 0
	check "target killed mid-stream: the error says the target closed the connection" \
		grep -q "the target closed the connection (see its log)" "$TMP/migrate.err"
	check "target killed mid-stream: ... and guesses no reason" \
		bash -c "! grep -q 'not enough memory' '$TMP/migrate.err'"
	check "target killed mid-stream: $NAME runs on A" running A "$NAME"
else
	not_ok "create $NAME on A"
fi
stop_hosts

if ((failed)); then
	for f in "$TMP"/ferryd-*.out "$TMP/migrate.err"; do
		[[ -f $f ]] && { echo "--- $f"; tail -20 "$f"; }
	done
fi
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
