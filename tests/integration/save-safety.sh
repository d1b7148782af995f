#!/usr/bin/env bash
# xl save never destroys data and never wedges ferryd (issue 10), on the
# soft backend with one ferryd and small guests:
#  - a device node, /dev/null, a FIFO and a unix socket are written as
#    streams: never unlinked, never truncated; the FIFO's and the socket's
#    streams restore clean;
#  - saves to FIFOs nobody reads, their xl killed, free their workers: later
#    saves and restores run promptly; a restore whose xl went away creates
#    no domain;
#  - a save that runs out of room (tmpfs and a loop-mounted ext4, which may
#    report it only at fsync) leaves the old file byte for byte, and it
#    still restores; the domain keeps running;
#  - a save through a symlink replaces the link's target (a new inode), the
#    link, owner and mode kept; a new save file gets mode 0600;
#  - ferryd writes the temporary, fsyncs it, renames it over the target and
#    fsyncs the directory, in that order (strace);
#  - and it still ends within 30 s of SIGTERM.
# Runs as root in its own mount namespace, where /dev/null is a mount point
# (a regressed save can then not unlink the host's /dev/null) and the
# scratch file systems vanish with the script.
# Usage: tests/integration/save-safety.sh BUILD_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

if [[ $(id -u) != 0 ]]; then
	echo "skip - save-safety needs root (mknod, mount)"
	exit 0
fi
if [[ -z "${SAVE_SAFETY_NS:-}" ]]; then
	SAVE_SAFETY_NS=1 exec unshare -m --propagation private bash -c \
		'mount --bind /dev/null /dev/null && exec bash "$0" "$@"' "$0" "$@"
fi

BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
XL="$BUILD/xl"
FERRYD="$BUILD/ferryd"
TMP=$(mktemp -d /tmp/ferry-save-safety.XXXXXX)
ferryd_pid=
MOUNTS=()
READERS=()

