// SPDX-License-Identifier: MIT
/* Which guest frames hold data: what a save must send. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bitmap.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"

struct populated {
	uint64_t *bitmap, n;
};

static void mark_populated(void *opaque, const struct hyp__run *r, uint64_t first, uint64_t last)
{
	struct populated *p = opaque;

	for (uint64_t f = first; f < last; f++) {
		uint64_t g = r->gfn + (f - r->mfn);

		if (!bitmap_test(p->bitmap, g)) {
			bitmap_set(p->bitmap, g);
			p->n++;
		}
	}
}

/*
 * A frame the guest never wrote is a hole in the pool's memfd: SEEK_DATA
 * finds the written ones without reading gigabytes of zeros, in one sweep
 * of the domain's runs of frames (hyp__mem_runs_data). PENDING gfns count
 * as populated.
 */
int hyp_gmem_populated(struct hyp_domain *d, uint64_t *bitmap, uint64_t *count)
{
	struct populated p = {.bitmap = bitmap};
	struct hyp__run *runs;
	size_t nruns;
	int r;

	/* A lazy restore's pages still to come are holes of the pool too, yet
	 * hold the guest's data: a save reads them (through the guest
	 * mapping, whose faults fetch them) like any other. They are taken
	 * first: a page that arrives later is data in the pool before the
	 * scan below reaches it, where one that arrived behind the scan and
	 * left the pending set before this was counted by neither. */
	hyp_p2m_find(d, HYP_P2M_PENDING, bitmap, &p.n);
	r = hyp__mem_runs(d->p2m, d->mem_bytes >> PAGE_SHIFT, &runs, &nruns);
	if (r) {
		log_err("d%u: listing its frames: %s", d->domid, ferry_strerror(-r));
		return r;
	}
	r = hyp__mem_runs_data(&d->h->mem, runs, nruns, mark_populated, &p);
	free(runs);
	if (r < 0) {
		log_err("d%u: SEEK_DATA in the memory pool: %s", d->domid, ferry_strerror(-r));
		return r;
	}
	if (count)
		*count = p.n;
	return 0;
}

uint64_t hyp_domain_callback_param(struct hyp_domain *d)
{
	return d->callback_vector;
}

/* A restore's first write of gfns [pfn, pfn + npages): each run of them
 * never written gets warm frames where the pool has some. */
static void take_warm(struct hyp_domain *d, uint64_t pfn, uint64_t npages)
{
	pthread_mutex_lock(&d->p2m_lock);
	for (uint64_t g = pfn; g < pfn + npages;) {
		uint64_t n = 1;

		if (!bitmap_test(d->unwritten, g)) {
			g++;
			continue;
		}
		while (g + n < pfn + npages && bitmap_test(d->unwritten, g + n))
			n++;
		hyp__uffd_remap_begin(d->uffd);
		hyp__mem_swap_warm(&d->h->mem, d->domid, d->p2m, d->hva, g, n);
		hyp__uffd_remap_end(d->uffd, g, n);
		for (uint64_t k = 0; k < n; k++)
			bitmap_clear(d->unwritten, g + k);
		g += n;
	}
	pthread_mutex_unlock(&d->p2m_lock);
}

int hyp_gmem_fill_pending(struct hyp_domain *d, uint64_t pfn, const void *page)
{
	int err = 0;
	ssize_t w;

	if (pfn >= d->mem_bytes >> PAGE_SHIFT)
		return -EFAULT;
	pthread_mutex_lock(&d->p2m_lock);
	if (d->p2m_type[pfn] != HYP_P2M_PENDING) {
		err = -EEXIST;
		goto out;
	}
	w = pwrite(d->h->mem.memfd, page, PAGE_SIZE, (off_t)((uint64_t)d->p2m[pfn] << PAGE_SHIFT));
	if (w != PAGE_SIZE) {
		err = w < 0 ? -errno : -EIO;
		log_err("d%u: writing pfn 0x%llx into the pool: %s", d->domid,
			(unsigned long long)pfn, ferry_strerror(-err));
		goto out;
	}
	d->p2m_type[pfn] = HYP_P2M_RAM;
out:
	pthread_mutex_unlock(&d->p2m_lock);
	return err;
}

int hyp_gmem_load(struct hyp_domain *d, uint64_t pfn, const void *data, uint64_t npages)
{
	const uint8_t *src = data;
	int fd = d->h->mem.memfd, err;

	if (pfn > (d->mem_bytes >> PAGE_SHIFT) || npages > (d->mem_bytes >> PAGE_SHIFT) - pfn)
		return -EFAULT;
	err = hyp__gmem_fill_holes(d, pfn, npages);
	if (err)
		return err;
	if (d->unwritten)
		take_warm(d, pfn, npages);
	/* Writing the pool file allocates its pages without a page fault per
	 * page through the guest mapping: restore's bulk of the work. */
	while (npages) {
		uint64_t mfn = d->p2m[pfn], n = 1;
		ssize_t w;

		while (n < npages && d->p2m[pfn + n] == mfn + n)
			n++;
		w = pwrite(fd, src, n << PAGE_SHIFT, (off_t)(mfn << PAGE_SHIFT));
		if (w != (ssize_t)(n << PAGE_SHIFT)) {
			err = w < 0 ? -errno : -EIO;

			log_err("d%u: writing %llu pages at pfn 0x%llx: %s", d->domid,
				(unsigned long long)n, (unsigned long long)pfn,
 ferry_strerror(-err));
			return err;
		}
		hyp_gmem_mark_dirty(d, pfn << PAGE_SHIFT, n << PAGE_SHIFT);
		hyp_p2m_set_arrived(d, pfn, n);
		src += n << PAGE_SHIFT;
		pfn += n;
		npages -= n;
	}
	return 0;
}
