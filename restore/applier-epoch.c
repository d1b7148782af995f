// SPDX-License-Identifier: MIT
/*
 * The epoch applier (restore/applier.h): the pages and holes of the current
 * epoch of a checkpointed stream, staged in stream order, replayed onto the
 * target applier at commit, dropped at discard. Runs of pages are kept as
 * they came (one PAGE_DATA run is one staged op), so the replay writes as
 * a plain restore would.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/grow.h"
#include "restore/applier.h"

#define PAGE_BYTES 4096u

struct staged_op {
	uint64_t pfn, npages;
	size_t data_at; /* in pages; SIZE_MAX: a hole */
};

struct epoch {
	struct rst_applier *target;
	uint64_t max_bytes;
	struct staged_op *ops;
	size_t nops, ops_cap;
	uint8_t *pages;
	size_t npages, pages_cap; /* in pages */
};

static int stage(struct epoch *e, uint64_t pfn, uint64_t npages, const void *data)
{
	struct staged_op *op;

	if (ferry_grow((void **)&e->ops, &e->ops_cap, e->nops + 1, sizeof(*op)))
		return -ENOMEM;
	op = &e->ops[e->nops];
	op->pfn = pfn;
	op->npages = npages;
	op->data_at = SIZE_MAX;
	if (data) {
		if (e->max_bytes && (e->npages + npages) * PAGE_BYTES > e->max_bytes)
			return -E2BIG;
		if (ferry_grow((void **)&e->pages, &e->pages_cap, e->npages + npages, PAGE_BYTES))
			return -ENOMEM;
		memcpy(e->pages + e->npages * PAGE_BYTES, data, npages * PAGE_BYTES);
		op->data_at = e->npages;
		e->npages += npages;
	}
	e->nops++;
	return 0;
}

static int epoch_load(void *priv, uint64_t pfn, const void *data, uint64_t npages)
{
	return stage(priv, pfn, npages, data);
}

static int epoch_unpopulate(void *priv, uint64_t pfn, uint64_t npages)
{
	return stage(priv, pfn, npages, NULL);
}

static void epoch_discard(void *priv)
{
	struct epoch *e = priv;

	e->nops = 0;
	e->npages = 0;
}

/* A failure half way leaves the target half written: the caller treats the
 * domain as holding no whole epoch. */
static int epoch_commit(void *priv)
{
	struct epoch *e = priv;
	int err = 0;

	for (size_t i = 0; !err && i < e->nops; i++) {
		const struct staged_op *op = &e->ops[i];

		if (op->data_at == SIZE_MAX)
			err = rst_applier_unpopulate(e->target, op->pfn, op->npages);
		else
			err = rst_applier_load(e->target, op->pfn,
					       e->pages + op->data_at * PAGE_BYTES, op->npages);
	}
	if (!err)
		err = rst_applier_commit(e->target);
	epoch_discard(e);
	return err;
}

static void epoch_free(void *priv)
{
	struct epoch *e = priv;

	free(e->ops);
	free(e->pages);
	free(e);
}

static const struct rst_applier_ops epoch_ops = {
	.load = epoch_load,
	.unpopulate = epoch_unpopulate,
	.commit = epoch_commit,
	.discard = epoch_discard,
	.free = epoch_free,
};

int rst_applier_epoch_new(struct rst_applier *target, uint64_t max_bytes,
			  struct rst_applier **out)
{
	struct epoch *e = calloc(1, sizeof(*e));
	int err;

	if (!e)
		return -ENOMEM;
	e->target = target;
	e->max_bytes = max_bytes;
	err = rst_applier_new(&epoch_ops, e, out);
	if (err)
		free(e);
	return err;
}
