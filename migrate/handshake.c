// SPDX-License-Identifier: MIT
/*
 * The source's half of the migration handshake (handshake.h,
 * docs/migration.md). Every wait on the connection ends when the caller's
 * token fires or when the peer has been silent for net_ms (progress
 * timeouts of stream/io.h); the banner and the go/report exchange wait at
 * most BANNER_MS and GO_MS of it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "hyp/gmem.h"
#include "logdirty/logdirty.h"
#include "migrate/handshake.h"

#define BANNER_MS	 10000
#define GO_MS		 10000
#define QUERY_CONNECT_MS 2000

/* One call's working state. */
struct hs {
	const struct mig_hs_conf *c;
	struct mig_hs_result *res;
	bool resolving; /* mig_hs_resolve: "absent" is the answer asked for */
	bool op_paused; /* holds the domain paused (mig_live_send's op pause) */
};

static double left_ms(double t0, double total_ms)
{
	return total_ms - (ferry_now_s() - t0) * 1000;
}

static bool cancelled(const struct hs *s)
{
	return strm_cancel_fired(s->c->cancel);
}

static void phase(const struct hs *s, const char *what)
{
	if (s->c->ops && s->c->ops->phase)
		s->c->ops->phase(s->c->ops->opaque, what);
}

/* The io over connected fd, TLS unless plain; the io keeps the token
 * with timeout_ms. On failure fd is closed. */
static int open_io(const struct mig_hs_conf *c, int fd, const char *host, int timeout_ms,
		   struct strm_io **io, char *err, size_t errlen)
{
	char why[1024] = "";
	int rc;

	if (c->tls) {
		/* On failure the handshake has closed fd. */
		rc = strm_io_tls_client_cancel(c->tls, fd, host, c->cancel, timeout_ms, io, why,
					       sizeof(why));
		if (rc)
			snprintf(err, errlen, "%s", why[0] ? why : ferry_strerror(rc));
		return rc;
	}
	rc = strm_io_fd(fd, true, io);
	if (rc) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return rc;
	}
	rc = strm_io_set_cancel(*io, c->cancel, timeout_ms);
	if (rc) {
		strm_io_close(*io);
		snprintf(err, errlen, "%s: %s", c->host, ferry_strerror(rc));
	}
	return rc;
}

/*
 * Connects to the target, TLS unless plain, reads the banner; every wait
 * ends after timeout_ms without progress or when the token fires, and the
 * io keeps the token with that progress timeout.
 */
static int connect_target(const struct mig_hs_conf *c, int timeout_ms, struct strm_io **out,
			  char *err, size_t errlen);

int mig_hs_connect(const struct mig_hs_conf *c, struct strm_io **out, char *err, size_t errlen)
{
	return connect_target(c, c->net_ms, out, err, errlen);
}

static int connect_target(const struct mig_hs_conf *c, int timeout_ms, struct strm_io **out,
			  char *err, size_t errlen)
{
	char host[256], why[1024] = "";
	struct strm_io *io = NULL;
	int fd = -1, rc;

	rc = strm_tcp_connect_cancel(c->host, timeout_ms, c->cancel, &fd, host, sizeof(host), why,
				     sizeof(why));
	if (rc) {
		snprintf(err, errlen, "cannot connect to %s: %s", c->host,
			 why[0] ? why : ferry_strerror(rc));
		return rc;
	}
	rc = open_io(c, fd, host, timeout_ms, &io, err, errlen);
	if (rc)
		return rc;
	rc = strm_io_set_cancel(io, c->cancel, MIN(timeout_ms, BANNER_MS));
	if (!rc)
		rc = strm_hs_read(io, STRM_HS_BANNER, sizeof(STRM_HS_BANNER) - 1,
				  "waiting for the target's banner", why, sizeof(why));
	if (!rc)
		rc = strm_io_set_cancel(io, c->cancel, timeout_ms);
	if (rc) {
		snprintf(err, errlen, "%s: %s%s", c->host, why[0] ? why : ferry_strerror(rc),
			 !c->tls && rc != -ECANCELED ? " (is the target listening with TLS? "
						       "--insecure must be given on both ends)" : "");
		strm_io_close(io);
		return rc;
	}
	*out = io;
	return 0;
}

