// SPDX-License-Identifier: MIT
/*
 * The target's half of the migration handshake (receive.h,
 * docs/migration.md). Every wait on the connection ends when the caller's
 * token fires or when the peer has been silent for net_ms; waiting for go
 * after at most GO_MS of it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "restore/receive.h"

#define GO_MS 10000
/* How long a page channel and its main connection wait for each other. */
#define CHANNEL_WAIT_MS 10000

/* A page channel waiting for its main connection to take it. */
struct rcv_park {
	struct rcv_park *next;
	char cookie[STRM_HS_COOKIE_LEN + 1];
	unsigned idx;
	const char *cert; /* the peer's certificate name ("" plain) */
	struct strm_io *io;
	bool taken; /* the main connection owns io now */
};

struct rcv_entry {
	struct rcv_entry *next;
	char name[HYP_NAME_MAX]; /* "" until the config is read */
};

struct rst_rcv_set {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* an entry left or was named; a token fired */
	struct rcv_entry *list;
	struct rcv_park *parked;
};

/* One connection's working state. */
struct rcv {
	const struct rst_rcv_conf *c;
	struct rcv_entry ent; /* in c->set while serving */
	char who[320];	      /* peer and certificate name, for messages */
	char cert[256];	      /* the peer's certificate name ("" plain) */
	char name[HYP_NAME_MAX];
	/* Page channels taken for this connection's stream. */
	struct strm_io *chans[STRM_HS_CHANNELS_MAX];
	unsigned nchans;
};

/* ---- the set of receivers ---------------------------------------------------- */

int rst_rcv_set_new(struct rst_rcv_set **out)
{
	struct rst_rcv_set *set = calloc(1, sizeof(*set));

	if (!set)
		return -ENOMEM;
	pthread_mutex_init(&set->lock, NULL);
	pthread_cond_init(&set->cond, NULL);
	*out = set;
	return 0;
}

void rst_rcv_set_free(struct rst_rcv_set *set)
{
	if (!set)
		return;
	pthread_cond_destroy(&set->cond);
	pthread_mutex_destroy(&set->lock);
	free(set);
}

void rst_rcv_set_wake(struct rst_rcv_set *set)
{
	pthread_mutex_lock(&set->lock);
	pthread_cond_broadcast(&set->cond);
	pthread_mutex_unlock(&set->lock);
}

/* Under set->lock: another receiver working on name. */
static bool busy_locked(struct rst_rcv_set *set, const struct rcv *self, const char *name)
{
	for (struct rcv_entry *e = set->list; e; e = e->next)
		if (e != &self->ent && !strcmp(e->name, name))
			return true;
	return false;
}

static void set_add(struct rcv *r)
{
	struct rst_rcv_set *set = r->c->set;

	pthread_mutex_lock(&set->lock);
	r->ent.next = set->list;
	set->list = &r->ent;
	pthread_mutex_unlock(&set->lock);
}

static void set_remove(struct rcv *r)
{
	struct rst_rcv_set *set = r->c->set;
	struct rcv_entry **pp;

	pthread_mutex_lock(&set->lock);
	for (pp = &set->list; *pp; pp = &(*pp)->next) {
		if (*pp == &r->ent) {
			*pp = r->ent.next;
			break;
		}
	}
	pthread_cond_broadcast(&set->cond);
	pthread_mutex_unlock(&set->lock);
}

/* Names r's entry name unless another receiver has it: 0 or -EBUSY. */
static int set_claim(struct rcv *r, const char *name)
{
	struct rst_rcv_set *set = r->c->set;
	bool busy;

	pthread_mutex_lock(&set->lock);
	busy = busy_locked(set, r, name);
	if (!busy)
		snprintf(r->ent.name, sizeof(r->ent.name), "%s", name);
	pthread_mutex_unlock(&set->lock);
	return busy ? -EBUSY : 0;
}

/* Waits until no other receiver works on name, for up to
 * RST_QUERY_WAIT_S or until the token fires. */
static void set_settle(struct rcv *r, const char *name)
{
	struct rst_rcv_set *set = r->c->set;
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += RST_QUERY_WAIT_S;
	pthread_mutex_lock(&set->lock);
	while (busy_locked(set, r, name) && !strm_cancel_fired(r->c->cancel) &&
	       pthread_cond_timedwait(&set->cond, &set->lock, &deadline) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&set->lock);
}

/* ---- the stream and the handshake -------------------------------------------- */

