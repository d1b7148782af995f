// SPDX-License-Identifier: MIT
/*
 * The page writer (restore/page-writer.c): PAGE_DATA bodies taken from the
 * decoder without a copy and written by a thread of their own, in the
 * stream's order, with the first failure reported and nothing after it
 * written. The pages go to a recording applier, slower than the decoder.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>

#include "../stream/codec-gen.h"
#include "common/log.h"
#include "internal.h" /* restore/internal.h */

#define BATCHES	    8
#define BATCH_PAGES 256
#define NPFN	    BATCH_PAGES

struct rec_applier {
	int order[BATCHES * 2]; /* each load's batch (its pages' first byte) */
	int nloads;
	uint8_t last[NPFN]; /* each pfn's last byte written */
	int fail_batch;	    /* a load of this batch fails (-EIO); -1: none */
};

static int rec_load(void *priv, uint64_t pfn, const void *data, uint64_t npages)
{
	struct rec_applier *a = priv;
	const uint8_t *p = data;

	usleep(2000); /* slower than the decoder: batches queue up */
	if (p[0] == a->fail_batch)
		return -EIO;
	cr_assert_lt(a->nloads, BATCHES * 2);
	a->order[a->nloads++] = p[0];
	for (uint64_t i = 0; i < npages; i++)
		a->last[pfn + i] = p[i * 4096];
	return 0;
}

static int rec_unpopulate(void *priv, uint64_t pfn, uint64_t npages)
{
	(void)priv;
	(void)pfn;
	(void)npages;
	return 0;
}

static int rec_commit(void *priv)
{
	(void)priv;
	return 0;
}

static void rec_discard(void *priv)
{
	(void)priv;
}

static const struct rst_applier_ops rec_ops = {
	.load = rec_load,
	.unpopulate = rec_unpopulate,
	.commit = rec_commit,
	.discard = rec_discard,
};

struct run {
	struct rst r;
	char err[256];
	int queued;
};

/* PAGE_DATA as a plain restore hands it over, counting the bodies queued. */
static int on_rec(void *opaque, const struct strm_rec *rec)
{
	struct run *x = opaque;
	bool queued;
	int rc;

	if (rec->layer != STRM_LIBXC || rec->type != REC_TYPE_PAGE_DATA)
		return 0;
	rc = rst_pagew_on_pages(&x->r, rec, &queued);
	x->queued += queued;
	return rc;
}

/* BATCHES records rewriting pfns 0..NPFN-1, batch b's pages all byte b,
 * decoded in 64 KiB pieces as a socket delivers them; returns the feed's
 * result, then the drain's. */
static int run_stream(struct rec_applier *a, struct run *x, int *drained)
{
	static uint8_t pages[BATCHES][4096];
	const void *pp[BATCH_PAGES];
	uint64_t pfns[BATCH_PAGES];
	struct strm_dec_limits lim = {0};
	struct gen g;
	int rc = 0;

	memset(x, 0, sizeof(*x));
	x->r.err = x->err;
	x->r.errlen = sizeof(x->err);
	x->r.created = true;
	x->r.gm.npages = NPFN;
	cr_assert_eq(rst_applier_new(&rec_ops, a, &x->r.pages), 0);
	cr_assert_eq(strm_dec_new(&lim, &x->r.dec), 0);
	cr_assert_eq(rst_pagew_new(&x->r, &x->r.pw), 0);
	gen_init(&g);
	gen_xl(&g, FIX_JSON, 0);
	gen_libxl_hdr(&g);
	gen_libxl(&g, LIBXL_REC_LIBXC_CONTEXT, NULL, 0);
	gen_libxc_hdrs(&g, 4, 17);
	gen_libxc(&g, REC_TYPE_STATIC_DATA_END, NULL, 0);
	for (int b = 0; b < BATCHES; b++) {
		memset(pages[b], b, sizeof(pages[b]));
		for (int i = 0; i < BATCH_PAGES; i++) {
			pfns[i] = (uint64_t)i;
			pp[i] = pages[b];
		}
		gen_pages(&g, pfns, BATCH_PAGES, pp);
	}
	for (size_t off = 0; off < g.b.len && !rc; off += 65536)
		rc = strm_dec_feed(x->r.dec, g.b.p + off, MIN(65536, g.b.len - off), on_rec, x);
	*drained = rst_pagew_drain(x->r.pw);
	rst_pagew_free(x->r.pw);
	strm_dec_free(x->r.dec);
	rst_applier_free(x->r.pages);
	gen_free(&g);
	return rc;
}

Test(pagew, batches_are_written_in_order_without_a_copy, .timeout = 60)
{
	struct rec_applier a = {.fail_batch = -1};
	struct run x;
	int drained;

	log_set_stderr(0);
	cr_assert_eq(run_stream(&a, &x, &drained), 0, "%s", x.err);
	cr_assert_eq(drained, 0);
	cr_assert_geq(x.queued, BATCHES - 1, "%d of %d bodies taken from the decoder", x.queued,
		      BATCHES);
	cr_assert_eq(a.nloads, BATCHES);
	for (int i = 0; i < BATCHES; i++)
		cr_assert_eq(a.order[i], i, "load %d was batch %d", i, a.order[i]);
	for (int p = 0; p < NPFN; p++)
		cr_assert_eq(a.last[p], BATCHES - 1, "pfn %d holds batch %d", p, a.last[p]);
}

Test(pagew, the_first_failed_write_stops_the_rest, .timeout = 60)
{
	struct rec_applier a = {.fail_batch = 3};
	struct run x;
	int drained;

	log_set_stderr(0);
	cr_assert_eq(run_stream(&a, &x, &drained), -EIO);
	cr_assert_eq(drained, -EIO);
	cr_assert(strstr(x.err, "PAGE_DATA at offset") && strstr(x.err, "cannot write pfn 0x0"),
		  "%s", x.err);
	cr_assert_eq(a.nloads, 3, "batches 0-2 written, none after the failure");
}
