// SPDX-License-Identifier: MIT
/*
 * The primary's side of a pair: the initial sync, then the epoch loop,
 * acknowledgements, output commit and heartbeats (ha/ha.h).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "migrate/session.h"

#define WINDOW 1024 /* samples kept for the percentiles */

enum { REQ_NONE, REQ_STOP, REQ_HANDOVER };

struct ha_primary {
	struct hyp *h;
	uint32_t domid;
	struct strm_io *link; /* borrowed; NULL for a blackhole */
	struct strm_io *push; /* the session's io: DATA messages on link */
	struct mig_session *s;
	struct ha_primary_opts o;
	double interval_s, timeout_s, hb_s;
	char *err;
	size_t errlen;
	uint8_t *rbuf;
	bool gated;    /* the console gate is ours to release */
	uint64_t mark; /* output position at the pause of the epoch in flight */
	double last_heard, next_hb;
	double pause_prev, pause_cur; /* the pauses that open and close the output in flight */
	int req;		      /* REQ_*, set from any thread */
	struct ha_witness *w;	      /* NULL without a witness */
	struct ha_fence *fence;	      /* its lease keeper */
	bool lost_lease;	      /* fenced for good: held output never comes out */

	pthread_mutex_t lock; /* the figures below, read by ha_primary_stats */
	enum ha_state state;
	uint64_t sent, acked, late, merged, wire, wire_sync;
	double t_start, t_protected, t_ack, sync_s;
	double pause_ms[WINDOW], delay_ms[WINDOW];
	uint64_t npause, ndelay;
	bool fenced;
	unsigned throttle_pct; /* the guest's CPU cap, 100: none */
	unsigned slow, fast;   /* epochs in a row over and under their interval */
};

