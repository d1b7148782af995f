// SPDX-License-Identifier: MIT
/* The direct applier (restore/applier.h): pages straight into guest memory. */
#include "hyp/gmem.h"
#include "restore/applier.h"

static int direct_load(void *priv, uint64_t pfn, const void *data, uint64_t npages)
{
	return hyp_gmem_load(priv, pfn, data, npages);
}

static int direct_unpopulate(void *priv, uint64_t pfn, uint64_t npages)
{
	return hyp_gmem_unpopulate(priv, pfn, npages);
}

static int direct_commit(void *priv)
{
	(void)priv; /* written already */
	return 0;
}

static void direct_discard(void *priv)
{
	(void)priv; /* nothing held */
}

static const struct rst_applier_ops direct_ops = {
	.load = direct_load,
	.unpopulate = direct_unpopulate,
	.commit = direct_commit,
	.discard = direct_discard,
};

int rst_applier_direct_new(struct hyp_domain *d, struct rst_applier **out)
{
	return rst_applier_new(&direct_ops, d, out);
}