static void step(const struct rcv *r, const char *what)
{
	if (r->c->ops->step)
		r->c->ops->step(r->c->ops->opaque, what);
}

static int rcv_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
		      size_t errlen)
{
	struct rcv *r = opaque;
	const struct rst_rcv_ops *ops = r->c->ops;
	uint32_t domid;
	int rc = ops->config(ops->opaque, json, cfg, err, errlen);

	if (rc)
		return rc;
	if (strlen(cfg->name) + strlen(RST_INCOMING_SUFFIX) >= HYP_NAME_MAX) {
		snprintf(err, errlen, "domain name '%s' is too long to receive as NAME%s",
			 cfg->name, RST_INCOMING_SUFFIX);
		return -ENAMETOOLONG;
	}
	if (set_claim(r, cfg->name)) {
		snprintf(err, errlen, "domain '%s' is being received already", cfg->name);
		return -EBUSY;
	}
	if (!hyp_domain_lookup(r->c->h, cfg->name, &domid)) {
		snprintf(err, errlen, "domain '%s' already exists here (d%u)", cfg->name, domid);
		return -EEXIST;
	}
	snprintf(r->name, sizeof(r->name), "%s", cfg->name);
	snprintf(cfg->name + strlen(cfg->name), sizeof(cfg->name) - strlen(cfg->name), "%s",
		 RST_INCOMING_SUFFIX);
	return 0;
}

static void send_error(struct strm_io *io, const char *why)
{
	char line[600];

	snprintf(line, sizeof(line), "%s%s", STRM_HS_ERROR, why);
	for (char *p = line; *p; p++)
		if (*p == '\n')
			*p = ' ';
	strcat(line, "\n");
	strm_hs_write(io, line, strlen(line));
}

/* Restores the stream (its first bytes in prefix) paused as
 * NAME--incoming: 0 with *domid, or -errno (logged, the source told). */
static int receive_stream(struct rcv *r, struct strm_io *io, const char *prefix,
			  uint32_t *domid)
{
	const struct rst_rcv_conf *c = r->c;
	struct rst_opts o = { .paused = true, .config = rcv_config, .opaque = r,
			      .xenstore = c->ops->xenstore,
			      .xenstore_opaque = c->ops->opaque, .channels = r->chans,
			      .nchannels = r->nchans, .cancel = c->cancel, .net_ms = c->net_ms };
	struct rst_stats st = { 0 };
	struct strm_io *pio;
	char err[512] = "";
	int rc = strm_io_prefix(io, prefix, STRM_HS_PEEK_LEN, &pio);

	if (rc)
		return rc;
	rc = rst_restore_domain(c->h, pio, &o, domid, &st, err, sizeof(err));
	strm_io_close(pio);
	if (rc) {
		log_err("migration from %s: cannot receive%s%s: %s", r->who, r->name[0] ? " " : "",
			r->name, err[0] ? err : ferry_strerror(rc));
		if (rc == -ECANCELED)
			return rc;
		strm_io_set_cancel(io, c->cancel, 1000);
		send_error(io, err[0] ? err : ferry_strerror(rc));
		return rc;
	}
	log_info("d%u: received '%s' from %s (%" PRIu64 " pages, %" PRIu64 " bytes in %.3f s); "
		 "waiting for go", *domid, r->name, r->who, st.pages, st.bytes, st.seconds);
	return 0;
}

/* Sends ready and waits for go: 0, or -errno with why (whylen bytes). */
static int ready_go(struct rcv *r, struct strm_io *io, char *why, size_t whylen)
{
	const struct rst_rcv_conf *c = r->c;
	int rc;

	strm_io_set_cancel(io, c->cancel, MIN(c->net_ms, GO_MS));
	rc = strm_hs_write(io, STRM_HS_READY, sizeof(STRM_HS_READY));
	if (rc) {
		snprintf(why, whylen, "sending ready: %s", strm_hs_strerror(rc));
		return rc;
	}
	step(r, "ready");
	rc = strm_hs_read(io, STRM_HS_GO, sizeof(STRM_HS_GO), "waiting for go", why, whylen);
	if (!rc)
		step(r, "go");
	return rc;
}

/* After go: runs the domain as NAME and reports; or destroys it and
 * hands it back. */
static enum rst_rcv_outcome start(struct rcv *r, struct strm_io *io, uint32_t domid)
{
	const struct rst_rcv_conf *c = r->c;
	uint8_t report[sizeof(STRM_HS_REPORT) + 1];
	int rc = hyp_domain_rename(c->h, domid, r->name);