/* ---- the query ----------------------------------------------------------- */

/* Reads the answer line into buf (size bytes), each read bounded by what
 * is left of the query phase that began at t0. */
static int read_answer(const struct hs *s, struct strm_io *io, double t0, char *buf, size_t size)
{
	double total = s->c->query_ms ? s->c->query_ms : MIG_QUERY_TOTAL_MS, left;
	size_t got = 0;
	int rc = 0;

	while (got < size - 1 && !memchr(buf, '\n', got)) {
		ssize_t n;

		/* A trickle of bytes must not stretch the answer past the phase. */
		left = left_ms(t0, total);
		rc = left < 1 ? -ETIMEDOUT : strm_io_set_cancel(io, s->c->cancel, (int)left);
		if (rc)
			break;
		n = strm_io_read(io, buf + got, 1);
		if (n <= 0) {
			rc = n ? (int)n : -ECONNRESET;
			break;
		}
		got += (size_t)n;
	}
	buf[got] = 0;
	return rc;
}

/*
 * Asks the target whether it runs NAME: 1 running, 2 paused, 0 absent,
 * or -errno when it cannot be asked. Everything, connect and answer
 * included, fits in what is left of the query phase that began at t0.
 */
static int query_once(const struct hs *s, double t0, char *err, size_t errlen)
{
	const struct mig_hs_conf *c = s->c;
	double total = c->query_ms ? c->query_ms : MIG_QUERY_TOTAL_MS, left = left_ms(t0, total);
	char line[HYP_NAME_MAX + 32], buf[32];
	struct strm_io *io;
	int rc;

	if (left < 1)
		return -ETIMEDOUT;
	rc = connect_target(c, (int)MIN(left, QUERY_CONNECT_MS), &io, err, errlen);
	if (rc)
		return rc;
	snprintf(line, sizeof(line), "%s%s\n", STRM_HS_QUERY, c->name);
	left = left_ms(t0, total);
	rc = left < 1 ? -ETIMEDOUT : strm_io_set_cancel(io, c->cancel, (int)left);
	if (!rc)
		rc = strm_hs_write(io, line, strlen(line));
	if (!rc)
		rc = read_answer(s, io, t0, buf, sizeof(buf));
	strm_io_close(io);
	if (rc) {
		snprintf(err, errlen, "query to %s: %s", c->host, strm_hs_strerror(rc));
		return rc;
	}
	if (!strcmp(buf, "running\n"))
		return 1;
	if (!strcmp(buf, "paused\n"))
		return 2;
	if (!strcmp(buf, "absent\n"))
		return 0;
	snprintf(err, errlen, "query to %s: unexpected answer", c->host);
	return -EPROTO;
}

/* ---- the source copy's fate --------------------------------------------- */

/* Renames back, lifts the fence, lets go of the migration's pause. */
static int resume_source(struct hs *s)
{
	struct hyp *h = s->c->h;
	uint32_t domid = s->c->domid;
	const char *name = s->c->name;
	int rc = hyp_domain_rename(h, domid, name);

	if (rc)
		log_err("d%u: cannot rename back to '%s': %s", domid, name, ferry_strerror(rc));
	rc = hyp_domain_set_fenced(h, domid, false);
	if (!rc && s->op_paused) {
		rc = hyp_domain_op_unpause(h, domid);
		s->op_paused = rc != 0;
	}
	if (rc)
		log_err("d%u: cannot resume: %s", domid, ferry_strerror(rc));
	else
		log_info("d%u: '%s' runs here again", domid, name);
	return rc;
}

/* Asks every second for the whole query phase; the answer, or -errno
 * (qerr says why, "" when the token ended it). */
