/* SPDX-License-Identifier: MIT */
/*
 * Log-dirty, generic part: backend selection, the pending set, the caller's
 * bitmap, ferryd's own writes (hyp_gmem_take_host_dirty) and statistics.
 * Nothing here knows which mechanism tracks the writes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bitmap.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"

/* In preference order: the first whose probe accepts the domain wins. */
static const struct ld_ops *const ld_backends[] = {
	&ld_ops_kvm_ring,
	&ld_ops_kvm_bitmap,
	&ld_ops_wp,
};

void ld_bitmap_or_at(uint64_t *dst, uint64_t dst_nbits, const uint64_t *src,
		     uint64_t nbits, uint64_t dst_off)
{
	uint64_t nw = BITMAP_WORDS(nbits), shift = dst_off % 64;
	uint64_t base = dst_off / 64, dwords = BITMAP_WORDS(dst_nbits);

	if (dst_off >= dst_nbits)
		return;
	if (nbits > dst_nbits - dst_off)
		nbits = dst_nbits - dst_off;
	nw = BITMAP_WORDS(nbits);
	for (uint64_t i = 0; i < nw; i++) {
		uint64_t w = src[i];

		if (!w)
			continue;
		if (i == nw - 1 && nbits % 64)
			w &= (1ull << (nbits % 64)) - 1;
		if (!shift) {
			dst[base + i] |= w;
			continue;
		}
		dst[base + i] |= w << shift;
		if (base + i + 1 < dwords)
			dst[base + i + 1] |= w >> (64 - shift);
	}
}

void ld_bitmap_set_range(uint64_t *map, uint64_t nbits, uint64_t start,
			 uint64_t end)
{
	if (end > nbits)
		end = nbits;
	while (start < end && start % 64)
		bitmap_set(map, start++);
	while (start + 64 <= end) {
		map[start / 64] = ~0ull;
		start += 64;
	}
	while (start < end)
		bitmap_set(map, start++);
}

static const struct ld_ops *ld_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(ld_backends); i++)
		if (!strcmp(ld_backends[i]->name, name))
			return ld_backends[i];
	return NULL;
}

/* A consumer: its own view of what changed since it last harvested. */
struct ld {
	struct ld_tracker *t;
	struct ld *next;   /* t->consumers */
	uint64_t *mine;	   /* handed to this consumer, not yet harvested */
	uint64_t *scratch; /* ld_peek's working copy */
	/* statistics, under t->lock */
	uint64_t t_enable_ns, t_last_ns, stat_interval_ns;
	uint64_t total_pages, peeks, last_pages;
	uint64_t peek_ns, last_peek_ns;
};

/* The trackers of the domains with logging on; held across enable and
 * disable, so a domain never gets two. */
static pthread_mutex_t ld_trackers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ld_tracker *ld_trackers;

/* t->lock held: hands what the backend logged (and ferryd's own writes)
 * to every consumer. */
static int ld_distribute(struct ld_tracker *t)
{
	int ret = t->ops->collect(t);

	/* What was collected stays pending for the next call. */
	if (ret)
		return ret;
	hyp_gmem_take_host_dirty(t->d, t->pending);
	for (struct ld *c = t->consumers; c; c = c->next)
		for (uint64_t i = 0; i < t->nwords; i++)
			c->mine[i] |= t->pending[i];
	memset(t->pending, 0, t->nwords * sizeof(uint64_t));
	return 0;
}

static void ld_tracker_free(struct ld_tracker *t)
{
	pthread_mutex_destroy(&t->lock);
	free(t->pending);
	free(t);
}

/* A new tracker for d with backend ops, logging on. Under ld_trackers_lock. */
static int ld_tracker_start(struct hyp_domain *d, const struct ld_ops *ops,
			    struct ld_tracker **out)
{
	struct ld_tracker *t;
	uint64_t t0 = ferry_now_ns();
	int ret;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ops = ops;
	t->d = d;
	t->domid = hyp_domain_id(d);
	hyp_domain_gmem(d, &t->gmem);
	t->npages = t->gmem.npages;
	t->nwords = BITMAP_WORDS(t->npages);
	t->pending = calloc(t->nwords ? t->nwords : 1, sizeof(uint64_t));
	if (!t->pending) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	ret = ops->enable(t);
	if (ret) {
		log_err("logdirty: d%u: enabling %s failed: %s", t->domid,
			ops->name, ferry_strerror(ret));
		ld_tracker_free(t);
		return ret;
	}
	t->enable_ns = ferry_now_ns() - t0;
	log_info("logdirty: d%u: %s on, %llu pages, %.3f ms", t->domid,
		 ops->name, (unsigned long long)t->npages,
		 (double)t->enable_ns / 1e6);
	t->next = ld_trackers;
	ld_trackers = t;
	*out = t;
	return 0;
}

