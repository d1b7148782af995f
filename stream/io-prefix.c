// SPDX-License-Identifier: MIT
/*
 * A reader that first returns bytes the caller already read (to tell what
 * kind of stream is coming), then reads on from the lower io (borrowed).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "internal-io.h"

#define PREFIX_MAX 64

struct prefix_io {
	struct strm_io io;
	struct strm_io *lower;
	char buf[PREFIX_MAX];
	size_t off, len;
};

static ssize_t prefix_read(struct strm_io *io, void *buf, size_t len)
{
	struct prefix_io *p = container_of(io, struct prefix_io, io);

	if (p->off < p->len) {
		size_t n = MIN(p->len - p->off, len);

		memcpy(buf, p->buf + p->off, n);
		p->off += n;
		return (ssize_t)n;
	}
	return strm_io_read(p->lower, buf, len);
}

static int prefix_close(struct strm_io *io)
{
	free(container_of(io, struct prefix_io, io));
	return 0;
}

/* clang-format off */
static const struct strm_io_ops strm_io_ops_prefix = {
	.name  = "prefix",
	.read  = prefix_read,
	.close = prefix_close,
};
/* clang-format on */

int strm_io_prefix(struct strm_io *lower, const void *buf, size_t len, struct strm_io **out)
{
	struct prefix_io *p;

	if (len > PREFIX_MAX)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	strm_io_init(&p->io, &strm_io_ops_prefix);
	p->lower = lower;
	memcpy(p->buf, buf, len);
	p->len = len;
	*out = &p->io;
	return 0;
}
