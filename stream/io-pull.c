// SPDX-License-Identifier: MIT
/* strm_io over a read callback: a stream made on the fly (a snapshot's). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal-io.h"

struct io_pull {
	struct strm_io io;
	ssize_t (*read)(void *opaque, void *buf, size_t len);
	void (*release)(void *opaque);
	void *opaque;
};

static ssize_t pull_read(struct strm_io *io, void *buf, size_t len)
{
	struct io_pull *p = container_of(io, struct io_pull, io);
	ssize_t n = p->read(p->opaque, buf, len);

	if (n > (ssize_t)len)
		return strm_io_fail(io, -EIO, "pull reader: the source returned %zd bytes for %zu",
				    n, len);
	return n;
}

static int pull_close(struct strm_io *io)
{
	struct io_pull *p = container_of(io, struct io_pull, io);

	if (p->release)
		p->release(p->opaque);
	free(p);
	return 0;
}

/* clang-format off */
static const struct strm_io_ops strm_io_ops_pull = {
	.name   = "pull",
	.read   = pull_read,
	.writev = NULL,
	.flush  = NULL,
	.finish = NULL,
	.close  = pull_close,
};
/* clang-format on */

int strm_io_pull(ssize_t (*read)(void *opaque, void *buf, size_t len),
		 void (*release)(void *opaque), void *opaque, struct strm_io **out)
{
	struct io_pull *p;

	if (!read)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	strm_io_init(&p->io, &strm_io_ops_pull);
	p->read = read;
	p->release = release;
	p->opaque = opaque;
	*out = &p->io;
	return 0;
}

int strm_io_pull_fail(struct strm_io *io, int err, const char *fmt, ...)
{
	va_list ap;
	char msg[STRM_IO_MSG_MAX];

	if (io->ops != &strm_io_ops_pull || err >= 0)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return strm_io_fail(io, err, "%s", msg);
}
