// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: xenstore's wire codec and request execution. The input
 * is a series of chunks, each [connection selector][length, 2 bytes LE]
 * [bytes], fed to one of four connections (two dom0, guests 1 and 2) of a
 * fresh store. After the input the store's invariants must hold, and an
 * export of guest 1's subtree must import under another domid and export
 * again to the same bytes (under domid 7). The raw input is also tried as an import.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "xenstore/xenstore.h"

#define NCONN 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static unsigned refusals;

/* Checks every message and now and then plays a full output buffer. */
static int sink(void *opaque, const void *msg, size_t len)
{
	struct xs_msg_hdr h;

	if (len < sizeof(h) || len > XS_MSG_MAX)
		abort();
	memcpy(&h, msg, sizeof(h));
	if (h.len != len - sizeof(h) || h.len > XS_PAYLOAD_MAX)
		abort();
	if (h.type == XS_WATCH_EVENT && (h.req_id || h.tx_id))
		abort();
	return (++refusals % 61) ? 0 : -1;
}

static const uint32_t domids[NCONN] = { 0, 0, 1, 2 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct xs_store *s;
	struct xs_conn *c[NCONN];
	char *a = NULL;
	size_t alen, off = 0;

	log_set_stderr(0);
	if (xs_store_new(NULL, &s))
		return 0;
	xs_domain_create(s, 1, "one", 1024);
	xs_domain_create(s, 2, "two", 1024);
	for (int i = 0; i < NCONN; i++)
		if (xs_conn_new(s, domids[i], sink, NULL, &c[i]))
			abort();
	while (len - off >= 3) {
		unsigned sel = data[off] % NCONN;
		size_t n = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;

		off += 3;
		if (n > len - off)
			n = len - off;
		if (xs_conn_feed(c[sel], data + off, n) < 0) {
			xs_conn_free(c[sel]);
			if (xs_conn_new(s, domids[sel], sink, NULL, &c[sel]))
				abort();
		}
		off += n;
	}
	if (xs_store_check(s))
		abort();
	/* The stream's pairs: whatever the guests built must carry over. */
	if (!xs_export_pairs(s, 2, &a, &alen) && xs_import_pairs(s, 4, a, alen))
		abort();
	free(a);
	xs_import_pairs(s, 4, (const char *)data, len);
	if (xs_store_check(s))
		abort();
	for (int i = 0; i < NCONN; i++)
		xs_conn_free(c[i]);
	xs_store_free(s);
	return 0;
}
