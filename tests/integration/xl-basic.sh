#!/usr/bin/env bash
# xl against a real ferryd (soft backend): create, list, pause/unpause,
# console, refusals (configs the soft backend or the built-in guest cannot
# run, reserved names), the scheduler verbs (sched-credit2, vcpu-list,
# vcpu-pin), destroy, clean stop.
# Usage: tests/integration/xl-basic.sh BUILD_DIR
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=${1:?usage: $0 BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-xl-basic.XXXXXX)
RUN="$TMP/run"
STATE="$TMP/state"
export FERRY_SOCKET="$RUN/ferryd.sock"
ferryd_pid=

cleanup() {
	stop_ferryd
	rm -rf "$TMP"
}
trap cleanup EXIT

xl() { timeout 20 "$XL" "$@"; }
# The 6-letter state column of a domain in `xl list`.
state_of() { xl list "$1" | awk -v n="$1" '$1 == n { print $5 }'; }
wait_state() { # wait_state DOMAIN LETTERS: up to 10 s
	local i
	for ((i = 0; i < 100; i++)); do
		[[ "$(state_of "$1" 2>/dev/null)" == "$2" ]] && return 0
		sleep 0.1
	done
	return 1
}
running() { # DOMAIN running or blocked (an idle vCPU): up to 10 s (not lib.bash's)
	local i
	for ((i = 0; i < 100; i++)); do
		case "$(state_of "$1" 2>/dev/null)" in r-----|-b----) return 0 ;; esac
		sleep 0.1
	done
	return 1
}

for f in "$XL" "$FERRYD"; do
	[[ -x "$f" ]] || { echo "missing $f (build first)"; exit 1; }
done

cat > "$TMP/vm1.cfg" <<'CFG'
name = "vm1"
memory = 128
vcpus = 1
extra = "workload=verify ws=8M rate=4M"
CFG

timeout 120 "$FERRYD" --foreground --on-stop destroy --backend soft --memory 1G \
	--run-dir "$RUN" --state-dir "$STATE" >"$TMP/ferryd.out" 2>&1 &
ferryd_pid=$!
for ((i = 0; i < 100; i++)); do
	[[ -S "$FERRY_SOCKET" ]] && break
	sleep 0.1
done
check "ferryd listens on $FERRY_SOCKET" test -S "$FERRY_SOCKET"
check "socket is mode 0600" test "$(stat -c %a "$FERRY_SOCKET")" = 600
check "run dir is mode 0700" test "$(stat -c %a "$RUN")" = 700

if timeout 10 "$FERRYD" --foreground --on-stop destroy --backend soft --run-dir "$RUN" \
	--state-dir "$STATE" >"$TMP/second.out" 2>&1; then
	not_ok "a second ferryd on the same run dir is refused"
else
	check "a second ferryd on the same run dir is refused" \
		grep -q "already owns" "$TMP/second.out"
fi

check "xl create" xl create "$TMP/vm1.cfg"
check "xl list header is Xen's" bash -c \
	"timeout 20 '$XL' list | head -1 | grep -qxF \$'Name                                        ID   Mem VCPUs\tState\tTime(s)'"
check "vm1 is running" running vm1
check "xl list shows 128 MiB, 1 vCPU" bash -c \
	"timeout 20 '$XL' list vm1 | awk '\$1 == \"vm1\" && \$3 == 128 && \$4 == 1 { f = 1 } END { exit !f }'"

check "xl pause" xl pause vm1
check "paused state is --p---" wait_state vm1 --p---
check "xl unpause" xl unpause vm1
check "running again after unpause" running vm1

# Piped, xl console streams until the domain goes; sample it a few times.
: >"$TMP/console.out"
for ((i = 0; i < 10; i++)); do
	timeout 2 "$XL" console vm1 >>"$TMP/console.out" 2>&1 || true
	grep -q "verify: sweep" "$TMP/console.out" && break
done
check "console output contains 'verify: sweep'" grep -q "verify: sweep" "$TMP/console.out"
# On a terminal, typed input reaches the guest (its echo comes back) and
# Ctrl-] detaches.
check "xl console on a terminal: input reaches the guest, Ctrl-] detaches" \
	timeout 60 python3 "$(dirname "${BASH_SOURCE[0]}")/console-tty.py" "$XL" vm1