static int query_phase(const struct hs *s, char *qerr, size_t qlen)
{
	double t0 = ferry_now_s(), total = s->c->query_ms ? s->c->query_ms : MIG_QUERY_TOTAL_MS;
	int ans = -EHOSTUNREACH;

	while (!cancelled(s)) {
		double t = ferry_now_s(), pause;

		ans = query_once(s, t0, qerr, qlen);
		if (ans >= 0 || left_ms(t0, total) < 1)
			break;
		pause = MIN(1.0 - (ferry_now_s() - t), left_ms(t0, total) / 1000);
		if (pause > 0 &&
		    strm_wait_fd(-1, 0, s->c->cancel, (int)(pause * 1000) + 1) == -ECANCELED)
			break;
	}
	if (ans < 0 && cancelled(s))
		qerr[0] = 0;
	log_info("d%u: query phase ended after %.1f s", s->c->domid, ferry_now_s() - t0);
	return ans;
}

/*
 * After go, with the connection lost (or for migrate-resolve): asks the
 * target for the query phase, then destroys or resumes the fenced source
 * copy, or leaves it fenced (res->fenced) when the target cannot be
 * reached or the token fires.
 */
static void resolve_by_query(struct hs *s, const char *why)
{
	const struct mig_hs_conf *c = s->c;
	struct mig_hs_result *r = s->res;
	char qerr[1024] = "";
	int ans;

	log_warn("d%u: %s; asking %s whether it runs '%s'", c->domid, why, c->host, c->name);
	phase(s, "query");
	ans = query_phase(s, qerr, sizeof(qerr));
	if (ans > 0) {
		r->downtime_ms = (ferry_now_s() - r->rep.pause_at) * 1000;
		hyp_domain_destroy(c->h, c->domid);
		log_info("d%u: %s reports '%s' %s there; destroyed the copy here", c->domid,
			 c->host, c->name, ans == 1 ? "running" : "paused");
		r->resolved_by_query = true;
		r->outcome = "migrated";
		r->rc = 0;
		return;
	}
	if (ans == 0) {
		resume_source(s);
		r->outcome = "resumed";
		/* For migrate-resolve this is the answer it asked for. */
		r->rc = s->resolving ? 0 : -ECONNRESET;
		snprintf(r->err, sizeof(r->err),
			 "migration of '%s' to %s failed (%s); the target does not have it, so "
			 "it runs here again", c->name, c->host, why);
		return;
	}
	r->fenced = true;
	r->outcome = "fenced";
	r->rc = -EHOSTUNREACH;
	snprintf(r->err, sizeof(r->err),
		 "migration of '%s' to %s: %s, and the target cannot be asked (%s); the domain "
		 "stays paused and fenced here as '%s' (it may be running on %s): run "
		 "'xl migrate-resolve %s' (or --resume / --destroy once you know)",
		 c->name, c->host, why, qerr[0] ? qerr : "ferryd is stopping", r->away, c->host,
		 r->away);
	log_err("%s", r->err);
}

/* ---- the migration -------------------------------------------------------- */

