// SPDX-License-Identifier: MIT
/*
 * The migration handshake's message reader and writer (net.h), shared by
 * the source's half (migrate/handshake.c) and the target's
 * (restore/receive.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "stream/net.h"

const char *strm_hs_strerror(int rc)
{
	if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -ETIMEDOUT)
		return "timed out: the peer is stalled";
	if (rc == -ENODATA)
		return "connection closed";
	if (rc == -ECANCELED)
		return "cancelled";
	return ferry_strerror(rc);
}

/* After got bytes of STRM_HS_ERROR: the peer's reason, up to its newline,
 * into err. -ECONNREFUSED, or 0 when there was no reason to read (*n: the
 * last read's result). */
static int read_refusal(struct strm_io *io, char *buf, size_t size, size_t got, ssize_t *n,
			char *err, size_t errlen)
{
	size_t elen = strlen(STRM_HS_ERROR);

	while (got < size - 1 && !memchr(buf, '\n', got)) {
		*n = strm_io_read(io, buf + got, 1);
		if (*n <= 0)
			break;
		got += (size_t)*n;
	}
	buf[got] = 0;
	buf[strcspn(buf, "\n")] = 0;
	if (strlen(buf) <= elen)
		return 0;
	snprintf(err, errlen, "the target refused: %s", buf + elen);
	return -ECONNREFUSED;
}

int strm_hs_read(struct strm_io *io, const char *msg, size_t len, const char *what, char *err,
		 size_t errlen)
{
	size_t elen = strlen(STRM_HS_ERROR), got = 0;
	char buf[512];
	ssize_t n = 0;

	while (got < len) {
		n = strm_io_read(io, buf + got, len - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memcmp(buf, msg, got))
			break;
	}
	if (got == len && !memcmp(buf, msg, len))
		return 0;
	if (got && !strncmp(buf, STRM_HS_ERROR, got < elen ? got : elen)) {
		int rc = read_refusal(io, buf, sizeof(buf), got, &n, err, errlen);

		if (rc)
			return rc;
	}
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", what, strm_hs_strerror((int)n));
		return (int)n;
	}
	if (got < len && !n) {
		snprintf(err, errlen, "%s: connection closed", what);
		return -ECONNRESET;
	}
	snprintf(err, errlen, "%s: unexpected bytes from the peer", what);
	return -EPROTO;
}

int strm_hs_write(struct strm_io *io, const void *msg, size_t len)
{
	int rc = strm_io_write(io, msg, len);

	return rc ?: strm_io_flush(io);
}