if xl create "$TMP/vm1.cfg" >"$TMP/dup.out" 2>&1; then
	not_ok "a duplicate name is refused"
else
	check "a duplicate name is refused" grep -q "xl: domain 'vm1' already exists" "$TMP/dup.out"
fi

if xl create "$TMP/vm1.cfg" 'name="big"' 'memory=4096' >"$TMP/big.out" 2>&1; then
	not_ok "memory beyond the pool is refused"
else
	check "memory beyond the pool is refused" grep -q "domain needs 4096 MiB" "$TMP/big.out"
fi
check "the refused domain does not exist" bash -c "! timeout 20 '$XL' list big >/dev/null 2>&1"

# refused NAME PATTERN ARGS...: xl create ARGS fails saying PATTERN, and no
# domain NAME exists afterwards
refused() {
	local n=$1 pat=$2; shift 2
	! timeout 20 "$XL" create "$@" >"$TMP/refused.out" 2>&1 &&
		grep -qF -- "$pat" "$TMP/refused.out" &&
		! timeout 20 "$XL" list -- "$n" >/dev/null 2>&1
}
check "kernel= on soft is refused: soft runs the built-in workloads, not an ELF" \
	refused k "'kernel' is for kvm" "$TMP/vm1.cfg" 'name="k"' 'kernel="/nonexistent"'
check "an unknown workload is refused at create, saying which" \
	refused w "bad value 'nonesuch' for workload" "$TMP/vm1.cfg" 'name="w"' \
	'extra="workload=nonesuch"'
check "a working set larger than memory is refused at create" \
	refused w "ws=256M does not fit in the arena" "$TMP/vm1.cfg" 'name="w"' 'memory=64' \
	'extra="workload=verify ws=256M"'
check "pingpong without its peer is refused at create" \
	refused w "needs role=ping|pong and peer=DOMID" "$TMP/vm1.cfg" 'name="w"' \
	'extra="workload=pingpong role=ping"'
for n in Domain-0 x--incoming x--migratedaway x--backup -p; do
	check "the name '$n' is reserved" refused "$n" "the name '$n' is reserved" \
		"$TMP/vm1.cfg" "name=\"$n\""
done

check "xl list -l prints the config" bash -c \
	"timeout 20 '$XL' list -l vm1 | grep -q '\"cmdline\": \"workload=verify ws=8M rate=4M\"'"
check "xl info shows total_memory" bash -c "timeout 20 '$XL' info | grep -q '^total_memory *: 1024$'"
check "xl dmesg shows the create" bash -c "timeout 20 '$XL' dmesg | grep -q \"created 'vm1'\""

# The scheduler verbs: credit2 weight and cap set and read back, vCPUs and
# their affinity, and a clear refusal of a domain that does not exist.
cat > "$TMP/vm2.cfg" <<'CFG'
name = "vm2"
memory = 64
vcpus = 2
extra = "workload=idle"
CFG
# sched_row DOMAIN WEIGHT CAP: that row in `xl sched-credit2 ARGS...`
sched_row() {
	local d=$1 w=$2 c=$3; shift 3
	timeout 20 "$XL" sched-credit2 "$@" |
		awk -v d="$d" -v w="$w" -v c="$c" '$1 == d && $3 == w && $4 == c { f = 1 } END { exit !f }'
}
# vcpu_row DOMAIN VCPU HARD SOFT [DOMAIN...]: that row in `xl vcpu-list [DOMAIN...]`
vcpu_row() {
	local d=$1 v=$2 hard=$3 soft=$4; shift 4
	timeout 20 "$XL" vcpu-list "$@" |
		awk -v d="$d" -v v="$v" -v h="$hard" -v s="$soft" \
			'$1 == d && $3 == v && $7 == h && $8 == "/" && $9 == s { f = 1 } END { exit !f }'
}
# fails_with MESSAGE ARGS...: xl ARGS exits non-zero and prints MESSAGE
fails_with() {
	local msg=$1; shift
	! timeout 20 "$XL" "$@" >"$TMP/fail.out" 2>&1 && grep -qxF -- "$msg" "$TMP/fail.out"
}
check "xl create vm2 (2 vCPUs)" xl create "$TMP/vm2.cfg"
check "xl sched-credit2 -d vm2: the default weight 256, no cap" sched_row vm2 256 0 -d vm2
check "xl sched-credit2 -d vm2 -w 512 -c 25" xl sched-credit2 -d vm2 -w 512 -c 25
check "  read back: weight 512, cap 25" sched_row vm2 512 25 -d vm2
check "xl sched-credit2 lists every domain under Xen's pool line" bash -c \
	"timeout 20 '$XL' sched-credit2 | head -1 | grep -q '^Cpupool Pool-0: tslice='"
