// SPDX-License-Identifier: MIT
/*
 * strm_io over a file descriptor (file, pipe, socket). Blocking, or, with a
 * cancel token or a progress timeout attached, non-blocking with the waits
 * in strm_wait_fd.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "internal-io.h"

#define FD_IOV_BATCH 256

struct io_fd {
	struct strm_io io;
	int fd;
	bool own;
	bool waits; /* non-blocking: wait in strm_wait_fd */
	struct strm_cancel *cancel; /* borrowed */
	int progress_ms;
};

/* After EAGAIN on a non-blocking fd: 0 to retry, or the failure recorded. */
static int fd_wait(struct io_fd *f, short events, uint64_t at)
{
	int rc = strm_wait_fd(f->fd, events, f->cancel, f->progress_ms);

	if (rc == -ETIMEDOUT)
		return strm_io_fail(&f->io, rc, "%s fd %d at offset %" PRIu64
				    ": no progress for %d ms", events == POLLIN ? "read" : "write",
				    f->fd, at, f->progress_ms);
	if (rc)
		return strm_io_fail(&f->io, rc, "%s fd %d at offset %" PRIu64 ": %s",
				    events == POLLIN ? "read" : "write", f->fd, at,
				    rc == -ECANCELED ? "cancelled" : ferry_strerror(-rc));
	return 0;
}

static ssize_t fd_read(struct strm_io *io, void *buf, size_t len)
{
	struct io_fd *f = container_of(io, struct io_fd, io);
	ssize_t n;

	if (strm_cancel_fired(f->cancel))
		return fd_wait(f, POLLIN, io->offset);
	for (;;) {
		n = read(f->fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && f->waits && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = fd_wait(f, POLLIN, io->offset);

			if (rc)
				return rc;
			continue;
		}
		break;
	}
	if (n < 0)
		return strm_io_fail(io, -errno, "read fd %d at offset %" PRIu64 ": %s", f->fd,
				    io->offset, strerror(errno));
	return n;
}

static int fd_writev(struct strm_io *io, const struct iovec *iov, int iovcnt)
{
	struct io_fd *f = container_of(io, struct io_fd, io);
	struct iovec v[FD_IOV_BATCH];
	uint64_t done = 0;

	/* A regular file never blocks: a cancelled save stops here. */
	if (strm_cancel_fired(f->cancel))
		return fd_wait(f, POLLOUT, io->offset);
	while (iovcnt > 0) {
		int cnt = MIN(iovcnt, FD_IOV_BATCH);
		int i = 0;

		memcpy(v, iov, (size_t)cnt * sizeof(*v));
		iov += cnt;
		iovcnt -= cnt;
		while (i < cnt) {
			ssize_t n = writev(f->fd, v + i, cnt - i);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && f->waits && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				int rc = fd_wait(f, POLLOUT, io->offset + done);

				if (rc)
					return rc;
				continue;
			}
			if (n < 0)
				return strm_io_fail(io, -errno,
						    "write fd %d at offset %" PRIu64 ": %s", f->fd,
						    io->offset + done, strerror(errno));
			if (n == 0)
				return strm_io_fail(
					io, -EIO, "write fd %d at offset %" PRIu64 ": no progress",
					f->fd, io->offset + done);
			done += (uint64_t)n;
			/* Skip what was written; a short write leaves i at the
			 * partially written entry, advanced. */
			while (i < cnt && (size_t)n >= v[i].iov_len) {
				n -= (ssize_t)v[i].iov_len;
				i++;
			}
			if (i < cnt) {
				v[i].iov_base = (char *)v[i].iov_base + n;
				v[i].iov_len -= (size_t)n;
			}
		}
	}
	return 0;
}

static int fd_close(struct strm_io *io)
{
	struct io_fd *f = container_of(io, struct io_fd, io);
	int err = 0;

	/* close(2) is not retried on EINTR: the fd is gone either way. */
	if (f->own && close(f->fd) < 0 && errno != EINTR)
		err = -errno;
	free(f);
	return err;
}

static int fd_wait_in(struct strm_io *io, int timeout_ms)
{
	struct io_fd *f = container_of(io, struct io_fd, io);

	return strm__wait_in_fd(f->fd, f->cancel, timeout_ms);
}

static int fd_set_cancel(struct strm_io *io, struct strm_cancel *cancel, int progress_ms)
{
	struct io_fd *f = container_of(io, struct io_fd, io);
	int rc = 0;

	if (!f->waits && (cancel || progress_ms))
		rc = strm__fd_nonblock(f->fd);
	if (rc)
		return rc;
	f->waits = f->waits || cancel || progress_ms;
	f->cancel = cancel;
	f->progress_ms = progress_ms;
	return 0;
}

static int fd_sock_fd(const struct strm_io *io)
{
	return container_of(io, struct io_fd, io)->fd;
}

/* clang-format off */
static const struct strm_io_ops strm_io_ops_fd = {
	.name   = "fd",
	.read   = fd_read,
	.writev = fd_writev,
	.flush  = NULL,
	.finish = NULL,
	.set_cancel = fd_set_cancel,
	.wait_in = fd_wait_in,
	.sock_fd = fd_sock_fd,
	.close  = fd_close,
};
/* clang-format on */

int strm_io_fd(int fd, bool own, struct strm_io **out)
{
	struct io_fd *f;

	if (fd < 0)
		return -EBADF;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	strm_io_init(&f->io, &strm_io_ops_fd);
	f->fd = fd;
	f->own = own;
	*out = &f->io;
	return 0;
}
