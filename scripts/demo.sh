#!/bin/bash
# The main job: start a ferryd, create the built-in guest running `verify`,
# show its console and `xl list`, then clean up. (The live-migration issue
# turns this into a migration between two daemons.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
b=$root/build
work=$(mktemp -d /tmp/ferry-demo.XXXXXX)
sock=$work/run/ferryd.sock
xl() { "$b/xl" -S "$sock" "$@"; }
cleanup() {
	[ -S "$sock" ] && xl destroy demo >/dev/null 2>&1 || true
	[ -f "$work/run/ferryd.pid" ] && kill "$(cat "$work/run/ferryd.pid")" 2>/dev/null || true
	sleep 0.5
}
trap cleanup EXIT

echo "== starting ferryd (run dir $work/run, state dir $work/state)"
"$b/ferryd" --run-dir "$work/run" --state-dir "$work/state" --memory 2G
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
xl info

cat >"$work/demo.cfg" <<CFG
name = "demo"
memory = 1024
vcpus = 1
extra = "workload=verify ws=256M rate=100M"
CFG
echo "== xl create $work/demo.cfg"
t0=$(date +%s.%N)
xl create "$work/demo.cfg"
echo "== xl console demo (6 s)"
timeout 6 "$b/xl" -S "$sock" console demo || true
echo
echo "== xl list"
xl list
echo "== xl destroy demo"
xl destroy demo
xl list
echo "== console log: $work/state/console/guest-demo.log; daemon log: $work/state/ferryd.log"