check "  vm2 with its weight and cap" sched_row vm2 512 25
check "  vm1 untouched" sched_row vm1 256 0
check "a weight of 0 is refused" fails_with "xl: weight must be 1..65535 and cap >= 0" \
	sched-credit2 -d vm2 -w 0
check "  and the weight stays" sched_row vm2 512 25 -d vm2
check "xl sched-credit2 -d on a missing domain fails naming it" \
	fails_with "xl: domain 'nosuch' does not exist" sched-credit2 -d nosuch
check "  setting its weight too" \
	fails_with "xl: domain 'nosuch' does not exist" sched-credit2 -d nosuch -w 100
check "xl vcpu-list header is Xen's" bash -c \
	"timeout 20 '$XL' vcpu-list vm2 | head -1 | grep -qE '^Name +ID +VCPU +CPU +State +Time\\(s\\) Affinity \\(Hard / Soft\\)$'"
check "xl vcpu-list vm2 shows vCPU 0, affinity all / all" vcpu_row vm2 0 all all vm2
check "  and vCPU 1" vcpu_row vm2 1 all all vm2
check "  and only vm2's two" test "$(timeout 20 "$XL" vcpu-list vm2 | tail -n +2 | wc -l)" = 2
check "xl vcpu-pin vm2 1 0 -" xl vcpu-pin vm2 1 0 -
check "  vcpu-list shows vCPU 1 hard 0, soft all" vcpu_row vm2 1 0 all vm2
check "  vCPU 0 unchanged" vcpu_row vm2 0 all all vm2
check "xl vcpu-list without a domain lists every vCPU (vm1's and vm2's)" bash -c \
	"test \$(timeout 20 '$XL' vcpu-list | tail -n +2 | awk '\$1 == \"vm1\" || \$1 == \"vm2\"' | wc -l) = 3"
check "xl vcpu-list on a missing domain fails naming it" \
	fails_with "xl: domain 'nosuch' does not exist" vcpu-list nosuch
check "xl destroy vm2" xl destroy vm2

check "xl destroy" xl destroy vm1
check "vm1 is gone from xl list" bash -c "! timeout 20 '$XL' list | grep -q '^vm1 '"
if xl destroy vm1 >"$TMP/gone.out" 2>&1; then
	not_ok "destroying a missing domain fails"
else
	check "destroying a missing domain fails" grep -qxF "xl: domain 'vm1' does not exist" "$TMP/gone.out"
fi

kill -TERM "$(cat "$RUN/ferryd.pid")"
if wait "$ferryd_pid"; then ok "ferryd stops cleanly on SIGTERM"; else not_ok "ferryd stops cleanly on SIGTERM"; fi
ferryd_pid=
check "the socket is removed" test ! -e "$RUN/ferryd.sock"
if timeout 20 "$XL" list >"$TMP/noconn.out" 2>&1; then
	not_ok "xl without a daemon fails"
else
	check "xl without a daemon names the socket" grep -qxF \
		"xl: cannot connect to ferryd at $RUN/ferryd.sock: No such file or directory" "$TMP/noconn.out"
fi

if ((failed)); then
	echo "--- ferryd output"
	cat "$TMP/ferryd.out" || true
fi
echo "$passed passed, $failed failed"
((failed == 0))
