// SPDX-License-Identifier: MIT
/*
 * Xenstore over ferryd's xenstored socket, in Xen's wire protocol
 * (xsd_sockmsg, xenstore/xs-wire.h's codec): a ferryd of its own (soft
 * backend, temporary run and state directories) and two connections as
 * dom0, the privileged toolstack:
 *   - reads/s and writes/s of one node, one request in flight;
 *   - watch fire latency: a watcher connection has a watch on a subtree,
 *     the writer writes a node below it; times from sending the write to
 *     its reply and to the watcher's event, and from the reply to the event;
 *   - sustained watch fires/s: the writer keeps PIPELINE writes in flight,
 *     the watcher counts events; events the store dropped are counted too.
 * The floor: a unix-socket echo round trip of the write request's size to
 * a forked process doing nothing else (the kernel's part of every op).
 *
 * Usage: bench-xenstore [-t SECONDS] [-r RUNS] [FERRYD]
 *        (default: 1 s windows, 5 runs, the ferryd built with this bench)
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "common/clock.h"
#include "xenstore/xs-wire.h"

#define MAX_RUNS BENCH_MAX_RUNS
#define VALUE_LEN 64
#define PIPELINE 64
#define NODE "/bench/k"
#define WATCHED "/bench/w"
#define WNODE "/bench/w/k"

/* ---- a blocking xsd_sockmsg client --------------------------------------- */

struct xsc {
	int fd;
	uint32_t req_id;
	struct xs_wire_rx rx;
	size_t ioff, ilen;
	uint8_t ibuf[8192];
	uint8_t obuf[XS_MSG_MAX];
};

static int unix_connect(const char *path, int *fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		int e = errno;

		close(s);
		return -e;
	}
	*fd = s;
	return 0;
}

/* Caller frees with xsc_close. */
static int xsc_open(const char *path, struct xsc **out)
{
	struct xsc *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	if ((rc = unix_connect(path, &c->fd))) {
		free(c);
		return rc;
	}
	xs_wire_rx_init(&c->rx);
	*out = c;
	return 0;
}