	if (!rc)
		rc = hyp_domain_unpause(c->h, domid);
	hyp_domain_release(c->h, domid, HYP_OP_MIGRATE);
	memcpy(report, STRM_HS_REPORT, sizeof(STRM_HS_REPORT));
	report[sizeof(STRM_HS_REPORT)] = rc ? (uint8_t)(-rc > 0 && -rc < 256 ? -rc : 1) : 0;
	if (!rc) {
		if (c->ops->arrived)
			c->ops->arrived(c->ops->opaque, domid);
		log_info("d%u: '%s' migrated in from %s and running", domid, r->name, r->who);
		if (strm_hs_write(io, report, sizeof(report)))
			log_warn("d%u: could not send the report to %s; it will ask", domid,
				 r->who);
		else
			step(r, "report");
		return RST_RCV_RUNNING;
	}
	log_err("d%u: cannot start '%s' after go: %s; destroying it and handing it back",
		domid, r->name, ferry_strerror(rc));
	hyp_domain_destroy(c->h, domid);
	if (!strm_hs_write(io, report, sizeof(report))) {
		step(r, "report");
		strm_hs_write(io, STRM_HS_GO, sizeof(STRM_HS_GO));
	}
	return RST_RCV_HANDED_BACK;
}

static enum rst_rcv_outcome serve_stream(struct rcv *r, struct strm_io *io, const char *prefix,
					 uint32_t *out)
{
	const struct rst_rcv_conf *c = r->c;
	char detail[HYP_OP_DETAIL_MAX + 320], why[600] = "";
	uint32_t domid;

	if (receive_stream(r, io, prefix, &domid))
		return RST_RCV_REFUSED;
	step(r, "stream");
	/* Until it runs here: as NAME--incoming no verb touches it, and once
	 * renamed the claim keeps them off until the unpause. */
	snprintf(detail, sizeof(detail), "being received from %s", r->who);
	hyp_domain_claim(c->h, domid, HYP_OP_MIGRATE, detail, NULL);
	if (ready_go(r, io, why, sizeof(why))) {
		hyp_domain_destroy(c->h, domid);
		log_err("d%u: migration of '%s' from %s: %s; destroyed %s%s", domid, r->name,
			r->who, why, r->name, RST_INCOMING_SUFFIX);
		return RST_RCV_DROPPED;
	}
	/* Past the point of no return: the domain is ours. */
	*out = domid;
	return start(r, io, domid);
}

/* ---- the query ------------------------------------------------------------- */

/* STRM_HS_QUERY was read; the rest of the line is NAME. */
static enum rst_rcv_outcome serve_query(struct rcv *r, struct strm_io *io)
{
	char name[HYP_NAME_MAX + 1];
	const char *answer = "absent\n";
	struct hyp_dom_info info;
	size_t got = 0;
	uint32_t domid;

	while (got < sizeof(name) - 1) {
		ssize_t n = strm_io_read(io, name + got, 1);

		if (n <= 0)
			return RST_RCV_NOTHING;
		if (name[got] == '\n')
			break;
		got++;
	}
	name[got] = 0;
	if (got == sizeof(name) - 1 || !got)
		return RST_RCV_NOTHING;
	/* A receiver of NAME still deciding: wait until it has. */
	set_settle(r, name);
	if (!hyp_domain_lookup(r->c->h, name, &domid) && !hyp_domain_info(r->c->h, domid, &info))
		answer = info.state == HYP_DOM_PAUSED ? "paused\n" : "running\n";
	log_info("migration query from %s: '%s' is %.*s", r->who, name,
		 (int)strlen(answer) - 1, answer);
	strm_hs_write(io, answer, strlen(answer));
	return RST_RCV_ANSWERED;
}

/* ---- page channels --------------------------------------------------------- */

/* One line after the peeked magic, without its newline, into buf. */
static int read_line(struct strm_io *io, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size - 1) {
		ssize_t n = strm_io_read(io, buf + got, 1);

		if (n <= 0)
			return n ? (int)n : -ECONNRESET;
		if (buf[got] == '\n') {
			buf[got] = 0;
			return 0;
		}
		got++;
	}
	return -EPROTO;
}

/* COOKIE: exactly STRM_HS_COOKIE_LEN lower-case hex digits. */
static bool cookie_ok(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return n == STRM_HS_COOKIE_LEN && !s[n];
}

