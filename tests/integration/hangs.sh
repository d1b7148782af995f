#!/usr/bin/env bash
# Hangs (issue 10): migrations that a stalled peer, a cancel, a client that
# goes away or SIGTERM must end within a bound. Two ferryds ("hosts" A =
# 127.0.1.2 and B = 127.0.1.3, TLS from xl tls-setup, soft backend) run
# with a short --net-timeout; the migrations are paced with --bandwidth so
# the stream lasts several seconds.
#  1. B SIGSTOPped mid-stream: A gives up within --net-timeout (plus a
#     margin), says the target stalled, the domain runs on A with verify
#     clean; B, continued, has nothing left of it
#  2. migrate-cancel while A's write is blocked on the stopped B: xl
#     migrate returns at once, "cancelled"
#  3. xl killed mid-migration: the migration is cancelled
#  4. the fence bound: a proxy passes go to B and then goes silent; A's
#     queries are refused for 24 s, and the one after that is accepted and
#     never answered: A is fenced, and the query phase still ends within
#     30 s (plus --net-timeout for the report, plus a margin), not 24 s
#     plus a whole handshake timeout
#  5. A SIGSTOPped mid-stream: B's receiver gives up within --net-timeout
#     and drops NAME--incoming; A, continued, runs on
#  6. five saves (of five small domains) blocked on FIFOs without
#     readers, their xl clients waiting, starve nothing: a sixth save, a restore and a migration
#     complete; killing the xl clients cancels the blocked saves, the FIFOs
#     stay, the domain runs
#  7. SIGTERM of A with a migration blocked on the stopped B and a save
#     blocked on a FIFO: ferryd exits within its 10 s bound (plus a margin)
# Usage: tests/integration/hangs.sh BUILD_DIR (CASES="2 4" runs only those)
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-hangs.XXXXXX)
A_ADDR=127.0.1.2 B_ADDR=127.0.1.3
A_PORT=8302 B_PORT=8303 PX_PORT=8304
declare -A PID=() ADDR=([A]=$A_ADDR [B]=$B_ADDR) PORTS=([A]=$A_PORT [B]=$B_PORT)
NAME=hvm
NET_TIMEOUT=6 # A's --net-timeout
BW=8M         # the stream of ~70 MiB lasts ~9 s
PXPID= MIGPID=
CASES=${CASES:-1 2 3 4 5 6 7}
want() { [[ " $CASES " == *" $1 "* ]]; }

cleanup() {
	[[ -n "${PID[B]:-}" ]] && kill -CONT "$(dpid B)" 2>/dev/null
	[[ -n "$MIGPID" ]] && kill "$MIGPID" 2>/dev/null
	[[ -n "$PXPID" ]] && kill "$PXPID" 2>/dev/null
	stop_hosts
	[[ -n "${KEEP_TMP:-}" ]] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

start_a() { start_host A soft "$TMP/tls" --net-timeout $NET_TIMEOUT; }
fresh_domain() {
	xlh A destroy "$NAME" 2>/dev/null
	cat >"$TMP/$NAME.cfg" <<CFG
name = "$NAME"
memory = 256
extra = "workload=verify ws=64M rate=20M"
CFG
	mark A
	xlh A create "$TMP/$NAME.cfg" >/dev/null 2>&1 && wait_since A "verify: sweep"
}
# migrate_bg TARGET: xl migrate in the background ($MIGPID, xl itself),
# errors in $TMP/migrate.err
migrate_bg() {
	"$XL" -S "$(sock A)" migrate --bandwidth $BW "$NAME" "$1" >/dev/null 2>"$TMP/migrate.err" &
	MIGPID=$!
}
# ferryd itself (PID[] holds its timeout(1) wrapper)
dpid() { cat "$TMP/run-$1/ferryd.pid"; }
# wait_pid PID SECONDS: 0 when PID ended within SECONDS (its status in $WAIT_RC)
wait_pid() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		if ! kill -0 "$1" 2>/dev/null; then
			wait "$1"
			WAIT_RC=$?
			return 0
		fi
		sleep 0.1
	done
	return 1
}
# The stream has begun: B is building NAME--incoming.
wait_incoming() {
	local i
	for ((i = 0; i < 100; i++)); do exists B "$NAME--incoming" && return 0; sleep 0.1; done
	return 1
}
# Back to a running domain on A with a clean sweep after the event.
runs_on_a() { # LABEL
	check "$1: $NAME runs on A under its name" running A "$NAME"
	mark A
	check "$1: a sweep after it with zero mismatches" wait_since A "verify: sweep pages=16384 mismatches=0"
	check "$1: no mismatch on A" no_bad_since A
}
b_clean() { # LABEL
	check "$1: nothing of it left on B" clean_on B
}
end_migration() { # a migration that outlived its check
	[[ -n "$MIGPID" ]] || return 0
	kill "$MIGPID" 2>/dev/null
	wait "$MIGPID" 2>/dev/null
	MIGPID=
}

