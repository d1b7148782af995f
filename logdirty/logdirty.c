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
#include "common/err.h"
#include "common/log.h"
#include "internal.h"

/* In preference order: the first whose probe accepts the domain wins. */
static const struct ld_ops *const ld_backends[] = {
	&ld_ops_kvm_ring,
	&ld_ops_kvm_bitmap,
	&ld_ops_wp,
};

uint64_t ld_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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

static int ld_start(struct hyp_domain *d, const struct ld_ops *ops,
		    struct ld **out)
{
	struct ld *ld;
	uint64_t t0 = ld_now_ns();
	int ret;

	ld = calloc(1, sizeof(*ld));
	if (!ld)
		return -ENOMEM;
	ld->ops = ops;
	ld->d = d;
	ld->domid = hyp_domain_id(d);
	hyp_domain_gmem(d, &ld->gmem);
	ld->npages = ld->gmem.npages;
	ld->nwords = BITMAP_WORDS(ld->npages);
	ret = -ENOMEM;
	ld->pending = calloc(ld->nwords ? ld->nwords : 1, sizeof(uint64_t));
	ld->scratch = calloc(ld->nwords ? ld->nwords : 1, sizeof(uint64_t));
	if (!ld->pending || !ld->scratch)
		goto err_free;
	ret = pthread_mutex_init(&ld->lock, NULL);
	if (ret) {
		ret = -ret;
		goto err_free;
	}

	ret = ops->enable(ld);
	if (ret) {
		log_err("logdirty: dom%u: enabling %s failed: %s", ld->domid,
			ops->name, ferry_strerror(ret));
		goto err_mutex;
	}
	/* The log starts empty: ferryd's earlier writes, and whatever a
	 * backend logged while turning on, predate enable. */
	pthread_mutex_lock(&ld->lock);
	hyp_gmem_take_host_dirty(d, ld->pending);
	memset(ld->pending, 0, ld->nwords * sizeof(uint64_t));
	ld->t_enable_ns = ld->t_last_ns = ld_now_ns();
	ld->enable_ns = ld->t_enable_ns - t0;
	pthread_mutex_unlock(&ld->lock);

	log_info("logdirty: dom%u: %s on, %llu pages, %.3f ms", ld->domid,
		 ops->name, (unsigned long long)ld->npages,
		 (double)ld->enable_ns / 1e6);
	*out = ld;
	return 0;

err_mutex:
	pthread_mutex_destroy(&ld->lock);
err_free:
	free(ld->scratch);
	free(ld->pending);
	free(ld);
	return ret;
}

int ld_enable(struct hyp_domain *d, struct ld **out)
{
	for (size_t i = 0; i < ARRAY_SIZE(ld_backends); i++)
		if (ld_backends[i]->probe(d))
			return ld_start(d, ld_backends[i], out);
	log_err("logdirty: dom%u: no log-dirty backend for a %s domain",
		hyp_domain_id(d), hyp_domain_backend_name(d));
	return -ENOTSUP;
}

int ld_enable_backend(struct hyp_domain *d, const char *backend,
		      struct ld **out)
{
	const struct ld_ops *ops = ld_find(backend);

	if (!ops || !ops->probe(d)) {
		log_err("logdirty: dom%u: backend %s cannot serve a %s domain",
			hyp_domain_id(d), backend, hyp_domain_backend_name(d));
		return -ENOTSUP;
	}
	return ld_start(d, ops, out);
}

/*
 * ORs src (ld->nwords words) into the caller's bitmap, zeroing src as it
 * goes if clear. Returns the number of set bits in src; -ERANGE through *err
 * if any lies at or beyond npages.
 */
static uint64_t ld_drain(struct ld *ld, uint64_t *src, bool clear,
			 uint64_t *bitmap, uint64_t npages, int *err)
{
	uint64_t n = 0, full = npages / 64, tail = npages % 64;

	for (uint64_t i = 0; i < ld->nwords; i++) {
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
	uint64_t t0, t1, n;
	int ret, err = 0;

	pthread_mutex_lock(&ld->lock);
	t0 = ld_now_ns();
	ret = ld->ops->collect(ld);
	if (ret) {
		/* What was collected stays pending for the next call. */
		pthread_mutex_unlock(&ld->lock);
		log_err("logdirty: dom%u: %s peek failed: %s", ld->domid,
			ld->ops->name, ferry_strerror(ret));
		return ret;
	}
	hyp_gmem_take_host_dirty(ld->d, ld->pending);
	n = ld_drain(ld, ld->pending, true, bitmap, npages, &err);
	t1 = ld_now_ns();

	ld->peeks++;
	ld->last_pages = n;
	ld->total_pages += n;
	ld->last_peek_ns = t1 - t0;
	ld->peek_ns += t1 - t0;
	/* The interval ends when the log was read, i.e. at t0. */
	ld->stat_interval_ns = t0 - ld->t_last_ns;
	ld->t_last_ns = t0;
	pthread_mutex_unlock(&ld->lock);

	if (err)
		log_err("logdirty: dom%u: dirty pages beyond the caller's %llu",
			ld->domid, (unsigned long long)npages);
	if (count)
		*count = n;
	return err;
}

int ld_peek(struct ld *ld, uint64_t *bitmap, uint64_t npages,
	    uint64_t *count)
{
	uint64_t t0, n = 0;
	int ret, err = 0;

	pthread_mutex_lock(&ld->lock);
	t0 = ld_now_ns();
	hyp_gmem_take_host_dirty(ld->d, ld->pending);
	if (ld->ops->peek) {
		memcpy(ld->scratch, ld->pending, ld->nwords * sizeof(uint64_t));
		ret = ld->ops->peek(ld, ld->scratch);
		if (!ret)
			n = ld_drain(ld, ld->scratch, true, bitmap, npages,
				     &err);
		else
			memset(ld->scratch, 0, ld->nwords * sizeof(uint64_t));
	} else {
		ret = ld->ops->collect(ld);
		if (!ret)
			n = ld_drain(ld, ld->pending, false, bitmap, npages,
				     &err);
	}
	ld->peek_ns += ld_now_ns() - t0;
	pthread_mutex_unlock(&ld->lock);

	if (ret) {
		log_err("logdirty: dom%u: %s peek failed: %s", ld->domid,
			ld->ops->name, ferry_strerror(ret));
		return ret;
	}
	if (err)
		log_err("logdirty: dom%u: dirty pages beyond the caller's %llu",
			ld->domid, (unsigned long long)npages);
	if (count)
		*count = n;
	return err;
}

void ld_disable(struct ld *ld)
{
	if (!ld)
		return;
	ld->ops->disable(ld);
	log_info("logdirty: dom%u: %s off after %llu peeks, %llu pages",
		 ld->domid, ld->ops->name, (unsigned long long)ld->peeks,
		 (unsigned long long)ld->total_pages);
	pthread_mutex_destroy(&ld->lock);
	free(ld->scratch);
	free(ld->pending);
	free(ld);
}

void ld_stats(struct ld *ld, struct ld_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&ld->lock);
	out->backend = ld->ops->name;
	out->npages = ld->npages;
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
	out->enable_time_s = (double)ld->enable_ns / 1e9;
	out->ring_full_events = ld->ring_full_events;
	pthread_mutex_unlock(&ld->lock);
}

const char *ld_backend_name(struct ld *ld)
{
	return ld->ops->name;
}

uint64_t ld_npages(struct ld *ld)
{
	return ld->npages;
}
