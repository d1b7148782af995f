#!/usr/bin/env bash
# xl snapshot-* against two real ferryds (soft, plain TCP: "hosts"
# A = 127.0.8.2 and B = 127.0.8.3):
#  1. a verify guest runs while four snapshots are taken (a xenstore key
#     data/snapgen set to 1..4 before each, which the snapshot captures at
#     its instant); the report and snapshot-list --json (parsed by python3)
#     show the chain s1 <- s2 <- s3 <- s4, all complete
#  2. bad input is refused with a clear error and changes nothing: names
#     with '/', a leading '.' or a NUL, a taken name, a snapshot of another
#     domain's, an unknown domain
#  3. revert to the first and to the last: the domain is replaced (one
#     copy, a new domid), verify resumes with zero mismatches, and snapgen
#     is that snapshot's (the state captured at its instant)
#     lazily too (--lazy: running in milliseconds, pages served from the
#     repository), and xl restore --lazy of an uncompressed save (a
#     compressed one refused, saying why)
#  4. delete the middle s2, revert to its child s3: whole
#  5. export s3 and xl restore the file on B: zero mismatches, snapgen 3
# 5b. on B, a snapshot taken at once after a lazy revert of a 768 MiB
#     guest (512 MiB written), while its pages still arrive (ferryd's log
#     times prove it), reverts with zero mismatches (stale pages were
#     stored once: writes lost by log-dirty at the lazy restore's end, a
#     page counted by neither the pending set nor the pool's scan; the
#     guest's 4 s between rewrites of a page keep them from being hidden)
#  6. revert of a domain that no longer exists (found by the name it had),
#     and -n NEWNAME beside the running one (a new UUID)
#  7. snapshot-create and -revert while a migration holds the domain are
#     refused naming it
#  8. a ferryd restart: the snapshots are still there and revert
#  9. verify on the clean repository passes; a flipped byte in a pack file
#     fails it naming the pfn, and a revert to that snapshot is refused
#     with the domain left as it was; a lazy revert to it is undone when
#     the damage shows, the old domain running again
# 10. a corrupt and a newer repository: ferryd starts, the snapshot verbs
#     say what is wrong, xl list works
# Usage: tests/integration/snapshot.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-snapshot.XXXXXX)
declare -A PID=() ADDR=([A]=127.0.8.2 [B]=127.0.8.3 [C]=127.0.8.4) \
	PORTS=([A]=8412 [B]=8413 [C]=8414)
BGPIDS=()
NAME=snapvm

