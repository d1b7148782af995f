#!/usr/bin/env bash
# Periodic snapshots (xl snapshot-schedule, xl.cfg snapshot_interval and
# snapshot_keep) on one ferryd (soft backend, no listener; its own temp
# dirs under /tmp/ferry-snapsched.*):
#  1. bad input is refused with a clear error: --every 0 / garbage / more
#     than a year, --keep 0, a new schedule without --keep, --off of none
#  2. a verify guest with --every 2s --keep 3: after ~10 s at most 3 auto
#     snapshots are listed, they are the newest, the chain is incremental,
#     and a user-named snapshot taken before them survives the pruning;
#     snapshot-list shows the schedule (last, next, missed), and so does
#     its --json ({"snapshots": [...], "schedules": [...]})
#  3. a run while another operation holds the domain (xl save -c to a FIFO
#     nobody reads yet) is reported skipped, with the reason and missed
#     count, and the schedule runs again once the save is done
#  4. a ferryd restart (SIGTERM saves the domain, the next start restores
#     it): the schedule is kept, the runs due while ferryd was down count as
#     missed (one run at once, no burst), the first snapshot is a full one,
#     and it runs again
#  5. --off stops it (no new auto snapshot, the file is gone, the
#     snapshots stay); a verify of the repository passes
#  6. xl.cfg keys create a schedule at xl create; bad keys refuse the create;
#     its domain destroyed, the schedule waits idle (snapshot-list --json
#     of the domain by the name it had shows it), and resumes (nothing
#     missed) when a domain with its UUID is created again
#  7. a full disk (the repository on an 8 MiB tmpfs, when one can be
#     mounted): the run is reported skipped naming it, the guest runs on
# Usage: tests/integration/snapshot-schedule.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-snapsched.XXXXXX)
RUN=$TMP/run STATE=$TMP/state
export FERRY_SOCKET=$RUN/ferryd.sock
ferryd_pid=
MOUNTED=
SAVE_PID=
VM=ssvm

cleanup() {
	[[ -z $SAVE_PID ]] || kill "$SAVE_PID" 2>/dev/null
	stop_ferryd
	[[ -z $MOUNTED ]] || umount "$MOUNTED" 2>/dev/null
	[[ -n ${KEEP_TMP:-} ]] && echo "# kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f (build first)"; exit 1; }; done

