/* SPDX-License-Identifier: MIT */
/*
 * Log-dirty paging with Xen's shadow-op semantics
 * (XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY / PEEK / CLEAN / OFF).
 *
 * A domain with logging on has one tracker and any number of consumers
 * (a migration and a snapshot schedule at once), each a struct ld from
 * ld_enable() with its own view: a harvest (ld_peek_clean) collects what
 * the tracker logged into every consumer's own bitmap and reports the
 * caller's, so each sees every page dirtied since its own last harvest.
 * Tracking goes off when the last consumer leaves (ld_disable). One
 * consumer is the case of Xen's shadow ops. The backend is chosen when
 * the first consumer turns tracking on, from the domain:
 *   kvm-ring    a kvm domain created with logdirty = "ring" (per-vCPU
 *               KVM dirty rings, harvested on peek and on RING_FULL exits)
 *   kvm-bitmap  any other kvm domain (KVM dirty bitmap with
 *               MANUAL_DIRTY_LOG_PROTECT2 + INITIALLY_SET, chunked CLEAR)
 *   wp          a soft domain (userfaultfd asynchronous write-protect over
 *               the guest mapping, harvested with PAGEMAP_SCAN)
 *
 * Semantics, per consumer: its log starts empty when ld_enable() returns. The first
 * ld_peek_clean() reports the pages written after ld_enable() returned
 * (plus possibly some written while it ran); each later one reports the
 * pages written since the previous ld_peek_clean(). Writes ferryd makes
 * through hyp_gmem_write()/hyp_gmem_mark_dirty() are included. A page that
 * was written is never missed; a page may be reported although its
 * content did not change (e.g. rewritten with the same bytes).
 *
 * Threading: peeks and stats are serialised internally per domain;
 * the vCPUs may run while peeking (the kvm-ring backend also harvests from
 * vCPU threads on KVM_EXIT_DIRTY_RING_FULL). ld_disable() must not run
 * concurrently with another call on the same ld.
 *
 * Memory the domain gains or gives back while logging (a balloon, which
 * remaps part of the guest mapping) stays covered: hyp marks the pages
 * it remapped dirty, and the wp backend's userfaultfd owner registers
 * and write-protects them again (hyp/uffd.h).
 */
#ifndef LOGDIRTY_LOGDIRTY_H
#define LOGDIRTY_LOGDIRTY_H

#include <stdint.h>

struct hyp_domain;
struct ld;

struct ld_stats {
	const char *backend;	   /* "kvm-bitmap", "kvm-ring" or "wp" */
	uint64_t npages;	   /* guest-physical pages covered */
	uint64_t total_pages;	   /* dirty pages reported by all peek-cleans */
	uint64_t peeks;		   /* ld_peek_clean() calls */
	uint64_t last_pages;	   /* pages reported by the last peek-clean */
	double last_interval_s;	   /* between the last two peek-cleans
				    * (the first: since enable) */
	double last_rate_pps;	   /* last_pages / last_interval_s */
	double since_enable_s;	   /* from enable to the last peek-clean */
	double avg_rate_pps;	   /* total_pages / since_enable_s */
	double peek_time_s;	   /* total time spent inside peeks */
	double last_peek_time_s;   /* time spent in the last peek-clean */
	double enable_time_s;	   /* time ld_enable() took */
	uint64_t ring_full_events; /* kvm-ring: harvests run by RING_FULL */
};

/*
 * Turns log-dirty on for domain d and returns the log through *out (owned by
 * the caller, freed by ld_disable()). The caller keeps its reference on d
 * (hyp_domain_get) until after ld_disable(). A second call for the same
 * domain adds a consumer to the tracker the first started. Errors: -EBUSY
 * if the domain's KVM state refuses, -ENOTSUP when the host lacks the
 * mechanism, -ENOMEM, or the errno of the failing call.
 */
int ld_enable(struct hyp_domain *d, struct ld **out);

/*
 * Same with the backend forced by name ("kvm-bitmap", "kvm-ring", "wp");
 * -ENOTSUP if that backend cannot serve the domain, -EBUSY if another
 * already tracks it. For tests and benches.
 */
int ld_enable_backend(struct hyp_domain *d, const char *backend,
		      struct ld **out);

/*
 * PEEK+CLEAN: ORs into bitmap (npages bits, bit n = guest pfn n, as
 * common/bitmap.h) every page dirtied since the previous peek-clean (or
 * enable) and clears the log. *count (may be NULL) = the number of distinct
 * pages this call reported (Xen's dirty_count), whether or not their bits
 * were already set in bitmap. npages may be smaller than the domain's
 * page count only if no page beyond it can be dirty; pages beyond npages are
 * dropped with an error (-ERANGE) after the bitmap is filled. Ownership:
 * bitmap stays the caller's.
 */
int ld_peek_clean(struct ld *ld, uint64_t *bitmap, uint64_t npages,
		  uint64_t *count);

/*
 * PEEK: like ld_peek_clean() but leaves the log as is: the pages reported
 * are reported again by the next ld_peek_clean(). Cheap for kvm-bitmap
 * (GET without CLEAR) and wp (scan without re-protect); kvm-ring must
 * harvest its rings (the entries are kept in the log's pending set).
 */
int ld_peek(struct ld *ld, uint64_t *bitmap, uint64_t npages,
	    uint64_t *count);

/* The consumer leaves and ld is freed; the last one turns logging OFF.
 * NULL is a no-op. */
void ld_disable(struct ld *ld);

void ld_stats(struct ld *ld, struct ld_stats *out);
const char *ld_backend_name(struct ld *ld);
/* Number of guest-physical pages the log covers (hyp_gmem npages). */
uint64_t ld_npages(struct ld *ld);

#endif
