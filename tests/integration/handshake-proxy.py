# The handshake proxy of the migration fault tests (migrate-faults.sh,
# lifetime.sh): run as
#   python3 handshake-proxy.py LHOST LPORT THOST TPORT MODE [ARG] MARKFILE
# It forwards LHOST:LPORT to the target's listener THOST:TPORT and injects
# the fault MODE names into the first connection (see the modes below).
# Not a *.sh: scripts/test.sh runs only those as tests.
import os, select, signal, socket, sys, threading, time

lhost, lport, thost, tport, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
arg = sys.argv[6] if len(sys.argv) > 6 else ""
marker = sys.argv[7] if len(sys.argv) > 7 else ""
READY_REC, GO_REC = 34 + 17, 44 + 17
STREAM_MIN = 1 << 20  # ready only counts once the stream has gone by


def log(*a):
    print("proxy:", *a, file=sys.stderr, flush=True)


def touch(what):
    if marker:
        with open(marker, "a") as f:
            f.write(what + "\n")


class Records:
    """TLS record boundaries of one direction: feed() returns
    [(absolute start, record length)] for each header completed."""

    def __init__(self):
        self.pos = 0
        self.body = 0
        self.hdr = b""

    def feed(self, data):
        out, i = [], 0
        while i < len(data):
            if self.body:
                k = min(self.body, len(data) - i)
                self.body -= k
                i += k
                continue
            need = 5 - len(self.hdr)
            if not self.hdr:
                start = self.pos + i
                self.start = start
            self.hdr += data[i:i + need]
            i += min(need, len(data) - i)
            if len(self.hdr) == 5:
                ln = int.from_bytes(self.hdr[3:5], "big")
                out.append((self.start, self.hdr[0], ln))
                self.body = ln
                self.hdr = b""
        self.pos += len(data)
        return out


def handle(c, fault):
    try:
        t = socket.create_connection((thost, tport), timeout=3)
    except OSError as e:
        log("cannot reach the target:", e)
        c.close()
        return
    t.settimeout(None)
    s2t, t2s = Records(), Records()
    sent_s2t = 0
    ready_seen = False
    hold_t2s_until = 0.0
    cut_after = None  # absolute s2t position after which to cut
    socks = [c, t]

    def cut(why):
        log("cutting the connection:", why)
        touch("cut")
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    try:
        while True:
            rl = [c]
            if time.monotonic() >= hold_t2s_until:
                rl.append(t)
            r, _, _ = select.select(rl, [], [], 0.1)
            if c in r:
                d = c.recv(1 << 16)
                if not d:
                    break
                base = s2t.pos
                recs = s2t.feed(d) if fault else []
                if fault and mode == "cut-bytes" and sent_s2t + len(d) >= int(arg):
                    t.sendall(d[: int(arg) - sent_s2t])
                    cut("after %d bytes source->target" % int(arg))
                    return
                for start, typ, ln in recs:
                    if ready_seen and typ == 0x17 and ln == GO_REC:
                        log("go seen at", start)
                        touch("go")
                        if mode in ("cut-after-go", "delay-after-go"):
                            cut_after = start + 5 + ln
                if cut_after is not None and base + len(d) >= cut_after:
                    t.sendall(d[: cut_after - base])
                    if mode == "cut-after-go":
                        cut("after go")
                        return
                    t.sendall(d[cut_after - base:])
                    log("holding the target's answer for", arg, "s")
                    hold_t2s_until = time.monotonic() + float(arg)
                    cut_after = None
                    touch("held")
                    continue
                t.sendall(d)
                sent_s2t += len(d)
            if t in r:
                d = t.recv(1 << 16)
                if not d:
                    break
                base = t2s.pos
                recs = t2s.feed(d) if fault else []
                for start, typ, ln in recs:
                    if (not ready_seen and typ == 0x17 and ln == READY_REC and
                            sent_s2t >= STREAM_MIN):
                        ready_seen = True
                        log("ready seen at", start)
                        off = start - base
                        c.sendall(d[:off])
                        d = d[off:]
                        if mode == "kill-at-ready":
                            pid = int(open(arg).read().split()[0])
                            os.kill(pid, signal.SIGKILL)
                            log("killed the target ferryd", pid)
                            touch("killed")
                        elif mode == "delay-ready":
                            touch("ready")
                            time.sleep(float(arg or 4))
                        break
                c.sendall(d)
    except OSError as e:
        log("connection:", e)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((lhost, lport))
ls.listen(16)
touch("listening")
first = True
while True:
    c, _ = ls.accept()
    threading.Thread(target=handle, args=(c, first and mode != "pass"), daemon=True).start()
    first = False
