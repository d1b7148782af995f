// SPDX-License-Identifier: MIT
/*
 * The primary's lease keeper: renews the witness lease (ha/witness.c) a
 * few times per TTL on a thread of its own, and fences the domain (one op
 * pause) the moment the lease could expire without a renewal having got
 * through: HA_WITNESS_MARGIN_MS before TTL has passed since the last
 * successful renewal was sent. A later renewal that gets through lifts the
 * fence; a lease found expired never does (the backup may run the domain).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"

struct ha_fence {
	struct hyp *h;
	uint32_t domid;
	struct ha_witness *w;
	void (*event)(void *opaque, bool fenced, const char *why);
	void *opaque;
	pthread_t t;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, fenced, lost;
	bool away;	/* the witness is unreachable: running on the backup's word */
	double ok_sent; /* when the last renewal that got through was sent */
	double word;	/* ha_fence_backup_word's until (under lock) */
};

/* Until when the domain may run: the lease's renewal less its margin (an
 * etcd round trip), or the backup's word less 100 ms (the keeper's wake-up
 * and the pause; its requests never block past the moment to fence). */
static double may_run_until(struct ha_fence *f)
{
	double word;

	pthread_mutex_lock(&f->lock);
	word = f->word;
	pthread_mutex_unlock(&f->lock);
	return fmax(f->ok_sent + HA_WITNESS_TTL_S - HA_WITNESS_MARGIN_MS / 1e3, word - 0.1);
}

/* Whether the witness cannot be reached (ha_fence_witness reads it). */
static void set_away(struct ha_fence *f, bool away)
{
	pthread_mutex_lock(&f->lock);
	f->away = away;
	pthread_mutex_unlock(&f->lock);
}

static void sleep_until(struct ha_fence *f, double t)
{
	struct timespec ts;
	double now = ferry_now_s();

	if (t <= now)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(t - now);
	ts.tv_nsec += (long)(((t - now) - (double)(time_t)(t - now)) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->lock);
	if (!f->stop)
		pthread_cond_timedwait(&f->cond, &f->lock, &ts);
	pthread_mutex_unlock(&f->lock);
}

static void set_fenced(struct ha_fence *f, bool on, const char *why)
{
	int rc = on ? hyp_domain_op_pause(f->h, f->domid) : hyp_domain_op_unpause(f->h, f->domid);

	if (rc) {
		log_err("d%u: remus: cannot %s the domain: %s", f->domid, on ? "fence" : "unfence",
			ferry_strerror(rc));
		if (!on)
			return;
	}
	pthread_mutex_lock(&f->lock);
	f->fenced = on;
	pthread_mutex_unlock(&f->lock);
	log_warn("d%u: remus: %s: %s", f->domid, on ? "fenced (paused)" : "unfenced", why);
	if (f->event)
		f->event(f->opaque, on, why);
}

