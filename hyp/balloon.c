// SPDX-License-Identifier: MIT
/*
 * Ballooning, as Xen's memory_op reservation calls: the guest gives gfns
 * back (XENMEM_decrease_reservation: their frames return to the pool, the
 * pool file punched) and takes them again (XENMEM_populate_physmap),
 * bounded by the domain's max_pages (xl mem-max). The physmap itself does
 * not grow: populate refills holes below mem_bytes, the range KVM's memslot
 * covers, so a domain holds at most min(memory, maxmem), and mem-max above
 * the physmap is refused rather than accepted and never reached.
 */
#include <errno.h>
#include <string.h>

#include "common/bitmap.h"
#include "common/compiler.h"
#include "common/log.h"
#include "internal.h"

#define EXTENT_CHUNK 256 /* gfns read from the guest at a time */

/* Length of the leading run of consecutive gfns in g[0..n) inside the
 * physmap whose population is populated. Under p2m_lock. */
static uint64_t run_len(struct hyp_domain *d, const uint64_t *g, uint64_t n, bool populated)
{
	uint64_t pages = d->mem_bytes >> PAGE_SHIFT, k = 0;

	while (k < n && g[k] == g[0] + k && g[k] < pages &&
	       !hyp__p2m_hole(d, g[k]) == populated)
		k++;
	return k;
}

/* Under p2m_lock; gfns [gfn, gfn + n) all populated. */
static int decrease_locked(struct hyp_domain *d, uint64_t gfn, uint64_t n)
{
	int err;

	hyp__uffd_remap_begin(d->uffd);
	err = hyp__mem_unpopulate(&d->h->mem, d->domid, d->p2m, d->hva, gfn, n);
	hyp__uffd_remap_end(d->uffd, gfn, n);
	if (err)
		return err;
	hyp__p2m_set_locked(d, gfn, n, HYP_P2M_HOLE);
	d->nr_pages -= n;
	/* The page changed (to a hole): a migration in progress resends it
	 * (zeros) and its last round lists the hole. */
	hyp_gmem_mark_dirty(d, gfn << PAGE_SHIFT, n << PAGE_SHIFT);
	return 0;
}

/* Under p2m_lock; gfns [gfn, gfn + n) all holes. */
static int populate_locked(struct hyp_domain *d, uint64_t gfn, uint64_t n)
{
	int err;

	hyp__uffd_remap_begin(d->uffd);
	err = hyp__mem_populate(&d->h->mem, d->domid, d->p2m, d->hva, gfn, n);
	hyp__uffd_remap_end(d->uffd, gfn, n);
	if (err)
		return err;
	hyp__p2m_set_locked(d, gfn, n, HYP_P2M_RAM);
	d->nr_pages += n;
	hyp_gmem_mark_dirty(d, gfn << PAGE_SHIFT, n << PAGE_SHIFT);
	return 0;
}

/*
 * Xen's semantics: the result is the number of extents done. A gfn that is
 * not populated (decrease), already populated or outside the physmap
 * (populate), the maximum reached or the pool empty stops the batch there;
 * so does an unreadable extent list. Another domain's reservation, from an
 * unprivileged guest, is refused by doing nothing, and only order-0
 * extents are taken.
 */
static int64_t reservation(struct hyp_domain *d, uint64_t op, uint64_t arg)
{
	struct xen_memory_reservation r;
	uint64_t gfns[EXTENT_CHUNK], done = 0;
	bool dec = op == XENMEM_decrease_reservation;

	if (hyp_gmem_read(d, arg, &r, sizeof(r)))
		return -XEN_EFAULT;
	if ((r.domid != DOMID_SELF && r.domid != d->domid) || r.extent_order)
		return 0;
	while (done < r.nr_extents) {
		uint64_t k = r.nr_extents - done, i = 0;
		bool full = false;

		if (k > EXTENT_CHUNK)
			k = EXTENT_CHUNK;
		if (hyp_gmem_read(d, r.extent_start + done * sizeof(uint64_t), gfns,
				  k * sizeof(uint64_t)))
			break;
		pthread_mutex_lock(&d->p2m_lock);
		while (i < k) {
			uint64_t n = run_len(d, gfns + i, k - i, dec);

			if (!dec) {
				uint64_t room = d->nr_pages < d->max_pages ?
							d->max_pages - d->nr_pages : 0;

				if (n > room) {
					n = room;
					full = true;
				}
			}
			if (!n || (dec ? decrease_locked(d, gfns[i], n)
				       : populate_locked(d, gfns[i], n)))
				break;
			i += n;
		}
		pthread_mutex_unlock(&d->p2m_lock);
		done += i;
		if (full)
			log_debug("d%u: populate_physmap past max_pages %llu refused (%llu of "
				 "%llu extents done)", d->domid,
				 (unsigned long long)d->max_pages, (unsigned long long)done,
				 (unsigned long long)r.nr_extents);
		if (i < k)
			break;
	}
	return (int64_t)done;
}

