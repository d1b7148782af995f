// SPDX-License-Identifier: MIT
/*
 * The decoder on checkpointed streams (stream/codec.h), from hand-built
 * bytes (tests/common/ckpt-bytes.h): each epoch handed over whole and in
 * order, CHECKPOINT_END last; a cut anywhere in the last epoch hands over
 * none of it; the layering rules of Xen's specs; the bound on an epoch.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ckpt-bytes.h"
#include "stream/codec.h"

struct got {
	struct {
		enum strm_layer layer;
		uint32_t type;
		uint64_t epoch, epochs_then;
	} v[64];
	unsigned n;
	struct strm_dec *dec;
};

static int on_rec(void *opaque, const struct strm_rec *rec)
{
	struct got *g = opaque;

	cr_assert_lt(g->n, 64);
	g->v[g->n].layer = rec->layer;
	g->v[g->n].type = rec->type;
	g->v[g->n].epoch = rec->epoch;
	g->v[g->n].epochs_then = strm_dec_epochs(g->dec);
	if (rec->layer == STRM_LIBXC && rec->type == REC_TYPE_PAGE_DATA && rec->epoch) {
		cr_assert_eq((uintptr_t)rec->page_pfns % 8, 0);
		/* the fill byte of the first page names its epoch */
		cr_assert_eq(rec->page_data[0],
			     CKPT_FILL(rec->epoch, rec->page_pfns[0] & PAGE_DATA_PFN_MASK));
	}
	g->n++;
	return 0;
}

/* Decodes p[0, len) in chunks; returns finish's (or feed's) result. */
static int run(const uint8_t *p, size_t len, size_t chunk, bool ckpt, uint64_t max_epoch,
	       struct got *g, char *err, size_t errlen)
{
	struct strm_dec_limits lim = { .checkpointed = ckpt, .max_epoch_bytes = max_epoch };
	int rc;

	memset(g, 0, sizeof(*g));
	cr_assert_eq(strm_dec_new(&lim, &g->dec), 0);
	rc = 0;
	for (size_t off = 0; !rc && off < len; off += chunk)
		rc = strm_dec_feed(g->dec, p + off, len - off < chunk ? len - off : chunk,
				   on_rec, g);
	if (!rc)
		rc = strm_dec_finish(g->dec);
	snprintf(err, errlen, "%s", strm_dec_error(g->dec));
	strm_dec_free(g->dec);
	return rc;
}

/* Records of the fixture, in the order they must be handed over. */
static const struct {
	enum strm_layer layer;
	uint32_t type;
	uint64_t epoch;
} order[] = {
	{ STRM_XL, 0, 1 },
	{ STRM_LIBXL, LIBXL_REC_LIBXC_CONTEXT, 1 },
	{ STRM_LIBXC, STRM_REC_LIBXC_HEADERS, 1 },
	{ STRM_LIBXC, REC_TYPE_STATIC_DATA_END, 1 },
	{ STRM_LIBXC, REC_TYPE_PAGE_DATA, 1 },
	{ STRM_LIBXC, REC_TYPE_X86_TSC_INFO, 1 },
	{ STRM_LIBXC, REC_TYPE_HVM_CONTEXT, 1 },
	{ STRM_LIBXC, REC_TYPE_CHECKPOINT, 1 },
	{ STRM_LIBXL, LIBXL_REC_EMULATOR_XENSTORE_DATA, 1 },
	{ STRM_LIBXL, LIBXL_REC_CHECKPOINT_END, 1 },
	{ STRM_LIBXC, REC_TYPE_PAGE_DATA, 2 },
	{ STRM_LIBXC, REC_TYPE_X86_TSC_INFO, 2 },
	{ STRM_LIBXC, REC_TYPE_HVM_CONTEXT, 2 },
	{ STRM_LIBXC, REC_TYPE_CHECKPOINT, 2 },
	{ STRM_LIBXL, LIBXL_REC_CHECKPOINT_END, 2 },
	{ STRM_LIBXC, REC_TYPE_PAGE_DATA, 3 },
	{ STRM_LIBXC, REC_TYPE_X86_TSC_INFO, 3 },
	{ STRM_LIBXC, REC_TYPE_HVM_CONTEXT, 3 },
	{ STRM_LIBXC, REC_TYPE_CHECKPOINT, 3 },
	{ STRM_LIBXL, LIBXL_REC_EMULATOR_XENSTORE_DATA, 3 },
	{ STRM_LIBXL, LIBXL_REC_CHECKPOINT_END, 3 },
	{ STRM_LIBXC, REC_TYPE_END, 4 },
	{ STRM_LIBXL, LIBXL_REC_END, 4 },
};
#define NORDER (sizeof(order) / sizeof(order[0]))

