// SPDX-License-Identifier: MIT
/* The pair's messages on the link: a header, then a bounded payload. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "internal.h"

struct hdr {
	uint32_t magic, type, len;
};

const char *ha_msg_name(uint32_t type)
{
	switch (type) {
	case HA_MSG_DATA: return "DATA";
	case HA_MSG_ACK: return "ACK";
	case HA_MSG_HB: return "HB";
	case HA_MSG_BYE: return "BYE";
	case HA_MSG_ERR: return "ERR";
	}
	return "unknown";
}

int ha_link_send(struct strm_io *link, uint32_t type, const void *payload, uint32_t len)
{
	struct hdr h = {htole32(HA_MAGIC), htole32(type), htole32(len)};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, len}};

	return strm_io_writev(link, iov, len ? 2 : 1) ?: strm_io_flush(link);
}

int ha_link_send_u64(struct strm_io *link, uint32_t type, uint64_t v)
{
	uint64_t le = htole64(v);

	return ha_link_send(link, type, &le, sizeof(le));
}

static int bad(char *err, size_t errlen, uint64_t at, const char *fmt, uint32_t a, uint32_t b)
{
	char what[160];

	snprintf(what, sizeof(what), fmt, a, b);
	snprintf(err, errlen, "the pair's link: %s (message at byte %" PRIu64 ")", what, at);
	return -EPROTO;
}

int ha_link_recv(struct strm_io *link, int timeout_ms, void *buf, struct ha_msg *m, char *err,
		 size_t errlen)
{
	uint64_t at = strm_io_offset(link);
	uint32_t max;
	struct hdr h;
	int rc;

	rc = strm_io_wait_in(link, timeout_ms);
	if (rc <= 0)
		return rc;
	rc = strm_io_read_full(link, &h, sizeof(h));
	if (rc) {
		snprintf(err, errlen, "%s",
			 rc == -ENODATA ? "the peer closed the link" : strm_io_error(link));
		return rc;
	}
	memset(m, 0, sizeof(*m));
	m->type = le32toh(h.type);
	m->len = le32toh(h.len);
	if (le32toh(h.magic) != HA_MAGIC)
		return bad(err, errlen, at, "bad magic 0x%08x (type %u)", le32toh(h.magic),
			   m->type);
	if (m->type < HA_MSG_DATA || m->type > HA_MSG_ERR)
		return bad(err, errlen, at, "unknown message type %u (length %u)", m->type, m->len);
	max = m->type == HA_MSG_DATA ? HA_DATA_MAX : m->type == HA_MSG_ERR ? HA_ERR_MAX - 1 : 8;
	if (m->len > max || (m->type != HA_MSG_DATA && m->type != HA_MSG_ERR && m->len != 8))
		return bad(err, errlen, at, "a message of type %u with %u bytes", m->type, m->len);
	rc = strm_io_read_full(link, buf, m->len);
	if (rc) {
		snprintf(err, errlen, "%s",
			 rc == -ENODATA ? "the link ended inside a message" : strm_io_error(link));
		return rc;
	}
	if (m->type == HA_MSG_DATA) {
		m->data = buf;
	} else if (m->type == HA_MSG_ERR) {
		((char *)buf)[m->len] = '\0';
		m->data = buf;
	} else {
		uint64_t le;

		memcpy(&le, buf, sizeof(le));
		m->value = le64toh(le);
	}
	return 1;
}
