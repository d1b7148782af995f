// SPDX-License-Identifier: MIT
/*
 * The stream page sink: each put is one PAGE_DATA record on the session's
 * io, the pages referenced by the encoder's iovecs, not copied; holes are
 * PAGE_DATA records of XTAB entries. The bytes are those save.c and
 * precopy.c wrote before the session existed.
 */
#include <errno.h>

#include "common/err.h"
#include "internal.h"

/* A plain pfn is a PAGE_DATA entry of type NOTAB: puts need no rewriting. */
_Static_assert(PAGE_TYPE_NOTAB == 0, "a pfn is its own NOTAB entry");

static int stream_begin(void *sink, unsigned epoch)
{
	(void)sink;
	(void)epoch;
	return 0;
}

static int stream_put(void *sink, const uint64_t *pfns, const void *const *pages,
		      uint32_t count)
{
	struct mig_out *s = sink;

	return mig_put(s, strm_enc_page_data(s->enc, pfns, count, pages, s->iov), "PAGE_DATA");
}

static int stream_holes(void *sink, const uint64_t *pfns, uint32_t count)
{
	struct mig_out *s = sink;
	uint64_t e[MIG_SINK_HOLES_MAX];

	if (count > MIG_SINK_HOLES_MAX)
		return mig_fail(s, -EINVAL, "%u holes in one call", count);
	for (uint32_t i = 0; i < count; i++)
		e[i] = pfns[i] | ((uint64_t)PAGE_TYPE_XTAB << PAGE_DATA_TYPE_SHIFT);
	return mig_put(s, strm_enc_page_data(s->enc, e, count, NULL, s->iov),
		       "PAGE_DATA (holes)");
}

static int stream_flush(void *sink)
{
	struct mig_out *s = sink;
	int err = strm_io_flush(s->io);

	if (err)
		return mig_fail(s, err, "flushing the stream: %s%s%s", ferry_strerror(err),
				*strm_io_error(s->io) ? ": " : "", strm_io_error(s->io));
	return 0;
}

static int stream_end(void *sink, unsigned epoch)
{
	(void)sink;
	(void)epoch;
	return 0;
}

const struct mig_page_sink_ops mig_stream_sink_ops = {
	.begin = stream_begin,
	.put = stream_put,
	.holes = stream_holes,
	.flush = stream_flush,
	.end = stream_end,
};