/* Why mig_live_send failed, in res->err. The domain runs again. */
static void stream_failed(struct hs *s, struct strm_io *io, int rc, const char *why)
{
	const struct mig_hs_conf *c = s->c;
	struct mig_hs_result *r = s->res;
	const char *ioerr = strm_io_error(io), *reason = why[0] ? why : ferry_strerror(rc);
	bool stalled = rc == -ETIMEDOUT && ioerr && strstr(ioerr, "no progress");
	char terr[600] = "";

	/* A refusing target says why and closes: its reason waits in our
	 * socket buffer behind the write's EPIPE or reset. (Not after a
	 * stall: a frozen target would be waited for again.) */
	if (rc == -EPIPE || rc == -ECONNRESET)
		strm_io_keep_reading(io);
	if (rc != -ECANCELED && !stalled) {
		strm_io_set_cancel(io, c->cancel, 1000);
		if (strm_hs_read(io, STRM_HS_READY, sizeof(STRM_HS_READY), "", terr,
				 sizeof(terr)) != -ECONNREFUSED)
			terr[0] = 0;
	}
	r->rc = rc;
	if (rc == -ECANCELED)
		snprintf(r->err, sizeof(r->err), "migration of '%s' to %s cancelled; it "
			 "keeps running here", c->name, c->host);
	else if (terr[0])
		snprintf(r->err, sizeof(r->err), "migration of '%s' to %s failed: %s; it keeps "
			 "running here", c->name, c->host, terr);
	else if (stalled)
		snprintf(r->err, sizeof(r->err), "migration of '%s' to %s failed: the target "
			 "stalled (no progress for %d s, --net-timeout): %s; it keeps running here",
			 c->name, c->host, c->net_ms / 1000, reason);
	else if (rc == -EPIPE || rc == -ECONNRESET)
		/* The target went without a word (it crashed, or was killed). */
		snprintf(r->err, sizeof(r->err), "migration of '%s' to %s failed: %s; the "
			 "target closed the connection (see its log); it keeps running here",
			 c->name, c->host, reason);
	else {
		/* Found on this side: logged where it was found (log once). */
		snprintf(r->err, sizeof(r->err), "migration of '%s' to %s failed: %s; it keeps "
			 "running here", c->name, c->host, reason);
		log_info("d%u: migration to %s ended; it keeps running here", c->domid, c->host);
		return;
	}
	log_err("d%u: %s", c->domid, r->err);
}

/*
 * Page channels (docs/channels.md): main announces n and a random cookie,
 * then n more connections present it. 0 with ios[0..n-1] open, or -errno
 * with res filled and none left open.
 */
static int open_channels(struct hs *s, struct strm_io *main, unsigned n, struct strm_io **ios)
{
	const struct mig_hs_conf *c = s->c;
	struct mig_hs_result *r = s->res;
	char cookie[STRM_HS_COOKIE_LEN + 1], line[STRM_HS_COOKIE_LEN + 32], why[900] = "";
	uint8_t raw[STRM_HS_COOKIE_LEN / 2];
	unsigned i = 0, bad;
	int rc = 0;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		rc = -errno;
		snprintf(why, sizeof(why), "no random cookie: %s", ferry_strerror(rc));
		goto fail;
	}
	for (unsigned k = 0; k < sizeof(raw); k++)
		snprintf(cookie + 2 * k, 3, "%02x", raw[k]);
	snprintf(line, sizeof(line), "%s%u %s\n", STRM_HS_CHANNELS, n, cookie);
	rc = strm_hs_write(main, line, strlen(line));
	if (rc) {
		snprintf(why, sizeof(why), "announcing them: %s", strm_hs_strerror(rc));
		goto fail;
	}
	for (; i < n; i++) {
		rc = connect_target(c, c->net_ms, &ios[i], why, sizeof(why));
		if (rc)
			goto fail;
		snprintf(line, sizeof(line), "%s%s %u\n", STRM_HS_PAGES, cookie, i);
		rc = strm_hs_write(ios[i], line, strlen(line));
		if (rc) {
			snprintf(why, sizeof(why), "%s", strm_hs_strerror(rc));
			strm_io_close(ios[i]);
			goto fail;
		}
	}
	return 0;
fail:
	bad = i;
	while (i--)
		strm_io_close(ios[i]);
	r->rc = rc;
	if (rc == -ECANCELED)
		snprintf(r->err, sizeof(r->err), "migration of '%s' to %s cancelled while "
			 "connecting; it keeps running here", c->name, c->host);
	else
		snprintf(r->err, sizeof(r->err), "migration of '%s' to %s: cannot open page "
			 "channel %u of %u: %s; it keeps running here", c->name, c->host, bad + 1,
			 n, why);
	log_err("d%u: %s", c->domid, r->err);
	return rc;
}

/* Connects and sends the stream: 0 with *io open and the domain paused
 * by this operation, or -errno with res filled (the domain runs). */
