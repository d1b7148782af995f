// SPDX-License-Identifier: MIT
/*
 * Live migration in ferryd (docs/migration.md has the protocol and the
 * failure states).
 *
 * Source side: the "migrate" op is a job on its own thread (ctl-jobs.c):
 * connect, TLS, banner, mig_live_send() with progress forwarded to the
 * requesting client as "migrate-progress" events, then Xen's xl migrate
 * handshake. Every wait on the connection ends when the job's cancel token
 * fires (migrate-cancel, the client going away, SIGTERM) or when the peer
 * has been silent for --net-timeout (progress timeouts of stream/io.h).
 * After "go" the source copy is fenced (paused, unpause refused, renamed
 * NAME--migratedaway) until the target's state is known: from its report,
 * or by asking it again ("ferry-query NAME") for up to 30 s. What cannot be
 * resolved stays fenced for "migrate-resolve".
 *
 * Target side: a listener on the loop (uv_poll on strm_tcp_listen's fd);
 * each accepted connection gets a receiver job (no client) that does the
 * TLS handshake, the banner, and then either answers a query or receives
 * a stream into NAME--incoming and runs the handshake, with the same
 * progress timeout and a cancel token (ctl_migrate_cancel_all).
 *
 * Threads: progress events go to the loop, which alone writes to control
 * clients, through ctl__loop_call. mig->lock guards the job, fence and
 * receiver lists.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "hyp/gmem.h"
#include "logdirty/logdirty.h"
#include "migrate/precopy.h"
#include "restore/restore.h"
#include "stream/net.h"
#include "toolstack/config.h"

/* Xen's messages (tools/xl/xl.h); the last three are sent with their NUL. */
static const char MSG_BANNER[] = "xl migration receiver ready, send binary domain data.\n";
static const char MSG_READY[] = "domain received, ready to unpause";
static const char MSG_GO[] = "domain is yours, you are cleared to unpause";
static const char MSG_REPORT[] = "my copy unpause results are as follows";
/* Ferry's additions. */
static const char MSG_QUERY[] = "ferry-query "; /* + NAME "\n" */
static const char MSG_ERROR[] = "ferry-error: "; /* + reason "\n", target -> source */
static const char XL_MAGIC12[] = "Xen saved do"; /* the first 12 bytes of the xl magic */
#define PEEK_LEN 12

#define INCOMING_SUFFIX CTL_INCOMING_SUFFIX
#define AWAY_SUFFIX	CTL_AWAY_SUFFIX

/*
 * Every wait on a migration connection (connect, TLS handshake, banner,
 * stream, ready) ends after mig->net_ms (--net-timeout) without a byte
 * moving; the banner and the go/report exchange after at most BANNER_MS
 * and GO_MS of it.
 */
#define BANNER_MS 10000
#define GO_MS 10000
#define QUERY_TOTAL_MS 30000 /* after go: ask the target for up to this long */
#define QUERY_CONNECT_MS 2000
#define QUERY_WAIT_S 20 /* target: wait for a receiver of NAME to settle */

struct mig_ev {
	struct ctl_call call;
	struct mig_job *job;
	char *line;
	size_t len;
};

struct fence_rec {
	struct fence_rec *next;
	uint32_t domid;
	char name[HYP_NAME_MAX]; /* its name before it was fenced */
	char host[256];
	bool insecure;
};

struct rcv_entry {
	struct rcv_entry *next;
	struct ctl_job *job;
	char name[HYP_NAME_MAX]; /* "" until the config is read */
};

struct ctl_mig {
	struct ctl_server *srv;
	struct strm_tls *tls;
	int net_ms; /* --net-timeout */
	int listen_fd;
	uv_poll_t poll;
	bool polling;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mig_job *jobs;
	struct fence_rec *fences;
	struct rcv_entry *rcvs;
	bool stopping;
};

enum job_kind { JOB_MIGRATE, JOB_QUERY };

struct mig_job {
	struct ctl_job job;
	struct mig_job *next;
	enum job_kind kind;
	long long id;
	bool has_id;
	struct ctl_server *srv;
	struct ctl_mig *mig;
	struct hyp *h;
	uint32_t domid;
	char name[HYP_NAME_MAX];
	char away[HYP_NAME_MAX];
	char host[256];
	bool insecure;
	struct mig_live_opts o;
	char what[HYP_NAME_MAX + 64]; /* job.what */
	/* outputs */
	int rc;
	char err[2048];
	struct mig_report rep;
	double downtime_ms;
	bool resolved_by_query;
	const char *outcome; /* "migrated", "resumed", "fenced" */
	bool fenced;	     /* left fenced: record it */
	bool claimed;	     /* holds the domain (HYP_OP_MIGRATE) */
	bool op_paused;	     /* holds it paused (mig_live_send's op pause) */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *io_strerror(int rc)
{
	if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -ETIMEDOUT)
		return "timed out: the peer is stalled";
	if (rc == -ENODATA)
		return "connection closed";
	if (rc == -ECANCELED)
		return "cancelled";
	return ferry_strerror(rc);
}

/* The progress timeout for a wait that may last up to limit_ms (0: none). */
static int net_ms(const struct ctl_mig *mig, int limit_ms)
{
	return limit_ms > 0 && limit_ms < mig->net_ms ? limit_ms : mig->net_ms;
}

/* ---- small wire helpers ------------------------------------------------- */

/*
 * Reads msg (len bytes, compared exactly). A peer that sends "ferry-error:
 * REASON\n" instead has its reason put in err. Returns 0, -EPROTO for
 * other bytes, or the io error.
 */
static int read_msg(struct strm_io *io, const char *msg, size_t len, const char *what,
		    char *err, size_t errlen)
{
	size_t elen = strlen(MSG_ERROR), got = 0;
	char buf[512];
	ssize_t n = 0;

	while (got < len) {
		n = strm_io_read(io, buf + got, len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memcmp(buf, msg, got))
			break;
	}
	if (got == len && !memcmp(buf, msg, len))
		return 0;
	if (got && !strncmp(buf, MSG_ERROR, got < elen ? got : elen)) {
		/* The peer's reason, up to its newline. */
		while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
			n = strm_io_read(io, buf + got, 1);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		buf[got] = 0;
		buf[strcspn(buf, "\n")] = 0;
		if (strlen(buf) > elen) {
			snprintf(err, errlen, "the target refused: %s", buf + elen);
			return -ECONNREFUSED;
		}
	}
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", what, io_strerror((int)n));
		return (int)n;
	}
	if (got < len && !n) {
		snprintf(err, errlen, "%s: connection closed", what);
		return -ECONNRESET;
	}
	snprintf(err, errlen, "%s: unexpected bytes from the peer", what);
	return -EPROTO;
}

static int write_msg(struct strm_io *io, const void *msg, size_t len)
{
	int rc = strm_io_write(io, msg, len);

	return rc ?: strm_io_flush(io);
}

/* ---- progress events (worker -> loop) ----------------------------------- */

/* Loop thread: one progress line to the job's client. */
static void send_line(struct ctl_call *c)
{
	struct mig_ev *e = container_of(c, struct mig_ev, call);
	struct ctl_client *cl = e->job->job.cl;

	if (!cl->closing && !cl->dead)
		ctl__send(cl, e->line, e->len);
	else
		free(e->line);
	free(e);
}

/* The job's completion follows the same queue, so its lines arrive first. */
static void push_line(struct mig_job *j, yajl_gen g)
{
	struct mig_ev *e;
	char *buf;
	size_t len;

	if (xlm_gen_finish(g, &buf, &len))
		return;
	e = calloc(1, sizeof(*e));
	if (!e) {
		free(buf);
		return;
	}
	e->job = j;
	e->line = buf;
	e->len = len;
	e->call.fn = send_line;
	if (ctl__loop_call(j->srv, &e->call)) {
		free(buf);
		free(e);
	}
}