cleanup() {
	local p
	for p in "${BGPIDS[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	stop_hosts
	[[ -n "${KEEP_TMP:-}" ]] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

start_host() { # NAME [MEMORY]
	local n=$1
	rm -f "$(sock "$n")"
	timeout 600 "$FERRYD" --foreground --on-stop destroy --backend soft --memory "${2:-1G}" \
		--run-dir "$TMP/run-$n" --state-dir "$TMP/state-$n" \
		--listen "${ADDR[$n]}:${PORTS[$n]}" --insecure >>"$TMP/ferryd-$n.out" 2>&1 &
	PID[$n]=$!
	wait_socket "$(sock "$n")"
}

# refused HOST PATTERN XL-ARGS...: the command fails, its stderr says PATTERN
refused() {
	local h=$1 pat=$2
	shift 2
	! xlh "$h" "$@" >/dev/null 2>"$TMP/refused.err" && grep -qiE -- "$pat" "$TMP/refused.err" ||
		{ echo "# stderr: $(cat "$TMP/refused.err")"; return 1; }
}
console() { timeout 2 "$XL" -S "$(sock "$1")" console "$2" 2>/dev/null; }
# wait_console HOST DOMAIN PATTERN COUNT: up to 30 s for COUNT lines
wait_console() {
	local end=$((SECONDS + 30))
	while ((SECONDS < end)); do
		(($(console "$1" "$2" | grep -c -- "$3") >= $4)) && return 0
		sleep 0.2
	done
	return 1
}
domid() { xlh "$1" list "$2" 2>/dev/null | awk 'NR == 2 { print $2 }'; }
snapgen() { xlh "$1" xenstore-read "/local/domain/$(domid "$1" "$2")/data/snapgen" 2>/dev/null; }
# json_get FILE PYTHON-EXPR (on v, the parsed file)
json_get() { python3 -c "import json, sys; v = json.load(open(sys.argv[1])); print($2)" "$1"; }

make_cfg() { # NAME
	cat >"$TMP/$1.cfg" <<CFG
name = "$1"
memory = 128
extra = "workload=verify ws=32M rate=8M"
CFG
}

# A reverted (or restored) guest: verify found every page right.
resumed_clean() { wait_console "$1" "$2" "verify: resume pages=8192 mismatches=0" 1; }

take() { # N: snapgen N then snapshot sN, its report in $TMP/create-sN.json
	xlh A xenstore-write "/local/domain/$(domid A "$NAME")/data/snapgen" "$1" &&
		xlh A snapshot-create -n "s$1" --json "$NAME" >"$TMP/create-s$1.json"
}

start_host A || { not_ok "ferryd A starts"; exit 1; }
start_host B 2G || { not_ok "ferryd B starts"; exit 1; } # 5b: two 768 MiB guests, twice
make_cfg "$NAME"
xlh A create "$TMP/$NAME.cfg" >/dev/null 2>&1 || { not_ok "create $NAME"; exit 1; }
check "the verify guest sweeps" wait_console A "$NAME" "verify: sweep" 1

# ---- 1. a chain of four -------------------------------------------------
for i in 1 2 3 4; do
	sleep 1
	check "snapshot-create s$i while the guest runs" take "$i"
done
check "s1 is a full snapshot" test "$(json_get "$TMP/create-s1.json" 'v["parent"]')" = ""
check "s2's parent is s1 (incremental)" \
	test "$(json_get "$TMP/create-s2.json" 'v["parent"], v["incremental"]')" = "s1 True"
check "s4's report: pause, bytes, pages new/deduplicated/zero" \
	python3 -c 'import json, sys; v = json.load(open(sys.argv[1]))
sys.exit(not all(k in v for k in ("pause_ms", "seconds", "bytes", "pages_new", "pages_deduplicated", "pages_zero")))' "$TMP/create-s4.json"
echo "# s1..s4 pause ms: $(for i in 1 2 3 4; do json_get "$TMP/create-s$i.json" 'round(v["pause_ms"], 2)'; done | xargs)"
echo "# s1..s4 bytes: $(for i in 1 2 3 4; do json_get "$TMP/create-s$i.json" 'v["bytes"]'; done | xargs)"
check "the guest kept running through them" running A "$NAME"
xlh A snapshot-list --json "$NAME" >"$TMP/list.json"
check "snapshot-list --json: s1..s4, complete, each the parent of the next" \
	test "$(json_get "$TMP/list.json" '" ".join(s["name"] + ":" + s["parent"] + ":" + s["state"] for s in v["snapshots"])')" \
	= "s1::complete s2:s1:complete s3:s2:complete s4:s3:complete"
check "snapshot-list (table) shows them" bash -c "timeout 20 '$XL' -S '$(sock A)' snapshot-list $NAME | grep -c complete | grep -qx 4"
check "a default name is the time" bash -c "timeout 60 '$XL' -S '$(sock A)' snapshot-create --json $NAME >'$TMP/create-t.json'"
tname=$(json_get "$TMP/create-t.json" 'v["name"]')
check "... like 20261206-034500 ($tname)" bash -c "[[ '$tname' =~ ^[0-9]{8}-[0-9]{6}$ ]]"
check "snapshot-delete of it" xlh A snapshot-delete "$NAME" "$tname"

# ---- 2. bad input -------------------------------------------------------
id0=$(domid A "$NAME")
check "a name with a slash is refused" refused A "bad snapshot name" snapshot-create -n a/b "$NAME"
check "a name with a leading dot is refused" refused A "bad snapshot name" snapshot-create -n .x "$NAME"
check "a taken name is refused" refused A "already" snapshot-create -n s1 "$NAME"
# A NUL cannot come through argv; over the socket a JSON \u0000 is refused.
nul_refused() {
	python3 - "$(sock A)" "$NAME" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"id":1,"op":"snapshot-create","args":{"domain":"%s","name":"a\\u0000b"}}\n'
          % sys.argv[2].encode())
r = json.loads(s.makefile().readline())
print("#", r.get("error"))
sys.exit(0 if not r["ok"] and "NUL" in r["error"] else 1)
PY
}
check "a name with a NUL (JSON \\u0000) is refused" nul_refused
check "an unknown snapshot is refused" refused A "has no snapshot 'nope'" snapshot-revert "$NAME" nope
check "an unknown domain is refused" refused A "does not exist" snapshot-list nosuchdomain
make_cfg other
xlh A create "$TMP/other.cfg" >/dev/null 2>&1 && xlh A snapshot-create -n o1 other >/dev/null
check "snapshot-create --pause leaves the domain paused" \
	bash -c "timeout 60 '$XL' -S '$(sock A)' snapshot-create --pause -n o0 other >/dev/null &&
		[[ \$(timeout 10 '$XL' -S '$(sock A)' list other | awk 'NR == 2 { print \$5 }') == *p* ]]"