/* A consumer of t whose log starts empty. Under ld_trackers_lock. */
static int ld_consumer_add(struct ld_tracker *t, struct ld **out)
{
	struct ld *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	c->t = t;
	c->mine = calloc(t->nwords ? t->nwords : 1, sizeof(uint64_t));
	c->scratch = calloc(t->nwords ? t->nwords : 1, sizeof(uint64_t));
	if (!c->mine || !c->scratch) {
		ret = -ENOMEM;
		goto err;
	}
	/* The others get what was logged so far; this one starts empty:
	 * ferryd's earlier writes, and whatever a backend logged while
	 * turning on, predate it. */
	pthread_mutex_lock(&t->lock);
	ret = ld_distribute(t);
	if (!ret) {
		c->next = t->consumers;
		t->consumers = c;
		c->t_enable_ns = c->t_last_ns = ferry_now_ns();
	}
	pthread_mutex_unlock(&t->lock);
	if (ret) {
		log_err("logdirty: d%u: %s: reading the log for a new consumer: %s",
			t->domid, t->ops->name, ferry_strerror(ret));
		goto err;
	}
	*out = c;
	return 0;

err:
	free(c->scratch);
	free(c->mine);
	free(c);
	return ret;
}

/* Logging off: t leaves the list and is freed. Under ld_trackers_lock,
 * without t->lock (a backend's hooks take it). */
static void ld_tracker_stop(struct ld_tracker *t)
{
	struct ld_tracker **pp;

	for (pp = &ld_trackers; *pp != t; pp = &(*pp)->next)
		;
	*pp = t->next;
	t->ops->disable(t);
	ld_tracker_free(t);
}

static struct ld_tracker *ld_tracker_of(struct hyp_domain *d)
{
	for (struct ld_tracker *t = ld_trackers; t; t = t->next)
		if (t->d == d)
			return t;
	return NULL;
}

/* The domain's tracker (started with ops, or the first backend whose
 * probe accepts d when ops is NULL) and a new consumer of it. */
static int ld_open(struct hyp_domain *d, const struct ld_ops *ops, struct ld **out)
{
	struct ld_tracker *t;
	bool fresh = false;
	int ret = 0;

	pthread_mutex_lock(&ld_trackers_lock);
	t = ld_tracker_of(d);
	if (t && ops && t->ops != ops) {
		log_err("logdirty: d%u: %s asked while %s tracks the domain",
			t->domid, ops->name, t->ops->name);
		ret = -EBUSY;
	}
	for (size_t i = 0; !t && !ops && i < ARRAY_SIZE(ld_backends); i++)
		if (ld_backends[i]->probe(d))
			ops = ld_backends[i];
	if (!t && !ops) {
		log_err("logdirty: d%u: no log-dirty backend for a %s domain",
			hyp_domain_id(d), hyp_domain_backend_name(d));
		ret = -ENOTSUP;
	}
	if (!ret && !t) {
		ret = ld_tracker_start(d, ops, &t);
		fresh = true;
	}
	if (!ret) {
		ret = ld_consumer_add(t, out);
		if (ret && fresh)
			ld_tracker_stop(t);
	}
	pthread_mutex_unlock(&ld_trackers_lock);
	return ret;
}

int ld_enable(struct hyp_domain *d, struct ld **out)
{
	return ld_open(d, NULL, out);
}

int ld_enable_backend(struct hyp_domain *d, const char *backend,
		      struct ld **out)
{
	const struct ld_ops *ops = ld_find(backend);

	if (!ops || !ops->probe(d)) {
		log_err("logdirty: d%u: backend %s cannot serve a %s domain",
			hyp_domain_id(d), backend, hyp_domain_backend_name(d));
		return -ENOTSUP;
	}
	return ld_open(d, ops, out);
}

/*
 * ORs src (nwords words) into the caller's bitmap, zeroing src as it goes
 * if clear. Returns the number of set bits in src; -ERANGE through *err if
 * any lies at or beyond npages.
 */
static uint64_t ld_drain(uint64_t nwords, uint64_t *src, bool clear,
			 uint64_t *bitmap, uint64_t npages, int *err)
{
	uint64_t n = 0, full = npages / 64, tail = npages % 64;

	for (uint64_t i = 0; i < nwords; i++) {
		uint64_t w = src[i];

		if (!w)
			continue;
		n += (uint64_t)__builtin_popcountll(w);
		if (clear)
			src[i] = 0;
		if (i < full) {
			bitmap[i] |= w;
			continue;
		}
		if (i == full && tail) {
			bitmap[i] |= w & ((1ull << tail) - 1);
			if (w >> tail)
				*err = -ERANGE;
			continue;
		}
		*err = -ERANGE;
	}
	return n;
}

