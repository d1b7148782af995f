#!/usr/bin/env bash
# ferryd's xenstore against its own xl verbs and Xen's clients (soft
# backend): /local/domain/N made at create and removed at destroy,
# write/read/rm, watches, permissions, the read-only socket, a malformed
# message, socket modes. Checks needing Xen's xenstore-utils or python3-pyxs
# are skipped (with the reason) when those are missing.
# Usage: tests/integration/xenstore.sh BUILD_DIR
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

BUILD=${1:?usage: $0 BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-xenstore.XXXXXX)
RUN="$TMP/run"
STATE="$TMP/state"
SOCK="$RUN/xenstored/socket"
export FERRY_SOCKET="$RUN/ferryd.sock"
# Xen's libxenstore (xenstore-* tools) finds the daemon here.
export XENSTORED_PATH="$SOCK"
PY=/usr/bin/python3 # Debian's, where python3-pyxs lives
ferryd_pid=

cleanup() {
	stop_ferryd
	rm -rf "$TMP"
}
trap cleanup EXIT

xl() { timeout 20 "$XL" "$@"; }
eq() { [[ "$1" == "$2" ]] || { echo "  got '$1', expected '$2'" >&2; return 1; }; }

have_xs=1
for t in xenstore-read xenstore-write xenstore-rm xenstore-ls xenstore-watch; do
	command -v "$t" >/dev/null || have_xs=
done
xs_why="xenstore-utils not installed (apt-get install xenstore-utils)"
have_pyxs=
[[ -x "$PY" ]] && "$PY" -c 'import pyxs' 2>/dev/null && have_pyxs=1
pyxs_why="python3-pyxs not installed (apt-get install python3-pyxs)"

for f in "$XL" "$FERRYD"; do
	[[ -x "$f" ]] || { echo "missing $f (build first)"; exit 1; }
done

cat > "$TMP/vm1.cfg" <<'CFG'
name = "vm1"
memory = 128
vcpus = 1
extra = "workload=idle"
CFG

timeout 120 "$FERRYD" --foreground --on-stop destroy --backend soft --memory 1G \
	--run-dir "$RUN" --state-dir "$STATE" >"$TMP/ferryd.out" 2>&1 &
ferryd_pid=$!
for ((i = 0; i < 100; i++)); do
	[[ -S "$FERRY_SOCKET" && -S "$SOCK" ]] && break
	sleep 0.1
done
check "ferryd listens on $SOCK" test -S "$SOCK"
check "xenstored socket is mode 0600" test "$(stat -c %a "$SOCK")" = 600
check "read-only socket is mode 0600" test "$(stat -c %a "$RUN/xenstored/socket_ro")" = 600
check "xenstored dir is mode 0700" test "$(stat -c %a "$RUN/xenstored")" = 700

check "dom0 has /local/domain/0/name" eq "$(xl xenstore-read /local/domain/0/name)" Domain-0
check "xl create vm1" xl create "$TMP/vm1.cfg"
D=$(xl list vm1 | awk '$1 == "vm1" { print $2 }')
check "vm1 has a domid" test -n "$D"
P=/local/domain/$D

check "xl xenstore-read $P/name" eq "$(xl xenstore-read "$P/name")" vm1
check "xl xenstore-read $P/domid" eq "$(xl xenstore-read "$P/domid")" "$D"
check "memory/target is 128 MiB in KiB" eq "$(xl xenstore-read "$P/memory/target")" 131072
check "xl xenstore-ls shows Xen's layout" bash -c \
	"timeout 20 '$XL' xenstore-ls '$P' | grep -q '^control = ' &&
	 timeout 20 '$XL' xenstore-ls '$P' | grep -q '^ shutdown = ' &&
	 timeout 20 '$XL' xenstore-ls '$P' | grep -q '^device = ' &&
	 timeout 20 '$XL' xenstore-ls '$P' | grep -q '^console = '"
check "xl xenstore-ls -p shows the guest's read access" bash -c \
	"timeout 20 '$XL' xenstore-ls -p '$P' | grep -qx 'name = \"vm1\"  (n0,r$D)'"
check "xl xenstore-write two pairs" xl xenstore-write /tool/t/a 1 /tool/t/b "two words"
check "xl xenstore-read both" eq "$(xl xenstore-read /tool/t/a /tool/t/b | tr '\n' '|')" "1|two words|"
check "xl xenstore-rm" xl xenstore-rm /tool/t
check "the removed node is gone" bash -c "! timeout 20 '$XL' xenstore-read /tool/t/a 2>/dev/null"
check "xl xenstore-read of a missing node names the error" bash -c \
	"timeout 20 '$XL' xenstore-read /nonexistent 2>&1 | grep -q 'No such file'"

