// SPDX-License-Identifier: MIT
/*
 * A plain restore: decode the stream as it arrives, create the domain once
 * the headers have been checked, write PAGE_DATA straight into its memory
 * (the direct applier), load the vCPU and platform state from HVM_CONTEXT
 * and commit it at the libxc END, then resume it.
 */
#include <errno.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/log.h"
#include "hyp/context.h"
#include "internal.h"

struct plain {
	struct rst r;
	const struct rst_opts *o;
	struct rst_chans *chans; /* o->channels' readers, once the domain exists */
	bool loaded;	/* libxc END applied */
	char *xs_pairs; /* EMULATOR_XENSTORE_DATA's, after its header */
	size_t xs_len;
};

static int on_libxc_end(struct rst *r)
{
	int err;

	if (!r->created)
		return rst_fail(r, -EPROTO, "libxc END before the headers");
	err = hyp_domain_load_commit(r->h, r->domid);
	if (!err)
		err = hyp_domain_resume_restored(r->h, r->domid);
	if (err)
		return rst_fail(r, err, "the saved state is incomplete: %s", ferry_strerror(err));
	return 0;
}

static int on_headers(struct plain *p, const struct strm_rec *rec)
{
	struct rst *r = &p->r;
	int err = rst_create_domain(r, rec);

	if (!err && p->o->nchannels)
		err = rst_chans_start(r, p->o->channels, p->o->nchannels, p->o->net_ms,
				      p->o->cancel, &p->chans);

	/* A lazy restore's pages are filled by its faults, not written. */
	if (!err && !r->lazy && rst_pagew_new(r, &r->pw))
		log_warn("d%u: no page writer thread: pages are written by the receiver", r->domid);
	return err;
}

static int on_record(void *opaque, const struct strm_rec *rec)
{
	struct plain *p = opaque;
	struct rst *r = &p->r;
	int err;

	/* Every other record sees the pages before it written. */
	if (r->pw && (rec->layer != STRM_LIBXC || rec->type != REC_TYPE_PAGE_DATA)) {
		err = rst_pagew_drain(r->pw);
		if (err)
			return rst_fail(r, err, "%s", rst_pagew_error(r->pw));
	}
	switch (rec->layer) {
	case STRM_XL:
		return rst_on_xl_header(r, rec);
	case STRM_LIBXL:
		/* END and LIBXC_CONTEXT drive the decoder itself */
		if (rec->type != LIBXL_REC_EMULATOR_XENSTORE_DATA)
			return 0;
		/* Kept until the domain is complete. */
		return rst_on_xenstore(r, rec, &p->xs_pairs, &p->xs_len);
	case STRM_LIBXC:
		break;
	}
	/* The state applies to memory complete: every channel has ended. */
	if (p->chans && !rst_chans_joined(p->chans) && rec->type != REC_TYPE_PAGE_DATA &&
	    rec->type != REC_TYPE_STATIC_DATA_END && rec->type != REC_TYPE_FERRY_CHANNEL_SYNC) {
		err = rst_chans_wait(r, p->chans, p->o->cancel);
		if (err)
			return err;
	}
	switch (rec->type) {
	case STRM_REC_LIBXC_HEADERS: return on_headers(p, rec);
	case REC_TYPE_PAGE_DATA: return rst_pagew_on_pages(r, rec, NULL);
	case REC_TYPE_HVM_CONTEXT:
		return rst_load_context(r, rec->body, rec->len, rec->offset);
	case REC_TYPE_FERRY_CONSOLE:
		return rst_on_console(r, rec);
	case REC_TYPE_FERRY_CHANNEL_SYNC:
		/* The sender's pulse while its pages go elsewhere. */
		if (!p->o->nchannels)
			return rst_fail(r, -EPROTO, "FERRY_CHANNEL_SYNC at offset %llu in a stream "
					"received without page channels",
					(unsigned long long)rec->offset);
		return 0;
	case REC_TYPE_END:
		err = on_libxc_end(r);
		p->loaded = !err;
		return err;
	default:
		/* TSC_INFO, HVM_PARAMS, STATIC_DATA_END: the context carries
		 * what Ferry needs of them. */
		return 0;
	}
}

/* After the stream: the xenstore entries, then the domain may run. */
static int finish(struct plain *p, const struct rst_opts *o)
{
	struct rst *r = &p->r;
	int err;

	if (!p->loaded)
		return rst_fail(r, -EPROTO, "the stream ended without the domain's state");
	if (o->xenstore) {
		err = o->xenstore(o->xenstore_opaque, r->domid, p->xs_pairs, p->xs_len);
		if (err)
			return rst_fail(r, err, "cannot give the domain its xenstore entries: %s",
					ferry_strerror(err));
	}
	if (!o->paused) {
		err = hyp_domain_unpause(r->h, r->domid);
		if (err)
			return rst_fail(r, err, "cannot unpause the restored domain: %s",
					ferry_strerror(err));
	}
	return 0;
}

int rst_restore_domain(struct hyp *h, struct strm_io *io, const struct rst_opts *o,
		       uint32_t *domid, struct rst_stats *st, char *errbuf, size_t errlen)
{
	return rst_restore_hooked(h, io, o, NULL, NULL, false, domid, st, errbuf, errlen);
}

int rst_restore_hooked(struct hyp *h, struct strm_io *io, const struct rst_opts *o,
		       int (*created)(void *opaque, struct rst *r), void *opaque, bool lazy,
		       uint32_t *domid, struct rst_stats *st, char *errbuf, size_t errlen)
{
	struct plain p = { .r = { .h = h, .config = o->config, .config_opaque = o->opaque,
				  .err = errbuf, .errlen = errlen, .on_created = created,
				  .created_opaque = opaque, .lazy = lazy },
			   .o = o };
	struct rst *r = &p.r;
	struct strm_dec_limits lim = { 0 };
	double t0 = rst_now();
	int err;

	errbuf[0] = 0;
	if (o->nchannels && lazy) {
		err = rst_fail(r, -EINVAL, "page channels and a lazy restore do not go together");
		goto out;
	}
	err = strm_dec_new(&lim, &r->dec);
	if (err) {
		err = rst_fail(r, -ENOMEM, "no memory for the decoder");
		goto out;
	}
	err = rst_pump(r, io, on_record, &p);
	if (err)
		goto out;
	err = strm_dec_finish(r->dec);
	if (err) {
		rst_fail(r, err, "%s", strm_dec_error(r->dec));
		goto out;
	}
	err = finish(&p, o);
	if (err)
		goto out;
	*domid = r->domid;
	log_info("d%u: restored '%s': %llu pages, %llu bytes in %.3f s", r->domid, r->cfg.name,
		 (unsigned long long)r->npages, (unsigned long long)r->bytes, rst_now() - t0);
out:
	/* Before the domain can go: the channels write into it. */
	rst_chans_free(p.chans);
	rst_release(r, err != 0);
	if (st) {
		st->pages = r->npages;
		st->bytes = r->bytes;
		st->seconds = rst_now() - t0;
	}
	strm_dec_free(r->dec);
	free(p.xs_pairs);
	return err;
}