int ld_peek_clean(struct ld *ld, uint64_t *bitmap, uint64_t npages,
		  uint64_t *count)
{
	struct ld_tracker *t = ld->t;
	uint64_t t0, t1, n;
	int ret, err = 0;

	pthread_mutex_lock(&t->lock);
	t0 = ferry_now_ns();
	ret = ld_distribute(t);
	if (ret) {
		pthread_mutex_unlock(&t->lock);
		log_err("logdirty: d%u: %s peek failed: %s", t->domid,
			t->ops->name, ferry_strerror(ret));
		return ret;
	}
	n = ld_drain(t->nwords, ld->mine, true, bitmap, npages, &err);
	t1 = ferry_now_ns();

	ld->peeks++;
	ld->last_pages = n;
	ld->total_pages += n;
	ld->last_peek_ns = t1 - t0;
	ld->peek_ns += t1 - t0;
	/* The interval ends when the log was read, i.e. at t0. */
	ld->stat_interval_ns = t0 - ld->t_last_ns;
	ld->t_last_ns = t0;
	pthread_mutex_unlock(&t->lock);

	if (err)
		log_err("logdirty: d%u: dirty pages beyond the caller's %llu",
			t->domid, (unsigned long long)npages);
	if (count)
		*count = n;
	return err;
}

int ld_peek(struct ld *ld, uint64_t *bitmap, uint64_t npages,
	    uint64_t *count)
{
	struct ld_tracker *t = ld->t;
	uint64_t t0, n = 0;
	int ret, err = 0;

	pthread_mutex_lock(&t->lock);
	t0 = ferry_now_ns();
	if (t->ops->peek) {
		/* Ferryd's writes go to every consumer; the log stays. */
		hyp_gmem_take_host_dirty(t->d, t->pending);
		for (uint64_t i = 0; i < t->nwords; i++)
			ld->scratch[i] = ld->mine[i] | t->pending[i];
		ret = t->ops->peek(t, ld->scratch);
		if (!ret)
			n = ld_drain(t->nwords, ld->scratch, true, bitmap, npages, &err);
		else
			memset(ld->scratch, 0, t->nwords * sizeof(uint64_t));
	} else {
		ret = ld_distribute(t);
		if (!ret)
			n = ld_drain(t->nwords, ld->mine, false, bitmap, npages, &err);
	}
	ld->peek_ns += ferry_now_ns() - t0;
	pthread_mutex_unlock(&t->lock);

	if (ret) {
		log_err("logdirty: d%u: %s peek failed: %s", t->domid,
			t->ops->name, ferry_strerror(ret));
		return ret;
	}
	if (err)
		log_err("logdirty: d%u: dirty pages beyond the caller's %llu",
			t->domid, (unsigned long long)npages);
	if (count)
		*count = n;
	return err;
}

void ld_disable(struct ld *ld)
{
	struct ld_tracker *t;
	struct ld **pp;
	bool last;

	if (!ld)
		return;
	t = ld->t;
	pthread_mutex_lock(&ld_trackers_lock);
	pthread_mutex_lock(&t->lock);
	for (pp = &t->consumers; *pp != ld; pp = &(*pp)->next)
		;
	*pp = ld->next;
	last = !t->consumers;
	pthread_mutex_unlock(&t->lock);
	log_info("logdirty: d%u: %s %s after %llu peeks, %llu pages", t->domid,
		 t->ops->name, last ? "off" : "consumer gone", (unsigned long long)ld->peeks,
		 (unsigned long long)ld->total_pages);
	if (last)
		ld_tracker_stop(t);
	pthread_mutex_unlock(&ld_trackers_lock);
	free(ld->scratch);
	free(ld->mine);
	free(ld);
}

void ld_stats(struct ld *ld, struct ld_stats *out)
{
	struct ld_tracker *t = ld->t;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&t->lock);
	out->backend = t->ops->name;
	out->npages = t->npages;
	out->total_pages = ld->total_pages;
	out->peeks = ld->peeks;
	out->last_pages = ld->last_pages;
	out->last_interval_s = (double)ld->stat_interval_ns / 1e9;
	if (ld->stat_interval_ns)
		out->last_rate_pps = (double)ld->last_pages /
				     out->last_interval_s;
	out->since_enable_s = (double)(ld->t_last_ns - ld->t_enable_ns) / 1e9;
	if (ld->t_last_ns > ld->t_enable_ns)
		out->avg_rate_pps = (double)ld->total_pages /
				    out->since_enable_s;
	out->peek_time_s = (double)ld->peek_ns / 1e9;
	out->last_peek_time_s = (double)ld->last_peek_ns / 1e9;
	out->enable_time_s = (double)t->enable_ns / 1e9;
	out->ring_full_events = t->ring_full_events;
	pthread_mutex_unlock(&t->lock);
}

const char *ld_backend_name(struct ld *ld)
{
	return ld->t->ops->name;
}

uint64_t ld_npages(struct ld *ld)
{
	return ld->t->npages;
}
