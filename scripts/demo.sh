#!/bin/bash
# The main job: two local ferryd daemons ("hosts" 127.0.0.2 and 127.0.0.3,
# mutually authenticated TLS from a throwaway CA), the built-in guest
# running `verify` (a 256 MiB working set dirtied at 100 MiB/s in a 1 GiB
# domain), a live migration from A to B with its report, and the guest's
# own check on B that no page was lost.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
b=$root/build
work=$(mktemp -d /tmp/ferry-demo.XXXXXX)
A=127.0.0.2 B=127.0.0.3
xa() { "$b/xl" -S "$work/a/run/ferryd.sock" "$@"; }
xb() { "$b/xl" -S "$work/b/run/ferryd.sock" "$@"; }
cleanup() {
	for h in a b; do
		[ -f "$work/$h/run/ferryd.pid" ] && kill "$(cat "$work/$h/run/ferryd.pid")" 2>/dev/null || true
	done
	sleep 0.5
}
trap cleanup EXIT

echo "== certificates for $A and $B (xl tls-setup)"
"$b/xl" tls-setup --dir "$work/tls" --host $A --host $B
for h in a b; do
	addr=$([ $h = a ] && echo $A || echo $B)
	echo "== ferryd $h on $addr:8002"
	"$b/ferryd" --on-stop destroy --run-dir "$work/$h/run" --state-dir "$work/$h/state" --memory 3G \
		--listen $addr:8002 --tls-dir "$work/tls" 2>/dev/null
	for _ in $(seq 50); do [ -S "$work/$h/run/ferryd.sock" ] && break; sleep 0.1; done
done
xa info | grep -E "^(backend|total_memory|free_memory)"

cat >"$work/demo.cfg" <<CFG
name = "demo"
memory = 1024
vcpus = 1
extra = "workload=verify ws=256M rate=100M"
CFG
echo "== host A: xl create demo.cfg"
xa create "$work/demo.cfg"
# Let verify lay out and dirty its working set for a few sweeps.
for _ in $(seq 100); do
	[ "$(timeout 2 "$b/xl" -S "$work/a/run/ferryd.sock" console demo | grep -c 'verify: sweep')" -ge 2 ] && break
	sleep 0.2
done
timeout 2 "$b/xl" -S "$work/a/run/ferryd.sock" console demo || true
echo
echo "== host A: xl migrate demo $B"
xa migrate demo $B
echo
echo "== host A: xl list"
xa list
echo "== host B: xl list"
xb list
sleep 3
echo "== host B: xl console demo (the guest checked every page after the move)"
timeout 2 "$b/xl" -S "$work/b/run/ferryd.sock" console demo | grep -E "verify: (resume|sweep|mismatch)" | tail -4 || true
echo "== logs: $work/{a,b}/state/ferryd.log"