static void on_progress(void *opaque, const struct mig_progress *p)
{
	struct mig_job *j = opaque;
	yajl_gen g = xlm_event_begin("migrate-progress");

	if (!g)
		return;
	if (xlm_gen_kv_str(g, "domain", j->name) ||
	    xlm_gen_kv_str(g, "phase", p->phase ? p->phase : "round") ||
	    xlm_gen_kv_int(g, "round", p->round) ||
	    xlm_gen_kv_int(g, "pages_left", (long long)p->pages_left) ||
	    xlm_gen_kv_double(g, "dirty_rate", p->dirty_rate) ||
	    xlm_gen_kv_double(g, "dirty_mib_s", p->dirty_rate * 4096 / (1 << 20)) ||
	    xlm_gen_kv_double(g, "bandwidth", p->bandwidth) ||
	    xlm_gen_kv_double(g, "bandwidth_mib_s", p->bandwidth / (1 << 20)) ||
	    xlm_gen_kv_double(g, "predicted_downtime_ms", p->predicted_downtime_ms) ||
	    xlm_gen_kv_int(g, "throttle_pct", p->throttle_pct) ||
	    xlm_gen_kv_int(g, "bytes_sent", (long long)p->bytes_sent)) {
		yajl_gen_free(g);
		return;
	}
	push_line(j, g);
}

/* A handshake step, for the client's progress line. */
static void phase_event(struct mig_job *j, const char *phase)
{
	yajl_gen g = xlm_event_begin("migrate-progress");

	if (!g)
		return;
	if (xlm_gen_kv_str(g, "domain", j->name) || xlm_gen_kv_str(g, "phase", phase)) {
		yajl_gen_free(g);
		return;
	}
	push_line(j, g);
}

/* ---- connecting (source side) ------------------------------------------- */

/*
 * Connects to the target, TLS unless insecure, reads the banner; every wait
 * ends after timeout_ms without progress or when the job is cancelled, and
 * the io keeps the job's token with that progress timeout.
 */
static int connect_target(struct mig_job *j, int timeout_ms, struct strm_io **out, char *err,
			  size_t errlen)
{
	struct strm_cancel *cancel = j->job.cancel;
	char host[256], why[1024] = "";
	struct strm_io *io = NULL;
	int fd = -1, rc;

	rc = strm_tcp_connect_cancel(j->host, timeout_ms, cancel, &fd, host, sizeof(host), why,
				     sizeof(why));
	if (rc) {
		snprintf(err, errlen, "cannot connect to %s: %s", j->host,
			 why[0] ? why : ferry_strerror(rc));
		return rc;
	}
	if (j->insecure) {
		rc = strm_io_fd(fd, true, &io);
		if (rc) {
			close(fd);
			snprintf(err, errlen, "out of memory");
			return rc;
		}
		rc = strm_io_set_cancel(io, cancel, timeout_ms);
		if (rc) {
			strm_io_close(io);
			snprintf(err, errlen, "%s: %s", j->host, ferry_strerror(rc));
			return rc;
		}
	} else {
		/* On failure the handshake has closed fd. */
		rc = strm_io_tls_client_cancel(j->mig->tls, fd, host, cancel, timeout_ms, &io, why,
					       sizeof(why));
		if (rc) {
			snprintf(err, errlen, "%s", why[0] ? why : ferry_strerror(rc));
			return rc;
		}
	}
	rc = strm_io_set_cancel(io, cancel, MIN(timeout_ms, BANNER_MS));
	if (!rc)
		rc = read_msg(io, MSG_BANNER, sizeof(MSG_BANNER) - 1,
			      "waiting for the target's banner", why, sizeof(why));
	if (!rc)
		rc = strm_io_set_cancel(io, cancel, timeout_ms);
	if (rc) {
		snprintf(err, errlen, "%s: %s%s", j->host, why[0] ? why : ferry_strerror(rc),
			 j->insecure && rc != -ECANCELED ? " (is the target listening with TLS? "
							   "--insecure must be given on both ends)" : "");
		strm_io_close(io);
		return rc;
	}
	*out = io;
	return 0;
}

static double left_ms(double t0, double total_ms)
{
	return total_ms - (now_s() - t0) * 1000;
}

/*
 * Asks the target whether it runs NAME: 1 running, 2 paused, 0 absent,
 * or -errno when it cannot be asked. Everything, connect and answer
 * included, fits in what is left of the query phase that began at t0.
 */
static int query_once(struct mig_job *j, double t0, char *err, size_t errlen)
{
	struct strm_io *io;
	char line[HYP_NAME_MAX + 32], buf[32];
	size_t got = 0;
	double left = left_ms(t0, QUERY_TOTAL_MS);
	int rc;

	if (left < 1)
		return -ETIMEDOUT;
	rc = connect_target(j, (int)MIN(left, QUERY_CONNECT_MS), &io, err, errlen);
	if (rc)
		return rc;
	snprintf(line, sizeof(line), "%s%s\n", MSG_QUERY, j->name);
	left = left_ms(t0, QUERY_TOTAL_MS);
	rc = left < 1 ? -ETIMEDOUT : strm_io_set_cancel(io, j->job.cancel, (int)left);
	if (!rc)
		rc = write_msg(io, line, strlen(line));
	while (!rc && got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
		ssize_t n;

		/* A trickle of bytes must not stretch the answer past the phase. */
		left = left_ms(t0, QUERY_TOTAL_MS);
		rc = left < 1 ? -ETIMEDOUT : strm_io_set_cancel(io, j->job.cancel, (int)left);
		if (rc)
			break;
		n = strm_io_read(io, buf + got, 1);
		if (n <= 0) {
			rc = n ? (int)n : -ECONNRESET;
			break;
		}
		got += (size_t)n;
	}
	strm_io_close(io);
	if (rc) {
		snprintf(err, errlen, "query to %s: %s", j->host, io_strerror(rc));
		return rc;
	}
	buf[got] = 0;
	if (!strcmp(buf, "running\n"))
		return 1;
	if (!strcmp(buf, "paused\n"))
		return 2;
	if (!strcmp(buf, "absent\n"))
		return 0;
	snprintf(err, errlen, "query to %s: unexpected answer", j->host);
	return -EPROTO;
}

/* ---- the source copy's fate --------------------------------------------- */

/* Renames back, lifts the fence, lets go of the job's pause. */
static int resume_source(struct mig_job *j)
{
	struct hyp *h = j->h;
	uint32_t domid = j->domid;
	const char *name = j->name;
	int rc = hyp_domain_rename(h, domid, name);

	if (rc)
		log_err("d%u: cannot rename back to '%s': %s", domid, name, ferry_strerror(rc));
	rc = hyp_domain_set_fenced(h, domid, false);
	if (!rc && j->op_paused) {
		rc = hyp_domain_op_unpause(h, domid);
		j->op_paused = rc != 0;
	}
	if (rc)
		log_err("d%u: cannot resume: %s", domid, ferry_strerror(rc));
	else
		log_info("d%u: '%s' runs here again", domid, name);
	return rc;
}

static bool mig_stopping(struct ctl_mig *mig)
{
	bool s;

	pthread_mutex_lock(&mig->lock);
	s = mig->stopping;
	pthread_mutex_unlock(&mig->lock);
	return s;
}

/*
 * After go, with the connection lost: asks the target every second for up
 * to QUERY_TOTAL_MS, the whole phase (each attempt's connect and answer fit
 * in what is left of it). Destroys or resumes the fenced source copy, or
 * leaves it fenced (j->fenced) when the target cannot be reached or ferryd
 * stops (the job's token: only SIGTERM fires it past go).
 */
