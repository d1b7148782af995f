/* SPDX-License-Identifier: MIT */
/* logdirty private: the backend ops table and the state they share. */
#ifndef LOGDIRTY_INTERNAL_H
#define LOGDIRTY_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "hyp/gmem.h"
#include "logdirty/logdirty.h"

struct ld_tracker;

/*
 * A backend. Generic code (logdirty.c) holds t->lock around collect and
 * peek; enable and disable run without it (nothing else uses the tracker
 * then, except a backend's own asynchronous hooks, against which the
 * backend takes t->lock itself). All hooks return 0 or a negative errno.
 */
struct ld_ops {
	const char *name;
	/* Can this backend serve d? (no side effects) */
	bool (*probe)(struct hyp_domain *d);
	/* Allocate t->priv, turn logging on with an empty log. */
	int (*enable)(struct ld_tracker *t);
	/* Move every page logged since the last collect into t->pending
	 * (bit n = pfn n) and clear/re-protect them in the log. */
	int (*collect)(struct ld_tracker *t);
	/* Optional: OR the pages currently logged into dst without clearing
	 * the log. NULL: generic code uses collect (which hands them to
	 * every consumer, so nothing is lost). */
	int (*peek)(struct ld_tracker *t, uint64_t *dst);
	/* Turn logging off, free t->priv. Must not fail. */
	void (*disable)(struct ld_tracker *t);
};

extern const struct ld_ops ld_ops_kvm_bitmap;
extern const struct ld_ops ld_ops_kvm_ring;
extern const struct ld_ops ld_ops_wp;

/*
 * The one tracker of a domain with logging on, shared by its consumers
 * (struct ld, logdirty.c): a harvest collects what the backend logged and
 * ORs it into every consumer's own bitmap, so each sees what changed
 * since it last looked.
 */
struct ld_tracker {
	const struct ld_ops *ops;
	struct hyp_domain *d;
	uint32_t domid;
	struct hyp_gmem gmem;
	uint64_t npages;
	uint64_t nwords;
	struct ld_tracker *next; /* logdirty.c's list of trackers */
	/* Protected by lock: */
	pthread_mutex_t lock;
	uint64_t *pending; /* logged, not yet handed to the consumers */
	struct ld *consumers;
	void *priv;	   /* the backend's */
	uint64_t enable_ns;
	uint64_t ring_full_events;
};

/* OR nbits bits of src into dst starting at bit dst_off, word at a time. */
void ld_bitmap_or_at(uint64_t *dst, uint64_t dst_nbits, const uint64_t *src,
		     uint64_t nbits, uint64_t dst_off);
/* Set bits [start, end) of map (clipped to nbits). */
void ld_bitmap_set_range(uint64_t *map, uint64_t nbits, uint64_t start,
			 uint64_t end);

#endif
