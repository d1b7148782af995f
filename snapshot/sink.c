// SPDX-License-Identifier: MIT
/*
 * A migration session's page sink writing into a snapshot: the session's
 * pages go through snap_put, its holes through snap_holes. Epochs only
 * mark rounds: a pfn sent again in a later round or epoch takes its latest
 * contents, so the snapshot is the domain at the session's last pause.
 */
#include "migrate/session.h"
#include "snapshot/repo.h"

static int sink_begin(void *sink, unsigned epoch)
{
	return 0;
}

static int sink_put(void *sink, const uint64_t *pfns, const void *const *pages, uint32_t count)
{
	return snap_put(sink, pfns, pages, count);
}

static int sink_holes(void *sink, const uint64_t *pfns, uint32_t count)
{
	return snap_holes(sink, pfns, count);
}

static int sink_flush(void *sink)
{
	return snap_flush(sink);
}

static int sink_end(void *sink, unsigned epoch)
{
	return snap_flush(sink);
}

const struct mig_page_sink_ops snap_sink_ops = {
	.begin = sink_begin,
	.put = sink_put,
	.holes = sink_holes,
	.flush = sink_flush,
	.end = sink_end,
};