# ---- a proxy that goes silent after go ------------------------------------
# The TLS bytes pass untouched; go is recognised by its record size (see
# migrate-faults.sh): a 61-byte application record from the source after
# the target's 51-byte ready, once the stream has gone by. After go it still
# passes the source's bytes to B but nothing of B's back; a later connection
# (A's ferry-query) is closed at once for REFUSE_S after go, and then
# accepted and never answered.
write_proxy() {
	cat >"$TMP/proxy.py" <<'PY'
import select, socket, sys, threading, time

lhost, lport, thost, tport, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
READY_REC, GO_REC, STREAM_MIN = 34 + 17, 44 + 17, 1 << 20
REFUSE_S = 24
held = []
go_at = [None]


def touch(what):
    with open(marker, "a") as f:
        f.write(what + "\n")


def records(state, data):
    out, i = [], 0
    while i < len(data):
        if state["body"]:
            k = min(state["body"], len(data) - i)
            state["body"] -= k
            i += k
            continue
        need = 5 - len(state["hdr"])
        state["hdr"] += data[i:i + need]
        i += min(need, len(data) - i)
        if len(state["hdr"]) == 5:
            ln = int.from_bytes(state["hdr"][3:5], "big")
            out.append((state["hdr"][0], ln))
            state["body"] = ln
            state["hdr"] = b""
    return out


def handle(c):
    t = socket.create_connection((thost, tport), timeout=3)
    t.settimeout(None)
    s2t, t2s = {"body": 0, "hdr": b""}, {"body": 0, "hdr": b""}
    sent, ready, silent = 0, False, False
    while True:
        rl = [c] if silent else [c, t]
        r, _, _ = select.select(rl, [], [], 0.2)
        if c in r:
            d = c.recv(1 << 16)
            if not d:
                break
            for typ, ln in records(s2t, d):
                if ready and typ == 0x17 and ln == GO_REC and not silent:
                    silent = True
                    go_at[0] = time.monotonic()
                    touch("go")
            t.sendall(d)
            sent += len(d)
        if t in r:
            d = t.recv(1 << 16)
            if not d:
                break
            for typ, ln in records(t2s, d):
                if typ == 0x17 and ln == READY_REC and sent >= STREAM_MIN:
                    ready = True
            c.sendall(d)
    held.append((c, t))  # silent to the end


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((lhost, lport))
ls.listen(16)
touch("listening")
first = True
while True:
    c, _ = ls.accept()
    if first:
        threading.Thread(target=handle, args=(c,), daemon=True).start()
        first = False
    elif go_at[0] is not None and time.monotonic() - go_at[0] < REFUSE_S:
        c.close()
    else:
        touch("query")
        held.append(c)  # accepted, never answered
PY
}

# ---- setup ----------------------------------------------------------------
timeout 60 "$XL" tls-setup --dir "$TMP/tls" --host $A_ADDR --host $B_ADDR 2>/dev/null ||
	{ echo "xl tls-setup failed"; exit 1; }
write_proxy
start_a || { not_ok "ferryd A starts"; exit 1; }
start_host B soft "$TMP/tls" --net-timeout $NET_TIMEOUT || { not_ok "ferryd B starts"; exit 1; }
fresh_domain || { not_ok "create $NAME on A"; exit 1; }
T0=$SECONDS

# ---- 1. B stopped mid-stream ----------------------------------------------
if want 1; then
	t0=$SECONDS
	migrate_bg "$B_ADDR:$B_PORT"
	wait_incoming
	kill -STOP "$(dpid B)"
	ts=$SECONDS
	if wait_pid "$MIGPID" $((NET_TIMEOUT + 8)); then
		MIGPID=
		ok "1 stalled target: xl migrate returned $((SECONDS - ts)) s after B stopped (--net-timeout $NET_TIMEOUT)"
		check "1 stalled target: xl migrate failed" test "$WAIT_RC" -ne 0
		check "1 stalled target: the error says the target stalled" err_has "stalled"
	else
		not_ok "1 stalled target: xl migrate still blocked $((NET_TIMEOUT + 8)) s after B stopped"
	fi
	kill -CONT "$(dpid B)"
	end_migration
	runs_on_a "1 stalled target"
	b_clean "1 stalled target"
	echo "# case 1: $((SECONDS - t0)) s"
fi

