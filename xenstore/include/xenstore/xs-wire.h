/* SPDX-License-Identifier: MIT */
/*
 * Xenstore's wire protocol, as Xen defines it in public/io/xs_wire.h and
 * docs/misc/xenstore.txt, written out in Ferry's words: the message header,
 * message types, error names, limits and the shared ring page layout; plus a
 * sans-I/O codec that turns a byte stream into complete messages and builds
 * messages into caller buffers. Nothing here allocates.
 */
#ifndef XENSTORE_XS_WIRE_H
#define XENSTORE_XS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Message types: Xen's numbering. 20 was XS_RESTRICT, now retired. */
enum xs_msg_type {
	XS_CONTROL = 0, /* once XS_DEBUG */
	XS_DIRECTORY = 1,
	XS_READ = 2,
	XS_GET_PERMS = 3,
	XS_WATCH = 4,
	XS_UNWATCH = 5,
	XS_TRANSACTION_START = 6,
	XS_TRANSACTION_END = 7,
	XS_INTRODUCE = 8,
	XS_RELEASE = 9,
	XS_GET_DOMAIN_PATH = 10,
	XS_WRITE = 11,
	XS_MKDIR = 12,
	XS_RM = 13,
	XS_SET_PERMS = 14,
	XS_WATCH_EVENT = 15,
	XS_ERROR = 16,
	XS_IS_DOMAIN_INTRODUCED = 17,
	XS_RESUME = 18,
	XS_SET_TARGET = 19,
	XS_RESET_WATCHES = 21,
	XS_DIRECTORY_PART = 22,
	XS_TYPE_COUNT,
	XS_INVALID = 0xffff,
};

/* Every message, both ways: this header then len bytes of payload. Host
 * byte order (the ring and the unix socket are both local). */
struct xs_msg_hdr {
	uint32_t type;	 /* enum xs_msg_type */
	uint32_t req_id; /* echoed in the reply */
	uint32_t tx_id;	 /* transaction, 0 for none */
	uint32_t len;	 /* payload bytes that follow */
};
_Static_assert(sizeof(struct xs_msg_hdr) == 16, "xsd_sockmsg is 16 bytes");

/* Limits. A payload over XS_PAYLOAD_MAX kills the connection (as in Xen);
 * paths over the path limits get EINVAL. */
#define XS_PAYLOAD_MAX 4096
#define XS_ABS_PATH_MAX 3072
#define XS_REL_PATH_MAX 2048
#define XS_MSG_MAX (sizeof(struct xs_msg_hdr) + XS_PAYLOAD_MAX)

/* The shared page a guest and the store talk through (struct
 * xenstore_domain_interface): two byte rings, free-running indices. */
#define XS_RING_SIZE 1024
#define XS_RING_MASK(idx) ((idx) & (XS_RING_SIZE - 1))
struct xs_ring_page {
	char req[XS_RING_SIZE]; /* guest -> store */
	char rsp[XS_RING_SIZE]; /* store -> guest: replies and watch events */
	uint32_t req_cons, req_prod;
	uint32_t rsp_cons, rsp_prod;
	uint32_t server_features; /* XS_SERVER_FEATURE_* */
	uint32_t connection;	  /* XS_CONNECTED / XS_RECONNECT */
	uint32_t error;		  /* XS_RING_ERROR_* */
	uint32_t evtchn_port;	  /* 0: use the start_info/HVM param one */
};
_Static_assert(sizeof(struct xs_ring_page) == 2080, "ring page layout");
_Static_assert(__builtin_offsetof(struct xs_ring_page, req_cons) == 2048,
	       "ring indices follow the two rings");
_Static_assert(__builtin_offsetof(struct xs_ring_page, server_features) == 2064,
	       "features after the indices");
#define XS_SERVER_FEATURE_RECONNECTION 1
#define XS_SERVER_FEATURE_ERROR 2
#define XS_CONNECTED 0
#define XS_RECONNECT 1
#define XS_RING_ERROR_NONE 0
#define XS_RING_ERROR_COMM 1
#define XS_RING_ERROR_RINGIDX 2
#define XS_RING_ERROR_PROTO 3

/* Permission letters on the wire: n (none), r, w, b (both). */
#define XS_PERM_NONE 0u
#define XS_PERM_READ 1u
#define XS_PERM_WRITE 2u
#define XS_PERM_BOTH (XS_PERM_READ | XS_PERM_WRITE)

/* Xen's error names for a positive errno ("EINVAL" for one Xen does not
 * list, as xenstored does), and back (0 if the name is unknown). */
const char *xs_wire_errname(int err);
int xs_wire_errno(const char *name);
/* "READ", "WRITE", ... or "?" */
const char *xs_wire_type_name(uint32_t type);

/*
 * Incremental decoder. Feed any number of bytes; it stops at the end of each
 * complete message so the caller can act on it, then xs_wire_rx_next().
 * The payload is kept NUL-terminated (one byte past len) for convenience.
 * A len over XS_PAYLOAD_MAX is refused from the header alone.
 */
struct xs_wire_rx {
	struct xs_msg_hdr hdr;
	uint32_t have; /* bytes of header + payload received */
	bool complete;
	uint8_t buf[XS_MSG_MAX + 1];
};
void xs_wire_rx_init(struct xs_wire_rx *rx);
/* Consumes up to len bytes, stopping after a message completes. Returns the
 * bytes consumed, or -E2BIG for an oversize len (the stream is then
 * unusable). rx->complete tells whether a message is ready: its header is
 * rx->hdr and its payload xs_wire_rx_payload(). */
long xs_wire_rx_feed(struct xs_wire_rx *rx, const void *data, size_t len);
static inline const char *xs_wire_rx_payload(const struct xs_wire_rx *rx)
{
	return (const char *)rx->buf + sizeof(struct xs_msg_hdr);
}
/* Forgets the complete message, ready for the next. */
void xs_wire_rx_next(struct xs_wire_rx *rx);

/* Builds header + the concatenation of the nparts payload parts into out
 * (room for XS_MSG_MAX). Returns the message length, or -E2BIG if the
 * payload would exceed XS_PAYLOAD_MAX. */
struct xs_iov {
	const void *p;
	size_t len;
};
long xs_wire_build(uint8_t *out, uint32_t type, uint32_t req_id, uint32_t tx_id,
		   const struct xs_iov *parts, unsigned nparts);

/* Counts NUL-terminated strings in a payload (bytes after the last NUL are
 * not a string); stores up to max pointers to them in vec. */
unsigned xs_wire_strings(const char *p, size_t len, const char **vec,
			 unsigned max);

#endif
