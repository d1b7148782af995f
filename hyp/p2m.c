// SPDX-License-Identifier: MIT
/*
 * The P2M's type per gfn (hyp/gmem.h): RAM, a ballooned hole, or a page
 * not arrived yet. The frame of each gfn is d->p2m[]; its type is
 * d->p2m_type[], a byte per gfn of the physmap, changed with the frame
 * (populate: RAM, decrease: HOLE) under p2m_lock. A hole is exactly a gfn
 * without a frame; the type says what the frame of the others holds.
 */
#include <errno.h>
#include <string.h>

#include "common/bitmap.h"
#include "common/compiler.h"
#include "internal.h"

static uint64_t physmap_pages(const struct hyp_domain *d)
{
	return d->mem_bytes >> PAGE_SHIFT;
}

enum hyp_p2m_type hyp_p2m_type(struct hyp_domain *d, uint64_t gfn)
{
	enum hyp_p2m_type t = HYP_P2M_INVALID;

	pthread_mutex_lock(&d->p2m_lock);
	if (gfn < physmap_pages(d))
		t = (enum hyp_p2m_type)d->p2m_type[gfn];
	pthread_mutex_unlock(&d->p2m_lock);
	return t;
}

const char *hyp_p2m_type_name(enum hyp_p2m_type t)
{
	static const char *const names[] = { "ram", "hole", "pending", "invalid" };

	return (unsigned)t < ARRAY_SIZE(names) ? names[t] : "?";
}

void hyp_p2m_find(struct hyp_domain *d, enum hyp_p2m_type t, uint64_t *bitmap,
		  uint64_t *count)
{
	uint64_t npages = physmap_pages(d), n = 0;

	memset(bitmap, 0, BITMAP_BYTES(npages));
	pthread_mutex_lock(&d->p2m_lock);
	for (uint64_t g = 0; g < npages; g++)
		if (d->p2m_type[g] == t) {
			bitmap_set(bitmap, g);
			n++;
		}
	pthread_mutex_unlock(&d->p2m_lock);
	if (count)
		*count = n;
}

void hyp__p2m_set_locked(struct hyp_domain *d, uint64_t gfn, uint64_t n, enum hyp_p2m_type t)
{
	memset(d->p2m_type + gfn, t, n);
	__atomic_add_fetch(&d->p2m_gen, 1, __ATOMIC_RELEASE);
}

uint64_t hyp_gmem_holes_gen(struct hyp_domain *d)
{
	return __atomic_load_n(&d->p2m_gen, __ATOMIC_ACQUIRE);
}

/* Gfns of type from among [pfn, pfn + n) become type to. */
static int retype(struct hyp_domain *d, uint64_t pfn, uint64_t n, enum hyp_p2m_type from,
		  enum hyp_p2m_type to)
{
	if (pfn > physmap_pages(d) || n > physmap_pages(d) - pfn)
		return -EFAULT;
	pthread_mutex_lock(&d->p2m_lock);
	for (uint64_t g = pfn; g < pfn + n; g++)
		if (d->p2m_type[g] == from)
			d->p2m_type[g] = (uint8_t)to;
	pthread_mutex_unlock(&d->p2m_lock);
	return 0;
}

int hyp_p2m_set_pending(struct hyp_domain *d, uint64_t pfn, uint64_t n)
{
	return retype(d, pfn, n, HYP_P2M_RAM, HYP_P2M_PENDING);
}

int hyp_p2m_set_arrived(struct hyp_domain *d, uint64_t pfn, uint64_t n)
{
	return retype(d, pfn, n, HYP_P2M_PENDING, HYP_P2M_RAM);
}