/*
 * STRM_HS_PAGES was read: parks io until the main connection that named
 * its cookie takes it (RST_RCV_CHANNEL: io is the main one's now) or the
 * wait ends (RST_RCV_NOTHING: the caller closes io).
 */
static enum rst_rcv_outcome serve_pages(struct rcv *r, struct strm_io *io)
{
	struct rst_rcv_set *set = r->c->set;
	struct rcv_park me = { .cert = r->cert, .io = io }, **pp;
	char line[STRM_HS_COOKIE_LEN + 16], *sp, *end;
	struct timespec deadline;
	unsigned long idx;

	if (read_line(io, line, sizeof(line)) || !(sp = strchr(line, ' ')))
		goto bad;
	*sp = 0;
	idx = strtoul(sp + 1, &end, 10);
	if (!cookie_ok(line) || end == sp + 1 || *end || idx >= STRM_HS_CHANNELS_MAX)
		goto bad;
	memcpy(me.cookie, line, sizeof(me.cookie));
	me.idx = (unsigned)idx;
	ferry_deadline_in(&deadline, MIN(r->c->net_ms, CHANNEL_WAIT_MS) / 1e3);
	pthread_mutex_lock(&set->lock);
	me.next = set->parked;
	set->parked = &me;
	pthread_cond_broadcast(&set->cond);
	while (!me.taken && !strm_cancel_fired(r->c->cancel) &&
	       pthread_cond_timedwait(&set->cond, &set->lock, &deadline) != ETIMEDOUT)
		;
	if (!me.taken) {
		for (pp = &set->parked; *pp; pp = &(*pp)->next) {
			if (*pp == &me) {
				*pp = me.next;
				break;
			}
		}
	}
	pthread_mutex_unlock(&set->lock);
	if (me.taken)
		return RST_RCV_CHANNEL;
	log_warn("migration: page channel %u from %s: no migration here took it", me.idx + 1,
		 r->who);
	send_error(io, "no migration here is waiting for this page channel");
	return RST_RCV_NOTHING;
bad:
	log_warn("migration: %s: a page channel's line is malformed; closed", r->who);
	return RST_RCV_NOTHING;
}

/* Under set->lock: the parked channel idx of cookie from the same peer. */
static struct rcv_park **park_find_locked(struct rst_rcv_set *set, const struct rcv *r,
					  const char *cookie, unsigned idx)
{
	for (struct rcv_park **pp = &set->parked; *pp; pp = &(*pp)->next)
		if ((*pp)->idx == idx && !strcmp((*pp)->cookie, cookie) &&
		    !strcmp((*pp)->cert, r->cert))
			return pp;
	return NULL;
}

/* Takes channels 0..n-1 of cookie into r->chans, waiting for them to
 * arrive: 0, or -ETIMEDOUT / -ECANCELED with none taken. */
