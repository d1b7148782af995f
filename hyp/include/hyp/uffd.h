/* SPDX-License-Identifier: MIT */
/*
 * The one owner of a guest mapping's userfaultfd (hyp/uffd.c).
 *
 * A range of memory can belong to one userfaultfd only, and asynchronous
 * write-protect (UFFD_FEATURE_WP_ASYNC) is a property of the whole fd, so
 * every user of faults on a domain's memory goes through one owner:
 *   HYP_UFFD_WP_ASYNC  log-dirty: the kernel drops the protection on a
 *                      write by itself; hyp_uffd_written() harvests (and
 *                      re-protects) the written pages with PAGEMAP_SCAN
 *   HYP_UFFD_WP_SYNC   copy-before-write: a write to a protected page
 *                      stops the writer until the handler copied the page
 *                      and called hyp_uffd_unprotect()
 *   HYP_UFFD_MISSING   lazy restore: a page with no frame data (a hole of
 *                      the pool file, or anonymous) stops the reader until
 *                      the handler filled it with hyp_uffd_copy()
 *   HYP_UFFD_MINOR     a frame that holds its page but is not mapped yet:
 *                      the handler maps it with hyp_uffd_continue()
 * WP_ASYNC and WP_SYNC exclude each other (-EBUSY); WP_SYNC is refused
 * (-EBUSY) while MISSING is attached, since it needs another fd and the
 * range unregistered for a moment would let a missing page read as zeros.
 * Handlers run on the
 * owner's fault thread, one fault at a time; a handler returns 0 once it
 * resolved the fault, or -errno (logged by the owner, the faulting thread
 * stays stopped: nothing can give it a page it may read).
 *
 * The owner registers the range again after every remap of the mapping
 * (populate, warm-frame swap, balloon), which drops the kernel's
 * registration of the pages remapped: hyp__uffd_remap_begin/end inside
 * hyp bracket each one, and a remapped range under WP comes back
 * write-protected (its pages are reported through the host-dirty bitmap
 * by whoever remapped them).
 *
 * Threading: every call is serialised by the owner's lock, except that
 * handlers may call the resolving functions (copy, continue, unprotect,
 * protect) of their own owner.
 */
#ifndef HYP_UFFD_H
#define HYP_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hyp_domain;
struct hyp_uffd;

enum hyp_uffd_kind {
	HYP_UFFD_WP_ASYNC,
	HYP_UFFD_WP_SYNC,
	HYP_UFFD_MISSING,
	HYP_UFFD_MINOR,
	HYP_UFFD_NKINDS
};

/* A fault of kind at page pfn of the owner's range (sync kinds only). */
typedef int (*hyp_uffd_fault_fn)(void *opaque, struct hyp_uffd *u, enum hyp_uffd_kind kind,
				 uint64_t pfn);

/*
 * Whether this kernel offers kind (for the shared-memory mappings guest
 * RAM lives in): 0, or -ENOTSUP with the reason in why (may be NULL).
 */
int hyp_uffd_supported(enum hyp_uffd_kind kind, char *why, size_t len);

/*
 * An owner over npages pages at base (borrowed: mapped by the caller for
 * the owner's life). Takes no fd until a kind is attached. *out is the
 * caller's, freed by hyp_uffd_free().
 */
int hyp_uffd_new(void *base, uint64_t npages, struct hyp_uffd **out);
/* Detaches every kind, closes the fd. NULL is a no-op. */
void hyp_uffd_free(struct hyp_uffd *u);
/* The owner of the domain's guest mapping [0, mem_bytes). */
struct hyp_uffd *hyp_domain_uffd(struct hyp_domain *d);

/*
 * Starts delivering faults of kind to fn (NULL for WP_ASYNC, which has
 * none). WP_ASYNC and WP_SYNC write-protect the whole range, empty pages
 * included. -EBUSY if kind is attached or conflicts, -ENOTSUP if the
 * kernel lacks it, else the failing call's -errno (logged).
 */
int hyp_uffd_attach(struct hyp_uffd *u, enum hyp_uffd_kind kind, hyp_uffd_fault_fn fn,
		    void *opaque);
/* Stops kind; a write-protect kind drops the protection. When this
 * returns no call of its handler is running. Detaching another kind while
 * WP_ASYNC is attached registers the range anew: the pages written until
 * then are kept for the next hyp_uffd_written(), the rest protected again. */
void hyp_uffd_detach(struct hyp_uffd *u, enum hyp_uffd_kind kind);

/*
 * WP_ASYNC: ORs into bitmap (npages bits, the owner's) every page written
 * since it was last protected; reprotect protects them again (the clean
 * of a peek-and-clean). -EPERM if part of the range escaped tracking.
 */
int hyp_uffd_written(struct hyp_uffd *u, uint64_t *bitmap, bool reprotect);

/* Resolving: pages [pfn, pfn + n) of the range; each wakes the threads
 * stopped on them. copy fills one page from src (MISSING; -EINVAL when
 * MISSING is not attached); unlike the others it may also be called from
 * any thread outside a handler (a lazy restore's background fetcher). */
int hyp_uffd_copy(struct hyp_uffd *u, uint64_t pfn, const void *src);
int hyp_uffd_continue(struct hyp_uffd *u, uint64_t pfn, uint64_t n);
int hyp_uffd_unprotect(struct hyp_uffd *u, uint64_t pfn, uint64_t n);
int hyp_uffd_protect(struct hyp_uffd *u, uint64_t pfn, uint64_t n);

/* ---- hyp-internal: around a remap of pages [pfn, pfn + n) ------------- */
void hyp__uffd_remap_begin(struct hyp_uffd *u);
/* Registers [pfn, pfn + n) again (and write-protects it under WP). */
void hyp__uffd_remap_end(struct hyp_uffd *u, uint64_t pfn, uint64_t n);

#endif
