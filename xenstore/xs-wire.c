// SPDX-License-Identifier: MIT
/* Xenstore wire codec: framing, message building, error and type names. */
#include <errno.h>
#include <string.h>

#include "common/compiler.h"
#include "xenstore/xs-wire.h"

#define HDR sizeof(struct xs_msg_hdr)

static const struct {
	int err;
	const char *name;
} errnames[] = {
	/* Xen's xsd_errors table, in Xen's order: EINVAL first is the
	 * fallback for anything else. */
	{ EINVAL, "EINVAL" }, { EACCES, "EACCES" },	  { EEXIST, "EEXIST" },
	{ EISDIR, "EISDIR" }, { ENOENT, "ENOENT" },	  { ENOMEM, "ENOMEM" },
	{ ENOSPC, "ENOSPC" }, { EIO, "EIO" },		  { ENOTEMPTY, "ENOTEMPTY" },
	{ ENOSYS, "ENOSYS" }, { EROFS, "EROFS" },	  { EBUSY, "EBUSY" },
	{ EAGAIN, "EAGAIN" }, { EISCONN, "EISCONN" }, { E2BIG, "E2BIG" },
};

const char *xs_wire_errname(int err)
{
	if (err < 0)
		err = -err;
	for (size_t i = 0; i < ARRAY_SIZE(errnames); i++)
		if (errnames[i].err == err)
			return errnames[i].name;
	return errnames[0].name;
}

int xs_wire_errno(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(errnames); i++)
		if (!strcmp(errnames[i].name, name))
			return errnames[i].err;
	return 0;
}

static const char *const type_names[XS_TYPE_COUNT] = {
	[XS_CONTROL] = "CONTROL",
	[XS_DIRECTORY] = "DIRECTORY",
	[XS_READ] = "READ",
	[XS_GET_PERMS] = "GET_PERMS",
	[XS_WATCH] = "WATCH",
	[XS_UNWATCH] = "UNWATCH",
	[XS_TRANSACTION_START] = "TRANSACTION_START",
	[XS_TRANSACTION_END] = "TRANSACTION_END",
	[XS_INTRODUCE] = "INTRODUCE",
	[XS_RELEASE] = "RELEASE",
	[XS_GET_DOMAIN_PATH] = "GET_DOMAIN_PATH",
	[XS_WRITE] = "WRITE",
	[XS_MKDIR] = "MKDIR",
	[XS_RM] = "RM",
	[XS_SET_PERMS] = "SET_PERMS",
	[XS_WATCH_EVENT] = "WATCH_EVENT",
	[XS_ERROR] = "ERROR",
	[XS_IS_DOMAIN_INTRODUCED] = "IS_DOMAIN_INTRODUCED",
	[XS_RESUME] = "RESUME",
	[XS_SET_TARGET] = "SET_TARGET",
	[XS_RESET_WATCHES] = "RESET_WATCHES",
	[XS_DIRECTORY_PART] = "DIRECTORY_PART",
};

const char *xs_wire_type_name(uint32_t type)
{
	if (type < XS_TYPE_COUNT && type_names[type])
		return type_names[type];
	return "?";
}

void xs_wire_rx_init(struct xs_wire_rx *rx)
{
	memset(&rx->hdr, 0, sizeof(rx->hdr));
	rx->have = 0;
	rx->complete = false;
}

void xs_wire_rx_next(struct xs_wire_rx *rx)
{
	rx->have = 0;
	rx->complete = false;
}

long xs_wire_rx_feed(struct xs_wire_rx *rx, const void *data, size_t len)
{
	const uint8_t *in = data;
	size_t used = 0, n;

	if (rx->complete)
		return 0;
	if (rx->have < HDR) {
		n = MIN(len, HDR - rx->have);
		memcpy(rx->buf + rx->have, in, n);
		rx->have += n;
		used += n;
		if (rx->have < HDR)
			return (long)used;
		memcpy(&rx->hdr, rx->buf, HDR);
		if (rx->hdr.len > XS_PAYLOAD_MAX)
			return -E2BIG;
	}
	n = MIN(len - used, HDR + rx->hdr.len - rx->have);
	memcpy(rx->buf + rx->have, in + used, n);
	rx->have += n;
	used += n;
	if (rx->have == HDR + rx->hdr.len) {
		rx->buf[rx->have] = 0;
		rx->complete = true;
	}
	return (long)used;
}

long xs_wire_build(uint8_t *out, uint32_t type, uint32_t req_id, uint32_t tx_id,
		   const struct xs_iov *parts, unsigned nparts)
{
	struct xs_msg_hdr h = { .type = type, .req_id = req_id, .tx_id = tx_id };
	size_t len = 0;

	for (unsigned i = 0; i < nparts; i++) {
		if (parts[i].len > XS_PAYLOAD_MAX - len)
			return -E2BIG;
		len += parts[i].len;
	}
	h.len = (uint32_t)len;
	memcpy(out, &h, HDR);
	len = HDR;
	for (unsigned i = 0; i < nparts; i++) {
		if (parts[i].len)
			memcpy(out + len, parts[i].p, parts[i].len);
		len += parts[i].len;
	}
	return (long)len;
}

unsigned xs_wire_strings(const char *p, size_t len, const char **vec,
			 unsigned max)
{
	unsigned n = 0;
	size_t off = 0;
	const char *nul;

	while (off < len && (nul = memchr(p + off, 0, len - off))) {
		if (n < max)
			vec[n] = p + off;
		n++;
		off = (size_t)(nul - p) + 1;
	}
	return n;
}
