/* SPDX-License-Identifier: MIT */
/*
 * Page appliers: where the pages a stream carries go on the receive side.
 * The direct applier writes them straight into the domain's memory (a plain
 * restore); the epoch applier stages the pages of the current epoch of a
 * checkpointed stream and writes them through another applier on commit,
 * or throws them away on discard, so guest memory only ever holds whole
 * epochs. Tests and later users (lazy restore, snapshots) bring their own
 * ops through rst_applier_new.
 */
#ifndef RESTORE_APPLIER_H
#define RESTORE_APPLIER_H

#include <stddef.h>
#include <stdint.h>

#include "hyp/hyp.h"

/*
 * An applier's operations on its private state; each returns 0 or -errno
 * and logs nothing (the caller names the record). pfn ranges have been
 * checked against the domain's size before they get here.
 */
struct rst_applier_ops {
	/* npages pages of data (4 KiB each, borrowed for the call) at pfn. */
	int (*load)(void *priv, uint64_t pfn, const void *data, uint64_t npages);
	/* npages pfns from pfn become holes (a balloon's, Xen's XTAB). */
	int (*unpopulate)(void *priv, uint64_t pfn, uint64_t npages);
	/* What was loaded since the last commit or discard is final. */
	int (*commit)(void *priv);
	/* What was loaded since the last commit or discard is forgotten. */
	void (*discard)(void *priv);
	/* Frees priv (optional). */
	void (*free)(void *priv);
};

struct rst_applier;

/* An applier of caller's ops; priv is handed to them and freed by ops->free
 * when the applier is. */
int rst_applier_new(const struct rst_applier_ops *ops, void *priv, struct rst_applier **out);
/* Straight into d's memory (borrowed: d must outlive the applier): load is
 * hyp_gmem_load, unpopulate hyp_gmem_unpopulate; commit and discard do
 * nothing, since nothing is held. */
int rst_applier_direct_new(struct hyp_domain *d, struct rst_applier **out);
/*
 * Stages pages and holes in order (at most max_bytes of page data, 0: no
 * limit; -E2BIG past it) and replays them onto target (borrowed) at commit,
 * then commits target; discard drops them. A pfn loaded twice in an epoch
 * ends as the later page, as in the stream.
 */
int rst_applier_epoch_new(struct rst_applier *target, uint64_t max_bytes,
			  struct rst_applier **out);
void rst_applier_free(struct rst_applier *a);

int rst_applier_load(struct rst_applier *a, uint64_t pfn, const void *data, uint64_t npages);
int rst_applier_unpopulate(struct rst_applier *a, uint64_t pfn, uint64_t npages);
int rst_applier_commit(struct rst_applier *a);
void rst_applier_discard(struct rst_applier *a);

#endif