static void *keeper(void *arg)
{
	struct ha_fence *f = arg;
	const double ttl = HA_WITNESS_TTL_S;
	bool said = false;

	for (;;) {
		double sent, fence_at;
		int rc;

		pthread_mutex_lock(&f->lock);
		if (f->stop) {
			pthread_mutex_unlock(&f->lock);
			break;
		}
		pthread_mutex_unlock(&f->lock);
		fence_at = may_run_until(f);
		if (ferry_now_s() >= fence_at && !f->fenced)
			set_fenced(f, true,
				   "the witness lease could not be renewed in time, and the backup "
				   "does not vouch for it");
		else if (ferry_now_s() < fence_at && f->fenced && f->away && !f->lost)
			set_fenced(f, false, "the backup vouches for it: it cannot take over now");
		if (f->lost) {
			sleep_until(f, ferry_now_s() + 1);
			continue;
		}
		/* Never blocked past the moment to fence (fenced: all the
		 * time a slow witness needs). */
		rc = ha_witness_keepalive(
			f->w, f->fenced ? 0 : (int)fmax(20, (fence_at - ferry_now_s()) * 1e3 - 10),
			&sent);
		if (!rc) {
			f->ok_sent = sent;
			said = false;
			if (f->away)
				log_info("d%u: remus: the witness answers again", f->domid);
			set_away(f, false);
			if (f->fenced)
				set_fenced(f, false, "the witness lease is renewed");
		} else if (rc == -ETIME) {
			char holder[128] = "", state[128] = "";
			bool got = false;

			/* Expired while fenced (the witness was away): the key is
			 * ours again if nobody took it, and then nobody ran the
			 * domain meanwhile; else the backup may run it. */
			set_away(f, false);
			if (!f->fenced)
				set_fenced(f, true, "the witness lease expired");
			sent = ferry_now_s();
			/* A backup that took over and gave the lease back left its
			 * mark in the state. */
			if (!ha_witness_get_state(f->w, state, sizeof(state)) &&
			    ha_witness_moved_on(state)) {
				snprintf(holder, sizeof(holder), "%s", state);
			} else if (!ha_witness_acquire(f->w, &got, holder, sizeof(holder)) && got) {
				/* Again, now that nobody else can write it: a backup
				 * may have taken over and given the lease back since
				 * the state was read. */
				if (!ha_witness_get_state(f->w, state, sizeof(state)) &&
				    !ha_witness_moved_on(state)) {
					f->ok_sent = sent;
					set_fenced(f, false, "the witness lease is taken again");
					continue;
				}
				ha_witness_release(f->w);
				got = false;
				snprintf(holder, sizeof(holder), "%s",
					 state[0] ? state : "the state cannot be read");
			}
			if (!got && holder[0]) {
				pthread_mutex_lock(&f->lock);
				f->lost = true;
				pthread_mutex_unlock(&f->lock);
				log_err("d%u: remus: the witness lease expired (now: %s): the "
					"domain "
					"stays paused here",
					f->domid, holder);
				continue;
			}
			sleep_until(f, ferry_now_s() + 0.05);
			continue;
		} else if (!said) {
			log_warn("d%u: remus: renewing the witness lease: %s: the domain runs "
				 "only while the backup vouches for it",
				 f->domid, ha_witness_error(f->w));
			said = true;
			set_away(f, true);
		}
		/* Four renewals a TTL; never past the moment to fence. */
		fence_at = may_run_until(f);
		sleep_until(f, f->fenced ? ferry_now_s() + 0.05
					 : (fence_at < ferry_now_s() + ttl / 4
						    ? fence_at
						    : ferry_now_s() + ttl / 4));
	}
	return NULL;
}

int ha_fence_start(struct hyp *h, uint32_t domid, struct ha_witness *w, double ok_sent,
		   void (*event)(void *opaque, bool fenced, const char *why), void *opaque,
		   struct ha_fence **out)
{
	struct ha_fence *f = calloc(1, sizeof(*f));
	int rc;

	if (!f)
		return -ENOMEM;
	f->h = h;
	f->domid = domid;
	f->w = w;
	f->event = event;
	f->opaque = opaque;
	f->ok_sent = ok_sent;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	rc = -pthread_create(&f->t, NULL, keeper, f);
	if (rc) {
		free(f);
		return rc;
	}
	*out = f;
	return 0;
}

void ha_fence_backup_word(struct ha_fence *f, double until)
{
	pthread_mutex_lock(&f->lock);
	if (until > f->word)
		f->word = until;
	pthread_mutex_unlock(&f->lock);
}

const char *ha_fence_witness(struct ha_fence *f)
{
	const char *w;

	pthread_mutex_lock(&f->lock);
	w = f->lost ? "lost" : f->away ? "away" : "held";
	pthread_mutex_unlock(&f->lock);
	return w;
}

bool ha_fence_lost(struct ha_fence *f)
{
	bool lost;

	pthread_mutex_lock(&f->lock);
	lost = f->lost;
	pthread_mutex_unlock(&f->lock);
	return lost;
}

bool ha_fence_stop(struct ha_fence *f, bool may_lift)
{
	bool stays;

	if (!f)
		return false;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->t, NULL);
	/* A fence the lease still allows lifting goes with the keeper. */
	if (may_lift && f->fenced && !f->lost && !hyp_domain_op_unpause(f->h, f->domid))
		f->fenced = false;
	else if (!may_lift && !f->fenced)
		set_fenced(f, true, "the witness lease could not be shown to be ours");
	stays = f->fenced;
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	free(f);
	return stays;
}