xl() { timeout 60 "$XL" "$@"; }
start() { # [ferryd flags] (--on-stop save unless given)
	rm -f "$FERRY_SOCKET"
	timeout 600 "$FERRYD" --foreground --backend soft --memory 1G --run-dir "$RUN" \
		--state-dir "$STATE" "$@" >>"$TMP/ferryd.out" 2>&1 &
	ferryd_pid=$!
	wait_socket "$FERRY_SOCKET" # a 128 MiB restore comes first: well within 10 s
}
term() { # SIGTERM; true if ferryd exited 0
	local rc
	kill -TERM "$ferryd_pid"
	wait "$ferryd_pid"
	rc=$?
	ferryd_pid=
	((rc == 0))
}
logmark() { LOGMARK=$(stat -c %s "$STATE/ferryd.log" 2>/dev/null || echo 0); }
loghas() { tail -c +$((LOGMARK + 1)) "$STATE/ferryd.log" | grep -qE -- "$1"; }
# refused PATTERN XL-ARGS...: the command fails and its stderr says PATTERN
refused() {
	local pat=$1
	shift
	! xl "$@" >/dev/null 2>"$TMP/refused.err" && grep -qiE -- "$pat" "$TMP/refused.err" ||
		{ echo "# stderr: $(cat "$TMP/refused.err")"; return 1; }
}
conlog() { echo "$STATE/console/guest-$1.log"; }
wait_log() { # DOMAIN PATTERN: up to 30 s
	local i
	for ((i = 0; i < 300; i++)); do
		grep -q -- "$2" "$(conlog "$1")" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# sched DOMAIN PYTHON-EXPR: on s, the domain's schedule (xl ... --json)
sched() {
	xl snapshot-schedule --json "$1" >"$TMP/sched.json" 2>/dev/null || return 1
	python3 -c "import json, sys; v = json.load(open(sys.argv[1])); s = v[0]; print($2)" \
		"$TMP/sched.json"
}
# snaps DOMAIN: the complete snapshots' names, oldest first, one a line
snaps() {
	xl snapshot-list --json "$1" >"$TMP/list.json" 2>/dev/null || return 1
	python3 -c '
import json, sys
v = [s for s in json.load(open(sys.argv[1]))["snapshots"] if s["state"] == "complete"]
for s in sorted(v, key=lambda s: (s["time"], len(s["name"]), s["name"])):
    print(s["name"])' "$TMP/list.json"
}
autos() { snaps "$1" | grep -E '^auto-[0-9]{8}-[0-9]{6}(-[0-9]+)?$'; }
# until_true SECONDS COMMAND...: polls every 0.2 s
until_true() {
	local n=$(($1 * 5))
	shift
	while ((n-- > 0)); do "$@" && return 0; sleep 0.2; done
	return 1
}
cfg() { # NAME MEMORY EXTRA [MORE LINES]
	printf 'name = "%s"\nmemory = %s\nextra = "%s"\n%s' "$1" "$2" "$3" "${4:-}" >"$TMP/$1.cfg"
}

cfg "$VM" 128 "workload=verify ws=32M rate=8M"
start || { not_ok "ferryd starts"; exit 1; }
xl create "$TMP/$VM.cfg" >/dev/null 2>&1 || { not_ok "create $VM"; exit 1; }
check "the verify guest sweeps" wait_log "$VM" "verify: sweep"

# ---- 1. bad input ---------------------------------------------------------
check "--every 0 is refused" refused "interval of 0" snapshot-schedule "$VM" --every 0 --keep 3
check "--every 5x is refused" refused "unit s, m, h or d" snapshot-schedule "$VM" --every 5x --keep 3
check "--every 400d is refused" refused "longer than" snapshot-schedule "$VM" --every 400d --keep 3
check "--keep 0 is refused" refused "expected 1 to" snapshot-schedule "$VM" --every 2s --keep 0
check "a new schedule needs --keep" refused "needs both" snapshot-schedule "$VM" --every 2s
check "--off of no schedule is refused" refused "has no snapshot schedule" \
	snapshot-schedule "$VM" --off
check "an unknown domain is refused" refused "does not exist" \
	snapshot-schedule nosuchvm --every 2s --keep 3
check "nothing was set by the refusals" test -z "$(xl snapshot-schedule --json | tr -d '[] \n')"

# ---- 2. every 2 s, keep 3 ---------------------------------------------------
quiet() { "$@" >/dev/null 2>&1; }
check "a user-named snapshot is taken" quiet xl snapshot-create -n mine "$VM"
check "snapshot-schedule --every 2s --keep 3" xl snapshot-schedule "$VM" --every 2s --keep 3
sleep 10
# A snapshot just committed may await its prune: poll briefly.
at_most_3() { (($(autos "$VM" | wc -l) <= 3)); }
check "after 10 s at most 3 auto snapshots are listed" until_true 5 at_most_3
runs=$(sched "$VM" 's["runs"]')
check "the schedule ran at least 4 times (so it pruned): runs=$runs" test "${runs:-0}" -ge 4
newest_ok() { # the listed autos are the newest: the last one taken is the last listed
	local last
	last=$(sched "$VM" 's["last_name"]')
	[[ -n $last && "$(autos "$VM" | tail -1)" == "$last" ]] &&
		(($(autos "$VM" | wc -l) >= 2))
}
check "the autos kept are the newest" until_true 3 newest_ok
has_mine() {
	snaps "$VM" | grep -qx mine ||
		{ echo "# listed: $(snaps "$VM" | tr '\n' ' ') ($(cat "$TMP/list.json"))"; return 1; }
}
check "the user's snapshot survives the pruning" has_mine
check "the log says the schedule's snapshots are incremental" \
	grep -qE "scheduled snapshot 'auto-[0-9-]+' taken: incremental on 'auto-" "$STATE/ferryd.log"
check "and that it pruned" grep -q "pruned 1 auto snapshot" "$STATE/ferryd.log"
table_has() { xl snapshot-schedule | grep -qE "^$VM +2s +3 "; }
check "the table shows the schedule" table_has
list_has() { xl snapshot-list "$VM" | grep -qE "^schedule of $VM: every 2s, keep 3; last run .*missed"; }
check "snapshot-list shows the schedule's last and next runs and missed" list_has
# list_json DOMAIN PYTHON-EXPR: true if the expression holds on v, xl
# snapshot-list --json of DOMAIN (its snapshots and its schedules)
list_json() {
	xl snapshot-list --json "$1" >"$TMP/list-s.json" 2>/dev/null &&
		python3 -c "import json, sys; v = json.load(open(sys.argv[1])); sys.exit(not ($2))" \
			"$TMP/list-s.json" || { echo "# listed: $(cat "$TMP/list-s.json")"; return 1; }
}
check "snapshot-list --json: the snapshots and the schedule (every, keep, last, next, missed)" \
	list_json "$VM" 'sorted(v) == ["schedules", "snapshots"] and "mine" in [x["name"] for x in v["snapshots"]]
	and len(v["schedules"]) == 1 and (lambda s: s["name"] == "'"$VM"'" and s["every"] == "2s"
	and s["keep"] == 3 and s["runs"] >= 4 and s["missed"] >= 0 and s["next_due"] >= s["last_run"] > 0
	and s["last_result"] == "ok")(v["schedules"][0])'
check "... the schedule as snapshot-schedule --json shows it" \
	list_json "$VM" 'v["schedules"][0]["uuid"] == "'"$(sched "$VM" 's["uuid"]')"'"'

# ---- 3. a run while another operation holds the domain ----------------------
mkfifo "$TMP/hold.fifo"
logmark
missed0=$(sched "$VM" 's["missed"]')
# The save waits for a reader of the FIFO, holding the domain. It is
# refused while a scheduled snapshot holds the domain itself: try again.
hold() {
	local i
	for ((i = 0; i < 20; i++)); do
		xl save -c "$VM" "$TMP/hold.fifo" >"$TMP/save.out" 2>&1 &
		SAVE_PID=$!
		sleep 0.5
		kill -0 "$SAVE_PID" 2>/dev/null && return 0
		wait "$SAVE_PID"
		SAVE_PID=
	done
	return 1
}
check "xl save -c to a FIFO nobody reads holds the domain" hold
skipped() { [[ "$(sched "$VM" 's["last_result"]')" == skipped ]]; }
check "a run while a save holds the domain is reported skipped" until_true 8 skipped
reason=$(sched "$VM" 's["last_reason"]')
check "the reason names the save: $reason" test "${reason#*being saved}" != "$reason"
missed1=$(sched "$VM" 's["missed"]')
check "the missed count went up ($missed0 -> $missed1)" test "${missed1:-0}" -gt "${missed0:-0}"
check "ferryd logs the skip" loghas "d[0-9]+: scheduled snapshot skipped .*being saved"
cat "$TMP/hold.fifo" >/dev/null
wait "$SAVE_PID"
check "the save completes" test $? -eq 0
SAVE_PID=
ok_again() { [[ "$(sched "$VM" 's["last_result"]')" == ok ]]; }
check "the schedule runs again after the save" until_true 6 ok_again

# ---- 4. a ferryd restart keeps the schedule ----------------------------------
uuid=$(sched "$VM" 's["uuid"]')
check "SIGTERM: ferryd saves the domain and exits 0" term
SCHED_FILE=$STATE/snapshot-schedules/$uuid.sched
check "the schedule is stored" test -s "$SCHED_FILE"
# What it held at the stop (a run may have ended after the last look).
runs0=$(awk '$1 == "runs" { print $2 }' "$SCHED_FILE")
missed0=$(awk '$1 == "missed" { print $2 }' "$SCHED_FILE")
sleep 5 # two or more runs fall due while ferryd is down
logmark
check "ferryd starts again and restores the domain" start --on-stop destroy
ran_again() { (($(sched "$VM" 's["runs"]') > ${runs0:-0})) && ok_again; }
check "the schedule runs again after the restart" until_true 10 ran_again
missed1=$(sched "$VM" 's["missed"]')
check "the runs due while ferryd was down count as missed ($missed0 -> $missed1)" \
	test "${missed1:-0}" -ge $((${missed0:-0} + 2))
check "the log says they were missed" loghas "fell due while ferryd was down: missed; one is taken now"
check "the log says the first snapshot after the restart is a full one" \
	loghas "scheduled snapshot 'auto-[0-9-]+' taken: full"
no_burst() { # one run at restart, then an interval before the next
	tail -c +$((LOGMARK + 1)) "$STATE/ferryd.log" | grep "scheduled snapshot '.*' taken" |
		python3 -c '
import sys
t = []
for line in sys.stdin:
    h, m, s = line.split()[1].split(":")
    t.append(int(h) * 3600 + int(m) * 60 + float(s))
sys.exit(0 if len(t) >= 2 and t[1] - t[0] >= 1.5 else 1)'
}
until_true 5 test "$(tail -c +$((LOGMARK + 1)) "$STATE/ferryd.log" | grep -c "scheduled snapshot '.*' taken")" -ge 2
check "no burst of catch-up runs" no_burst
check "still at most 3 autos after the restart" until_true 5 at_most_3
check "the user's snapshot is still there" has_mine

# ---- 5. --off --------------------------------------------------------------------
check "snapshot-schedule --off" xl snapshot-schedule "$VM" --off
sleep 0.5 # a run under way when --off came ends and prunes
before=$(autos "$VM" | tr '\n' ' ')
sleep 5
after=$(autos "$VM" | tr '\n' ' ')
check "--off stops it: no new auto snapshot in 5 s" test "$before" = "$after"
check "--off keeps its snapshots" test -n "$after"
check "the schedule is gone from the list" test -z "$(xl snapshot-schedule --json "$VM" | tr -d '[] \n')"
check "its file is gone" test ! -e "$STATE/snapshot-schedules/$uuid.sched"
check "snapshot-verify passes on what pruning left" quiet xl snapshot-verify "$VM"

# ---- 6. xl.cfg keys ---------------------------------------------------------------
cfg sscfg 64 "workload=idle" 'snapshot_interval = "2s"
snapshot_keep = 2
'
check "xl create with snapshot_interval/snapshot_keep" quiet xl create "$TMP/sscfg.cfg"
has_cfg_sched() { [[ "$(sched sscfg '"%s %d" % (s["every"], s["keep"])')" == "2s 2" ]]; }
check "the config's schedule is set" has_cfg_sched
cfg_ran() { (($(autos sscfg | wc -l) >= 1)); }
check "and it takes snapshots" until_true 8 cfg_ran
sleep 5
cfg_at_most_2() { (($(autos sscfg | wc -l) <= 2)); }
check "keeping at most 2" until_true 5 cfg_at_most_2
# Its domain goes: the schedule waits, idle; a domain with its UUID
# comes back (no schedule keys this time): it resumes, nothing missed.
cfg_uuid=$(sched sscfg 's["uuid"]')
check "xl destroy of a scheduled domain" quiet xl destroy sscfg
idle() { [[ "$(xl snapshot-schedule --json "$cfg_uuid" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])')" == idle ]]; }
check "its schedule stays, idle" until_true 5 idle
check "snapshot-list --json of the gone domain (by its name) shows it, idle" \
	list_json sscfg '[(s["uuid"], s["state"]) for s in v["schedules"]] == [("'"$cfg_uuid"'", "idle")]'
idle_runs=$(xl snapshot-schedule --json "$cfg_uuid" | python3 -c 'import json,sys; s = json.load(sys.stdin)[0]; print(s["runs"], s["missed"])')
sleep 3
cfg sscfg 64 "workload=idle" "uuid = \"$cfg_uuid\"
"
check "a domain with the same UUID is created" quiet xl create "$TMP/sscfg.cfg"
resumed() { (($(sched sscfg 's["runs"]') > ${idle_runs% *})); }
check "the schedule resumes" until_true 6 resumed
check "the idle time counts no missed run" test "$(sched sscfg 's["missed"]')" = "${idle_runs#* }"
logs_both() {
	grep -q "snapshot schedule idle: the domain is not here" "$STATE/ferryd.log" &&
		grep -q "snapshot schedule resumes" "$STATE/ferryd.log"
}
check "ferryd logs both" logs_both
cfg ssbad 64 "workload=idle" 'snapshot_interval = "0s"
snapshot_keep = 2
'
check "a config with snapshot_interval 0 is refused" refused "interval of 0" create "$TMP/ssbad.cfg"
cfg ssbad2 64 "workload=idle" 'snapshot_interval = "5m"
'
check "a config with an interval but no keep is refused" refused "together" create "$TMP/ssbad2.cfg"
neither() { ! xl list ssbad >/dev/null 2>&1 && ! xl list ssbad2 >/dev/null 2>&1; }
check "neither was created" neither
xl snapshot-schedule sscfg --off >/dev/null 2>&1

check "SIGTERM: ferryd exits 0" term

# ---- 7. a full disk ---------------------------------------------------------------
STATE=$TMP/state-full
mkdir -p "$STATE/snapshots"
if mount -t tmpfs -o size=8M tmpfs "$STATE/snapshots" 2>/dev/null; then
	MOUNTED=$STATE/snapshots
	cfg ssfull 128 "workload=verify ws=32M rate=8M" 'snapshot_interval = "2s"
snapshot_keep = 2
'
	check "ferryd starts with its repository on an 8 MiB tmpfs" start --on-stop destroy
	check "a verify guest with a schedule is created" quiet xl create "$TMP/ssfull.cfg"
	full_skipped() {
		[[ "$(sched ssfull 's["last_result"]')" == skipped ]] &&
			[[ "$(sched ssfull 's["last_reason"]')" == "disk full: "* ]]
	}
	check "a run on a full disk is reported skipped: disk full" until_true 10 full_skipped
	echo "# reason: $(sched ssfull 's["last_reason"]')"
	check "its missed count says so" test "$(sched ssfull 's["missed"]')" -ge 1
	check "what is stored still verifies" quiet xl snapshot-verify ssfull
	check "the guest runs on" wait_log ssfull "verify: sweep"
	check "SIGTERM: ferryd exits 0" term
	umount "$MOUNTED" && MOUNTED=
else
	skip "full disk: cannot mount a small tmpfs here (not root?)"
fi
echo "# $passed passed, $failed failed, $skipped skipped"
((failed == 0))
