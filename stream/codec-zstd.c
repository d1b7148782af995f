// SPDX-License-Identifier: MIT
/*
 * Codec "zstd": one zstd frame per stream frame at level -1 (the fast
 * level; research/limits.md section 3: ~440-500 MB/s at 256 KiB frames).
 */
#include <errno.h>
#include <stdlib.h>
#include <zstd.h>

#include "internal-io.h"

#define ZSTD_FRAME_LEVEL (-1)

/* The state is a ZSTD_CCtx for a writer and a ZSTD_DCtx for a reader; one
 * state slot never sees both (a frame io is one or the other). */
struct zstd_state {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
};

static struct zstd_state *zstd_state(void **state)
{
	if (!*state)
		*state = calloc(1, sizeof(struct zstd_state));
	return *state;
}

static size_t zstd_bound(size_t raw_len)
{
	return ZSTD_compressBound(raw_len);
}

static ssize_t zstd_compress(void **state, void *dst, size_t cap, const void *src, size_t len)
{
	struct zstd_state *z = zstd_state(state);
	size_t n;

	if (!z)
		return -ENOMEM;
	if (!z->cctx) {
		z->cctx = ZSTD_createCCtx();
		if (!z->cctx)
			return -ENOMEM;
		/* The frame header carries a CRC32C: no zstd checksum. */
		if (ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel,
							ZSTD_FRAME_LEVEL)) ||
		    ZSTD_isError(ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 0)))
			return -EINVAL;
	}
	n = ZSTD_compress2(z->cctx, dst, cap, src, len);
	return ZSTD_isError(n) ? -ENOBUFS : (ssize_t)n;
}

static int zstd_decompress(void **state, void *dst, size_t raw_len, const void *src,
			   size_t stored_len)
{
	struct zstd_state *z = zstd_state(state);
	size_t n;

	if (!z)
		return -ENOMEM;
	if (!z->dctx) {
		z->dctx = ZSTD_createDCtx();
		if (!z->dctx)
			return -ENOMEM;
	}
	/* Single-shot into a buffer of exactly raw_len: zstd allocates no
	 * window for this and fails rather than write past raw_len. */
	n = ZSTD_decompressDCtx(z->dctx, dst, raw_len, src, stored_len);
	return !ZSTD_isError(n) && n == raw_len ? 0 : -EBADMSG;
}

static void zstd_free_state(void *state)
{
	struct zstd_state *z = state;

	ZSTD_freeCCtx(z->cctx);
	ZSTD_freeDCtx(z->dctx);
	free(z);
}

/* clang-format off */
const struct strm_codec_ops strm_codec_ops_zstd = {
	.name       = "zstd",
	.id         = STRM_CODEC_ZSTD,
	.bound      = zstd_bound,
	.compress   = zstd_compress,
	.decompress = zstd_decompress,
	.free_state = zstd_free_state,
};
/* clang-format on */