const char *ha_state_name(enum ha_state s)
{
	static const char *const n[] = {"syncing",     "protected", "unprotected", "stopped",
					"handed over", "fenced",    "blackhole"};

	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

static int fail(struct ha_primary *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct ha_primary *p, int rc, const char *fmt, ...)
{
	va_list ap;

	if (p->err[0])
		return rc;
	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
	log_err("d%u: remus: %s", p->domid, p->err);
	return rc;
}

static void set_state(struct ha_primary *p, enum ha_state st, const char *why)
{
	pthread_mutex_lock(&p->lock);
	p->state = st;
	pthread_mutex_unlock(&p->lock);
	log_info("d%u: remus: %s: %s", p->domid, ha_state_name(st), why);
	if (p->o.event)
		p->o.event(p->o.opaque, st, why);
}

static void sample(double *win, uint64_t *n, double v)
{
	win[*n % WINDOW] = v;
	(*n)++;
}

/* The push io's callback: a piece of the stream as one DATA message. */
static int push_data(void *opaque, const void *buf, size_t len)
{
	struct ha_primary *p = opaque;
	int rc = 0;

	if (p->link)
		rc = ha_link_send(p->link, HA_MSG_DATA, buf, (uint32_t)len);
	if (!rc) {
		pthread_mutex_lock(&p->lock);
		p->wire += len;
		pthread_mutex_unlock(&p->lock);
	}
	return rc;
}

int ha_primary_new(struct hyp *h, uint32_t domid, struct strm_io *link,
		   const struct ha_primary_opts *o, char *err, size_t errlen,
		   struct ha_primary **out)
{
	struct ha_primary *p;
	int rc;

	if (!link && !o->blackhole)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	err[0] = '\0';
	p->h = h;
	p->domid = domid;
	p->link = o->blackhole ? NULL : link;
	p->o = *o;
	p->err = err;
	p->errlen = errlen;
	p->interval_s = (o->interval_ms ? o->interval_ms : HA_DEFAULT_INTERVAL_MS) / 1e3;
	p->timeout_s = (o->timeout_ms ? o->timeout_ms : HA_DEFAULT_TIMEOUT_MS) / 1e3;
	p->hb_s = ha_hb_period(p->timeout_s);
	p->state = HA_SYNCING;
	p->throttle_pct = 100;
	pthread_mutex_init(&p->lock, NULL);
	p->rbuf = malloc(HA_DATA_MAX);
	rc = p->rbuf ? strm_io_push(push_data, NULL, p, HA_DATA_PIECE,
				    o->max_stage_bytes ? o->max_stage_bytes
						       : HA_DEFAULT_MAX_STAGE_BYTES,
				    &p->push)
		     : -ENOMEM;
	/* A peer that stops reading or writing is dead after the timeout. */
	if (!rc && p->link)
		rc = strm_io_set_cancel(p->link, NULL, (int)(p->timeout_s * 1e3));
	if (rc) {
		snprintf(err, errlen, "cannot set up: %s", ferry_strerror(rc));
		ha_primary_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

static void release_output(struct ha_primary *p, uint64_t upto, double pause_at)
{
	double now = ferry_now_s();

	if (p->gated && hyp_console_gate_release(p->h, p->domid, upto))
		log_err("d%u: remus: cannot release console output", p->domid);
	pthread_mutex_lock(&p->lock);
	sample(p->delay_ms, &p->ndelay, (now - pause_at) * 1e3);
	pthread_mutex_unlock(&p->lock);
}

/* Lets all held output out: nothing can be lost any more, or the pair
 * ended. */
static void open_output(struct ha_primary *p)
{
	if (p->lost_lease)
		return;
	if (p->gated && hyp_console_gate_open(p->h, p->domid))
		log_err("d%u: remus: cannot open the console gate", p->domid);
	p->gated = false;
}

/*
 * Auto-converge for epochs: a guest that dirties more than the link carries
 * in an interval makes every epoch late and the next one bigger. Two
 * epochs in a row that took more than 1.5 intervals from their pause to
 * their ack (or one that took more than four) cap the guest's CPU 20
 * points lower (down to 10 %); ten within the interval give 10 back.
 */
static void throttle(struct ha_primary *p, double cycle_s)
{
	unsigned pct = p->throttle_pct;

	if (cycle_s > 1.5 * p->interval_s) {
		p->fast = 0;
		if ((++p->slow >= 2 || cycle_s > 4 * p->interval_s) && pct > 10) {
			pct = pct > 30 ? pct - 20 : 10;
			p->slow = 0;
		}
	} else if (cycle_s <= p->interval_s) {
		p->slow = 0;
		if (++p->fast >= 10 && pct < 100) {
			pct = pct + 10 < 100 ? pct + 10 : 100;
			p->fast = 0;
		}
	}
	if (pct == p->throttle_pct)
		return;
	if (hyp_domain_set_cap(p->h, p->domid, pct < 100 ? pct : 0)) {
		log_err("d%u: remus: cannot cap the guest at %u %%", p->domid, pct);
		return;
	}
	log_info("d%u: remus: epochs take %.0f ms against %.0f: guest CPU %s %u %%", p->domid,
		 cycle_s * 1e3, p->interval_s * 1e3,
		 pct < p->throttle_pct ? "capped at" : "back to", pct);
	pthread_mutex_lock(&p->lock);
	p->throttle_pct = pct;
	pthread_mutex_unlock(&p->lock);
}

/* A message from the backup. 0, or -EPROTO with the reason. */
static int handle(struct ha_primary *p, const struct ha_msg *m)
{
	p->last_heard = ferry_now_s();
	if (m->type == HA_MSG_HB) {
		/* It echoes our stamp: it cannot resume before that plus the
		 * timeout (it heard us at or after that instant). */
		if (p->fence && m->value)
			ha_fence_backup_word(p->fence, (double)m->value / 1e9 + p->timeout_s);
		return 0;
	}
	if (m->type == HA_MSG_ERR) {
		p->err[0] = '\0';
		return fail(p, -ECONNREFUSED, "the backup gave up: %s", (const char *)m->data);
	}
	if (m->type != HA_MSG_ACK)
		return fail(p, -EPROTO, "the backup sent %s", ha_msg_name(m->type));
	if (m->value != p->sent || p->acked == p->sent)
		return fail(p, -EPROTO,
			    "the backup acknowledged epoch %llu, epoch %llu is in flight",
			    (unsigned long long)m->value,
			    (unsigned long long)(p->acked == p->sent ? 0 : p->sent));
	pthread_mutex_lock(&p->lock);
	p->acked = m->value;
	p->t_ack = p->last_heard;
	pthread_mutex_unlock(&p->lock);
	release_output(p, p->mark, p->pause_prev);
	throttle(p, p->last_heard - p->pause_cur);
	return 0;
}

/*
 * Waits for messages until `until` (seconds, ferry_now_s), the epoch in
 * flight is acknowledged (stop_at_ack) or the backup is dead. Sends
 * heartbeats meanwhile. 0, or -ETIMEDOUT (silent), -errno (link).
 */
static int listen_until(struct ha_primary *p, double until, bool stop_at_ack)
{
	struct ha_msg m;
	int rc;

	for (;;) {
		double now = ferry_now_s(), wake;

		if (stop_at_ack && p->acked == p->sent)
			return 0;
		if (now >= p->next_hb) {
			rc = ha_link_send_u64(p->link, HA_MSG_HB, ferry_now_ns());
			if (rc)
				return fail(p, rc, "heartbeat: %s", strm_io_error(p->link));
			p->next_hb = now + p->hb_s;
		}
		if (now >= until)
			return 0;
		wake = fmin(fmin(until, p->next_hb), p->last_heard + p->timeout_s + 0.001);
		rc = ha_link_recv(p->link, (int)fmax(1, ceil((wake - now) * 1e3)), p->rbuf, &m,
				  p->err, p->errlen);
		if (rc < 0) {
			log_err("d%u: remus: %s", p->domid, p->err);
			return rc;
		}
		if (rc > 0 && (rc = handle(p, &m)))
			return rc;
		/* Silence is judged only with nothing left to read: after an
		 * epoch that took seconds to send, the backup's heartbeats
		 * are waiting here, and the time spent sending is not its
		 * silence. */
		now = ferry_now_s();
		if (!rc && now - p->last_heard > p->timeout_s)
			return fail(p, -ETIMEDOUT, "nothing from the backup for %.0f ms",
				    (now - p->last_heard) * 1e3);
	}
}

/*
 * One epoch: paused only to copy into the staging buffer, then sent. With
 * keep_paused (handover) the domain stays paused (one op pause held).
 */
static int epoch(struct ha_primary *p, bool keep_paused)
{
	struct mig_epoch_stats es;
	double t0 = ferry_now_s();
	uint64_t mark = 0;
	int rc, urc = 0;

	strm_io_push_hold(p->push);
	rc = mig_session_epoch(p->s, MIG_EPOCH_CHECKPOINT | MIG_EPOCH_HOLD, &es);
	if (rc)
		return fail(p, rc, "epoch %llu: %s", (unsigned long long)p->sent + 1, p->err);
	if (p->gated)
		hyp_console_gate_mark(p->h, p->domid, &mark);
	if (!keep_paused)
		urc = hyp_domain_op_unpause(p->h, p->domid);
	pthread_mutex_lock(&p->lock);
	sample(p->pause_ms, &p->npause, (ferry_now_s() - t0) * 1e3);
	p->sent++;
	pthread_mutex_unlock(&p->lock);
	if (urc)
		return fail(p, urc, "cannot resume after epoch %llu: %s",
			    (unsigned long long)p->sent, ferry_strerror(urc));
	p->pause_prev = p->pause_cur;
	p->pause_cur = t0;
	p->mark = mark;
	rc = strm_io_push_release(p->push);
	if (rc)
		return fail(p, rc, "sending epoch %llu: %s", (unsigned long long)p->sent,
			    strm_io_error(p->push));
	if (!p->link) { /* blackhole: nobody to wait for */
		p->acked = p->sent;
		release_output(p, mark, p->pause_prev);
	}
	return 0;
}

/* The lease keeper's word (its thread). */
static void on_fence(void *opaque, bool fenced, const char *why)
{
	struct ha_primary *p = opaque;
	enum ha_state st;

	pthread_mutex_lock(&p->lock);
	p->fenced = fenced;
	st = p->state;
	pthread_mutex_unlock(&p->lock);
	if (p->o.event)
		p->o.event(p->o.opaque, fenced ? HA_FENCED : st, why);
}

/* Takes the witness lease: no other copy may run the domain meanwhile. */
static int witness_begin(struct ha_primary *p)
{
	char holder[128];
	bool got = false;
	int rc;

	if (!p->o.witness_url)
		return 0;
	rc = ha_witness_new(p->o.witness_url, p->o.witness_pair ? p->o.witness_pair : "pair",
			    p->o.witness_me ? p->o.witness_me : "primary", &p->o.witness_tls, &p->w,
			    p->err, p->errlen);
	if (rc)
		return rc;
	/* Recorded first: a backup that takes over reads it. */
	rc = ha_witness_set_state(p->w, "protected")
		     ?: ha_witness_acquire(p->w, &got, holder, sizeof(holder));
	if (rc)
		return fail(p, rc, "the witness %s: %s", p->o.witness_url, ha_witness_error(p->w));
	if (!got)
		return fail(p, -EBUSY,
			    "the witness %s says %s holds the domain (a backup that "
			    "took over, or another primary)",
			    p->o.witness_url, holder[0] ? holder : "someone else");
	rc = ha_fence_start(p->h, p->domid, p->w, ferry_now_s(), on_fence, p, &p->fence);
	return rc ? fail(p, rc, "cannot start the lease keeper: %s", ferry_strerror(rc)) : 0;
}

/*
 * Leaves the witness: records state (NULL: nothing) so that a backup never
 * resumes a copy older than what ran here, then gives the lease back.
 * -ETIME when the lease was lost first: the domain stays fenced (paused)
 * and its held output must not come out.
 */
static int witness_end(struct ha_primary *p, const char *state)
{
	double until = ferry_now_s() + 2 * HA_WITNESS_TTL_S;
	bool stays, recorded = false;
	int rc;

	if (!p->w)
		return 0;
	/* Only while the lease is still ours: once it expired, the backup may
	 * have taken over, and this copy must not run again. */
	while (state && p->fence) {
		rc = ha_witness_set_state_held(p->w, state);
		if (!rc)
			recorded = true;
		if (!rc || rc == -ESTALE || ha_fence_lost(p->fence) || ferry_now_s() > until)
			break;
		usleep(100 * 1000);
	}
	if (state && p->fence && !recorded)
		log_err("d%u: remus: cannot record '%s' at the witness: %s", p->domid, state,
			ha_witness_error(p->w));
	stays = ha_fence_stop(p->fence, recorded || !state);
	p->fence = NULL;
	if (!stays)
		ha_witness_release(p->w);
	ha_witness_free(p->w);
	p->w = NULL;
	p->lost_lease = stays;
	if (stays)
		return fail(p, -ETIME,
			    "the witness lease was lost: the domain stays paused here "
			    "(the backup may run it)");
	return 0;
}

/* After a failed write: what the backup said before it stopped reading
 * (its ERR) is a better reason than ours. */
static void backup_word(struct ha_primary *p)
{
	struct ha_msg m;
	char why[256];

	if (!p->link || strm_io_keep_reading(p->link))
		return;
	for (int i = 0; i < 64; i++) {
		int rc = ha_link_recv(p->link, 100, p->rbuf, &m, why, sizeof(why));

		if (rc <= 0)
			return;
		if (m.type == HA_MSG_ERR) {
			p->err[0] = '\0';
			fail(p, -ECONNREFUSED, "the backup gave up: %s", (const char *)m.data);
			return;
		}
	}
}

int ha_primary_sync(struct ha_primary *p)
{
	struct mig_session_opts so = {
		.codec = p->o.codec,
		.config_json = p->o.config_json,
		.xenstore = p->o.xenstore,
		.checkpointed = true,
		.elide_zero = true,
	};
	struct mig_precopy_opts po = {0};
	int rc;

	p->t_start = ferry_now_s();
	p->pause_cur = p->t_start;
	rc = witness_begin(p);
	if (rc) {
		witness_end(p, NULL);
		set_state(p, HA_UNPROTECTED, p->err);
		return rc;
	}
	if (!p->o.no_buffer) {
		rc = hyp_console_gate_hold(p->h, p->domid);
		if (rc) {
			fail(p, rc, "cannot hold the console output: %s", ferry_strerror(rc));
			goto out; /* the witness lease goes back too */
		}
		p->gated = true;
	}
	rc = mig_session_create(p->h, p->domid, p->push, &so, p->err, p->errlen, &p->s);
	if (rc)
		goto out;
	rc = mig_session_precopy(p->s, &po);
	if (rc)
		goto out;
	p->last_heard = ferry_now_s();
	p->next_hb = p->last_heard;
	rc = epoch(p, false);
	if (!rc && p->link)
		rc = listen_until(p, INFINITY, true);
	if (rc)
		goto out;
	pthread_mutex_lock(&p->lock);
	p->t_protected = ferry_now_s();
	p->sync_s = p->t_protected - p->t_start;
	p->wire_sync = p->wire;
	pthread_mutex_unlock(&p->lock);
	if (p->link)
		set_state(p, HA_PROTECTED, "epoch 1 acknowledged");
	else
		set_state(p, HA_BLACKHOLE, "epochs are made and dropped: nothing protects it");
	return 0;
out:
	backup_word(p);
	if (witness_end(p, "unprotected")) {
		set_state(p, HA_FENCED, p->err);
		return rc;
	}
	open_output(p);
	set_state(p, HA_UNPROTECTED, p->err);
	return rc;
}

/* A request: the last things said to the backup. */
static int finish(struct ha_primary *p, int req)
{
	int rc;

	if (req == REQ_STOP || !p->link) {
		rc = p->link ? ha_link_send_u64(p->link, HA_MSG_BYE, HA_BYE_STOP) : 0;
		if (witness_end(p, "stopped")) {
			set_state(p, HA_FENCED, p->err);
			return 0;
		}
		open_output(p);
		set_state(p, HA_STOPPED,
			  rc ? "stopped (the backup may keep its copy until "
			       "its timeout)"
			     : "stopped on request: the backup destroys its copy");
		return 0;
	}
	/* Handover: a last epoch with the domain left paused, acknowledged,
	 * then BYE: from then on the backup's copy is the domain. */
	rc = epoch(p, true);
	if (rc) {
		if (witness_end(p, "unprotected")) {
			set_state(p, HA_FENCED, p->err);
			return rc;
		}
		open_output(p);
		set_state(p, HA_UNPROTECTED, p->err);
		return rc;
	}
	rc = listen_until(p, INFINITY, true)
		     ?: ha_link_send_u64(p->link, HA_MSG_BYE, HA_BYE_HANDOVER);
	if (rc) {
		/* The backup may not have it: this copy runs on, unless the
		 * witness says it may already run there. */
		if (witness_end(p, "unprotected")) {
			set_state(p, HA_FENCED, p->err);
			return rc;
		}
		hyp_domain_op_unpause(p->h, p->domid);
		open_output(p);
		set_state(p, HA_UNPROTECTED, p->err[0] ? p->err : "the handover failed");
		return rc;
	}
	/* The lease goes back at once: the backup takes it and runs. */
	witness_end(p, NULL);
	open_output(p);
	set_state(p, HA_HANDED_OVER, "the backup runs the domain from its last epoch");
	return 0;
}

int ha_primary_run(struct ha_primary *p)
{
	double next_due = p->pause_cur + p->interval_s;
	int rc = 0, req;

	for (;;) {
		double now;

		req = __atomic_load_n(&p->req, __ATOMIC_ACQUIRE);
		if (!req && strm_cancel_fired(p->o.cancel))
			req = REQ_HANDOVER; /* the daemon stops: the backup takes it */
		if (req && p->acked == p->sent)
			return finish(p, req);
		now = ferry_now_s();
		if (p->acked == p->sent && now >= next_due) {
			double behind = now - next_due;

			if (behind > 0.001) {
				pthread_mutex_lock(&p->lock);
				p->late++;
				p->merged += (uint64_t)(behind / p->interval_s);
				pthread_mutex_unlock(&p->lock);
			}
			rc = epoch(p, false);
			if (rc)
				break;
			/* Start to start on a fixed grid: a late epoch does not
			 * push the later ones; the slots it missed are merged. */
			next_due += p->interval_s * (1 + floor(behind / p->interval_s));
			continue;
		}
		if (!p->link) {
			struct timespec ts = {0, (long)((next_due - now) * 1e9)};

			nanosleep(&ts, NULL);
			continue;
		}
		rc = listen_until(p, p->acked == p->sent ? next_due : now + p->hb_s,
				  p->acked != p->sent);
		if (rc)
			break;
	}
	/* Best effort: a backup that only stalled must not take over once it
	 * reads again (a cut link never carries this: without a witness a
	 * partition leaves two copies, as in Xen). */
	if (p->link && rc == -ETIMEDOUT)
		ha_link_send_u64(p->link, HA_MSG_BYE, HA_BYE_STOP);
	/* With a witness, run on only once it records that this copy ran on
	 * alone: the backup then never resumes its older one. */
	if (witness_end(p, "unprotected")) {
		set_state(p, HA_FENCED, p->err);
		return 0;
	}
	open_output(p);
	set_state(p, HA_UNPROTECTED, p->err[0] ? p->err : "the backup was lost");
	return rc == -ETIMEDOUT || rc == -ECONNRESET || rc == -EPIPE || rc == -ENODATA ? 0 : rc;
}

void ha_primary_request_stop(struct ha_primary *p)
{
	__atomic_store_n(&p->req, REQ_STOP, __ATOMIC_RELEASE);
}

void ha_primary_request_handover(struct ha_primary *p)
{
	__atomic_store_n(&p->req, REQ_HANDOVER, __ATOMIC_RELEASE);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void pct(const double *win, uint64_t n, double *p50, double *p99)
{
	double v[WINDOW];
	unsigned k = n < WINDOW ? (unsigned)n : WINDOW;

	*p50 = *p99 = 0;
	if (!k)
		return;
	memcpy(v, win, k * sizeof(double));
	qsort(v, k, sizeof(double), cmp_double);
	*p50 = v[k / 2];
	*p99 = v[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1];
}

void ha_primary_stats(struct ha_primary *p, struct ha_stats *out)
{
	double now = ferry_now_s();

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&p->lock);
	out->state = p->fenced ? HA_FENCED : p->state;
	out->epochs_acked = p->acked;
	out->epochs_sent = p->sent;
	out->late = p->late;
	out->merged = p->merged;
	/* Between the acks of epoch 1 and of the last: the rate they came at. */
	if (p->t_protected && p->t_ack > p->t_protected && p->acked > 1)
		out->epochs_per_s = (double)(p->acked - 1) / (p->t_ack - p->t_protected);
	out->last_ack_age_ms = p->t_ack ? (now - p->t_ack) * 1e3 : -1;
	pct(p->pause_ms, p->npause, &out->pause_p50_ms, &out->pause_p99_ms);
	pct(p->delay_ms, p->ndelay, &out->output_delay_p50_ms, &out->output_delay_p99_ms);
	if (p->t_protected && p->sent > 1)
		out->bytes_per_epoch = (double)(p->wire - p->wire_sync) / (double)(p->sent - 1);
	out->sync_s = p->sync_s;
	out->throttle_pct = p->throttle_pct;
	out->witness = p->fence ? ha_fence_witness(p->fence) : p->lost_lease ? "lost" : "";
	pthread_mutex_unlock(&p->lock);
}

void ha_primary_free(struct ha_primary *p)
{
	if (!p)
		return;
	witness_end(p, NULL);
	open_output(p); /* not when fenced for good */
	if (p->throttle_pct < 100)
		hyp_domain_set_cap(p->h, p->domid, 0);
	/* Nothing more for the backup: the session's closing bytes would
	 * follow a BYE, or go to a dead link. */
	if (p->push)
		strm_io_push_hold(p->push);
	mig_session_close(p->s);
	strm_io_close(p->push);
	pthread_mutex_destroy(&p->lock);
	free(p->rbuf);
	free(p);
}
