// SPDX-License-Identifier: MIT
/*
 * What held a TCP sender up, from the kernel's TCP_INFO: the auto codec
 * (frame-io.c) tells a slow link, which compression helps, from a slow
 * reader, which it does not (the reader's decompression adds to its work).
 * Kept apart: <linux/tcp.h> has these fields and clashes with glibc's
 * <netinet/tcp.h>, which tcp.c uses.
 */
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "internal-io.h"

int strm_sock_rwnd_limited_us(int fd, uint64_t *us)
{
	struct tcp_info ti = {0};
	socklen_t len = sizeof(ti);

	if (fd < 0)
		return -EBADF;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -errno;
	/* An older kernel's shorter struct: no such field. */
	if (len < offsetof(struct tcp_info, tcpi_rwnd_limited) + sizeof(ti.tcpi_rwnd_limited))
		return -EOPNOTSUPP;
	*us = ti.tcpi_rwnd_limited;
	return 0;
}
