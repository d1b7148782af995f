// SPDX-License-Identifier: MIT
/* Codec "lz4": liblz4 block format, default acceleration. */
#include <errno.h>
#include <limits.h>
#include <lz4.h>
#include <stdlib.h>

#include "internal-io.h"

static size_t lz4_bound(size_t raw_len)
{
	return (size_t)LZ4_compressBound((int)raw_len);
}

/* The state is LZ4's compression state (the stack state of
 * LZ4_compress_default, kept on the heap); decompression needs none. */
static ssize_t lz4_compress(void **state, void *dst, size_t cap, const void *src, size_t len)
{
	int n;

	if (len > STRM_FRAME_RAW_MAX || cap > INT_MAX)
		return -EINVAL;
	if (!*state) {
		*state = malloc((size_t)LZ4_sizeofState());
		if (!*state)
			return -ENOMEM;
	}
	n = LZ4_compress_fast_extState(*state, src, dst, (int)len, (int)cap, 1);
	return n > 0 ? n : -ENOBUFS;
}

static int lz4_decompress(void **state, void *dst, size_t raw_len, const void *src,
			  size_t stored_len)
{
	int n;

	if (raw_len > STRM_FRAME_RAW_MAX || stored_len > INT_MAX)
		return -EBADMSG;
	n = LZ4_decompress_safe(src, dst, (int)stored_len, (int)raw_len);
	return n >= 0 && (size_t)n == raw_len ? 0 : -EBADMSG;
}

static void lz4_free_state(void *state)
{
	free(state);
}

/* clang-format off */
const struct strm_codec_ops strm_codec_ops_lz4 = {
	.name       = "lz4",
	.id         = STRM_CODEC_LZ4,
	.bound      = lz4_bound,
	.compress   = lz4_compress,
	.decompress = lz4_decompress,
	.free_state = lz4_free_state,
};
/* clang-format on */
