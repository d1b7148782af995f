// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the stream decoder on arbitrary bytes. The first byte
 * picks how the rest is cut into chunks (the decoder must give the same
 * result for any split), whether a pfn limit applies, and whether the
 * stream is read as checkpointed (bit 5; bit 6: a 16 KiB bound on an
 * epoch) or as a page channel's (bit 7). A checkpointed decode must hand
 * epochs over whole and in order: every record of epoch e > 1 comes once
 * e - 1 epochs are complete, no record of an epoch after another's, else
 * abort(). Seeds:
 * tests/fuzz/corpus/stream/ (ckpt-*: tests/restore/test-fixture.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "stream/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

struct seen {
	uint64_t sum;
	struct strm_dec *dec;
	uint64_t last_epoch;
};

/* Epochs come whole and in order (stream/codec.h). */
static void check_epoch(struct seen *s, const struct strm_rec *rec)
{
	uint64_t done = strm_dec_epochs(s->dec);

	if (rec->epoch < s->last_epoch)
		abort();
	if (rec->epoch > 1 && done != rec->epoch - 1)
		abort();
	s->last_epoch = rec->epoch;
}

static int on_rec(void *opaque, const struct strm_rec *rec)
{
	struct seen *seen = opaque;
	uint64_t *sum = &seen->sum;
	struct strm_hvm_entry e;
	uint32_t pos = 0;

	check_epoch(seen, rec);
	/* Touch what the decoder hands out, so ASan sees any overrun. */
	for (uint32_t i = 0; i < rec->len; i += 64)
		*sum += rec->body[i];
	if (rec->len)
		*sum += rec->body[rec->len - 1];
	for (uint32_t i = 0; i < rec->page_count; i++)
		*sum += rec->page_pfns[i];
	if (rec->layer == STRM_LIBXC && rec->type == REC_TYPE_HVM_CONTEXT)
		while (strm_hvm_ctx_next(rec->body, rec->len, &pos, &e) > 0)
			*sum += e.length ? e.payload[e.length - 1] : 0;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const size_t chunks[8] = { 0, 1, 2, 7, 8, 61, 4096, 65536 };
	struct strm_dec_limits lim = { 0 };
	struct seen seen = { 0 };
	struct strm_dec *dec;
	size_t chunk;
	int rc = 0;

	log_set_stderr(0);
	if (!len)
		return 0;
	chunk = chunks[data[0] & 7];
	if (data[0] & 8)
		lim.max_pfn = 3;
	if (data[0] & 16)
		lim.max_rec_len = 64 << 10;
	lim.checkpointed = data[0] & 32;
	if (data[0] & 64)
		lim.max_epoch_bytes = 16 << 10;
	lim.page_channel = data[0] & 128;
	data++;
	len--;
	if (!chunk)
		chunk = len ? len : 1;
	if (strm_dec_new(&lim, &dec))
		return 0;
	seen.dec = dec;
	for (size_t off = 0; !rc && off < len; off += chunk)
		rc = strm_dec_feed(dec, data + off, len - off < chunk ? len - off : chunk, on_rec,
				   &seen);
	if (!rc)
		rc = strm_dec_finish(dec);
	if (rc && !strm_dec_error(dec)[0])
		abort(); /* every error has a message */
	strm_dec_free(dec);
	return 0;
}