static void resolve_by_query(struct mig_job *j, const char *why)
{
	char qerr[1024] = "";
	double t0 = now_s();
	int ans = -EHOSTUNREACH;

	log_warn("d%u: %s; asking %s whether it runs '%s'", j->domid, why, j->host, j->name);
	phase_event(j, "query");
	while (!ctl__job_cancelled(&j->job)) {
		double t = now_s(), pause;

		ans = query_once(j, t0, qerr, sizeof(qerr));
		if (ans >= 0 || left_ms(t0, QUERY_TOTAL_MS) < 1)
			break;
		pause = MIN(1.0 - (now_s() - t), left_ms(t0, QUERY_TOTAL_MS) / 1000);
		if (pause > 0 &&
		    strm_wait_fd(-1, 0, j->job.cancel, (int)(pause * 1000) + 1) == -ECANCELED)
			break;
	}
	if (ans < 0 && ctl__job_cancelled(&j->job))
		qerr[0] = 0;
	log_info("d%u: query phase ended after %.1f s", j->domid, now_s() - t0);
	if (ans > 0) {
		j->downtime_ms = (now_s() - j->rep.pause_at) * 1000;
		hyp_domain_destroy(j->h, j->domid);
		log_info("d%u: %s reports '%s' %s there; destroyed the copy here", j->domid,
			 j->host, j->name, ans == 1 ? "running" : "paused");
		j->resolved_by_query = true;
		j->outcome = "migrated";
		j->rc = 0;
		return;
	}
	if (ans == 0) {
		resume_source(j);
		j->outcome = "resumed";
		/* For migrate-resolve this is the answer it asked for. */
		j->rc = j->kind == JOB_QUERY ? 0 : -ECONNRESET;
		snprintf(j->err, sizeof(j->err),
			 "migration of '%s' to %s failed (%s); the target does not have it, so "
			 "it runs here again", j->name, j->host, why);
		return;
	}
	j->fenced = true;
	j->outcome = "fenced";
	j->rc = -EHOSTUNREACH;
	snprintf(j->err, sizeof(j->err),
		 "migration of '%s' to %s: %s, and the target cannot be asked (%s); the domain "
		 "stays paused and fenced here as '%s' (it may be running on %s): run "
		 "'xl migrate-resolve %s' (or --resume / --destroy once you know)",
		 j->name, j->host, why, qerr[0] ? qerr : "ferryd is stopping", j->away, j->host,
		 j->away);
	log_err("%s", j->err);
}

/* ---- the migrate job (its own thread) ----------------------------------- */

static void do_migrate_job(struct mig_job *j)
{
	struct hyp_dom_config cfg;
	struct strm_io *io = NULL;
	char why[1024] = "", *json = NULL;
	uint8_t status = 0xff;
	int rc;

	rc = connect_target(j, j->mig->net_ms, &io, j->err, sizeof(j->err));
	if (rc == -ECANCELED) {
		j->rc = rc;
		snprintf(j->err, sizeof(j->err), "migration of '%s' to %s cancelled while "
			 "connecting; it keeps running here", j->name, j->host);
		log_err("d%u: %s", j->domid, j->err);
		return;
	}
	if (rc) {
		j->rc = rc;
		log_err("d%u: migration to %s: %s", j->domid, j->host, j->err);
		return;
	}
	if (ctl__job_cancelled(&j->job)) {
		strm_io_close(io);
		j->rc = -ECANCELED;
		snprintf(j->err, sizeof(j->err), "migration of '%s' cancelled; it keeps running",
			 j->name);
		return;
	}
	rc = hyp_domain_config(j->h, j->domid, &cfg) ?: xlm_cfg_to_json(&cfg, &json);
	if (rc) {
		strm_io_close(io);
		j->rc = rc;
		snprintf(j->err, sizeof(j->err), "domain '%s': cannot encode its config: %s",
			 j->name, ferry_strerror(rc));
		return;
	}
	j->o.config_json = json;
	j->o.xenstore = (struct mig_xenstore){ ctl__xs_stream_read, j->mig->srv };
	j->o.cancel = &j->job.cancelled;
	j->o.progress = on_progress;
	j->o.opaque = j;
	log_info("d%u: migrating '%s' to %s%s", j->domid, j->name, j->host,
		 j->insecure ? " (plain TCP)" : " (TLS)");
	rc = mig_live_send(j->h, j->domid, io, &j->o, &j->rep, why, sizeof(why));
	free(json);
	j->o.config_json = NULL;
	if (rc) {
		/* The domain runs again. The target may have said why it stopped. */
		const char *ioerr = strm_io_error(io);
		bool stalled = rc == -ETIMEDOUT && ioerr && strstr(ioerr, "no progress");
		char terr[600] = "";

		/* A refusing target says why and closes: its reason waits in
		 * our socket buffer behind the write's EPIPE or reset. (Not
		 * after a stall: a frozen target would be waited for again.) */
		if (rc == -EPIPE || rc == -ECONNRESET)
			strm_io_keep_reading(io);
		if (rc != -ECANCELED && !stalled) {
			strm_io_set_cancel(io, j->job.cancel, 1000);
			if (read_msg(io, MSG_READY, sizeof(MSG_READY), "", terr, sizeof(terr)) !=
			    -ECONNREFUSED)
				terr[0] = 0;
		}
		strm_io_close(io);
		j->rc = rc;
		if (rc == -ECANCELED)
			snprintf(j->err, sizeof(j->err), "migration of '%s' to %s cancelled; it "
				 "keeps running here", j->name, j->host);
		else if (terr[0])
			snprintf(j->err, sizeof(j->err),
				 "migration of '%s' to %s failed: %s; it "
				 "keeps running here",
				 j->name, j->host, terr);
		else if (stalled)
			snprintf(j->err, sizeof(j->err), "migration of '%s' to %s failed: the "
				 "target stalled (no progress for %d s, --net-timeout): %s; it "
				 "keeps running here", j->name, j->host, j->mig->net_ms / 1000,
				 why[0] ? why : ferry_strerror(rc));
		else if (rc == -EPIPE || rc == -ECONNRESET)
			/* The target went without a word (it crashed, or was killed). */
			snprintf(j->err, sizeof(j->err),
				 "migration of '%s' to %s failed: %s; the "
				 "target closed the connection (see its log); it keeps running "
				 "here",
				 j->name, j->host, why[0] ? why : ferry_strerror(rc));
		else
			snprintf(j->err, sizeof(j->err),
				 "migration of '%s' to %s failed: %s; it "
				 "keeps running here",
				 j->name, j->host, why[0] ? why : ferry_strerror(rc));
		log_err("d%u: %s", j->domid, j->err);
		return;
	}
	/* Stream complete; the domain is paused, by this operation. */
	j->op_paused = true;
	phase_event(j, "handshake");
	rc = read_msg(io, MSG_READY, sizeof(MSG_READY), "waiting for the target to confirm",
		      why, sizeof(why));
	if (!rc && ctl__job_no_return(&j->job)) {
		rc = -ECANCELED;
		snprintf(why, sizeof(why), "cancelled before the switchover");
	}
	pthread_mutex_lock(&j->mig->lock);
	if (!rc) {
		snprintf(j->away, sizeof(j->away), "%.*s%s",
			 (int)(HYP_NAME_MAX - 1 - strlen(AWAY_SUFFIX)), j->name, AWAY_SUFFIX);
		rc = hyp_domain_rename(j->h, j->domid, j->away);
		if (rc)
			snprintf(why, sizeof(why), "cannot rename the domain to '%s': %s",
				 j->away, ferry_strerror(rc));
	}
	if (!rc)
		rc = hyp_domain_set_fenced(j->h, j->domid, true);
	pthread_mutex_unlock(&j->mig->lock);
	if (rc) {
		/* Before go: the target drops NAME--incoming when we hang up. */
		strm_io_close(io);
		hyp_domain_set_fenced(j->h, j->domid, false);
		hyp_domain_rename(j->h, j->domid, j->name);
		if (!hyp_domain_op_unpause(j->h, j->domid))
			j->op_paused = false;
		j->rc = rc;
		snprintf(j->err, sizeof(j->err), "migration of '%s' to %s %s: %s; it runs here "
			 "again", j->name, j->host, rc == -ECANCELED ? "cancelled" : "failed", why);
		log_err("d%u: %s", j->domid, j->err);
		return;
	}
	/* The point of no return. */
	phase_event(j, "go");
	strm_io_set_cancel(io, j->job.cancel, net_ms(j->mig, GO_MS));
	rc = write_msg(io, MSG_GO, sizeof(MSG_GO));
	if (rc)
		snprintf(why, sizeof(why), "sending go: %s", io_strerror(rc));
	else
		rc = read_msg(io, MSG_REPORT, sizeof(MSG_REPORT), "waiting for the target's report",
			      why, sizeof(why));
	if (!rc) {
		rc = strm_io_read_full(io, &status, 1);
		if (rc)
			snprintf(why, sizeof(why), "reading the target's status: %s",
				 io_strerror(rc));
	}
	if (rc) {
		strm_io_close(io);
		resolve_by_query(j, why);
		return;
	}
	if (status == 0) {
		j->downtime_ms = (now_s() - j->rep.pause_at) * 1000;
		strm_io_close(io);
		hyp_domain_destroy(j->h, j->domid);
		j->outcome = "migrated";
		log_info("d%u: '%s' runs on %s now; destroyed here (downtime %.0f ms, %" PRIu64
			 " bytes, %u rounds)", j->domid, j->name, j->host, j->downtime_ms,
			 j->rep.bytes_sent, j->rep.rounds);
		return;
	}
	/* The target could not start it and destroyed its copy; as Xen, it
	 * hands the domain back with the go message. */
	rc = read_msg(io, MSG_GO, sizeof(MSG_GO), "waiting for the domain back", why,
		      sizeof(why));
	strm_io_close(io);
	if (rc) {
		resolve_by_query(j, why);
		return;
	}
	resume_source(j);
	j->rc = -FERRY_EPROTO;
	j->outcome = "resumed";
	snprintf(j->err, sizeof(j->err), "migration of '%s': the target could not start it "
		 "(status %u, see its log); it runs here again", j->name, status);
	log_err("d%u: %s", j->domid, j->err);
}