static int take_channels(struct rcv *r, const char *cookie, unsigned n)
{
	struct rst_rcv_set *set = r->c->set;
	struct timespec deadline;
	unsigned have = 0;
	int rc = 0;

	ferry_deadline_in(&deadline, MIN(r->c->net_ms, CHANNEL_WAIT_MS) / 1e3);
	pthread_mutex_lock(&set->lock);
	for (;;) {
		for (have = 0; have < n && park_find_locked(set, r, cookie, have); have++)
			;
		if (have == n)
			break;
		if (strm_cancel_fired(r->c->cancel)) {
			rc = -ECANCELED;
			break;
		}
		if (pthread_cond_timedwait(&set->cond, &set->lock, &deadline) == ETIMEDOUT) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	for (unsigned i = 0; !rc && i < n; i++) {
		struct rcv_park **pp = park_find_locked(set, r, cookie, i), *p = *pp;

		*pp = p->next;
		p->taken = true;
		r->chans[i] = p->io;
	}
	if (!rc) {
		r->nchans = n;
		pthread_cond_broadcast(&set->cond);
	}
	pthread_mutex_unlock(&set->lock);
	if (rc == -ETIMEDOUT)
		log_err("migration from %s: page channel %u of %u did not arrive within %d ms",
			r->who, have + 1, n, MIN(r->c->net_ms, CHANNEL_WAIT_MS));
	return rc;
}

/* STRM_HS_CHANNELS was read: "N COOKIE", the channels, then the stream. */
static enum rst_rcv_outcome serve_channels(struct rcv *r, struct strm_io *io, uint32_t *id)
{
	char line[STRM_HS_COOKIE_LEN + 16], first[STRM_HS_PEEK_LEN], *end;
	enum rst_rcv_outcome out = RST_RCV_REFUSED;
	unsigned long n;
	int rc;

	if (read_line(io, line, sizeof(line)))
		goto bad;
	n = strtoul(line, &end, 10);
	if (end == line || *end != ' ' || n < 1 || n > STRM_HS_CHANNELS_MAX || !cookie_ok(end + 1))
		goto bad;
	rc = take_channels(r, end + 1, (unsigned)n);
	if (rc) {
		if (rc != -ECANCELED)
			send_error(io, "the page channels did not all arrive");
		return RST_RCV_REFUSED;
	}
	rc = strm_io_read_full(io, first, STRM_HS_PEEK_LEN);
	if (rc)
		log_info("migration: %s went away after its page channels (%s)", r->who,
			 strm_hs_strerror(rc));
	else if (memcmp(first, STRM_HS_XL_MAGIC, STRM_HS_PEEK_LEN))
		log_warn("migration: %s: no stream after the page channels; closed", r->who);
	else
		out = serve_stream(r, io, first, id);
	for (unsigned i = 0; i < r->nchans; i++)
		strm_io_close(r->chans[i]);
	r->nchans = 0;
	return out;
bad:
	log_warn("migration: %s: the page channels' line is malformed; closed", r->who);
	send_error(io, "malformed page channels line");
	return RST_RCV_REFUSED;
}

/* ---- one connection -------------------------------------------------------- */

/* The io over accepted fd, TLS unless plain; NULL (logged) on failure. */
static struct strm_io *open_io(struct rcv *r, int fd)
{
	const struct rst_rcv_conf *c = r->c;
	char peer[256] = "", err[1024] = "";
	struct strm_io *io = NULL;
	int rc;

	if (c->tls) {
		rc = strm_io_tls_server_cancel(c->tls, fd, c->cancel, c->net_ms, &io, peer,
					       sizeof(peer), err, sizeof(err));
		if (rc) {
			/* The handshake closed fd. */
			log_warn("migration: refused a connection from %s: %s", c->peer,
				 err[0] ? err : ferry_strerror(rc));
			return NULL;
		}
		snprintf(r->who, sizeof(r->who), "%s (%s)", c->peer, peer);
		snprintf(r->cert, sizeof(r->cert), "%s", peer);
		return io;
	}
	rc = strm_io_fd(fd, true, &io);
	if (rc) {
		close(fd);
		return NULL;
	}
	if (strm_io_set_cancel(io, c->cancel, c->net_ms)) {
		strm_io_close(io);
		return NULL;
	}
	return io;
}

enum rst_rcv_outcome rst_rcv_serve(const struct rst_rcv_conf *c, int fd, uint32_t *domid)
{
	enum rst_rcv_outcome out = RST_RCV_NOTHING;
	struct rcv r = { .c = c };
	char first[STRM_HS_PEEK_LEN];
	struct strm_io *io;
	uint32_t id = 0;
	int rc;

	snprintf(r.who, sizeof(r.who), "%s", c->peer);
	set_add(&r);
	io = open_io(&r, fd);
	if (!io)
		goto out;
	rc = strm_hs_write(io, STRM_HS_BANNER, sizeof(STRM_HS_BANNER) - 1);
	if (!rc) {
		step(&r, "banner");
		rc = strm_io_read_full(io, first, STRM_HS_PEEK_LEN);
	}
	if (rc)
		log_info("migration: %s went away before sending anything (%s)", r.who,
			 strm_hs_strerror(rc));
	else if (!memcmp(first, STRM_HS_QUERY, STRM_HS_PEEK_LEN))
		out = serve_query(&r, io);
	else if (!memcmp(first, STRM_HS_XL_MAGIC, STRM_HS_PEEK_LEN))
		out = serve_stream(&r, io, first, &id);
	else if (!memcmp(first, STRM_HS_CHANNELS, STRM_HS_PEEK_LEN))
		out = serve_channels(&r, io, &id);
	else if (!memcmp(first, STRM_HS_PAGES, STRM_HS_PEEK_LEN))
		out = serve_pages(&r, io);
	else if (c->ops->other && c->ops->other(c->ops->opaque, io, first, r.who, c->cancel))
		out = RST_RCV_OTHER;
	else
		log_warn("migration: %s sent neither a migration stream nor a query; closed",
			 r.who);
	if (out != RST_RCV_CHANNEL)
		strm_io_close(io);
out:
	set_remove(&r);
	if (domid)
		*domid = id;
	return out;
}