static void xsc_close(struct xsc *c)
{
	if (c) {
		close(c->fd);
		free(c);
	}
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sends type with up to two payload parts; returns the message length or
 * -errno. */
static long xsc_send(struct xsc *c, uint32_t type, const void *a, size_t alen,
		     const void *b, size_t blen)
{
	const struct xs_iov parts[2] = { { a, alen }, { b, blen } };
	long n = xs_wire_build(c->obuf, type, ++c->req_id, 0, parts, b ? 2 : 1);
	int rc;

	if (n < 0)
		return n;
	if ((rc = write_all(c->fd, c->obuf, (size_t)n)))
		return rc;
	return n;
}

static bool xsc_buffered(const struct xsc *c)
{
	return c->ioff < c->ilen;
}

/* The next whole message into c->rx (blocks). 0 or -errno. */
static int xsc_recv(struct xsc *c)
{
	if (c->rx.complete)
		xs_wire_rx_next(&c->rx);
	for (;;) {
		ssize_t n;

		if (xsc_buffered(c)) {
			long took = xs_wire_rx_feed(&c->rx, c->ibuf + c->ioff, c->ilen - c->ioff);

			if (took < 0)
				return (int)took;
			c->ioff += (size_t)took;
			if (c->rx.complete)
				return 0;
			continue;
		}
		n = read(c->fd, c->ibuf, sizeof(c->ibuf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		c->ioff = 0;
		c->ilen = (size_t)n;
	}
}

/* A request and its reply; -EIO if the store answered XS_ERROR. */
static int xsc_call(struct xsc *c, uint32_t type, const void *a, size_t alen,
		    const void *b, size_t blen)
{
	long n = xsc_send(c, type, a, alen, b, blen);
	int rc;

	if (n < 0)
		return (int)n;
	/* Watch events may come first on a watching connection. */
	do {
		if ((rc = xsc_recv(c)))
			return rc;
	} while (c->rx.hdr.type == XS_WATCH_EVENT);
	if (c->rx.hdr.type == XS_ERROR) {
		fprintf(stderr, "xenstore %s: %s\n", xs_wire_type_name(type),
			xs_wire_rx_payload(&c->rx));
		return -EIO;
	}
	return 0;
}

static const char value[VALUE_LEN + 1] =
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static int do_write(struct xsc *c, const char *path)
{
	return xsc_call(c, XS_WRITE, path, strlen(path) + 1, value, VALUE_LEN);
}

/* ---- ferryd and the echo floor as children ------------------------------- */

static char tmpdir[] = "/tmp/ferry-bench-xs.XXXXXX";

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

static int wait_path(const char *path, double secs)
{
	double end = ferry_now_s() + secs;
	struct stat st;

	while (stat(path, &st)) {
		if (ferry_now_s() > end)
			return -ETIMEDOUT;
		bench_sleep(0.05);
	}
	return 0;
}

static void stop_child(pid_t pid)
{
	double end = ferry_now_s() + 5;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	while (waitpid(pid, NULL, WNOHANG) == 0) {
		if (ferry_now_s() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return;
		}
		bench_sleep(0.02);
	}
}

/* ferryd --foreground on the soft backend, its output in TMP/ferryd.out.
 * Up once its control socket exists (ferryd makes it last). */
static int start_ferryd(const char *ferryd, pid_t *pid)
{
	char run[512], state[512], out[512], ctl[600];

	snprintf(run, sizeof(run), "%s/run", tmpdir);
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	snprintf(out, sizeof(out), "%s/ferryd.out", tmpdir);
	snprintf(ctl, sizeof(ctl), "%s/ferryd.sock", run);
	*pid = fork();
	if (*pid < 0)
		return -errno;
	if (!*pid) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		/* Never outlive the bench. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(ferryd, ferryd, "--foreground", "--on-stop", "destroy", "--backend", "soft",
		      "--memory", "256M", "--run-dir", run, "--state-dir", state, (char *)NULL);
		_exit(127);
	}
	if (wait_path(ctl, 15) || waitpid(*pid, NULL, WNOHANG) != 0) {
		fprintf(stderr, "ferryd did not come up (%s):\n", ferryd);
		snprintf(ctl, sizeof(ctl), "tail -n 5 %s >&2", out);
		(void)!system(ctl);
		stop_child(*pid);
		*pid = 0;
		return -ENOENT;
	}
	return 0;
}

/* Echoes every xsd_sockmsg it receives, one connection. */
static void echo_serve(int ls)
{
	struct xsc c;
	int fd = accept(ls, NULL, NULL);

	if (fd < 0)
		_exit(1);
	memset(&c, 0, sizeof(c));
	c.fd = fd;
	xs_wire_rx_init(&c.rx);
	while (!xsc_recv(&c))
		if (write_all(fd, c.rx.buf, sizeof(struct xs_msg_hdr) + c.rx.hdr.len))
			break;
	_exit(0);
}

static int start_echo(const char *path, pid_t *pid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (ls < 0)
		return -errno;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		close(ls);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) || listen(ls, 1)) {
		int e = errno;

		close(ls);
		return -e;
	}
	*pid = fork();
	if (*pid < 0) {
		close(ls);
		return -errno;
	}
	if (!*pid) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		echo_serve(ls);
	}
	close(ls);
	return 0;
}

/* ---- measurements --------------------------------------------------------- */

enum op { OP_READ, OP_WRITE, OP_ECHO };

/* Synchronous ops/s over secs. */
static int sync_rate(struct xsc *c, enum op op, double secs, double *rate)
{
	double t0 = ferry_now_s(), end = t0 + secs;
	uint64_t n = 0;
	int rc = 0;

	while (!rc && ferry_now_s() < end) {
		for (int i = 0; !rc && i < 16; i++) {
			if (op == OP_READ)
				rc = xsc_call(c, XS_READ, NODE, sizeof(NODE), NULL, 0);
			else if (op == OP_WRITE)
				rc = do_write(c, NODE);
			else
				rc = xsc_call(c, XS_WRITE, NODE, sizeof(NODE), value, VALUE_LEN);
		}
		n += 16;
	}
	*rate = (double)n / (ferry_now_s() - t0);
	return rc;
}

/* Waits for readable data on w or r (buffered counts). Returns a mask:
 * 1 for w, 2 for r; 0 after 2 s of nothing. */
static int wait_either(struct xsc *w, struct xsc *r)
{
	struct pollfd p[2] = { { w->fd, POLLIN, 0 }, { r->fd, POLLIN, 0 } };
	int m = (xsc_buffered(w) ? 1 : 0) | (xsc_buffered(r) ? 2 : 0);

	if (m)
		return m;
	if (poll(p, 2, 2000) <= 0)
		return 0;
	return (p[0].revents ? 1 : 0) | (p[1].revents ? 2 : 0);
}

struct fire_lat {
	double reply_us, event_us, gap_us; /* medians of one run */
};

/* Writes WNODE one at a time for secs; per write, send -> reply, send ->
 * event and reply -> event. */
static int fire_latency(struct xsc *w, struct xsc *r, double secs, struct fire_lat *out)
{
	static double rep[200000], ev[200000], gap[200000];
	double end = ferry_now_s() + secs;
	int n = 0, rc;

	while (n < 200000 && ferry_now_s() < end) {
		double t0 = ferry_now_s(), tr = 0, te = 0;

		if (xsc_send(w, XS_WRITE, WNODE, sizeof(WNODE), value, VALUE_LEN) < 0)
			return -EPIPE;
		while (!tr || !te) {
			int m = wait_either(w, r);

			if (!m) {
				fprintf(stderr, "watch: no %s within 2 s\n", tr ? "event" : "reply");
				return -ETIMEDOUT;
			}
			if ((m & 1) && !tr) {
				if ((rc = xsc_recv(w)))
					return rc;
				if (w->rx.hdr.type == XS_ERROR)
					return -EIO;
				tr = ferry_now_s();
			}
			if ((m & 2) && !te) {
				if ((rc = xsc_recv(r)))
					return rc;
				if (r->rx.hdr.type == XS_WATCH_EVENT)
					te = ferry_now_s();
			}
		}
		rep[n] = (tr - t0) * 1e6;
		ev[n] = (te - t0) * 1e6;
		gap[n++] = (te - tr) * 1e6;
	}
	out->reply_us = bench_stat(rep, n).med;
	out->event_us = bench_stat(ev, n).med;
	out->gap_us = bench_stat(gap, n).med;
	return 0;
}

/* PIPELINE writes in flight for secs; events the watcher got per second,
 * and (after draining) how many acknowledged writes had no event. */
static int fire_rate(struct xsc *w, struct xsc *r, double secs, double *rate,
		     uint64_t *lost)
{
	uint64_t sent = 0, acked = 0, events = 0, in_window = 0;
	double t0 = ferry_now_s(), end = t0 + secs, drain = end + 2;
	int rc;

	for (;;) {
		double t = ferry_now_s();
		int m;

		while (t < end && sent - acked < PIPELINE) {
			if (xsc_send(w, XS_WRITE, WNODE, sizeof(WNODE), value, VALUE_LEN) < 0)
				return -EPIPE;
			sent++;
		}
		if (t >= end && acked == sent && events >= acked)
			break;
		if (t > drain)
			break;
		if (!(m = wait_either(w, r)))
			break;
		if (m & 1) {
			if ((rc = xsc_recv(w)))
				return rc;
			if (w->rx.hdr.type == XS_ERROR)
				return -EIO;
			acked++;
		}
		if (m & 2) {
			if ((rc = xsc_recv(r)))
				return rc;
			if (r->rx.hdr.type == XS_WATCH_EVENT) {
				events++;
				if (ferry_now_s() < end)
					in_window++;
			}
		}
	}
	*rate = (double)in_window / secs;
	*lost = acked > events ? acked - events : 0;
	return 0;
}

/* ---- report ---------------------------------------------------------------- */

/* A row: the figure's median (min-max) in its unit, then time per op over
 * the floor's round trip. */
static void row(const char *what, const char *unit, double *v, int n, bool is_rate,
		double floor_us)
{
	struct bench_stat s = bench_stat(v, n);
	double us = is_rate ? 1e6 / s.med : s.med;

	printf("%-34s %10.1f (%9.1f-%9.1f) %-6s", what, s.med, s.min, s.max, unit);
	if (floor_us > 0)
		printf("  %7.1f us  %5.1fx\n", us, us / floor_us);
	else
		printf("  %7.1f us  %6s\n", us, "-");
}

/* Each operation's row in the printed order (long: one timed call and one
 * line per row). */
int main(int argc, char **argv)
{
	const char *ferryd = getenv("FERRYD") ? getenv("FERRYD") : FERRY_FERRYD;
	double rd[MAX_RUNS], wr[MAX_RUNS], echo[MAX_RUNS], fr[MAX_RUNS];
	double lrep[MAX_RUNS], lev[MAX_RUNS], lgap[MAX_RUNS], secs = 1, floor_us;
	char path[600];
	struct xsc *w = NULL, *r = NULL, *e = NULL;
	uint64_t lost_total = 0;
	pid_t fpid = 0, epid = 0;
	int runs = 5, rc = 1;

	if (bench_args(argc, argv, "bench-xenstore [-t SECONDS] [-r RUNS] [FERRYD]", &secs,
		       &runs, NULL, NULL, &ferryd))
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	if (start_ferryd(ferryd, &fpid))
		goto out;
	snprintf(path, sizeof(path), "%s/run/xenstored/socket", tmpdir);
	if (xsc_open(path, &w) || xsc_open(path, &r)) {
		fprintf(stderr, "cannot connect to %s\n", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/echo.sock", tmpdir);
	if (start_echo(path, &epid) || xsc_open(path, &e)) {
		fprintf(stderr, "cannot start the echo floor\n");
		goto out;
	}
	/* The nodes, and the watch (whose first event Xen fires at once). */
	if (do_write(w, NODE) || do_write(w, WNODE) ||
	    xsc_call(r, XS_WATCH, WATCHED "\0bench", sizeof(WATCHED "\0bench"), NULL, 0))
		goto out;
	if (xsc_recv(r) || r->rx.hdr.type != XS_WATCH_EVENT) {
		fprintf(stderr, "watch: no initial event\n");
		goto out;
	}

	for (int i = 0; i < runs; i++) {
		struct fire_lat fl;
		uint64_t lost;

		if (sync_rate(e, OP_ECHO, secs, &echo[i]) || sync_rate(w, OP_READ, secs, &rd[i]) ||
		    sync_rate(w, OP_WRITE, secs, &wr[i]) || fire_latency(w, r, secs, &fl) ||
		    fire_rate(w, r, secs, &fr[i], &lost)) {
			fprintf(stderr, "run %d failed\n", i + 1);
			goto out;
		}
		lrep[i] = fl.reply_us;
		lev[i] = fl.event_us;
		lgap[i] = fl.gap_us;
		lost_total += lost;
	}

	floor_us = 1e6 / bench_stat(echo, runs).med;
	printf("xenstore over ferryd's unix socket (soft backend), dom0, %.1f s windows, %d runs: "
	       "median (min-max)\n", secs, runs);
	printf("value %d bytes; write request %zu bytes\n", VALUE_LEN,
	       sizeof(struct xs_msg_hdr) + sizeof(NODE) + VALUE_LEN);
	printf("%-34s %31s %-6s  %10s  %6s\n", "operation", "figure", "unit", "per op",
	       "/floor");
	row("floor: unix echo round trip", "ops/s", echo, runs, true, 0);
	row("read " NODE, "ops/s", rd, runs, true, floor_us);
	row("write " NODE, "ops/s", wr, runs, true, floor_us);
	row("watch: write sent -> reply", "us", lrep, runs, false, floor_us);
	row("watch: write sent -> event", "us", lev, runs, false, floor_us);
	row("watch: reply -> event", "us", lgap, runs, false, 0);
	row("watch fires, " "64 writes in flight", "fires/s", fr, runs, true, floor_us);
	printf("events lost (writes acknowledged without an event): %llu\n",
	       (unsigned long long)lost_total);
	printf("per op = 1 / rate, or the latency; /floor = per op over the echo round trip; "
	       "reply -> event < 0: the event came first\n");
	rc = 0;
out:
	xsc_close(w);
	xsc_close(r);
	xsc_close(e);
	stop_child(epid);
	stop_child(fpid);
	nftw(tmpdir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	return rc;
}