/* Log-dirty stays on through the handshake (see keep_logdirty) and goes
 * off here, whatever became of the domain. */
static void do_migrate(struct ctl_job *job)
{
	struct mig_job *j = container_of(job, struct mig_job, job);
	struct hyp_domain *hold = NULL;
	struct ld *ld = NULL;

	/* A reference keeps the domain's VM and memory alive until logging
	 * is off, even after the job destroyed the source copy. */
	if (hyp_domain_get(j->h, j->domid, &hold))
		hold = NULL;
	j->o.keep_logdirty = &ld;
	do_migrate_job(j);
	/* Left fenced (or destroyed): the fence holds it paused now. */
	if (j->op_paused)
		hyp_domain_op_unpause(j->h, j->domid);
	if (ld)
		ld_disable(ld);
	if (hold)
		hyp_domain_put(hold);
	/* Give the thread's malloc arena back: a daemon that migrates all
	 * day must not keep every worker's high-water mark. */
	malloc_trim(0);
}

static void do_query(struct ctl_job *job)
{
	struct mig_job *j = container_of(job, struct mig_job, job);

	/* Bounded by the query phase; only SIGTERM cuts it short. */
	ctl__job_no_return(job);
	resolve_by_query(j, "migrate-resolve");
}

static void fence_put(struct ctl_mig *mig, struct fence_rec *f)
{
	pthread_mutex_lock(&mig->lock);
	f->next = mig->fences;
	mig->fences = f;
	pthread_mutex_unlock(&mig->lock);
}

static void fence_record(struct ctl_mig *mig, const struct mig_job *j)
{
	struct fence_rec *f = calloc(1, sizeof(*f));

	if (!f)
		return;
	f->domid = j->domid;
	snprintf(f->name, sizeof(f->name), "%s", j->name);
	snprintf(f->host, sizeof(f->host), "%s", j->host);
	f->insecure = j->insecure;
	fence_put(mig, f);
}

/* Removes and returns the record of domid (caller frees), or NULL. */
static struct fence_rec *fence_take(struct ctl_mig *mig, uint32_t domid)
{
	struct fence_rec **pp, *f = NULL;

	pthread_mutex_lock(&mig->lock);
	for (pp = &mig->fences; *pp; pp = &(*pp)->next) {
		if ((*pp)->domid == domid) {
			f = *pp;
			*pp = f->next;
			break;
		}
	}
	pthread_mutex_unlock(&mig->lock);
	return f;
}

static int gen_report(yajl_gen g, const struct mig_job *j)
{
	int rc = xlm_gen_map_open(g) ?:
		 xlm_gen_kv_int(g, "domid", j->domid) ?:
		 xlm_gen_kv_str(g, "domain", j->name) ?:
		 xlm_gen_kv_str(g, "host", j->host) ?:
		 xlm_gen_kv_str(g, "outcome", j->outcome ? j->outcome : "migrated") ?:
		 xlm_gen_kv_bool(g, "resolved_by_query", j->resolved_by_query);

	if (rc || j->kind != JOB_MIGRATE)
		return rc ?: xlm_gen_map_close(g);
	rc = xlm_gen_kv_double(g, "total_s", j->rep.total_s) ?:
	     xlm_gen_kv_double(g, "downtime_ms", j->downtime_ms) ?:
	     xlm_gen_kv_double(g, "predicted_downtime_ms", j->rep.predicted_downtime_ms) ?:
	     xlm_gen_kv_int(g, "bytes_sent", (long long)j->rep.bytes_sent) ?:
	     xlm_gen_kv_int(g, "rounds", j->rep.rounds) ?:
	     xlm_gen_str(g, "pages_per_round") ?: xlm_gen_array_open(g);
	/* Live rounds 0..rounds-1, then stop-and-copy. */
	for (unsigned i = 0; !rc && i <= j->rep.rounds && i <= MIG_MAX_ROUNDS_LIMIT; i++)
		rc = yajl_gen_integer(g, (long long)j->rep.pages_per_round[i]) ? -EINVAL : 0;
	return rc ?: xlm_gen_array_close(g) ?:
	       xlm_gen_kv_int(g, "throttle_pct", j->rep.throttle_pct) ?:
	       xlm_gen_kv_int(g, "zero_pages", (long long)j->rep.zero_pages) ?:
	       xlm_gen_map_close(g);
}

