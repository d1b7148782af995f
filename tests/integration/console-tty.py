#!/usr/bin/env python3
# Runs `xl console DOMAIN` on a terminal (a pty): a typed line reaches the
# guest (the PV console ring's backend in devices/ feeds in[], and the
# built-in guest echoes "console: input 'LINE'"), and Ctrl-] ends the
# session with status 0. Exit 0 when both hold.
#   usage: console-tty.py XL DOMAIN
import os
import pty
import select
import sys
import time

xl, dom = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execv(xl, [xl, "console", dom])


def read_until(needle, secs):
    buf = b""
    end = time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
            if needle in buf:
                return True
    sys.stderr.write("console-tty: no %r in %r\n" % (needle, buf[-400:]))
    return False


time.sleep(0.5)  # the session is attached and in raw mode
os.write(fd, b"hello tty\r")
echoed = read_until(b"console: input 'hello tty'", 15)
os.write(fd, b"\x1d")  # Ctrl-]
status = None
end = time.time() + 10
while time.time() < end:
    p, st = os.waitpid(pid, os.WNOHANG)
    if p:
        status = os.WEXITSTATUS(st) if os.WIFEXITED(st) else -1
        break
    try:
        os.read(fd, 4096)
    except OSError:
        pass
    time.sleep(0.1)
if status is None:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    sys.stderr.write("console-tty: xl console did not end on Ctrl-]\n")
elif status:
    sys.stderr.write("console-tty: xl console exited with %d\n" % status)
sys.exit(0 if echoed and status == 0 else 1)