/* XENMEM_current_reservation / maximum_reservation: arg points to a
 * domid_t; pages held or the maximum. */
static int64_t reservation_size(struct hyp_domain *d, uint64_t op, uint64_t arg)
{
	uint16_t domid;
	uint64_t v;

	if (hyp_gmem_read(d, arg, &domid, sizeof(domid)))
		return -XEN_EFAULT;
	if (domid != DOMID_SELF && domid != d->domid)
		return -XEN_EPERM; /* Xen's XSM answer to an unprivileged guest */
	pthread_mutex_lock(&d->p2m_lock);
	v = op == XENMEM_current_reservation ? d->nr_pages : d->max_pages;
	pthread_mutex_unlock(&d->p2m_lock);
	return (int64_t)v;
}

int64_t hyp__balloon_memory_op(struct hyp_domain *d, uint64_t op, uint64_t arg)
{
	switch (op) {
	case XENMEM_decrease_reservation:
	case XENMEM_populate_physmap:
		return reservation(d, op, arg);
	case XENMEM_current_reservation:
	case XENMEM_maximum_reservation:
		return reservation_size(d, op, arg);
	default:
		/* increase_reservation is a PV guest's: frames without gfns */
		return -XEN_ENOSYS;
	}
}

int hyp_domain_set_maxmem(struct hyp *h, uint32_t domid, uint64_t max_kb)
{
	struct hyp_domain *d;
	uint64_t pages = max_kb >> 2;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->p2m_lock);
	if (pages < d->nr_pages) {
		log_err("d%u: maxmem %llu KiB is below the %llu KiB the domain holds", domid,
			(unsigned long long)max_kb, (unsigned long long)(d->nr_pages << 2));
		err = -EINVAL;
	} else if (max_kb > d->mem_bytes >> 10) {
		log_err("d%u: maxmem %llu KiB is above the %llu KiB the domain was created with: "
			"its physmap cannot grow",
			domid, (unsigned long long)max_kb,
			(unsigned long long)(d->mem_bytes >> 10));
		err = -ERANGE;
	} else {
		d->max_pages = pages;
	}
	pthread_mutex_unlock(&d->p2m_lock);
	if (!err)
		log_info("d%u: maxmem %llu KiB", domid, (unsigned long long)max_kb);
	hyp_domain_put(d);
	return err;
}

/* ---- gmem.h: save and restore of holes ------------------------------------- */

int hyp_gmem_holes(struct hyp_domain *d, uint64_t *bitmap, uint64_t *count)
{
	hyp_p2m_find(d, HYP_P2M_HOLE, bitmap, count);
	return 0;
}

int hyp_gmem_unpopulate(struct hyp_domain *d, uint64_t pfn, uint64_t npages)
{
	int err = 0;

	if (pfn > d->mem_bytes >> PAGE_SHIFT || npages > (d->mem_bytes >> PAGE_SHIFT) - pfn)
		return -EFAULT;
	pthread_mutex_lock(&d->p2m_lock);
	for (uint64_t g = pfn; g < pfn + npages && !err;) {
		uint64_t n = 1;

		if (hyp__p2m_hole(d, g)) {
			g++;
			continue;
		}
		while (g + n < pfn + npages && !hyp__p2m_hole(d, g + n))
			n++;
		err = decrease_locked(d, g, n);
		g += n;
	}
	pthread_mutex_unlock(&d->p2m_lock);
	return err;
}

int hyp__gmem_fill_holes(struct hyp_domain *d, uint64_t pfn, uint64_t npages)
{
	int err = 0;

	pthread_mutex_lock(&d->p2m_lock);
	for (uint64_t g = pfn; g < pfn + npages && !err;) {
		uint64_t n = 1;

		if (!hyp__p2m_hole(d, g)) {
			g++;
			continue;
		}
		while (g + n < pfn + npages && hyp__p2m_hole(d, g + n))
			n++;
		/* A stream may bring back what the domain gave up meanwhile:
		 * its max is the stream's business (the final holes follow). */
		err = populate_locked(d, g, n);
		g += n;
	}
	pthread_mutex_unlock(&d->p2m_lock);
	return err;
}
