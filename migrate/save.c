// SPDX-License-Identifier: MIT
/*
 * The save side: one pass over a paused domain, in the record order of
 * Xen's own HVM writer (formats/SPEC.md): a session (session.c) with a
 * single END epoch, the domain held paused by the caller.
 */
#include <errno.h>
#include <stdio.h>

#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "migrate/save.h"

int mig_save_domain(struct hyp *h, uint32_t domid, struct strm_io *io,
		    const struct mig_save_opts *o, struct mig_save_stats *st,
		    char *errbuf, size_t errlen)
{
	struct mig_session_opts so = { .codec = o->codec,
				       .config_json = o->config_json,
				       .xenstore = o->xenstore,
				       .caller_paused = true };
	struct mig_epoch_stats es = { 0 };
	struct mig_session *s = NULL;
	double t0 = ferry_now_s();
	uint64_t bytes = 0;
	int err, cerr;

	err = mig_session_create(h, domid, io, &so, errbuf, errlen, &s);
	if (!err)
		err = mig_session_epoch(s, MIG_EPOCH_END, &es);
	if (s) {
		/* Bytes into the frame layer when compressing, as before. */
		bytes = o->codec != STRM_CODEC_NONE ?
				(s->framed ? strm_io_offset(s->framed) : s->framed_bytes) :
				strm_io_offset(io);
		mig_session_close(s);
	}
	cerr = strm_io_close(io);
	if (!err && cerr) {
		snprintf(errbuf, errlen, "finishing the stream: %s", ferry_strerror(cerr));
		log_err("d%u: save: %s", domid, errbuf);
		err = cerr;
	}
	if (st) {
		st->pages = es.pages;
		st->bytes = bytes;
		st->seconds = ferry_now_s() - t0;
	}
	return err;
}
