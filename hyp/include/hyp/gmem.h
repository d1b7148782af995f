/* SPDX-License-Identifier: MIT */
/*
 * Provider API over a domain's guest memory, for log-dirty backends, the
 * save and restore paths and tests. Obtain a domain reference with
 * hyp_domain_get() and drop it with hyp_domain_put(); the domain's memory
 * stays mapped while a reference is held.
 */
#ifndef HYP_GMEM_H
#define HYP_GMEM_H

#include <stdbool.h>
#include <stdint.h>

struct hyp;
struct hyp_domain;
struct kvm_dirty_gfn;

int hyp_domain_get(struct hyp *h, uint32_t domid, struct hyp_domain **out);
void hyp_domain_put(struct hyp_domain *d);

struct hyp_gmem {
	uint8_t *hva;	 /* host mapping of guest-physical 0 */
	uint64_t size;	 /* bytes of guest-physical space mapped */
	uint64_t npages; /* size / 4096 */
};
void hyp_domain_gmem(struct hyp_domain *d, struct hyp_gmem *out);
uint32_t hyp_domain_id(struct hyp_domain *d);
const char *hyp_domain_backend_name(struct hyp_domain *d); /* "kvm"/"soft" */
unsigned hyp_domain_nvcpus(struct hyp_domain *d);

/*
 * Every write ferryd itself makes into guest memory goes through here: it
 * copies and marks the pages in the domain's host-dirty bitmap, which KVM's
 * dirty log cannot see. Bounds-checked: -EFAULT outside guest RAM.
 */
int hyp_gmem_write(struct hyp_domain *d, uint64_t gpa, const void *src,
		   uint64_t len);
/* Marks pages written through other means (e.g. a restore's bulk copy). */
void hyp_gmem_mark_dirty(struct hyp_domain *d, uint64_t gpa, uint64_t len);
int hyp_gmem_read(struct hyp_domain *d, uint64_t gpa, void *dst, uint64_t len);
/*
 * ORs the host-dirty bitmap into bitmap (npages bits) and clears it.
 * Returns the number of bits newly set in bitmap.
 */
uint64_t hyp_gmem_take_host_dirty(struct hyp_domain *d, uint64_t *bitmap);

/*
 * Sets in bitmap (npages bits, cleared first) the gfns whose frames hold
 * data: frames never written are holes and need not be saved. PENDING gfns
 * (a lazy restore's pages not arrived yet) are set too: reading them
 * through the guest mapping fetches them. *count (may be NULL) gets the
 * number of pages set.
 */
int hyp_gmem_populated(struct hyp_domain *d, uint64_t *bitmap, uint64_t *count);

/*
 * Restore's bulk write: npages pages of data (borrowed) into gfns
 * [pfn, pfn + npages), through the pool file (no fault per page), marked
 * dirty; a hole among them gets a frame first. -EFAULT outside guest RAM.
 */
int hyp_gmem_load(struct hyp_domain *d, uint64_t pfn, const void *data, uint64_t npages);
/*
 * A lazy restore's page (hyp_domain_create_lazy): gfn pfn, if still
 * PENDING, gets page (borrowed) through the pool file and becomes RAM, in
 * one step under the P2M's lock, so that of a fault handler and a fetcher
 * only the first writes it and a guest write after it is never undone.
 * -EEXIST if it was no longer pending; the caller then maps it
 * (hyp_uffd_continue) all the same.
 */
int hyp_gmem_fill_pending(struct hyp_domain *d, uint64_t pfn, const void *page);

/*
 * Balloon holes (hyp/balloon.c): sets in bitmap (npages bits, cleared
 * first) the gfns with no frame, the pages a save lists as XTAB.
 */
int hyp_gmem_holes(struct hyp_domain *d, uint64_t *bitmap, uint64_t *count);
/* Changes when the holes may have: equal values around two calls of
 * hyp_gmem_holes mean the same holes (a paused epoch skips the scan). */
uint64_t hyp_gmem_holes_gen(struct hyp_domain *d);
/* Restore of an XTAB: gfns [pfn, pfn + npages) give their frames back to
 * the pool (holes already are skipped). -EFAULT outside guest RAM. */
int hyp_gmem_unpopulate(struct hyp_domain *d, uint64_t pfn, uint64_t npages);

/*
 * The P2M's type of each gfn of the physmap (hyp/p2m.c). A ballooned hole
 * has no frame; a gfn whose page has not arrived yet (lazy restore,
 * post-copy) has its frame but not its contents, which a save must not
 * send and a reader must fetch first. Under the domain's P2M lock; the
 * physmap is [0, hyp_gmem npages).
 */
enum hyp_p2m_type {
	HYP_P2M_RAM,	 /* a frame holding the guest's page */
	HYP_P2M_HOLE,	 /* no frame: given back by the balloon (XTAB) */
	HYP_P2M_PENDING, /* a frame whose page has not arrived yet */
	HYP_P2M_INVALID, /* outside the physmap */
};
enum hyp_p2m_type hyp_p2m_type(struct hyp_domain *d, uint64_t gfn);
const char *hyp_p2m_type_name(enum hyp_p2m_type t);
/* Sets in bitmap (npages bits, cleared first) the gfns of type t, their
 * number in *count (may be NULL). */
void hyp_p2m_find(struct hyp_domain *d, enum hyp_p2m_type t, uint64_t *bitmap,
		  uint64_t *count);
/*
 * A lazy restore's pages to come: RAM gfns among [pfn, pfn + n) become
 * PENDING (holes stay holes); hyp_gmem_load() of a PENDING gfn makes it
 * RAM again, as does hyp_p2m_set_arrived(). -EFAULT outside the physmap.
 */
int hyp_p2m_set_pending(struct hyp_domain *d, uint64_t pfn, uint64_t n);
int hyp_p2m_set_arrived(struct hyp_domain *d, uint64_t pfn, uint64_t n);

/* The guest's HVM_PARAM_CALLBACK_IRQ value (0: none registered). */
uint64_t hyp_domain_callback_param(struct hyp_domain *d);

/* ---- KVM specifics, valid only when the backend is "kvm" -------------- */
int hyp_kvm_vm_fd(struct hyp_domain *d);
/* Turns KVM_MEM_LOG_DIRTY_PAGES on or off on every memslot of the domain. */
int hyp_kvm_set_dirty_logging(struct hyp_domain *d, bool on);
unsigned hyp_kvm_nslots(struct hyp_domain *d);
/* Slot i: KVM slot number, first gpa and size in bytes. */
void hyp_kvm_slot(struct hyp_domain *d, unsigned i, uint32_t *slot,
		  uint64_t *gpa, uint64_t *size);
/* Dirty ring of vCPU i (NULL when the domain was not created with
 * logdirty = "ring"), its entry count via *entries. */
struct kvm_dirty_gfn *hyp_kvm_vcpu_ring(struct hyp_domain *d, unsigned i,
					uint32_t *entries);
/*
 * The vCPU threads call fn when KVM exits with KVM_EXIT_DIRTY_RING_FULL;
 * fn harvests and resets the rings. Set while logging is enabled, cleared
 * with fn = NULL; when this returns no call to the previous hook is still
 * running. Not to be called from the hook itself.
 */
typedef void (*hyp_ring_full_fn)(void *opaque, unsigned vcpu);
void hyp_kvm_set_ring_full_hook(struct hyp_domain *d, hyp_ring_full_fn fn,
				void *opaque);

#endif