static int send_stream(struct hs *s, struct mig_live_opts *o, struct strm_io **io)
{
	const struct mig_hs_conf *c = s->c;
	struct mig_hs_result *r = s->res;
	struct strm_io *chans[STRM_HS_CHANNELS_MAX];
	unsigned n = o->nchannels;
	char why[1024] = "";
	int rc = connect_target(c, c->net_ms, io, r->err, sizeof(r->err));

	if (rc == -ECANCELED)
		snprintf(r->err, sizeof(r->err), "migration of '%s' to %s cancelled while "
			 "connecting; it keeps running here", c->name, c->host);
	if (rc) {
		r->rc = rc;
		if (rc == -ECANCELED)
			log_err("d%u: %s", c->domid, r->err);
		else
			log_err("d%u: migration to %s: %s", c->domid, c->host, r->err);
		return rc;
	}
	if (cancelled(s)) {
		strm_io_close(*io);
		r->rc = -ECANCELED;
		snprintf(r->err, sizeof(r->err), "migration of '%s' cancelled; it keeps running",
			 c->name);
		return r->rc;
	}
	if (n > STRM_HS_CHANNELS_MAX)
		n = STRM_HS_CHANNELS_MAX;
	if (n && open_channels(s, *io, n, chans)) {
		strm_io_close(*io);
		return r->rc;
	}
	if (n)
		log_info("d%u: migrating '%s' to %s%s, pages over %u channel%s", c->domid, c->name,
			 c->host, c->tls ? " (TLS)" : " (plain TCP)", n, n == 1 ? "" : "s");
	else
		log_info("d%u: migrating '%s' to %s%s", c->domid, c->name, c->host,
			 c->tls ? " (TLS)" : " (plain TCP)");
	o->channels = chans;
	o->nchannels = n;
	rc = mig_live_send(c->h, c->domid, *io, o, &r->rep, why, sizeof(why));
	/* Each channel's stream has ended, or the migration failed. */
	for (unsigned i = 0; i < n; i++)
		strm_io_close(chans[i]);
	o->channels = NULL;
	if (rc) {
		stream_failed(s, *io, rc, why);
		strm_io_close(*io);
		return rc;
	}
	/* Stream complete; the domain is paused, by this operation. */
	s->op_paused = true;
	return 0;
}

/* Waits for ready, passes the point of no return, renames and fences the
 * source copy. 0, or -errno with the source running again and io closed. */
static int switchover(struct hs *s, struct strm_io *io)
{
	const struct mig_hs_conf *c = s->c;
	struct mig_hs_result *r = s->res;
	char why[1024] = "";
	int rc;

	phase(s, "handshake");
	rc = strm_hs_read(io, STRM_HS_READY, sizeof(STRM_HS_READY),
			  "waiting for the target to confirm", why, sizeof(why));
	if (!rc && c->ops->no_return(c->ops->opaque)) {
		rc = -ECANCELED;
		snprintf(why, sizeof(why), "cancelled before the switchover");
	}
	if (!rc) {
		snprintf(r->away, sizeof(r->away), "%.*s%s",
			 (int)(HYP_NAME_MAX - 1 - strlen(MIG_AWAY_SUFFIX)), c->name,
			 MIG_AWAY_SUFFIX);
		rc = hyp_domain_rename(c->h, c->domid, r->away);
		if (rc)
			snprintf(why, sizeof(why), "cannot rename the domain to '%s': %s",
				 r->away, ferry_strerror(rc));
	}
	if (!rc)
		rc = hyp_domain_set_fenced(c->h, c->domid, true);
	if (!rc)
		return 0;
	/* Before go: the target drops NAME--incoming when we hang up. */
	strm_io_close(io);
	hyp_domain_set_fenced(c->h, c->domid, false);
	hyp_domain_rename(c->h, c->domid, c->name);
	if (!hyp_domain_op_unpause(c->h, c->domid))
		s->op_paused = false;
	r->rc = rc;
	snprintf(r->err, sizeof(r->err), "migration of '%s' to %s %s: %s; it runs here again",
		 c->name, c->host, rc == -ECANCELED ? "cancelled" : "failed", why);
	log_err("d%u: %s", c->domid, r->err);
	return rc;
}