# stop_bounded: SIGTERM, 30 s, then SIGKILL: a ferryd whose workers are
# wedged never ends on SIGTERM (issue 10), and must fail the test, not hang
# it. Fails if it had to kill.
stop_bounded() {
	local p i
	[[ -n "$ferryd_pid" ]] || return 0
	p=$(cat "$TMP/run/ferryd.pid" 2>/dev/null)
	kill -TERM "$ferryd_pid" 2>/dev/null
	for ((i = 0; i < 300; i++)); do kill -0 "$ferryd_pid" 2>/dev/null || break; sleep 0.1; done
	i=0
	if kill -0 "$ferryd_pid" 2>/dev/null; then
		[[ -n "$p" ]] && kill -KILL "$p" 2>/dev/null
		i=1
	fi
	wait "$ferryd_pid" 2>/dev/null
	ferryd_pid=
	return $i
}
cleanup() {
	local m p
	for p in "${READERS[@]}"; do kill "$p" 2>/dev/null; done
	stop_bounded
	for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT

xl() { timeout 60 "$XL" "$@"; }
# wait_console DOMAIN PATTERN: up to 60 s for a line matching PATTERN in the
# domain's console log (append-only, per name: every name here is new)
wait_console() {
	local i
	for ((i = 0; i < 600; i++)); do
		grep -q -- "$2" "$TMP/state/console/guest-$1.log" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
answers() { xl list >/dev/null; }
running() { [[ "$(xl list "$1" 2>/dev/null | awk 'NR == 2 { print $5 }')" =~ ^(r|-b) ]]; }
chardev_is() { [[ "$(stat -c '%F %t,%T' "$1" 2>/dev/null)" == "character special file $2" ]]; }

# guest NAME MIB WS: a domain whose verify workload sweeps WS of its memory
guest() {
	cat >"$TMP/$1.cfg" <<CFG
name = "$1"
memory = $2
extra = "workload=verify ws=$3 rate=20M"
CFG
	xl create "$TMP/$1.cfg" >/dev/null 2>&1 && wait_console "$1" "verify: sweep"
}
# restores_clean FILE NAME: FILE restores as NAME and verifies clean; NAME goes
restores_clean() {
	local rc=1
	xl restore -n "$2" "$1" >/dev/null 2>&1 &&
		wait_console "$2" "verify: resume pages=[0-9]* mismatches=0" && rc=0
	xl destroy "$2" >/dev/null 2>&1
	return $rc
}

devices() {
	mknod "$TMP/null" c 1 3
	mknod "$TMP/full" c 1 7
	check "save -c to a device node (1,3) succeeds" xl save -c g1 "$TMP/null"
	check "the node is still there, a character device" chardev_is "$TMP/null" 1,3
	check "save -c to a device that is full (1,7) fails" \
		bash -c "! timeout 60 '$XL' save -c g1 '$TMP/full' 2>/dev/null"
	check "that node is still there too" chardev_is "$TMP/full" 1,7
	check "save -c g1 /dev/null succeeds" xl save -c g1 /dev/null
	check "/dev/null is still the character device 1,3" chardev_is /dev/null 1,3
	check "a failed save leaves the domain running" running g1
}

fifo_with_reader() {
	mkfifo "$TMP/fifo"
	timeout 60 cat "$TMP/fifo" >"$TMP/from-fifo.save" &
	READERS+=($!)
	check "save -c into a FIFO with a reader" xl save -c g1 "$TMP/fifo"
	wait "${READERS[-1]}"
	check "the FIFO is still a FIFO" test -p "$TMP/fifo"
	check "the stream read from the FIFO restores clean" \
		restores_clean "$TMP/from-fifo.save" g1-fifo
}

fifos_without_reader() {
	local i pids=()
	for i in 1 2 3 4; do
		mkfifo "$TMP/stuck$i"
		timeout 2 "$XL" save -c g1 "$TMP/stuck$i" >/dev/null 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}"
	check "after four saves to FIFOs nobody read, ferryd answers" answers
	check "a normal save works promptly" timeout 30 "$XL" save -c g1 "$TMP/after.save"
	check "and restores clean promptly" restores_clean "$TMP/after.save" g1-after
	check "the FIFOs are still FIFOs" test -p "$TMP/stuck1" -a -p "$TMP/stuck4"
	check "the domain whose saves were cancelled runs" running g1
}

# A unix socket is a stream too: connected to, never unlinked.
unix_socket() {
	local i
	timeout 60 python3 -c 'import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept()
with open(sys.argv[2], "wb") as f:
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        f.write(b)' "$TMP/sock" "$TMP/from-sock.save" &
	READERS+=($!)
	for ((i = 0; i < 50; i++)); do [[ -S "$TMP/sock" ]] && break; sleep 0.1; done
	if xl save -c g1 "$TMP/sock"; then
		ok "save -c into a unix socket"
	else
		not_ok "save -c into a unix socket"
		kill "${READERS[-1]}" 2>/dev/null # it never connected
	fi
	wait "${READERS[-1]}"
	check "the socket is still there" test -S "$TMP/sock"
	check "the stream read from the socket restores clean" \
		restores_clean "$TMP/from-sock.save" g1-sock
}

# A restore from a FIFO nobody writes to, its xl gone: when a writer comes
# later, no domain may appear.
late_restore() {
	xl save -c g1 "$TMP/late.save" >/dev/null 2>&1
	mkfifo "$TMP/late"
	timeout 2 "$XL" restore -n g1-late "$TMP/late" >/dev/null 2>&1
	timeout 3 bash -c "cat '$TMP/late.save' >'$TMP/late'" 2>/dev/null
	sleep 2
	check "a restore whose xl went away creates no domain" bash -c "! timeout 10 '$XL' list g1-late >/dev/null 2>&1"
	xl destroy g1-late >/dev/null 2>&1
}

# full_disk LABEL DIR: a good save there, then a larger one over it
full_disk() {
	local l=$1 d=$2 sum
	check "$l: a good save" xl save -c g1 "$d/good.save"
	sum=$(sha256sum <"$d/good.save")
	check "$l: a larger save over it fails" \
		bash -c "! timeout 60 '$XL' save g2 '$d/good.save' 2>'$TMP/full.err'"
	check "$l: the error says old and new need room side by side" \
		grep -q "room side by side" "$TMP/full.err"
	echo "     ($(cat "$TMP/full.err"))"
	check "$l: the old file is byte-identical" test "$(sha256sum <"$d/good.save")" = "$sum"
	check "$l: nothing else is left in the directory" \
		test "$(ls -A "$d" | grep -v lost+found)" = good.save
	check "$l: the domain whose save failed runs" running g2
	check "$l: the old file still restores clean" restores_clean "$d/good.save" g1-$l
}

symlink() {
	local ino
	xl save -c g1 "$TMP/real.save" >/dev/null 2>&1
	chown 1234:5678 "$TMP/real.save"
	chmod 0640 "$TMP/real.save"
	ln -s real.save "$TMP/link.save"
	ino=$(stat -c %i "$TMP/real.save")
	check "save -c through a symlink" xl save -c g1 "$TMP/link.save"
	check "the link is kept, pointing where it did" \
		test "$(readlink "$TMP/link.save")" = real.save
	check "its target was replaced (a new inode), not rewritten in place" \
		test "$(stat -c %i "$TMP/real.save")" != "$ino"
	check "owner and mode kept" test "$(stat -c '%u:%g %a' "$TMP/real.save")" = "1234:5678 640"
	check "the new copy restores clean" restores_clean "$TMP/link.save" g1-link
	check "a new save file gets mode 0600" test "$(stat -c %a "$TMP/late.save")" = 600
}

# The order of ferryd's syscalls around one save, from an strace log: the
# temporary's last write, its fsync, the rename over the target, then an
# fsync of the directory opened after it.
order_ok() {
	python3 - "$1" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
# Join strace's "<unfinished ...>" / "<... resumed>" halves by thread.
calls, pending = [], {}
for l in lines:
    m = re.match(r'(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(.*)', l)
    tid, rest = m.group(1) or m.group(2) or '0', m.group(3)
    if rest.endswith('<unfinished ...>'):
        pending[tid] = rest[:-len('<unfinished ...>')]
        continue
    r = re.match(r'<\.\.\. \w+ resumed>(.*)', rest)
    if r:
        rest = pending.pop(tid, '') + r.group(1)
    calls.append(rest)
tmp_fd = dir_fd = None
tmp_name = None
last_write = fsync_tmp = renamed = dir_open = fsync_dir = None
for i, c in enumerate(calls):
    m = re.match(r'openat\(.*"([^"]*/\.order\.save\.tmp-\w+)".*\)\s+=\s+(\d+)', c)
    if m:
        tmp_name, tmp_fd = m.group(1), m.group(2)
        continue
    if tmp_fd is None:
        continue
    if re.match(r'(write|writev|pwrite64)\(%s,' % tmp_fd, c) and renamed is None:
        last_write = i
    elif re.match(r'f(data)?sync\(%s\)\s+=\s+0' % tmp_fd, c) and renamed is None:
        fsync_tmp = i
    elif re.match(r'rename(at2?)?\(.*"%s".*"[^"]*/order\.save".*=\s+0' % re.escape(tmp_name), c):
        renamed = i
    elif renamed is not None and dir_fd is None:
        m = re.match(r'openat\(.*O_DIRECTORY.*\)\s+=\s+(\d+)', c)
        if m:
            dir_fd, dir_open = m.group(1), i
    elif dir_fd is not None and re.match(r'f(data)?sync\(%s\)\s+=\s+0' % dir_fd, c):
        fsync_dir = i
        break
print("tmp fd", tmp_fd, "last write", last_write, "fsync", fsync_tmp, "rename", renamed,
      "dir fd", dir_fd, "fsync", fsync_dir, file=sys.stderr)
ok = None not in (last_write, fsync_tmp, renamed, fsync_dir) and \
    last_write < fsync_tmp < renamed < dir_open < fsync_dir
sys.exit(0 if ok else 1)
PY
}

write_order() {
	local pid i
	if ! command -v strace >/dev/null; then
		skip "strace is not installed: the write-fsync-rename order is unchecked"
		return
	fi
	pid=$(cat "$TMP/run/ferryd.pid" 2>/dev/null)
	echo old >"$TMP/order.save"
	strace -f -p "$pid" -o "$TMP/strace.log" \
		-e trace=openat,write,pwrite64,writev,fsync,fdatasync,rename,renameat,renameat2 \
		2>"$TMP/strace.err" &
	local spid=$!
	for ((i = 0; i < 50; i++)); do grep -q attached "$TMP/strace.err" && break; sleep 0.1; done
	sleep 0.5
	check "save -c under strace" xl save -c g1 "$TMP/order.save"
	sleep 0.5
	kill -INT "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	check "write, fsync, rename over the target, fsync of its directory, in order" \
		order_ok "$TMP/strace.log"
}

for f in "$XL" "$FERRYD"; do [[ -x "$f" ]] || { echo "missing $f"; exit 1; }; done
export FERRY_SOCKET=$TMP/run/ferryd.sock
timeout 900 "$FERRYD" --foreground --backend soft --memory 1G --on-stop destroy --run-dir "$TMP/run" \
	--state-dir "$TMP/state" >"$TMP/ferryd.out" 2>&1 &
ferryd_pid=$!
wait_socket "$FERRY_SOCKET" || { not_ok "ferryd starts"; exit 1; }
guest g1 64 40M || not_ok "g1 starts and sweeps"
guest g2 128 100M || not_ok "g2 starts and sweeps"

devices
fifo_with_reader
unix_socket
late_restore
mkdir "$TMP/tmpfs" "$TMP/ext4"
if mount -t tmpfs -o size=100M tmpfs "$TMP/tmpfs"; then
	MOUNTS+=("$TMP/tmpfs")
	full_disk tmpfs "$TMP/tmpfs"
else
	not_ok "tmpfs: mount"
fi
truncate -s 100M "$TMP/ext4.img"
if mkfs.ext4 -q -F "$TMP/ext4.img" && mount -o loop "$TMP/ext4.img" "$TMP/ext4"; then
	MOUNTS+=("$TMP/ext4")
	full_disk ext4 "$TMP/ext4"
else
	not_ok "ext4: mkfs and loop mount"
fi
symlink
write_order
fifos_without_reader
check "ferryd still answers" answers
check "ferryd ends within 30 s of SIGTERM" stop_bounded
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