static void job_unlink(struct mig_job *j)
{
	struct mig_job **pp;

	pthread_mutex_lock(&j->mig->lock);
	for (pp = &j->mig->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	pthread_mutex_unlock(&j->mig->lock);
}

/* Loop thread; the job's progress lines went out before (ctl__loop_call). */
static void job_done(struct ctl_job *job)
{
	struct mig_job *j = container_of(job, struct mig_job, job);
	struct ctl_client *cl = j->job.cl;
	yajl_gen g;
	char *buf;
	size_t len;

	if (j->claimed)
		hyp_domain_release(j->h, j->domid, HYP_OP_MIGRATE); /* -ENOENT: migrated */
	job_unlink(j);
	if (j->fenced)
		fence_record(j->mig, j);
	if (cl->closing || cl->dead)
		goto out;
	if (j->rc) {
		ctl__reply_error(cl, j->id, j->has_id, j->rc, "%s", j->err);
		goto out;
	}
	g = xlm_reply_begin(j->id, j->has_id);
	if (!g)
		goto out;
	if (!gen_report(g, j) && !xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
	else
		yajl_gen_free(g);
out:
	free(j);
}

static struct mig_job *job_new(struct ctl_client *cl, const struct xlm_req *req,
			       enum job_kind kind)
{
	struct mig_job *j = calloc(1, sizeof(*j));

	if (!j) {
		ctl__reply_error(cl, req->id, req->has_id, -ENOMEM, "out of memory");
		return NULL;
	}
	j->kind = kind;
	j->job.cl = cl;
	j->job.what = j->what;
	j->job.done = job_done;
	j->id = req->id;
	j->has_id = req->has_id;
	j->srv = cl->srv;
	j->mig = cl->srv->mig;
	j->h = cl->srv->hyp;
	return j;
}

/* Loop thread. On failure replies, frees j and returns -errno. */
static int job_start(struct mig_job *j, const struct xlm_req *req, void (*fn)(struct ctl_job *job))
{
	int rc;

	snprintf(j->what, sizeof(j->what), "%s of '%s'",
		 j->kind == JOB_MIGRATE ? "migration" : "migrate-resolve", j->name);
	j->job.run = fn;
	pthread_mutex_lock(&j->mig->lock);
	j->next = j->mig->jobs;
	j->mig->jobs = j;
	pthread_mutex_unlock(&j->mig->lock);
	rc = ctl__job_start(j->srv, &j->job);
	if (rc) {
		job_unlink(j);
		ctl__reply_error(j->job.cl, req->id, req->has_id, rc, "cannot start the %s: %s",
				 j->what, ferry_strerror(rc));
		if (j->claimed)
			hyp_domain_release(j->h, j->domid, HYP_OP_MIGRATE);
		free(j);
	}
	return rc;
}

/* Under mig->lock. */
static struct mig_job *job_find_locked(struct ctl_mig *mig, uint32_t domid)
{
	for (struct mig_job *j = mig->jobs; j; j = j->next)
		if (j->domid == domid)
			return j;
	return NULL;
}

/* ---- ops ---------------------------------------------------------------- */

#define REPLY_ERR(cl, req, err, ...) \
	ctl__reply_error(cl, (req)->id, (req)->has_id, err, __VA_ARGS__)

static bool args_int(const struct xlm_req *req, const char *key, long long *out)
{
	yajl_val v;

	if (!req->args)
		return false;
	v = yajl_tree_get(req->args, (const char *[]){ key, NULL }, yajl_t_number);
	if (!v || !YAJL_IS_INTEGER(v))
		return false;
	*out = YAJL_GET_INTEGER(v);
	return true;
}

/* Parses the tuning args into j->o; replies and returns -EINVAL if bad. */
static int migrate_opts(struct ctl_client *cl, const struct xlm_req *req, struct mig_job *j)
{
	const char *nc = xlm_args_str(req, "no_converge"), *comp = xlm_args_str(req, "compress");
	long long v;

	j->o.downtime_ms = 300;
	j->o.max_rounds = 30;
	j->o.no_converge = MIG_NC_THROTTLE;
	if (args_int(req, "downtime_ms", &v)) {
		if (v < 1 || v > 600000) {
			REPLY_ERR(cl, req, -EINVAL, "downtime_ms: expected 1 to 600000");
			return -EINVAL;
		}
		j->o.downtime_ms = (uint32_t)v;
	}
	if (args_int(req, "max_rounds", &v)) {
		if (v < 1 || v > MIG_MAX_ROUNDS_LIMIT) {
			REPLY_ERR(cl, req, -EINVAL, "max_rounds: expected 1 to %d",
				  MIG_MAX_ROUNDS_LIMIT);
			return -EINVAL;
		}
		j->o.max_rounds = (unsigned)v;
	}
	if (args_int(req, "bandwidth", &v)) {
		if (v < 0) {
			REPLY_ERR(cl, req, -EINVAL, "bandwidth: expected bytes/s >= 0");
			return -EINVAL;
		}
		j->o.bandwidth = (uint64_t)v;
	}
	if (nc) {
		if (!strcmp(nc, "throttle")) {
			j->o.no_converge = MIG_NC_THROTTLE;
		} else if (!strcmp(nc, "abort")) {
			j->o.no_converge = MIG_NC_ABORT;
		} else if (!strcmp(nc, "force")) {
			j->o.no_converge = MIG_NC_FORCE;
		} else {
			REPLY_ERR(cl, req, -EINVAL, "no_converge: expected throttle, abort or "
				  "force, not '%s'", nc);
			return -EINVAL;
		}
	}
	if (comp && !strcmp(comp, "auto")) {
		j->o.codec = STRM_CODEC_LZ4;
		j->o.codec_auto = true;
	} else if (comp && strm_codec_parse(comp, &j->o.codec)) {
		REPLY_ERR(cl, req, -EINVAL, "compress: expected none, lz4, zstd or auto, not '%s'",
			  comp);
		return -EINVAL;
	}
	return 0;
}

void ctl__op_migrate(struct ctl_client *cl, const struct xlm_req *req)
{
	struct ctl_mig *mig = cl->srv->mig;
	const char *dom = xlm_args_str(req, "domain"), *host = xlm_args_str(req, "host");
	char what[HYP_OP_DETAIL_MAX];
	struct hyp_dom_info info;
	struct mig_job *j;

	if (!dom || !host || !*host) {
		REPLY_ERR(cl, req, -EINVAL, "migrate: expected \"domain\" and \"host\"");
		return;
	}
	j = job_new(cl, req, JOB_MIGRATE);
	if (!j)
		return;
	if (hyp_domain_lookup(j->h, dom, &j->domid) || hyp_domain_info(j->h, j->domid, &info)) {
		REPLY_ERR(cl, req, -ENOENT, "domain '%s' does not exist", dom);
		goto fail;
	}
	if (ctl__domain_check(cl, req, j->domid, "migrate"))
		goto fail;
	if (info.state != HYP_DOM_RUNNING && info.state != HYP_DOM_BLOCKED) {
		REPLY_ERR(cl, req, -EINVAL, "domain '%s' is %s; only a running domain migrates",
			  info.name, hyp_state_name(info.state));
		goto fail;
	}
	snprintf(j->name, sizeof(j->name), "%s", info.name);
	snprintf(j->host, sizeof(j->host), "%s", host);
	j->insecure = xlm_args_bool(req, "insecure") || cl->srv->opts->insecure;
	if (!j->insecure && !mig->tls) {
		REPLY_ERR(cl, req, -EINVAL, "ferryd has no TLS certificate (start it with "
			  "--tls-dir), or migrate with --insecure on both ends");
		goto fail;
	}
	if (migrate_opts(cl, req, j))
		goto fail;
	/* Holds it for the whole migration. */
	snprintf(what, sizeof(what), "being migrated to %.200s", j->host);
	if (ctl__domain_claim(cl, req, j->domid, "migrate", HYP_OP_MIGRATE, what))
		goto fail;
	j->claimed = true;
	job_start(j, req, do_migrate);
	return;
fail:
	free(j);
}

void ctl__op_migrate_cancel(struct ctl_client *cl, const struct xlm_req *req)
{
	struct ctl_mig *mig = cl->srv->mig;
	const char *dom = xlm_args_str(req, "domain");
	char away[HYP_NAME_MAX + 32];
	struct mig_job *j;
	uint32_t domid;
	yajl_gen g;
	char *buf;
	size_t len;
	int rc = 0;

	if (!dom) {
		REPLY_ERR(cl, req, -EINVAL, "migrate-cancel: expected \"domain\"");
		return;
	}
	/* After go the source copy is renamed NAME--migratedaway. */
	snprintf(away, sizeof(away), "%s%s", dom, AWAY_SUFFIX);
	if (hyp_domain_lookup(cl->srv->hyp, dom, &domid) &&
	    hyp_domain_lookup(cl->srv->hyp, away, &domid)) {
		REPLY_ERR(cl, req, -ENOENT, "domain '%s' does not exist", dom);
		return;
	}
	pthread_mutex_lock(&mig->lock);
	j = job_find_locked(mig, domid);
	if (!j || j->kind != JOB_MIGRATE)
		rc = -ENOENT;
	else /* a blocked read or write of the job ends at once */
		rc = ctl__job_cancel(&j->job);
	pthread_mutex_unlock(&mig->lock);
	if (rc == -ENOENT) {
		REPLY_ERR(cl, req, rc, "no migration of '%s' is running", dom);
		return;
	}
	if (rc) {
		REPLY_ERR(cl, req, rc, "too late to cancel the migration of '%s': the "
			  "switchover has begun (go was sent)", dom);
		return;
	}
	log_info("d%u: migration cancel requested", domid);
	g = xlm_reply_begin(req->id, req->has_id);
	if (!g)
		return;
	if (!(xlm_gen_map_open(g) ?: xlm_gen_kv_int(g, "domid", domid) ?:
	      xlm_gen_kv_bool(g, "cancelled", true) ?: xlm_gen_map_close(g)) &&
	    !xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
	else
		yajl_gen_free(g);
}

static void reply_resolved(struct ctl_client *cl, const struct xlm_req *req, uint32_t domid,
			   const char *outcome)
{
	yajl_gen g = xlm_reply_begin(req->id, req->has_id);
	char *buf;
	size_t len;

	if (!g)
		return;
	if (!(xlm_gen_map_open(g) ?: xlm_gen_kv_int(g, "domid", domid) ?:
	      xlm_gen_kv_str(g, "outcome", outcome) ?: xlm_gen_map_close(g)) &&
	    !xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
	else
		yajl_gen_free(g);
}

void ctl__op_migrate_resolve(struct ctl_client *cl, const struct xlm_req *req)
{
	struct ctl_mig *mig = cl->srv->mig;
	struct hyp *h = cl->srv->hyp;
	const char *dom = xlm_args_str(req, "domain"), *action = xlm_args_str(req, "action");
	char away[HYP_NAME_MAX + 32], name[HYP_NAME_MAX];
	struct hyp_dom_info info;
	struct fence_rec *f;
	struct mig_job *j;
	uint32_t domid;
	size_t n, sl = strlen(AWAY_SUFFIX);
	bool busy;
	int rc;

	if (!action)
		action = "query";
	if (!dom || (strcmp(action, "query") && strcmp(action, "resume") &&
		     strcmp(action, "destroy"))) {
		REPLY_ERR(cl, req, -EINVAL, "migrate-resolve: expected \"domain\" and \"action\" "
			  "query, resume or destroy");
		return;
	}
	snprintf(away, sizeof(away), "%s%s", dom, AWAY_SUFFIX);
	if ((hyp_domain_lookup(h, dom, &domid) && hyp_domain_lookup(h, away, &domid)) ||
	    hyp_domain_info(h, domid, &info)) {
		REPLY_ERR(cl, req, -ENOENT, "domain '%s' does not exist", dom);
		return;
	}
	if (!info.fenced) {
		REPLY_ERR(cl, req, -EINVAL, "domain '%s' is not fenced: nothing to resolve",
			  info.name);
		return;
	}
	pthread_mutex_lock(&mig->lock);
	busy = job_find_locked(mig, domid) != NULL;
	pthread_mutex_unlock(&mig->lock);
	if (busy) {
		REPLY_ERR(cl, req, -EBUSY, "domain '%s': its migration is still resolving",
			  info.name);
		return;
	}
	n = strlen(info.name);
	snprintf(name, sizeof(name), "%.*s",
		 (int)(n > sl && !strcmp(info.name + n - sl, AWAY_SUFFIX) ? n - sl : n), info.name);
	if (!strcmp(action, "destroy")) {
		rc = hyp_domain_destroy(h, domid);
		if (rc) {
			REPLY_ERR(cl, req, rc, "cannot destroy '%s': %s", info.name,
				  ferry_strerror(rc));
			return;
		}
		free(fence_take(mig, domid));
		log_info("d%u: fenced '%s' destroyed by the operator", domid, info.name);
		reply_resolved(cl, req, domid, "destroyed");
		return;
	}
	if (!strcmp(action, "resume")) {
		rc = hyp_domain_rename(h, domid, name);
		if (rc) {
			REPLY_ERR(cl, req, rc, "cannot rename '%s' back to '%s': %s; it stays "
				  "fenced", info.name, name, ferry_strerror(rc));
			return;
		}
		free(fence_take(mig, domid));
		/* Nothing else holds it paused: lifting the fence runs it. */
		rc = hyp_domain_set_fenced(h, domid, false);
		if (rc) {
			REPLY_ERR(cl, req, rc, "cannot unpause '%s': %s", name, ferry_strerror(rc));
			return;
		}
		log_info("d%u: fenced '%s' resumed as '%s' by the operator", domid, info.name,
			 name);
		reply_resolved(cl, req, domid, "resumed");
		return;
	}
	/* query: the automatic resolution once more, as a job */
	f = fence_take(mig, domid);
	if (!f) {
		REPLY_ERR(cl, req, -ENOENT, "no record of where '%s' went; decide with --resume "
			  "or --destroy", info.name);
		return;
	}
	if (!f->insecure && !mig->tls) {
		fence_put(mig, f);
		REPLY_ERR(cl, req, -EINVAL, "ferryd has no TLS certificate to ask the target with");
		return;
	}
	j = job_new(cl, req, JOB_QUERY);
	if (!j) {
		fence_put(mig, f);
		return;
	}
	j->domid = domid;
	snprintf(j->name, sizeof(j->name), "%s", f->name);
	snprintf(j->away, sizeof(j->away), "%s", info.name);
	snprintf(j->host, sizeof(j->host), "%s", f->host);
	j->insecure = f->insecure;
	j->rep.pause_at = now_s();
	if (job_start(j, req, do_query))
		fence_put(mig, f); /* it stays as it was */
	else
		free(f);
}

/* ---- target side: the receiver threads ---------------------------------- */

struct rcv {
	struct ctl_job job;
	struct ctl_mig *mig;
	struct hyp *h;
	int fd;
	struct rcv_entry ent; /* in mig->rcvs while the thread runs */
	char peer[INET6_ADDRSTRLEN + 8];
	char who[320]; /* peer and certificate name, for messages */
	char name[HYP_NAME_MAX];
	char what[INET6_ADDRSTRLEN + 32]; /* job.what */
};

/* Under mig->lock: another receiver working on name. */
static bool rcv_busy_locked(struct ctl_mig *mig, const struct rcv *self, const char *name)
{
	for (struct rcv_entry *e = mig->rcvs; e; e = e->next)
		if (e != &self->ent && !strcmp(e->name, name))
			return true;
	return false;
}

static int rcv_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
		      size_t errlen)
{
	struct rcv *r = opaque;
	uint32_t domid;
	bool busy;
	int rc = xlm_cfg_from_json_text(json, cfg, err, errlen);

	if (rc)
		return rc;
	if (strlen(cfg->name) + strlen(INCOMING_SUFFIX) >= HYP_NAME_MAX) {
		snprintf(err, errlen, "domain name '%s' is too long to receive as NAME%s",
			 cfg->name, INCOMING_SUFFIX);
		return -ENAMETOOLONG;
	}
	pthread_mutex_lock(&r->mig->lock);
	busy = rcv_busy_locked(r->mig, r, cfg->name);
	if (!busy)
		snprintf(r->ent.name, sizeof(r->ent.name), "%s", cfg->name);
	pthread_mutex_unlock(&r->mig->lock);
	if (busy) {
		snprintf(err, errlen, "domain '%s' is being received already", cfg->name);
		return -EBUSY;
	}
	if (!hyp_domain_lookup(r->h, cfg->name, &domid)) {
		snprintf(err, errlen, "domain '%s' already exists here (d%u)", cfg->name, domid);
		return -EEXIST;
	}
	snprintf(r->name, sizeof(r->name), "%s", cfg->name);
	snprintf(cfg->name + strlen(cfg->name), sizeof(cfg->name) - strlen(cfg->name), "%s",
		 INCOMING_SUFFIX);
	return 0;
}

static void rcv_send_error(struct strm_io *io, const char *why)
{
	char line[600];

	snprintf(line, sizeof(line), "%s%s", MSG_ERROR, why);
	for (char *p = line; *p; p++)
		if (*p == '\n')
			*p = ' ';
	strcat(line, "\n");
	write_msg(io, line, strlen(line));
}

static void rcv_stream(struct rcv *r, struct strm_io *io, const char *prefix)
{
	struct rst_opts o = { .paused = true, .config = rcv_config, .opaque = r,
			      .xenstore = ctl__xs_stream_write,
			      .xenstore_opaque = r->mig->srv };
	struct rst_stats st = { 0 };
	struct strm_io *pio;
	char err[512] = "", why[600] = "";
	uint8_t report[sizeof(MSG_REPORT) + 1];
	uint32_t domid;
	int rc;

	rc = strm_io_prefix(io, prefix, PEEK_LEN, &pio);
	if (rc)
		return;
	rc = rst_restore_domain(r->h, pio, &o, &domid, &st, err, sizeof(err));
	strm_io_close(pio);
	if (rc) {
		log_err("migration from %s: cannot receive%s%s: %s", r->who, r->name[0] ? " " : "",
			r->name, err[0] ? err : ferry_strerror(rc));
		if (rc == -ECANCELED)
			return;
		strm_io_set_cancel(io, r->job.cancel, 1000);
		rcv_send_error(io, err[0] ? err : ferry_strerror(rc));
		return;
	}
	log_info("d%u: received '%s' from %s (%" PRIu64 " pages, %" PRIu64 " bytes in %.3f s); "
		 "waiting for go", domid, r->name, r->who, st.pages, st.bytes, st.seconds);
	/* Until it runs here: as NAME--incoming no verb touches it, and once
	 * renamed the claim keeps them off until the unpause. */
	snprintf(err, sizeof(err), "being received from %s", r->who);
	hyp_domain_claim(r->h, domid, HYP_OP_MIGRATE, err, NULL);
	strm_io_set_cancel(io, r->job.cancel, net_ms(r->mig, GO_MS));
	rc = write_msg(io, MSG_READY, sizeof(MSG_READY));
	if (rc)
		snprintf(why, sizeof(why), "sending ready: %s", io_strerror(rc));
	else
		rc = read_msg(io, MSG_GO, sizeof(MSG_GO), "waiting for go", why, sizeof(why));
	if (rc) {
		hyp_domain_destroy(r->h, domid);
		log_err("d%u: migration of '%s' from %s: %s; destroyed %s%s", domid, r->name,
			r->who, why, r->name, INCOMING_SUFFIX);
		return;
	}
	/* Past the point of no return: the domain is ours. */
	rc = hyp_domain_rename(r->h, domid, r->name);
	if (!rc)
		rc = hyp_domain_unpause(r->h, domid);
	hyp_domain_release(r->h, domid, HYP_OP_MIGRATE);
	memcpy(report, MSG_REPORT, sizeof(MSG_REPORT));
	report[sizeof(MSG_REPORT)] = rc ? (uint8_t)(-rc > 0 && -rc < 256 ? -rc : 1) : 0;
	if (!rc) {
		struct hyp_dom_config cfg;

		if (!hyp_domain_config(r->h, domid, &cfg))
			ctl__record_write(r->mig->srv, domid, &cfg);
		ctl__xs_domain_add(r->mig->srv, domid);
		log_info("d%u: '%s' migrated in from %s and running", domid, r->name, r->who);
		if (write_msg(io, report, sizeof(report)))
			log_warn("d%u: could not send the report to %s; it will ask", domid,
				 r->who);
		return;
	}
	log_err("d%u: cannot start '%s' after go: %s; destroying it and handing it back",
		domid, r->name, ferry_strerror(rc));
	hyp_domain_destroy(r->h, domid);
	if (!write_msg(io, report, sizeof(report)))
		write_msg(io, MSG_GO, sizeof(MSG_GO));
}

/* "ferry-query " was read; the rest of the line is NAME. */
static void rcv_query(struct rcv *r, struct strm_io *io)
{
	char name[HYP_NAME_MAX + 1];
	const char *answer = "absent\n";
	struct hyp_dom_info info;
	struct timespec deadline;
	size_t got = 0;
	uint32_t domid;

	while (got < sizeof(name) - 1) {
		ssize_t n = strm_io_read(io, name + got, 1);

		if (n <= 0)
			return;
		if (name[got] == '\n')
			break;
		got++;
	}
	name[got] = 0;
	if (got == sizeof(name) - 1 || !got)
		return;
	/* A receiver of NAME still deciding: wait until it has. */
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += QUERY_WAIT_S;
	pthread_mutex_lock(&r->mig->lock);
	while (rcv_busy_locked(r->mig, r, name) && !r->mig->stopping &&
	       !ctl__job_cancelled(&r->job) &&
	       pthread_cond_timedwait(&r->mig->cond, &r->mig->lock, &deadline) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&r->mig->lock);
	if (!hyp_domain_lookup(r->h, name, &domid) && !hyp_domain_info(r->h, domid, &info))
		answer = info.state == HYP_DOM_PAUSED ? "paused\n" : "running\n";
	log_info("migration query from %s: '%s' is %.*s", r->who, name,
		 (int)strlen(answer) - 1, answer);
	write_msg(io, answer, strlen(answer));
}

static void rcv_unregister(struct rcv *r)
{
	struct rcv_entry **pp;

	pthread_mutex_lock(&r->mig->lock);
	for (pp = &r->mig->rcvs; *pp; pp = &(*pp)->next) {
		if (*pp == &r->ent) {
			*pp = r->ent.next;
			break;
		}
	}
	pthread_cond_broadcast(&r->mig->cond);
	pthread_mutex_unlock(&r->mig->lock);
}

static void rcv_serve(struct rcv *r)
{
	struct ctl_job *job = &r->job;
	struct ctl_mig *mig = r->mig;
	struct strm_io *io = NULL;
	char peer[256] = "", err[1024] = "", first[PEEK_LEN];
	int fd = r->fd, rc;

	if (mig->tls) {
		rc = strm_io_tls_server_cancel(mig->tls, fd, job->cancel, mig->net_ms, &io, peer,
					       sizeof(peer), err, sizeof(err));
		if (rc) {
			/* The handshake closed fd. */
			log_warn("migration: refused a connection from %s: %s", r->peer,
				 err[0] ? err : ferry_strerror(rc));
			return;
		}
		snprintf(r->who, sizeof(r->who), "%s (%s)", r->peer, peer);
	} else {
		rc = strm_io_fd(fd, true, &io);
		if (rc) {
			close(fd);
			return;
		}
		rc = strm_io_set_cancel(io, job->cancel, mig->net_ms);
		if (rc) {
			strm_io_close(io);
			return;
		}
		snprintf(r->who, sizeof(r->who), "%s", r->peer);
	}
	rc = write_msg(io, MSG_BANNER, sizeof(MSG_BANNER) - 1);
	if (!rc)
		rc = strm_io_read_full(io, first, PEEK_LEN);
	if (rc) {
		log_info("migration: %s went away before sending anything (%s)", r->who,
			 io_strerror(rc));
	} else if (!memcmp(first, MSG_QUERY, PEEK_LEN)) {
		rcv_query(r, io);
	} else if (!memcmp(first, XL_MAGIC12, PEEK_LEN)) {
		rcv_stream(r, io, first);
	} else {
		log_warn("migration: %s sent neither a migration stream nor a query; closed",
			 r->who);
	}
	strm_io_close(io);
}

static void rcv_main(struct ctl_job *job)
{
	struct rcv *r = container_of(job, struct rcv, job);

	rcv_serve(r);
	rcv_unregister(r);
	malloc_trim(0); /* as in do_migrate */
}

static void rcv_done(struct ctl_job *job)
{
	free(container_of(job, struct rcv, job));
}

static void rcv_spawn(struct ctl_mig *mig, int fd, const struct sockaddr_storage *sa)
{
	struct rcv *r = calloc(1, sizeof(*r));
	char addr[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (!r) {
		close(fd);
		return;
	}
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
		port = ntohs(s4->sin_port);
	} else if (sa->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
		port = ntohs(s6->sin6_port);
	}
	snprintf(r->peer, sizeof(r->peer), "%s:%d", addr, port);
	snprintf(r->who, sizeof(r->who), "%s", r->peer);
	snprintf(r->what, sizeof(r->what), "receiver for %s", r->peer);
	r->mig = mig;
	r->h = mig->srv->hyp;
	r->fd = fd;
	r->ent.job = &r->job;
	r->job.what = r->what;
	r->job.run = rcv_main;
	r->job.done = rcv_done;
	pthread_mutex_lock(&mig->lock);
	r->ent.next = mig->rcvs;
	mig->rcvs = &r->ent;
	pthread_mutex_unlock(&mig->lock);
	if (ctl__job_start(mig->srv, &r->job)) {
		rcv_unregister(r);
		close(fd);
		free(r);
	}
}

static void on_listen(uv_poll_t *p, int status, int events)
{
	struct ctl_mig *mig = p->data;

	if (status < 0) {
		log_warn("migration listener: %s", uv_strerror(status));
		return;
	}
	for (;;) {
		struct sockaddr_storage sa;
		socklen_t len = sizeof(sa);
		int fd = accept4(mig->listen_fd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("migration listener: accept: %s", strerror(errno));
			return;
		}
		if (mig_stopping(mig)) {
			close(fd);
			continue;
		}
		rcv_spawn(mig, fd, &sa);
	}
}

/* ---- start and stop ----------------------------------------------------- */

int ctl_migrate_start(struct ctl_server *srv)
{
	const struct ferryd_opts *o = srv->opts;
	struct ctl_mig *mig = calloc(1, sizeof(*mig));
	char err[1024] = "";
	int rc, fl;

	if (!mig)
		return -ENOMEM;
	mig->srv = srv;
	mig->listen_fd = -1;
	pthread_mutex_init(&mig->lock, NULL);
	pthread_cond_init(&mig->cond, NULL);
	mig->net_ms = (int)(o->net_timeout_s ? o->net_timeout_s : CTL_NET_TIMEOUT_S) * 1000;
	srv->mig = mig;
	if (o->tls_dir && !o->insecure) {
		rc = strm_tls_new(o->tls_dir, o->tls_name, &mig->tls, err, sizeof(err));
		if (rc) {
			log_err("migration TLS: %s", err[0] ? err : ferry_strerror(rc));
			return rc;
		}
		log_info("migration TLS: %s/%s.pem", o->tls_dir, o->tls_name);
	}
	if (!o->listen)
		return 0;
	rc = strm_tcp_listen(o->listen, &mig->listen_fd, err, sizeof(err));
	if (rc) {
		log_err("migration listener %s: %s", o->listen, err[0] ? err : ferry_strerror(rc));
		return rc;
	}
	fl = fcntl(mig->listen_fd, F_GETFL);
	if (fl < 0 || fcntl(mig->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		rc = -errno;
		log_err("migration listener: %s", strerror(errno));
		return rc;
	}
	rc = uv_poll_init(srv->loop, &mig->poll, mig->listen_fd);
	if (!rc) {
		mig->poll.data = mig;
		mig->polling = true;
		rc = uv_poll_start(&mig->poll, UV_READABLE, on_listen);
	}
	if (rc) {
		log_err("migration listener: %s", uv_strerror(rc));
		return rc;
	}
	log_info("migration listener on %s (%s)", o->listen,
		 mig->tls ? "TLS 1.3" : "plain TCP, --insecure");
	return 0;
}

void ctl_migrate_cancel_all(struct ctl_server *srv)
{
	struct ctl_mig *mig = srv->mig;
	unsigned n = 0;

	if (!mig)
		return;
	pthread_mutex_lock(&mig->lock);
	for (struct mig_job *j = mig->jobs; j; j = j->next)
		if (j->kind == JOB_MIGRATE && !ctl__job_cancel(&j->job))
			n++;
	for (struct rcv_entry *e = mig->rcvs; e; e = e->next)
		if (!ctl__job_cancel(e->job))
			n++;
	pthread_cond_broadcast(&mig->cond);
	pthread_mutex_unlock(&mig->lock);
	if (n)
		log_info("migration: cancelled %u migration%s short of go", n, n == 1 ? "" : "s");
}

void ctl_migrate_stop(struct ctl_server *srv)
{
	struct ctl_mig *mig = srv->mig;

	if (!mig)
		return;
	pthread_mutex_lock(&mig->lock);
	mig->stopping = true;
	pthread_mutex_unlock(&mig->lock);
	if (mig->polling) {
		uv_poll_stop(&mig->poll);
		uv_close((uv_handle_t *)&mig->poll, NULL);
		mig->polling = false;
	}
	/* Past go, ctl_jobs_stop makes the jobs stop waiting too. */
	ctl_migrate_cancel_all(srv);
}

void ctl_migrate_fini(struct ctl_server *srv)
{
	struct ctl_mig *mig = srv->mig;

	if (!mig)
		return;
	/* The jobs, receivers included, have ended (ctl-jobs.c). */
	while (mig->fences) {
		struct fence_rec *f = mig->fences;

		mig->fences = f->next;
		free(f);
	}
	if (mig->listen_fd >= 0)
		close(mig->listen_fd);
	strm_tls_free(mig->tls);
	pthread_cond_destroy(&mig->cond);
	pthread_mutex_destroy(&mig->lock);
	free(mig);
	srv->mig = NULL;
}

/* ---- for ferryd's stop and start (ctl-lifetime.c) ------------------------ */

int ctl__fence_get(struct ctl_server *srv, uint32_t domid, struct ctl_fence *out)
{
	struct ctl_mig *mig = srv->mig;
	int rc = -ENOENT;

	pthread_mutex_lock(&mig->lock);
	for (struct fence_rec *f = mig->fences; f; f = f->next) {
		if (f->domid != domid)
			continue;
		snprintf(out->name, sizeof(out->name), "%s", f->name);
		snprintf(out->host, sizeof(out->host), "%s", f->host);
		out->insecure = f->insecure;
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&mig->lock);
	return rc;
}

int ctl__fence_put(struct ctl_server *srv, uint32_t domid, const struct ctl_fence *in)
{
	struct fence_rec *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->domid = domid;
	snprintf(f->name, sizeof(f->name), "%s", in->name);
	snprintf(f->host, sizeof(f->host), "%s", in->host);
	f->insecure = in->insecure;
	fence_put(srv->mig, f);
	return 0;
}

bool ctl__mig_busy(struct ctl_server *srv, uint32_t domid)
{
	struct ctl_mig *mig = srv->mig;
	bool busy;

	pthread_mutex_lock(&mig->lock);
	busy = job_find_locked(mig, domid) != NULL;
	pthread_mutex_unlock(&mig->lock);
	return busy;
}