check "... and one xl unpause runs it" bash -c "timeout 10 '$XL' -S '$(sock A)' unpause other"
check "... running" running A other
check "reverting to another domain's snapshot is refused, naming its owner" \
	refused A "belongs to another domain \(uuid [0-9a-f-]+, named 'other'" snapshot-revert "$NAME" o1
check "... and nothing changed: same domain, still running" \
	bash -c "[[ '$(domid A "$NAME")' == '$id0' ]]"
check "... no partial snapshot is listed" \
	bash -c "timeout 20 '$XL' -S '$(sock A)' snapshot-list --json $NAME | python3 -c 'import json,sys; v=json.load(sys.stdin); sys.exit(len(v[\"snapshots\"]) != 4)'"

# ---- 3. revert to the first and to the last ------------------------------
check "snapshot-revert $NAME s1" xlh A snapshot-revert "$NAME" s1
check "... one copy, a new domid, no temporary left" \
	bash -c "[[ -n '$(domid A "$NAME")' && '$(domid A "$NAME")' != '$id0' ]] &&
		! timeout 10 '$XL' -S '$(sock A)' list $NAME--reverting >/dev/null 2>&1"
check "... verify resumes with zero mismatches" resumed_clean A "$NAME"
check "... snapgen is s1's" test "$(snapgen A "$NAME")" = 1
check "... and it runs" running A "$NAME"
check "snapshot-revert $NAME s4 (the last)" xlh A snapshot-revert "$NAME" s4
check "... verify resumes with zero mismatches" resumed_clean A "$NAME"
check "... snapgen is s4's" test "$(snapgen A "$NAME")" = 4

xlh A snapshot-revert --lazy --json "$NAME" s1 >"$TMP/lazy.json" 2>"$TMP/lazy.err"
check "snapshot-revert --lazy to s1" test -s "$TMP/lazy.json"
echo "# lazy revert: running after $(json_get "$TMP/lazy.json" 'round(v["to_running_ms"], 2)') ms"
check "... verify resumes with zero mismatches" resumed_clean A "$NAME"
check "... snapgen is s1's" test "$(snapgen A "$NAME")" = 1
check "... every page came in (ferryd logs it)" \
	bash -c "for i in \$(seq 100); do grep -q 'lazy restore: every page in' '$TMP/ferryd-A.out' && exit 0; sleep 0.1; done; exit 1"
check "xl save -c (uncompressed) for a lazy restore" xlh A save -c "$NAME" "$TMP/plain.save"
check "xl restore --lazy -n $NAME-lazy of it" xlh A restore --lazy -n "$NAME-lazy" "$TMP/plain.save"
check "... verify resumes with zero mismatches" resumed_clean A "$NAME-lazy"
xlh A destroy "$NAME-lazy"
xlh A save -c "$NAME" "$TMP/lz4.save" --compress lz4 2>/dev/null
check "xl restore --lazy of a compressed save is refused, saying why" \
	refused A "compressed" restore --lazy -n "$NAME-lz" "$TMP/lz4.save"
check "snapshot-revert $NAME s4 again, not lazily" xlh A snapshot-revert "$NAME" s4
check "... verify resumes with zero mismatches" resumed_clean A "$NAME"

# ---- 4. delete the middle one -------------------------------------------
check "snapshot-delete s2" xlh A snapshot-delete "$NAME" s2
xlh A snapshot-list --json "$NAME" >"$TMP/list2.json"
check "... s3's parent is s1 now" \
	test "$(json_get "$TMP/list2.json" '" ".join(s["name"] + ":" + s["parent"] for s in v["snapshots"])')" = "s1: s3:s1 s4:s3"
check "snapshot-revert to s3, the deleted one's child" xlh A snapshot-revert "$NAME" s3
check "... verify resumes with zero mismatches" resumed_clean A "$NAME"
check "... snapgen is s3's" test "$(snapgen A "$NAME")" = 3

# ---- 5. export, restore elsewhere ---------------------------------------
check "snapshot-export s3" xlh A snapshot-export "$NAME" s3 "$TMP/s3.xl"
check "... the file is a stream xl stream-dump accepts" \
	bash -c "timeout 60 '$XL' stream-dump '$TMP/s3.xl' >/dev/null"
check "xl restore of it on B" xlh B restore "$TMP/s3.xl"
check "... verify resumes with zero mismatches on B" resumed_clean B "$NAME"
check "... snapgen is s3's on B" test "$(snapgen B "$NAME")" = 3
xlh B destroy "$NAME" 2>/dev/null

