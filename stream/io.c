// SPDX-License-Identifier: MIT
/* Generic strm_io: offset accounting, sticky errors, messages. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "internal-io.h"

void strm_io_init(struct strm_io *io, const struct strm_io_ops *ops)
{
	memset(io, 0, sizeof(*io));
	io->ops = ops;
}

int strm_io_fail(struct strm_io *io, int err, const char *fmt, ...)
{
	va_list ap;

	if (io->err)
		return err;
	io->err = err;
	va_start(ap, fmt);
	vsnprintf(io->msg, sizeof(io->msg), fmt, ap);
	va_end(ap);
	log_err("stream %s: %s", io->ops->name, io->msg);
	return err;
}

/* A hook failed without recording a message: give it a generic one. */
static int io_failed(struct strm_io *io, int err, const char *what)
{
	if (!io->err)
		strm_io_fail(io, err, "%s at offset %" PRIu64 ": %s", what, io->offset,
			     ferry_strerror(err));
	return io->err;
}

/* The same for the writing side; no error was pending when it started. */
static int write_failed(struct strm_io *io, int err, const char *what)
{
	io->err_write = true;
	return io_failed(io, err, what);
}

int strm_io_keep_reading(struct strm_io *io)
{
	if (io->err && !io->err_write)
		return io->err;
	io->err = 0;
	io->err_write = false;
	io->finished = true;
	return 0;
}

ssize_t strm_io_read(struct strm_io *io, void *buf, size_t len)
{
	ssize_t n;

	if (io->err)
		return io->err;
	if (!io->ops->read)
		return -EBADF;
	if (len == 0)
		return 0;
	n = io->ops->read(io, buf, len);
	if (n < 0)
		return io_failed(io, (int)n, "read");
	io->offset += (uint64_t)n;
	return n;
}

int strm_io_read_full(struct strm_io *io, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = strm_io_read(io, (char *)buf + got, len - got);

		if (n < 0)
			return (int)n;
		if (n == 0) {
			/* Not sticky: the caller may accept a clean end here. */
			if (!io->err)
				snprintf(io->msg, sizeof(io->msg),
					 "stream ends at offset %" PRIu64 ", %zu bytes short",
					 io->offset, len - got);
			return -ENODATA;
		}
		got += (size_t)n;
	}
	return 0;
}

int strm_io_writev(struct strm_io *io, const struct iovec *iov, int iovcnt)
{
	uint64_t total = 0;
	int err;

	if (io->err)
		return io->err;
	if (!io->ops->writev || io->finished)
		return -EBADF;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total == 0)
		return 0;
	err = io->ops->writev(io, iov, iovcnt);
	if (err)
		return write_failed(io, err, "write");
	io->offset += total;
	return 0;
}

int strm_io_write(struct strm_io *io, const void *buf, size_t len)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return strm_io_writev(io, &iov, 1);
}

int strm_io_sock_fd(const struct strm_io *io)
{
	return io && io->ops->sock_fd ? io->ops->sock_fd(io) : -1;
}

bool strm_io_authenticates(const struct strm_io *io)
{
	return io && io->ops->authenticates && io->ops->authenticates(io);
}

int strm_io_flush(struct strm_io *io)
{
	int err;

	if (io->err)
		return io->err;
	if (!io->ops->flush)
		return 0;
	err = io->ops->flush(io);
	return err ? write_failed(io, err, "flush") : 0;
}

int strm_io_finish(struct strm_io *io)
{
	int err = 0;

	if (io->err)
		return io->err;
	if (io->finished || !io->ops->writev)
		return 0;
	if (io->ops->finish)
		err = io->ops->finish(io);
	else if (io->ops->flush)
		err = io->ops->flush(io);
	io->finished = true;
	return err ? write_failed(io, err, "finish") : 0;
}

int strm_io_close(struct strm_io *io)
{
	int err, cerr;

	if (!io)
		return 0;
	err = io->err ? io->err : strm_io_finish(io);
	cerr = io->ops->close(io);
	return err ? err : cerr;
}

uint64_t strm_io_offset(const struct strm_io *io)
{
	return io->offset;
}

const char *strm_io_error(const struct strm_io *io)
{
	return io->msg;
}
