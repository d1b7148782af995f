// SPDX-License-Identifier: MIT
/* Codec "none": frames stored as they are. */
#include <errno.h>
#include <string.h>

#include "internal-io.h"

static size_t none_bound(size_t raw_len)
{
	return raw_len;
}

static ssize_t none_compress(void **state, void *dst, size_t cap, const void *src, size_t len)
{
	if (cap < len)
		return -ENOBUFS;
	if (len)
		memcpy(dst, src, len);
	return (ssize_t)len;
}

static int none_decompress(void **state, void *dst, size_t raw_len, const void *src,
			   size_t stored_len)
{
	if (stored_len != raw_len)
		return -EBADMSG;
	if (raw_len && dst != src)
		memcpy(dst, src, raw_len);
	return 0;
}

/* clang-format off */
const struct strm_codec_ops strm_codec_ops_none = {
	.name       = "none",
	.id         = STRM_CODEC_NONE,
	.bound      = none_bound,
	.compress   = none_compress,
	.decompress = none_decompress,
	.free_state = NULL,
};
/* clang-format on */