/* Past the point of no return: go, then the target's report. Closes io. */
static void go(struct hs *s, struct strm_io *io)
{
	const struct mig_hs_conf *c = s->c;
	struct mig_hs_result *r = s->res;
	char why[1024] = "";
	uint8_t status = 0xff;
	int rc;

	phase(s, "go");
	strm_io_set_cancel(io, c->cancel, MIN(c->net_ms, GO_MS));
	rc = strm_hs_write(io, STRM_HS_GO, sizeof(STRM_HS_GO));
	if (rc)
		snprintf(why, sizeof(why), "sending go: %s", strm_hs_strerror(rc));
	else
		rc = strm_hs_read(io, STRM_HS_REPORT, sizeof(STRM_HS_REPORT),
				  "waiting for the target's report", why, sizeof(why));
	if (!rc) {
		rc = strm_io_read_full(io, &status, 1);
		if (rc)
			snprintf(why, sizeof(why), "reading the target's status: %s",
				 strm_hs_strerror(rc));
	}
	if (!rc && status == 0) {
		r->downtime_ms = (ferry_now_s() - r->rep.pause_at) * 1000;
		strm_io_close(io);
		hyp_domain_destroy(c->h, c->domid);
		r->outcome = "migrated";
		log_info("d%u: '%s' runs on %s now; destroyed here (downtime %.0f ms, %" PRIu64
			 " bytes, %u rounds)", c->domid, c->name, c->host, r->downtime_ms,
			 r->rep.bytes_sent, r->rep.rounds);
		return;
	}
	/* The target could not start it and destroyed its copy; as Xen, it
	 * hands the domain back with the go message. */
	if (!rc)
		rc = strm_hs_read(io, STRM_HS_GO, sizeof(STRM_HS_GO),
				  "waiting for the domain back", why, sizeof(why));
	strm_io_close(io);
	if (rc) {
		resolve_by_query(s, why);
		return;
	}
	resume_source(s);
	r->rc = -FERRY_EPROTO;
	r->outcome = "resumed";
	snprintf(r->err, sizeof(r->err), "migration of '%s': the target could not start it "
		 "(status %u, see its log); it runs here again", c->name, status);
	log_err("d%u: %s", c->domid, r->err);
}

/* Log-dirty stays on through the handshake (keep_logdirty) and goes off
 * here, whatever became of the domain. */
int mig_hs_migrate(const struct mig_hs_conf *c, struct mig_live_opts *o,
		   struct mig_hs_result *res)
{
	struct hs s = { .c = c, .res = res };
	struct hyp_domain *hold = NULL;
	struct strm_io *io = NULL;
	struct ld *ld = NULL;

	memset(res, 0, sizeof(*res));
	/* A reference keeps the domain's VM and memory alive until logging
	 * is off, even after the source copy is destroyed. */
	if (hyp_domain_get(c->h, c->domid, &hold))
		hold = NULL;
	o->keep_logdirty = &ld;
	if (!send_stream(&s, o, &io) && !switchover(&s, io))
		go(&s, io);
	o->keep_logdirty = NULL;
	/* Left fenced (or destroyed): the fence holds it paused now. */
	if (s.op_paused)
		hyp_domain_op_unpause(c->h, c->domid);
	if (ld)
		ld_disable(ld);
	if (hold)
		hyp_domain_put(hold);
	return res->rc;
}

int mig_hs_resolve(const struct mig_hs_conf *c, const char *away, struct mig_hs_result *res)
{
	struct hs s = { .c = c, .res = res, .resolving = true };

	memset(res, 0, sizeof(*res));
	snprintf(res->away, sizeof(res->away), "%s", away);
	res->rep.pause_at = ferry_now_s();
	resolve_by_query(&s, "migrate-resolve");
	return res->rc;
}