Test(codec_checkpoint, epochs_whole_and_in_order)
{
	static const size_t chunks[] = { 1, 7, 4096, 1 << 20 };
	struct ckpt c;
	struct got g;
	char err[512];

	ckpt_fixture(&c);
	for (size_t k = 0; k < 4; k++) {
		cr_assert_eq(run(c.p, c.len, chunks[k], true, 0, &g, err, sizeof(err)), 0,
			     "%s", err);
		cr_assert_eq(g.n, NORDER);
		for (unsigned i = 0; i < NORDER; i++) {
			cr_expect(g.v[i].layer == order[i].layer && g.v[i].type == order[i].type &&
					  g.v[i].epoch == order[i].epoch,
				  "record %u: layer %d type 0x%x epoch %llu", i, g.v[i].layer,
				  g.v[i].type, (unsigned long long)g.v[i].epoch);
			/* Held records come out only once their epoch is whole,
			 * before the decoder counts it. */
			cr_expect_eq(g.v[i].epochs_then, order[i].epoch - 1, "record %u", i);
		}
	}
	free(c.p);
}

/* Every cut from the end of epoch 2 on: epochs 1 and 2 whole, nothing of
 * epoch 3 until its CHECKPOINT_END is complete, and -ENODATA. */
Test(codec_checkpoint, cut_anywhere_in_the_last_epoch)
{
	struct ckpt c;
	struct got g;
	char err[512];
	unsigned upto2 = 15, upto3 = 21;

	ckpt_fixture(&c);
	for (size_t cut = c.epoch_end[2]; cut < c.tail_end; cut++) {
		unsigned want = cut < c.epoch_end[3] ? upto2 : cut < c.tail_end - 8 ? upto3 : 22;

		cr_assert_eq(run(c.p, cut, 1 << 20, true, 0, &g, err, sizeof(err)), -ENODATA,
			     "cut at %zu", cut);
		cr_assert_eq(g.n, want, "cut at %zu: %u records", cut, g.n);
		if (cut < c.epoch_end[3])
			cr_assert(strstr(err, "in epoch 3"), "cut at %zu: %s", cut, err);
	}
	free(c.p);
}

static void expect_refused(const struct ckpt *c, bool ckpt, int want, const char *msg)
{
	struct got g;
	char err[512];

	cr_assert_eq(run(c->p, c->len, 1 << 20, ckpt, 0, &g, err, sizeof(err)), want, "%s", err);
	cr_expect(strstr(err, msg), "'%s' not in: %s", msg, err);
}

Test(codec_checkpoint, plain_mode_refuses_checkpoints)
{
	struct ckpt c;

	ckpt_fixture(&c);
	expect_refused(&c, false, -EPROTO, "CHECKPOINT in a plain stream");
	free(c.p);
}

/* Xen's layering: CHECKPOINT_END only after a CHECKPOINT, libxl END not
 * inside a checkpoint, libxc END not inside an epoch, no COLO. */
Test(codec_checkpoint, layering_rules)
{
	struct ckpt c;
	uint32_t state = 0;

	ckpt_head(&c); /* CHECKPOINT_END right after the libxl header */
	c.len = 48 + 4 + sizeof(CKPT_JSON) + 16;
	ckpt_rec(&c, 4, NULL, 0);
	expect_refused(&c, true, -EPROTO, "no libxc CHECKPOINT before it");
	free(c.p);

	ckpt_fixture_two(&c); /* libxl END where CHECKPOINT_END belongs */
	ckpt_fixture_third(&c);
	ckpt_rec(&c, 0xe, NULL, 0);
	ckpt_rec(&c, 0, NULL, 0);
	expect_refused(&c, true, -EPROTO, "inside epoch 3");
	free(c.p);

	ckpt_fixture_two(&c); /* libxc END with epoch 3 half read */
	ckpt_fixture_third(&c);
	ckpt_tail(&c);
	expect_refused(&c, true, -EPROTO, "records since the last CHECKPOINT_END");
	free(c.p);

	ckpt_fixture_two(&c); /* COLO */
	ckpt_rec(&c, 0xe, NULL, 0);
	ckpt_rec(&c, 5, &state, 4);
	expect_refused(&c, true, -EPROTO, "COLO");
	free(c.p);
}

/* The bound on one held epoch: epoch 2 (two pages) does not fit 8 KiB. */
Test(codec_checkpoint, epoch_bound)
{
	struct ckpt c;
	struct got g;
	char err[512];

	ckpt_fixture(&c);
	cr_assert_eq(run(c.p, c.len, 1 << 20, true, 8192, &g, err, sizeof(err)), -E2BIG);
	cr_expect(strstr(err, "epoch 2"), "%s", err);
	cr_expect_eq(g.n, 10, "epoch 1 whole, then nothing: %u records", g.n);
	cr_assert_eq(run(c.p, c.len, 1 << 20, true, 3 * 4096 + 2048, &g, err, sizeof(err)), 0,
		     "%s", err);
	free(c.p);
}