# ---- 5b. a snapshot while a lazy revert's pages arrive -------------------
cat >"$TMP/big.cfg" <<CFG
name = "big"
memory = 768
extra = "workload=verify ws=512M rate=128M"
CFG
# log_time FILE PATTERN: the first matching ferryd log line's time (s)
log_time() {
	python3 - "$@" <<'PY'
import datetime, re, sys
for line in open(sys.argv[1]):
    if re.search(sys.argv[2], line):
        t = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
        print("%.3f" % t.replace(tzinfo=datetime.timezone.utc).timestamp())
        sys.exit(0)
sys.exit(1)
PY
}
# overlapped DOMID: its lazy restore's last page came in after b2 started
# (b2's "taken" time less its duration): b2 ran across the restore's end.
overlapped() {
	local t_in= t_end secs i
	for ((i = 0; i < 100; i++)); do
		t_in=$(log_time "$TMP/ferryd-B.out" "d$1: lazy restore: every page in") && break
		sleep 0.2
	done
	t_end=$(log_time "$TMP/ferryd-B.out" "snapshot 'b2' taken") && [[ -n "$t_in" ]] || return 1
	secs=$(json_get "$TMP/create-b2.json" 'round(v["seconds"], 3)')
	echo "# b2 took $secs s; every page was in $(python3 -c "print(round($t_in - ($t_end - $secs), 3))") s after it started"
	python3 -c "import sys; sys.exit(not ($t_end - $secs < $t_in))"
}
if xlh B create "$TMP/big.cfg" >/dev/null 2>&1; then
	sleep 4 # 512 MiB written at 128 MiB/s; with 6872bda and 7110968 reverted, 4 runs in 6 failed
	check "big: snapshot-create b1 (full)" \
		bash -c "timeout 120 '$XL' -S '$(sock B)' snapshot-create -n b1 big >/dev/null"
	xlh B snapshot-revert --lazy --json big b1 >"$TMP/lazy-big.json" 2>"$TMP/lazy-big.err" &&
		xlh B snapshot-create -n b2 --json big >"$TMP/create-b2.json" 2>"$TMP/create-b2.err"
	check "a lazy revert to b1 then at once snapshot-create b2" test -s "$TMP/create-b2.json"
	[[ -s "$TMP/create-b2.json" ]] || echo "# $(cat "$TMP/lazy-big.err" "$TMP/create-b2.err")"
	check "... b2 started while the pages still arrived (ferryd's log)" \
		overlapped "$(json_get "$TMP/lazy-big.json" 'v["domid"]')"
	check "snapshot-revert -n big2 big b2 (full)" xlh B snapshot-revert -n big2 big b2
	wait_console B big2 "verify: resume" 1
	console B big2 | grep -m1 "verify: resume" | sed 's/^/# big2: /'
	check "... verify resumes with zero mismatches" \
		wait_console B big2 "verify: resume pages=131072 mismatches=0" 1
	xlh B destroy big2
	xlh B destroy big
else
	not_ok "create big (768 MiB) on B"
fi

# ---- 6. a domain that is gone; -n beside ---------------------------------
check "snapshot-revert -n $NAME-copy: a new domain beside" xlh A snapshot-revert -n "$NAME-copy" "$NAME" s1
check "... both run" bash -c "timeout 10 '$XL' -S '$(sock A)' list $NAME $NAME-copy >/dev/null"
check "... the copy verifies clean" resumed_clean A "$NAME-copy"
check "... the copy has its own UUID (no snapshots)" \
	bash -c "[[ \$(timeout 10 '$XL' -S '$(sock A)' snapshot-list --json $NAME-copy 2>&1) == '{\"snapshots\":[],\"schedules\":[]}' ]]"
xlh A destroy "$NAME-copy"
xlh A destroy "$NAME"
check "snapshot-list $NAME once it is gone (by the name it had)" \
	bash -c "timeout 10 '$XL' -S '$(sock A)' snapshot-list $NAME | grep -q s4"
check "snapshot-revert of the gone domain brings it back" xlh A snapshot-revert "$NAME" s4
check "... verify resumes with zero mismatches" resumed_clean A "$NAME"
check "... snapgen is s4's" test "$(snapgen A "$NAME")" = 4

# ---- 7. while a migration holds the domain -------------------------------
xlh A migrate --insecure --bandwidth 1M other "${ADDR[B]}:${PORTS[B]}" >/dev/null 2>&1 &
BGPIDS+=($!)
for ((i = 0; i < 50; i++)); do
	xlh A list other 2>/dev/null | grep -q . && timeout 5 "$XL" -S "$(sock B)" list other--incoming >/dev/null 2>&1 && break
	sleep 0.1
