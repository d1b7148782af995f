// SPDX-License-Identifier: MIT
/*
 * The save side: one pass over a paused domain, in the record order of
 * Xen's own HVM writer (formats/SPEC.md). The record writers live in
 * stream-out.c, shared with live migration (precopy.c).
 */
#include <errno.h>
#include <stdlib.h>

#include "common/bitmap.h"
#include "common/err.h"
#include "hyp/gmem.h"
#include "internal.h"
#include "migrate/save.h"

static int send_pages(struct mig_out *s, struct hyp_domain *d, uint64_t *sent)
{
	struct mig_batch *b = malloc(sizeof(*b));
	struct hyp_gmem gm;
	uint64_t *map, n = 0;
	int err;

	hyp_domain_gmem(d, &gm);
	map = malloc(BITMAP_BYTES(gm.npages));
	if (!map || !b) {
		free(map);
		free(b);
		return mig_fail(s, -ENOMEM, "no memory for the page bitmap");
	}
	b->count = 0;
	err = hyp_gmem_populated(d, map, NULL);
	if (err) {
		mig_fail(s, err, "finding the populated pages: %s", ferry_strerror(err));
		goto out;
	}
	for (uint64_t pfn = 0; pfn < gm.npages; pfn++) {
		if (!(pfn % 64) && !map[pfn / 64]) {
			pfn += 63;
			continue;
		}
		if (!bitmap_test(map, pfn))
			continue;
		err = mig_batch_add(s, b, pfn, gm.hva + (pfn << PAGE_SHIFT));
		if (err)
			goto out;
		n++;
	}
	err = mig_batch_flush(s, b);
out:
	free(map);
	free(b);
	*sent = n;
	return err;
}

int mig_save_domain(struct hyp *h, uint32_t domid, struct strm_io *io,
		    const struct mig_save_opts *o, struct mig_save_stats *st,
		    char *errbuf, size_t errlen)
{
	struct mig_out s = { .h = h, .domid = domid, .io = io, .err = errbuf,
			     .errlen = errlen, .xs = o->xenstore };
	struct hyp_dom_info info;
	struct hyp_domain *d = NULL;
	double t0 = mig_now_s();
	uint32_t flags = XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMV2;
	uint64_t pages = 0;
	int err, cerr;

	errbuf[0] = 0;
	err = hyp_domain_info(h, domid, &info);
	if (err) {
		mig_fail(&s, err, "no domain %u", domid);
		goto out;
	}
	if (info.state != HYP_DOM_PAUSED) {
		err = mig_fail(&s, -EBUSY, "domain %u is not paused", domid);
		goto out;
	}
	err = strm_enc_new(&s.enc);
	if (err) {
		mig_fail(&s, err, "no memory for the encoder");
		goto out;
	}
	if (o->codec != STRM_CODEC_NONE)
		flags |= XL_MANDATORY_FLAG_FERRY_FRAMES;
	err = mig_put(&s, strm_enc_xl_header(s.enc, o->config_json, flags, s.iov),
		      "the xl header");
	if (err)
		goto out;
	if (o->codec != STRM_CODEC_NONE) {
		struct strm_io *framed;

		err = strm_io_frame_writer(io, o->codec, 0, &framed);
		if (err) {
			mig_fail(&s, err, "setting up %s frames", strm_codec_name(o->codec));
			goto out;
		}
		s.io = io = framed;
	}
	err = hyp_domain_get(h, domid, &d);
	if (err) {
		mig_fail(&s, err, "domain %u went away", domid);
		goto out;
	}
	err = mig_put_headers(&s) ?: send_pages(&s, d, &pages) ?: mig_put_holes(&s, d, NULL) ?:
	      mig_put_tail(&s, d);
out:
	if (st) {
		st->pages = pages;
		st->bytes = io ? strm_io_offset(io) : 0;
	}
	cerr = strm_io_close(io);
	if (!err && cerr)
		err = mig_fail(&s, cerr, "finishing the stream: %s", ferry_strerror(cerr));
	if (st)
		st->seconds = mig_now_s() - t0;
	if (d)
		hyp_domain_put(d);
	mig_out_fini(&s);
	return err;
}
