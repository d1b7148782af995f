/* SPDX-License-Identifier: MIT */
/*
 * Ring index arithmetic, xenstore message framing and parsing, console
 * input lines: the part of the PV client that touches no hypercall, kept
 * apart so the hosted tests can drive it with fake rings in memory.
 */
#include "pv.h"

int64_t pv_ring_used(uint32_t cons, uint32_t prod, uint32_t size)
{
	uint32_t used = prod - cons;	/* free-running: wraps at 2^32 */

	return used > size ? -1 : (int64_t)used;
}

size_t pv_ring_put(char *ring, uint32_t size, uint32_t cons, uint32_t prod,
		   const void *src, size_t len)
{
	const char *s = src;
	int64_t used = pv_ring_used(cons, prod, size);
	size_t room, i;

	if (used < 0)
		return 0;
	room = size - (size_t)used;
	if (len > room)
		len = room;
	for (i = 0; i < len; i++)
		ring[(prod + i) & (size - 1)] = s[i];
	return len;
}

size_t pv_ring_get(const char *ring, uint32_t size, uint32_t cons,
		   uint32_t prod, void *dst, size_t len)
{
	char *d = dst;
	int64_t used = pv_ring_used(cons, prod, size);
	size_t i;

	if (used < 0)
		return 0;
	if (len > (size_t)used)
		len = (size_t)used;
	for (i = 0; i < len; i++)
		d[i] = ring[(cons + i) & (size - 1)];
	return len;
}

void pv_xs_rx_reset(struct pv_xs_rx *rx)
{
	rx->have = 0;
	rx->hdr.len = 0;
	rx->body[0] = '\0';
}

int64_t pv_xs_rx_feed(struct pv_xs_rx *rx, const void *p, size_t len,
		      bool *done)
{
	const char *s = p;
	size_t taken = 0;

	*done = false;
	while (taken < len) {
		if (rx->have < sizeof(rx->hdr)) {
			((char *)&rx->hdr)[rx->have++] = s[taken++];
			if (rx->have == sizeof(rx->hdr) &&
			    rx->hdr.len > PV_XS_PAYLOAD_MAX)
				return -1;
		} else if (rx->have - sizeof(rx->hdr) < rx->hdr.len) {
			rx->body[rx->have++ - sizeof(rx->hdr)] = s[taken++];
		}
		if (rx->have >= sizeof(rx->hdr) &&
		    rx->have - sizeof(rx->hdr) == rx->hdr.len) {
			rx->body[rx->hdr.len] = '\0';
			*done = true;
			break;
		}
	}
	/* A header with len 0 completes without taking payload bytes. */
	if (!*done && rx->have == sizeof(rx->hdr) && rx->hdr.len == 0) {
		rx->body[0] = '\0';
		*done = true;
	}
	return (int64_t)taken;
}

int64_t pv_xs_frame(void *buf, size_t buflen, uint32_t type, uint32_t req_id,
		    const char *const *parts, const size_t *lens,
		    const bool *nul, unsigned nparts)
{
	struct pv_xs_hdr h = { .type = type, .req_id = req_id, .tx_id = 0 };
	char *out = buf;
	size_t total = 0, pos, i;
	unsigned k;

	for (k = 0; k < nparts; k++)
		total += lens[k] + (nul[k] ? 1 : 0);
	if (total > PV_XS_PAYLOAD_MAX || sizeof(h) + total > buflen)
		return -1;
	h.len = (uint32_t)total;
	for (i = 0; i < sizeof(h); i++)
		out[i] = ((const char *)&h)[i];
	pos = sizeof(h);
	for (k = 0; k < nparts; k++) {
		for (i = 0; i < lens[k]; i++)
			out[pos++] = parts[k][i];
		if (nul[k])
			out[pos++] = '\0';
	}
	return (int64_t)pos;
}

int pv_xs_parse_watch(const char *body, uint32_t len, const char **path,
		      const char **token)
{
	uint32_t i;

	for (i = 0; i < len && body[i]; i++)
		;
	if (i == 0 || i >= len)
		return -1;	/* empty path or no token */
	*path = body;
	*token = body + i + 1;
	/* body[len] is NUL (pv_xs_rx), so the token is terminated either way;
	 * but a token must not hold another NUL before len - 1. */
	for (i = i + 1; i < len; i++)
		if (!body[i] && i != len - 1)
			return -1;
	return 0;
}

static bool str_eq(const char *a, uint32_t alen, const char *b)
{
	uint32_t i;

	for (i = 0; i < alen && a[i]; i++)
		if (a[i] != b[i])
			return false;
	return b[i] == '\0';
}

int pv_xs_errno(const char *body, uint32_t len)
{
	static const struct { const char *name; int err; } tbl[] = {
		{ "EINVAL", XEN_EINVAL }, { "EACCES", 13 },
		{ "EEXIST", XEN_EEXIST }, { "EISDIR", 21 },
		{ "ENOENT", XEN_ENOENT }, { "ENOMEM", XEN_ENOMEM },
		{ "ENOSPC", XEN_ENOSPC }, { "EIO", 5 },
		{ "ENOTEMPTY", 39 }, { "ENOSYS", XEN_ENOSYS },
		{ "EROFS", 30 }, { "EBUSY", XEN_EBUSY },
		{ "EAGAIN", 11 }, { "EISCONN", 106 }, { "E2BIG", 7 },
		{ "EPERM", XEN_EPERM },
	};
	unsigned i;

	for (i = 0; i < sizeof(tbl) / sizeof(tbl[0]); i++)
		if (str_eq(body, len, tbl[i].name))
			return tbl[i].err;
	return XEN_EINVAL;
}

bool pv_line_add(struct pv_line *l, char c)
{
	bool cr = l->last_cr;

	l->last_cr = c == '\r';
	if (c == '\n' && cr)
		return false;	/* the LF of a CRLF */
	if (c == '\r' || c == '\n') {
		l->buf[l->len] = '\0';
		l->len = 0;
		return true;
	}
	if ((unsigned char)c < 0x20 || c == 0x7f)
		return false;
	if (l->len + 1 < sizeof(l->buf))
		l->buf[l->len++] = c;
	return false;
}
