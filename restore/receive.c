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

#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "restore/receive.h"

#define GO_MS 10000

struct rcv_entry {
	struct rcv_entry *next;
	char name[HYP_NAME_MAX]; /* "" until the config is read */
};

struct rst_rcv_set {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* an entry left or was named; a token fired */
	struct rcv_entry *list;
};

/* One connection's working state. */
struct rcv {
	const struct rst_rcv_conf *c;
	struct rcv_entry ent; /* in c->set while serving */
	char who[320];	      /* peer and certificate name, for messages */
	char name[HYP_NAME_MAX];
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
			      .xenstore_opaque = c->ops->opaque };
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
	else if (c->ops->other && c->ops->other(c->ops->opaque, io, first, r.who, c->cancel))
		out = RST_RCV_OTHER;
	else
		log_warn("migration: %s sent neither a migration stream nor a query; closed",
			 r.who);
	strm_io_close(io);
out:
	set_remove(&r);
	if (domid)
		*domid = id;
	return out;
}
