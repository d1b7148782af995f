// SPDX-License-Identifier: MIT
/*
 * strm_io over a write callback, the counterpart of io-pull.c: bytes are
 * collected and handed over in pieces, or held until released (HA's
 * epochs: written while the guest is paused, sent once it runs).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal-io.h"

#define PUSH_PIECE_DEFAULT (1u << 20)

struct io_push {
	struct strm_io io;
	int (*write)(void *opaque, const void *buf, size_t len);
	void (*release)(void *opaque);
	void *opaque;
	size_t piece, max_held;
	bool held;
	uint8_t *buf;
	size_t len, cap;
};

/* Hands everything collected over, a piece at a time. */
static int push_out(struct io_push *p)
{
	size_t off = 0;
	int err = 0;

	while (off < p->len && !err) {
		size_t n = p->len - off < p->piece ? p->len - off : p->piece;

		err = p->write(p->opaque, p->buf + off, n);
		off += n;
	}
	p->len = 0;
	return err;
}

static int grow(struct io_push *p, size_t need)
{
	size_t cap = p->cap ? p->cap : p->piece;
	uint8_t *b;

	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	b = realloc(p->buf, cap);
	if (!b)
		return -ENOMEM;
	p->buf = b;
	p->cap = cap;
	return 0;
}

static int push_writev(struct strm_io *io, const struct iovec *iov, int iovcnt)
{
	struct io_push *p = container_of(io, struct io_push, io);

	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *src = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		while (left) {
			size_t room, n;
			int err;

			if (p->held && p->max_held && p->len + left > p->max_held)
				return strm_io_fail(io, -ENOBUFS,
						    "push writer: more than %zu bytes held",
						    p->max_held);
			if (p->len + (p->held ? left : 1) > p->cap) {
				err = grow(p, p->len + (p->held ? left : p->piece));
				if (err)
					return strm_io_fail(
						io, err, "push writer: out of memory at %zu bytes",
						p->len + left);
			}
			room = p->held ? left : p->piece - p->len;
			n = left < room ? left : room;
			memcpy(p->buf + p->len, src, n);
			p->len += n;
			src += n;
			left -= n;
			if (!p->held && p->len == p->piece) {
				err = push_out(p);
				if (err)
					return err;
			}
		}
	}
	return 0;
}

static int push_flush(struct strm_io *io)
{
	struct io_push *p = container_of(io, struct io_push, io);

	return p->held ? 0 : push_out(p);
}

static int push_close(struct strm_io *io)
{
	struct io_push *p = container_of(io, struct io_push, io);

	if (p->release)
		p->release(p->opaque);
	free(p->buf);
	free(p);
	return 0;
}

/* clang-format off */
static const struct strm_io_ops strm_io_ops_push = {
	.name   = "push",
	.read   = NULL,
	.writev = push_writev,
	.flush  = push_flush,
	.finish = NULL,
	.close  = push_close,
};
/* clang-format on */

int strm_io_push(int (*write)(void *opaque, const void *buf, size_t len),
		 void (*release)(void *opaque), void *opaque, size_t piece, size_t max_held,
		 struct strm_io **out)
{
	struct io_push *p;

	if (!write)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	strm_io_init(&p->io, &strm_io_ops_push);
	p->write = write;
	p->release = release;
	p->opaque = opaque;
	p->piece = piece ? piece : PUSH_PIECE_DEFAULT;
	p->max_held = max_held;
	*out = &p->io;
	return 0;
}

static struct io_push *as_push(struct strm_io *io)
{
	return io && io->ops == &strm_io_ops_push ? container_of(io, struct io_push, io) : NULL;
}

int strm_io_push_hold(struct strm_io *io)
{
	struct io_push *p = as_push(io);

	if (!p)
		return -EINVAL;
	p->held = true;
	return 0;
}

int strm_io_push_release(struct strm_io *io)
{
	struct io_push *p = as_push(io);
	int err;

	if (!p)
		return -EINVAL;
	if (io->err)
		return io->err;
	p->held = false;
	err = push_out(p);
	if (err) {
		io->err_write = true;
		if (!io->err)
			strm_io_fail(io, err, "push writer: handing over the held bytes failed");
	}
	return err;
}

size_t strm_io_push_held(const struct strm_io *io)
{
	const struct io_push *p = as_push((struct strm_io *)io);

	return p && p->held ? p->len : 0;
}
