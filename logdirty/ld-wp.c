/* SPDX-License-Identifier: MIT */
/*
 * wp: write tracking for the soft backend, whose vCPUs are host threads
 * writing the guest mapping directly.
 *
 * userfaultfd in asynchronous write-protect mode (UFFD_FEATURE_WP_ASYNC),
 * through the domain's one userfaultfd owner (hyp/uffd.h), which
 * registers the range again when populate, a balloon or a warm-frame
 * swap remaps part of it: the guest mapping is write-protected once; the
 * kernel itself resolves a write fault on a protected page by dropping
 * the protection (about 1.2 us, no message, no handler thread), so "not
 * write-protected" means "written since last protected".
 *
 * Peek-and-clean is one PAGEMAP_SCAN walk asking for PAGE_IS_WRITTEN
 * pages that re-protects them atomically per page table (0.7 ms/GiB idle
 * here); a peek is the same walk without re-protecting.
 *
 * mprotect + SIGSEGV was the alternative: 105-217k faults/s against 830k,
 * and a VMA split per random fault, capped by vm.max_map_count.
 */
#include <string.h>

#include "hyp/uffd.h"
#include "internal.h"

static bool ldw_probe(struct hyp_domain *d)
{
	return !strcmp(hyp_domain_backend_name(d), "soft");
}

static int ldw_enable(struct ld_tracker *ld)
{
	return hyp_uffd_attach(hyp_domain_uffd(ld->d), HYP_UFFD_WP_ASYNC, NULL, NULL);
}

static int ldw_collect(struct ld_tracker *ld)
{
	return hyp_uffd_written(hyp_domain_uffd(ld->d), ld->pending, true);
}

static int ldw_peek(struct ld_tracker *ld, uint64_t *dst)
{
	return hyp_uffd_written(hyp_domain_uffd(ld->d), dst, false);
}

static void ldw_disable(struct ld_tracker *ld)
{
	/* Unregistering also drops the write protection. */
	hyp_uffd_detach(hyp_domain_uffd(ld->d), HYP_UFFD_WP_ASYNC);
}

const struct ld_ops ld_ops_wp = {
	.name = "wp",
	.probe = ldw_probe,
	.enable = ldw_enable,
	.collect = ldw_collect,
	.peek = ldw_peek,
	.disable = ldw_disable,
};