if [[ -n "$have_xs" ]]; then
	check "xenstore-read (libxenstore) $P/name" eq "$(timeout 10 xenstore-read "$P/name")" vm1
	check "xenstore-write" timeout 10 xenstore-write "$P/data/k" v1
	check "xenstore-read what xenstore-write wrote" eq "$(timeout 10 xenstore-read "$P/data/k")" v1
	check "xl sees it too" eq "$(xl xenstore-read "$P/data/k")" v1
	check "xenstore-rm" timeout 10 xenstore-rm "$P/data/k"
	check "xenstore-read after rm fails" bash -c "! timeout 10 xenstore-read '$P/data/k' 2>/dev/null"
	timeout 10 xenstore-watch -n 2 "$P/data" >"$TMP/watch.out" 2>&1 &
	watch_pid=$!
	sleep 0.5
	timeout 10 xenstore-write "$P/data/w" 1
	wait "$watch_pid" || true
	check "xenstore-watch sees the write" grep -qx "$P/data/w" "$TMP/watch.out"
	check "xenstore-ls -p shows permissions" bash -c \
		"timeout 10 xenstore-ls -p '$P' | grep -q '^name = \"vm1\".*(n0,r$D)'"
	check "xenstore-ls -p: guest-owned data/" bash -c \
		"timeout 10 xenstore-ls -p '$P' | grep -q '^data = .*(n$D)'"
	check "read-only socket reads" eq \
		"$(XENSTORED_PATH=$RUN/xenstored/socket_ro timeout 10 xenstore-read "$P/name")" vm1
	check "read-only socket refuses a write" bash -c \
		"! XENSTORED_PATH='$RUN/xenstored/socket_ro' timeout 10 xenstore-write /tool/ro x 2>/dev/null"
else
	for c in read write rm watch ls-p read-only; do skip "xenstore-$c: $xs_why"; done
fi

if [[ -n "$have_pyxs" ]]; then
	check "pyxs reads $P/name" eq "$(timeout 10 "$PY" -c "
from pyxs import Client
with Client(unix_socket_path='$SOCK') as c:
    print(c.read(b'$P/name').decode())")" vm1
else
	skip "pyxs read: $pyxs_why"
fi

# A header announcing 100000 bytes: xenstored closes such a connection.
check "an oversize message gets a clean close" timeout 10 python3 -c "
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect('$SOCK'); s.settimeout(5)
s.sendall(struct.pack('=IIII', 2, 1, 0, 100000))
sys.exit(0 if s.recv(100) == b'' else 1)"
check "an unknown message type gets an error reply" timeout 10 python3 -c "
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect('$SOCK'); s.settimeout(5)
s.sendall(struct.pack('=IIII', 999, 7, 0, 2) + b'a\0')
r = s.recv(100)
t, rid, tx, n = struct.unpack('=IIII', r[:16])
sys.exit(0 if t == 16 and rid == 7 and r[16:16 + n].rstrip(b'\0').startswith(b'E') else 1)"
check "ferryd keeps serving" eq "$(xl xenstore-read "$P/name")" vm1

# The subtree travels in the stream (SPEC 6.1): what was written under the
# domain is there after a save and restore, under its new id; name and domid
# are the new domain's.
check "xl xenstore-write under vm1" xl xenstore-write "$P/data/carried" "across a save"
check "xl save vm1" timeout 60 "$XL" save vm1 "$TMP/vm1.save"
check "xl restore vm1" timeout 60 "$XL" restore "$TMP/vm1.save"
D2=$(xl list vm1 2>/dev/null | awk 'NR == 2 { print $2 }')
P2=/local/domain/$D2
check "the restored vm1 has a new domid" test -n "$D2" -a "$D2" != "$D"
check "data/carried came along" eq "$(xl xenstore-read "$P2/data/carried")" "across a save"
check "domid is the new one" eq "$(xl xenstore-read "$P2/domid")" "$D2"
check "name is vm1" eq "$(xl xenstore-read "$P2/name")" vm1
check "the old directory is gone" bash -c "! timeout 20 '$XL' xenstore-read '$P/name' 2>/dev/null"
P=$P2

check "xl destroy vm1" xl destroy vm1
gone=
for ((i = 0; i < 50; i++)); do
	if ! xl xenstore-read "$P/name" >/dev/null 2>&1; then gone=1; break; fi
	sleep 0.1
done
check "destroy removes $P" test -n "$gone"
check "/local/domain lists dom0 only" eq \
	"$(xl xenstore-ls /local/domain | awk '!/^ /{print $1}' | tr '\n' ' ')" "0 "

kill -TERM "$ferryd_pid"
wait "$ferryd_pid" || true
ferryd_pid=
check "clean stop removes the xenstored sockets" bash -c "! test -e '$SOCK' && ! test -e '$RUN/xenstored'"
check "no sanitizer reports" bash -c "! grep -q 'Sanitizer' '$TMP/ferryd.out'"

echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