# ---- 2. migrate-cancel of a blocked write -----------------------------------
if want 2; then
	t0=$SECONDS
	migrate_bg "$B_ADDR:$B_PORT"
	wait_incoming
	kill -STOP "$(dpid B)"
	sleep 3 # A's socket buffers fill: its TLS write blocks
	check "2 cancel: xl migrate-cancel succeeds" xlh A migrate-cancel "$NAME"
	if wait_pid "$MIGPID" 2; then
		MIGPID=
		ok "2 cancel: xl migrate returned within 2 s of the cancel"
		check "2 cancel: its error says cancelled" err_has "cancelled"
	else
		not_ok "2 cancel: xl migrate still blocked 2 s after migrate-cancel"
	fi
	kill -CONT "$(dpid B)"
	end_migration
	runs_on_a "2 cancel"
	b_clean "2 cancel"
	echo "# case 2: $((SECONDS - t0)) s"
fi

# ---- 3. xl killed mid-migration ---------------------------------------------
if want 3; then
	t0=$SECONDS
	migrate_bg "$B_ADDR:$B_PORT"
	wait_incoming
	sleep 1
	kill -9 "$MIGPID"
	wait "$MIGPID" 2>/dev/null
	MIGPID=
	# The stream would last several more seconds; cancelled, B drops it at once.
	check "3 xl killed: B drops $NAME--incoming within 3 s" \
		bash -c "for i in \$(seq 30); do timeout 10 '$XL' -S '$(sock B)' list '$NAME--incoming' >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1"
	check "3 xl killed: A logs the cancel" grep -q "client went away; cancelling" "$TMP/ferryd-A.out"
	runs_on_a "3 xl killed"
	b_clean "3 xl killed"
	echo "# case 3: $((SECONDS - t0)) s"
fi

# ---- 4. the fence bound -----------------------------------------------------
if want 4; then
	t0=$SECONDS
	rm -f "$TMP/proxy.mark"
	timeout 200 python3 "$TMP/proxy.py" $B_ADDR $PX_PORT $B_ADDR $B_PORT "$TMP/proxy.mark" \
		2>>"$TMP/proxy.log" &
	PXPID=$!
	for ((i = 0; i < 50; i++)); do grep -qx listening "$TMP/proxy.mark" 2>/dev/null && break; sleep 0.1; done
	"$XL" -S "$(sock A)" migrate "$NAME" "$B_ADDR:$PX_PORT" >/dev/null 2>"$TMP/migrate.err" &
	MIGPID=$!
	for ((i = 0; i < 600; i++)); do grep -qx go "$TMP/proxy.mark" 2>/dev/null && break; sleep 0.1; done
	tg=$SECONDS
	bound=$((NET_TIMEOUT + 30 + 5))
	if ! grep -qx go "$TMP/proxy.mark" 2>/dev/null; then
		not_ok "4 fence bound: the proxy never saw go"
	elif wait_pid "$MIGPID" $bound; then
		MIGPID=
		ok "4 fence bound: resolved $((SECONDS - tg)) s after go (bound: --net-timeout $NET_TIMEOUT + 30 + 5)"
		check "4 fence bound: A asked the silent target" grep -qx query "$TMP/proxy.mark"
		check "4 fence bound: the error says to run migrate-resolve" err_has "migrate-resolve"
		check "4 fence bound: A holds $NAME--migratedaway fenced" exists A "$NAME--migratedaway"
		q=$(grep -o 'query phase ended after [0-9.]* s' "$TMP/ferryd-A.out" | tail -1 | grep -o '[0-9.]* s' | cut -d' ' -f1)
		check "4 fence bound: the query phase took ${q:-?} s (<= 32)" \
			python3 -c "import sys; sys.exit(0 if float('${q:-999}') <= 32 else 1)"
	else
		not_ok "4 fence bound: A still unresolved $bound s after go"
	fi
	end_migration
	kill "$PXPID" 2>/dev/null
	wait "$PXPID" 2>/dev/null
	PXPID=
	check "4 fence bound: B runs $NAME (it took go)" running B "$NAME"
	xlh A migrate-resolve --destroy "$NAME" >/dev/null 2>&1
	check "4 fence bound: resolved by hand, nothing left on A" bash -c "! timeout 10 '$XL' -S '$(sock A)' list '$NAME--migratedaway' >/dev/null 2>&1"
	xlh B destroy "$NAME" >/dev/null 2>&1
	echo "# case 4: $((SECONDS - t0)) s"
fi

