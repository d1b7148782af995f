// SPDX-License-Identifier: MIT
/*
 * Cancel tokens and the one poll() wait every blocking backend uses, so a
 * stalled peer or a cancelled job never leaves a thread stuck in read(2),
 * write(2) or send(2).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "internal-io.h"

struct strm_cancel {
	int efd;
	int fired; /* __atomic */
};

int strm_cancel_new(struct strm_cancel **out)
{
	struct strm_cancel *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0) {
		int err = -errno;

		free(c);
		return err;
	}
	*out = c;
	return 0;
}

void strm_cancel_fire(struct strm_cancel *c)
{
	uint64_t one = 1;

	if (__atomic_exchange_n(&c->fired, 1, __ATOMIC_SEQ_CST))
		return;
	/* Never read back: the eventfd stays readable for every waiter. */
	if (write(c->efd, &one, sizeof(one)) < 0) {
		/* cannot fail for a non-overflowing eventfd */
	}
}

bool strm_cancel_fired(const struct strm_cancel *c)
{
	return c && __atomic_load_n(&c->fired, __ATOMIC_SEQ_CST);
}

int strm_cancel_fd(const struct strm_cancel *c)
{
	return c->efd;
}

void strm_cancel_free(struct strm_cancel *c)
{
	if (!c)
		return;
	close(c->efd);
	free(c);
}

/* Bytes a socket still holds on their way out (TCP: not yet acknowledged),
 * or -1 for an fd that is no socket. */
static int64_t out_queued(int fd)
{
	int n;

	return ioctl(fd, SIOCOUTQ, &n) ? -1 : n;
}

int strm_wait_fd(int fd, short events, const struct strm_cancel *cancel, int timeout_ms)
{
	struct pollfd p[2] = {{.fd = fd, .events = events},
			      {.fd = cancel ? cancel->efd : -1, .events = POLLIN}};
	int64_t end = timeout_ms > 0 ? (int64_t)(ferry_now_ns() / 1000000) + timeout_ms : 0;
	/* A socket turns writable only once much of its buffer drained (a
	 * quarter to a half of it): on a slow link that takes longer than
	 * the timeout while bytes keep leaving. Bytes leaving are progress. */
	int64_t queued = end && (events & POLLOUT) ? out_queued(fd) : -1;

	for (;;) {
		int left = -1, n;

		if (strm_cancel_fired(cancel))
			return -ECANCELED;
		if (end) {
			int64_t l = end - (int64_t)(ferry_now_ns() / 1000000);

			if (l <= 0 && queued > 0) {
				int64_t q = out_queued(fd);

				if (q >= 0 && q < queued) {
					queued = q;
					end += timeout_ms;
					continue;
				}
			}
			if (l <= 0)
				return -ETIMEDOUT;
			left = (int)l;
		}
		n = poll(p, 2, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (p[1].revents)
			return -ECANCELED;
		if (p[0].revents)
			return 0;
	}
}

int strm_io_set_cancel(struct strm_io *io, struct strm_cancel *cancel, int progress_ms)
{
	if (!io || progress_ms < 0)
		return -EINVAL;
	if (!io->ops->set_cancel)
		return -EINVAL;
	return io->ops->set_cancel(io, cancel, progress_ms);
}

int strm_io_wait_in(struct strm_io *io, int timeout_ms)
{
	if (!io || !io->ops->wait_in)
		return -EINVAL;
	if (io->err && !io->err_write)
		return 1; /* the next read returns the error at once */
	return io->ops->wait_in(io, timeout_ms < 1 ? 1 : timeout_ms);
}

int strm__wait_in_fd(int fd, const struct strm_cancel *cancel, int timeout_ms)
{
	int rc = strm_wait_fd(fd, POLLIN, cancel, timeout_ms);

	return rc == -ETIMEDOUT ? 0 : rc ? rc : 1;
}

/* For backends: puts fd in non-blocking mode. */
int strm__fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}
