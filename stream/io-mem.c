// SPDX-License-Identifier: MIT
/* strm_io over memory: a reader of a borrowed buffer, a growable writer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal-io.h"

#define MEM_INITIAL (64u << 10)

struct io_mem {
	struct strm_io io;
	const uint8_t *rbuf; /* reader: borrowed */
	uint8_t *wbuf;	     /* writer: owned */
	size_t len, cap, pos;
};

static ssize_t mem_read(struct strm_io *io, void *buf, size_t len)
{
	struct io_mem *m = container_of(io, struct io_mem, io);
	size_t n = MIN(len, m->len - m->pos);

	if (n)
		memcpy(buf, m->rbuf + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static int mem_writev(struct strm_io *io, const struct iovec *iov, int iovcnt)
{
	struct io_mem *m = container_of(io, struct io_mem, io);
	size_t need = m->len;

	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > SIZE_MAX / 2 - need)
			return strm_io_fail(io, -ENOMEM, "memory writer: %zu bytes is too much",
					    need);
		need += iov[i].iov_len;
	}
	if (need > m->cap) {
		size_t cap = m->cap ? m->cap : MEM_INITIAL;
		uint8_t *p;

		while (cap < need)
			cap *= 2;
		p = realloc(m->wbuf, cap);
		if (!p)
			return strm_io_fail(io, -ENOMEM,
					    "memory writer: out of memory at %zu bytes", need);
		m->wbuf = p;
		m->cap = cap;
	}
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len)
			memcpy(m->wbuf + m->len, iov[i].iov_base, iov[i].iov_len);
		m->len += iov[i].iov_len;
	}
	return 0;
}

static int mem_close(struct strm_io *io)
{
	struct io_mem *m = container_of(io, struct io_mem, io);

	free(m->wbuf);
	free(m);
	return 0;
}

/* clang-format off */
static const struct strm_io_ops strm_io_ops_mem_reader = {
	.name   = "mem",
	.read   = mem_read,
	.writev = NULL,
	.flush  = NULL,
	.finish = NULL,
	.close  = mem_close,
};
/* clang-format on */

/* clang-format off */
static const struct strm_io_ops strm_io_ops_mem_writer = {
	.name   = "mem",
	.read   = NULL,
	.writev = mem_writev,
	.flush  = NULL,
	.finish = NULL,
	.close  = mem_close,
};
/* clang-format on */

int strm_io_mem_reader(const void *buf, size_t len, struct strm_io **out)
{
	struct io_mem *m;

	if (!buf && len)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	strm_io_init(&m->io, &strm_io_ops_mem_reader);
	m->rbuf = buf;
	m->len = len;
	*out = &m->io;
	return 0;
}

int strm_io_mem_writer(struct strm_io **out)
{
	struct io_mem *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	strm_io_init(&m->io, &strm_io_ops_mem_writer);
	*out = &m->io;
	return 0;
}

const void *strm_io_mem_data(const struct strm_io *io, size_t *len)
{
	const struct io_mem *m;

	if (io->ops != &strm_io_ops_mem_writer && io->ops != &strm_io_ops_mem_reader) {
		*len = 0;
		return NULL;
	}
	m = container_of(io, const struct io_mem, io);
	*len = m->len;
	return io->ops == &strm_io_ops_mem_writer ? (const void *)m->wbuf : (const void *)m->rbuf;
}
