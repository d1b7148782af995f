// SPDX-License-Identifier: MIT
/* Page appliers (restore/applier.h): the calls through the ops table. */
#include <errno.h>
#include <stdlib.h>

#include "restore/applier.h"

struct rst_applier {
	const struct rst_applier_ops *ops;
	void *priv;
};

int rst_applier_new(const struct rst_applier_ops *ops, void *priv, struct rst_applier **out)
{
	struct rst_applier *a;

	if (!ops || !ops->load || !ops->unpopulate || !ops->commit || !ops->discard)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->ops = ops;
	a->priv = priv;
	*out = a;
	return 0;
}

void rst_applier_free(struct rst_applier *a)
{
	if (!a)
		return;
	if (a->ops->free)
		a->ops->free(a->priv);
	free(a);
}

int rst_applier_load(struct rst_applier *a, uint64_t pfn, const void *data, uint64_t npages)
{
	return a->ops->load(a->priv, pfn, data, npages);
}

int rst_applier_unpopulate(struct rst_applier *a, uint64_t pfn, uint64_t npages)
{
	return a->ops->unpopulate(a->priv, pfn, npages);
}

int rst_applier_commit(struct rst_applier *a)
{
	return a->ops->commit(a->priv);
}

void rst_applier_discard(struct rst_applier *a)
{
	a->ops->discard(a->priv);
}