done
check "snapshot-create during a migration is refused naming it" \
	refused A "migrat" snapshot-create -n o2 other
check "snapshot-revert during a migration is refused naming it" \
	refused A "migrat" snapshot-revert other o1
xlh A migrate-cancel other >/dev/null 2>&1
wait "${BGPIDS[-1]}" 2>/dev/null
check "... the migration cancelled, other runs here untouched" running A other

# ---- 8. a ferryd restart keeps them -------------------------------------
stop_host A
start_host A || not_ok "ferryd A starts again"
check "after a ferryd restart the snapshots are listed" \
	bash -c "timeout 10 '$XL' -S '$(sock A)' snapshot-list --json $NAME | python3 -c 'import json,sys; v=json.load(sys.stdin); sys.exit([s[\"name\"] for s in v[\"snapshots\"]] != [\"s1\", \"s3\", \"s4\"])'"
check "... and s4 reverts (the domain is gone: by its name)" xlh A snapshot-revert "$NAME" s4
check "... verify resumes with zero mismatches" resumed_clean A "$NAME"

# ---- 9. verify, damage ---------------------------------------------------
check "snapshot-verify of a clean repository passes" xlh A snapshot-verify "$NAME"
check "snapshot-verify of one snapshot passes" xlh A snapshot-verify "$NAME" s1
pack=$(ls "$TMP/state-A/snapshots/packs/"*.pack | head -1)
printf '\x5a' | dd of="$pack" bs=1 seek=100 conv=notrunc status=none
check "after a flipped byte in $(basename "$pack") verify fails naming the pfn" \
	refused A "pfn" snapshot-verify "$NAME"
echo "# $(cat "$TMP/refused.err")"
id1=$(domid A "$NAME")
check "a revert to the damaged snapshot is refused naming the pfn" \
	refused A "pfn" snapshot-revert "$NAME" s1
echo "# $(cat "$TMP/refused.err")"
check "... the domain is left as it was" \
	bash -c "[[ '$(domid A "$NAME")' == '$id1' ]] && ! timeout 10 '$XL' -S '$(sock A)' list $NAME--reverting >/dev/null 2>&1"
check "... and runs" running A "$NAME"
# The damage shows as soon as the fetcher reaches it: before the reply
# (refused naming the pfn) or after it (the revert undone).
xlh A snapshot-revert --lazy "$NAME" s1 >/dev/null 2>"$TMP/lazy-bad.err"
echo "# lazy revert to the damaged s1: $(cat "$TMP/lazy-bad.err")"
# back_again: the damage found as pages arrived undid the lazy revert
back_again() {
	local end=$((SECONDS + 20))
	while ((SECONDS < end)); do
		[[ "$(domid A "$NAME")" == "$id1" ]] && running A "$NAME" &&
			! xlh A list "$NAME--reverted" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}
check "a lazy revert to it: the damage found as pages arrive brings the old domain back, running" back_again
check "... ferryd's log names the pfn" grep -q "lazy restore.*pfn" "$TMP/ferryd-A.out"
check "... after setting the old one aside (ferryd logs the undo)" \
	grep -q "the lazy revert failed: destroying it, '$NAME'" "$TMP/ferryd-A.out"
grep "lazy restore.*pfn" "$TMP/ferryd-A.out" | head -1 | sed 's/^/# /'
check "... only one $NAME, no copy left" \
	bash -c "[[ \$(timeout 10 '$XL' -S '$(sock A)' list | grep -c '^$NAME') == 1 ]]"

# ---- 10. unusable repositories -------------------------------------------
for kind in corrupt newer; do
	rm -rf "$TMP/state-C" "$TMP/run-C"
	mkdir -p "$TMP/state-C/snapshots/packs" "$TMP/state-C/snapshots/snaps"
	if [[ $kind == corrupt ]]; then
		echo "garbage" >"$TMP/state-C/snapshots/FORMAT"
		pat="corrupt"
	else
		printf 'ferry-snapshot-repository 99\ncross-domain-dedup 0\n' >"$TMP/state-C/snapshots/FORMAT"
		pat="newer"
	fi
	start_host C || { not_ok "ferryd starts with a $kind repository"; continue; }
	ok "ferryd starts with a $kind repository"
	check "... snapshot-list says it is $kind" refused C "$pat" snapshot-list
	check "... xl list works" xlh C list
	stop_host C
done

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