# ---- 5. A stopped mid-stream: the receiver's timeout --------------------------
if want 5; then
	t0=$SECONDS
	running A "$NAME" || fresh_domain || not_ok "5: create $NAME on A again"
	migrate_bg "$B_ADDR:$B_PORT"
	check "5 stalled source: the stream has begun" wait_incoming
	kill -STOP "$(dpid A)"
	ts=$SECONDS
	check "5 stalled source: B drops $NAME--incoming within --net-timeout + 8 s" \
		bash -c "for i in \$(seq $(((NET_TIMEOUT + 8) * 10))); do timeout 10 '$XL' -S '$(sock B)' list '$NAME--incoming' >/dev/null 2>&1 || exit 0; sleep 0.1; done; exit 1"
	echo "# B gave up $((SECONDS - ts)) s after A stopped"
	check "5 stalled source: B's log says the peer stalled" grep -q "no progress for" "$TMP/ferryd-B.out"
	kill -CONT "$(dpid A)"
	wait_pid "$MIGPID" 30 && MIGPID=
	end_migration
	runs_on_a "5 stalled source"
	b_clean "5 stalled source"
	echo "# case 5: $((SECONDS - t0)) s"
fi

# ---- 6. blocked saves starve nothing ------------------------------------------
if want 6; then
	t0=$SECONDS
	running A "$NAME" || fresh_domain || not_ok "6: create $NAME on A again"
	spids=()
	for i in 1 2 3 4 5; do
		printf 'name = "blk%s"\nmemory = 64\nextra = "workload=idle"\n' $i >"$TMP/blk$i.cfg"
		xlh A create "$TMP/blk$i.cfg" >/dev/null 2>&1 || not_ok "6: create blk$i"
		mkfifo "$TMP/fifo$i"
		"$XL" -S "$(sock A)" save -c "blk$i" "$TMP/fifo$i" >/dev/null 2>&1 &
		spids+=($!)
	done
	sleep 1
	check "6 blocked saves: a sixth save completes" \
		timeout 60 "$XL" -S "$(sock A)" save -c "$NAME" "$TMP/six.save"
	check "6 blocked saves: a restore of it completes" \
		timeout 60 "$XL" -S "$(sock A)" restore -p -n "$NAME-copy" "$TMP/six.save"
	xlh A destroy "$NAME-copy" >/dev/null 2>&1
	check "6 blocked saves: a migration completes (to B and back)" \
		bash -c "timeout 60 '$XL' -S '$(sock A)' migrate '$NAME' '$B_ADDR:$B_PORT' >/dev/null 2>&1 &&
			timeout 60 '$XL' -S '$(sock B)' migrate '$NAME' '$A_ADDR:$A_PORT' >/dev/null 2>&1"
	kill "${spids[@]}" 2>/dev/null
	wait "${spids[@]}" 2>/dev/null
	check "6 blocked saves: A logs them cancelled as their clients went" \
		grep -q "client went away; cancelling" "$TMP/ferryd-A.out"
	check "6 blocked saves: the FIFOs are still there" test -p "$TMP/fifo1" -a -p "$TMP/fifo5"
	check "6 blocked saves: $NAME runs on A" running A "$NAME"
	check "6 blocked saves: the blocked ones run on" running A blk5
	for i in 1 2 3 4 5; do xlh A destroy "blk$i" >/dev/null 2>&1; done
	echo "# case 6: $((SECONDS - t0)) s"
fi

# ---- 7. SIGTERM with jobs blocked ---------------------------------------------
if want 7; then
	t0=$SECONDS
	running A "$NAME" || fresh_domain || not_ok "7: create $NAME on A again"
	mkfifo "$TMP/fifo"
	"$XL" -S "$(sock A)" save -c "$NAME" "$TMP/fifo" >/dev/null 2>&1 & # no reader: blocks in ferryd
	spid=$!
	migrate_bg "$B_ADDR:$B_PORT"
	wait_incoming
	kill -STOP "$(dpid B)"
	sleep 2
	apid=$(cat "$TMP/run-A/ferryd.pid")
	kill -TERM "${PID[A]}"
	ts=$SECONDS
	if wait_pid "${PID[A]}" 15; then
		ok "7 SIGTERM: ferryd A exited $((SECONDS - ts)) s after SIGTERM (bound 10 s + margin)"
		unset "PID[A]"
		check "7 SIGTERM: its pidfile is gone" test ! -e "$TMP/run-A/ferryd.pid"
		check "7 SIGTERM: it released the pidfile lock (a new ferryd starts)" start_a
	else
		not_ok "7 SIGTERM: ferryd A ($apid) still running 15 s after SIGTERM"
		kill -9 "$apid" "${PID[A]}" 2>/dev/null
		wait "${PID[A]}" 2>/dev/null
		unset "PID[A]"
	fi
	kill -CONT "$(dpid B)"
	end_migration
	kill "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	b_clean "7 SIGTERM"
	echo "# case 7: $((SECONDS - t0)) s"
fi

echo "# total: $((SECONDS - T0)) s"
echo "# passed=$passed failed=$failed skipped=$skipped"
((failed == 0))
