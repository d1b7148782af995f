// SPDX-License-Identifier: MIT
/*
 * A checkpointed stream into a paused domain, epoch by epoch (restore.h,
 * rst_session_*): what HA's backup runs. The decoder hands each epoch over
 * whole (stream/codec.h); here its pages are staged in the epoch applier and
 * its HVM_CONTEXT and xenstore data kept until its CHECKPOINT_END, which
 * loads the state entries, writes the pages and commits the state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "hyp/context.h"
#include "internal.h"

struct rst_session {
	struct rst r;
	struct rst_session_opts o;
	char err[512];
	struct rst_applier *staged; /* the epoch applier over r.direct */
	/* the epoch being read */
	uint8_t *ctx; /* its HVM_CONTEXT body */
	uint32_t ctx_len;
	uint64_t ctx_off;
	char *xs_epoch; /* its EMULATOR_XENSTORE_DATA pairs */
	size_t xs_epoch_len;
	/* what stands */
	uint64_t committed;
	char *xs; /* the pairs of the last epoch that carried some */
	size_t xs_len;
	bool resumed;
};

int rst_session_new(struct hyp *h, const struct rst_session_opts *o, struct rst_session **out)
{
	struct rst_session *s = calloc(1, sizeof(*s));
	struct strm_dec_limits lim = { .checkpointed = true };
	int err;

	if (!s)
		return -ENOMEM;
	s->o = *o;
	lim.max_epoch_bytes = o->max_epoch_bytes;
	s->r = (struct rst){ .h = h, .config = o->config, .config_opaque = o->opaque,
			     .err = s->err, .errlen = sizeof(s->err) };
	err = strm_dec_new(&lim, &s->r.dec);
	if (err) {
		free(s);
		return err;
	}
	*out = s;
	return 0;
}

/* What the epoch being read holds goes; the committed one stays. */
static void drop_epoch(struct rst_session *s)
{
	if (s->staged)
		rst_applier_discard(s->staged);
	free(s->ctx);
	s->ctx = NULL;
	free(s->xs_epoch);
	s->xs_epoch = NULL;
}

void rst_session_free(struct rst_session *s)
{
	if (!s)
		return;
	drop_epoch(s);
	rst_applier_free(s->staged); /* before the direct one it writes to */
	rst_release(&s->r, !s->resumed);
	strm_dec_free(s->r.dec);
	free(s->xs);
	free(s);
}

static int create(struct rst_session *s, const struct strm_rec *rec)
{
	uint64_t max = s->o.max_epoch_bytes ? s->o.max_epoch_bytes :
					      STRM_DEC_MAX_EPOCH_DEFAULT;
	int err = rst_create_domain(&s->r, rec);

	if (!err)
		err = rst_applier_epoch_new(s->r.direct, max, &s->staged);
	if (err)
		return rst_fail(&s->r, err, "cannot set up the epoch applier: %s",
				ferry_strerror(err));
	return 0;
}

static int keep_context(struct rst_session *s, const struct strm_rec *rec)
{
	if (s->ctx)
		return rst_fail(&s->r, -EPROTO, "a second HVM_CONTEXT at offset %llu in epoch %llu",
				(unsigned long long)rec->offset, (unsigned long long)rec->epoch);
	s->ctx = malloc(rec->len);
	if (!s->ctx)
		return rst_fail(&s->r, -ENOMEM, "no memory for epoch %llu's HVM_CONTEXT",
				(unsigned long long)rec->epoch);
	memcpy(s->ctx, rec->body, rec->len);
	s->ctx_len = rec->len;
	s->ctx_off = rec->offset;
	return 0;
}

/* The pages and state of a committed epoch are in the domain. */
static int epoch_committed(struct rst_session *s, uint64_t epoch)
{
	s->committed = epoch;
	free(s->ctx);
	s->ctx = NULL;
	if (s->xs_epoch) {
		free(s->xs);
		s->xs = s->xs_epoch;
		s->xs_len = s->xs_epoch_len;
		s->xs_epoch = NULL;
	}
	/* From the second epoch on, pages wait for their CHECKPOINT_END. */
	s->r.pages = s->staged;
	log_debug("d%u: epoch %llu committed", s->r.domid, (unsigned long long)epoch);
	return s->o.epoch ? s->o.epoch(s->o.epoch_opaque, s->r.domid, epoch) : 0;
}

/* CHECKPOINT_END: state entries first (hyp checks and keeps them), then
 * the pages, then the commit that applies the state. */
static int commit(struct rst_session *s, uint64_t epoch)
{
	struct rst *r = &s->r;
	int err;

	if (!s->ctx)
		return rst_fail(r, -EPROTO, "epoch %llu has no HVM_CONTEXT",
				(unsigned long long)epoch);
	err = rst_load_context(r, s->ctx, s->ctx_len, s->ctx_off);
	if (err)
		return err; /* nothing written: the previous epoch stands */
	s->committed = 0; /* while guest memory is between two epochs */
	err = rst_applier_commit(r->pages);
	if (err)
		return rst_fail(r, err, "epoch %llu: writing its pages: %s; no epoch stands",
				(unsigned long long)epoch, ferry_strerror(err));
	err = hyp_domain_load_commit(r->h, r->domid);
	if (err)
		return rst_fail(r, err, "epoch %llu: its state refused: %s; no epoch stands",
				(unsigned long long)epoch, ferry_strerror(err));
	return epoch_committed(s, epoch);
}

static int on_record(void *opaque, const struct strm_rec *rec)
{
	struct rst_session *s = opaque;
	struct rst *r = &s->r;

	switch (rec->layer) {
	case STRM_XL:
		return rst_on_xl_header(r, rec);
	case STRM_LIBXL:
		if (rec->type == LIBXL_REC_EMULATOR_XENSTORE_DATA)
			return rst_on_xenstore(r, rec, &s->xs_epoch, &s->xs_epoch_len);
		if (rec->type == LIBXL_REC_CHECKPOINT_END)
			return commit(s, rec->epoch);
		return 0;
	case STRM_LIBXC:
		break;
	}
	switch (rec->type) {
	case STRM_REC_LIBXC_HEADERS:
		return create(s, rec);
	case REC_TYPE_PAGE_DATA:
		return rst_on_pages(r, rec);
	case REC_TYPE_HVM_CONTEXT:
		return keep_context(s, rec);
	default:
		/* CHECKPOINT (CHECKPOINT_END commits), END, TSC_INFO,
		 * HVM_PARAMS, STATIC_DATA_END; FERRY_CONSOLE belongs to old
		 * plain saves. */
		return 0;
	}
}

static int failed(struct rst_session *s, int err)
{
	rst_fail(&s->r, err, "%s", strm_dec_error(s->r.dec));
	drop_epoch(s);
	return err;
}

int rst_session_feed(struct rst_session *s, const void *buf, size_t len)
{
	int err = strm_dec_feed(s->r.dec, buf, len, on_record, s);

	s->r.bytes += len;
	return err ? failed(s, err) : 0;
}

int rst_session_read(struct rst_session *s, struct strm_io *io)
{
	int err = rst_pump(&s->r, io, on_record, s);

	if (err)
		drop_epoch(s);
	return err;
}

int rst_session_finish(struct rst_session *s)
{
	int err = strm_dec_finish(s->r.dec);

	if (err)
		return failed(s, err);
	if (!s->committed)
		return rst_fail(&s->r, -EPROTO,
				"the stream ended without a complete epoch (a plain stream?)");
	return 0;
}

uint64_t rst_session_committed(const struct rst_session *s)
{
	return s->committed;
}

int rst_session_domid(const struct rst_session *s, uint32_t *domid)
{
	if (!s->r.created)
		return -ENOENT;
	*domid = s->r.domid;
	return 0;
}

const char *rst_session_error(const struct rst_session *s)
{
	return s->err;
}

int rst_session_resume(struct rst_session *s, rst_xenstore_fn xs, void *xs_opaque,
		       bool unpause)
{
	struct rst *r = &s->r;
	int err;

	if (!s->committed || s->resumed)
		return -ENODATA;
	drop_epoch(s);
	if (xs) {
		err = xs(xs_opaque, r->domid, s->xs, s->xs_len);
		if (err)
			return rst_fail(r, err, "cannot give the domain its xenstore entries: %s",
					ferry_strerror(err));
	}
	err = hyp_domain_resume_restored(r->h, r->domid);
	if (err)
		return rst_fail(r, err, "cannot resume epoch %llu: %s",
				(unsigned long long)s->committed, ferry_strerror(err));
	s->resumed = true;
	if (unpause) {
		err = hyp_domain_unpause(r->h, r->domid);
		if (err)
			return rst_fail(r, err, "cannot unpause the restored domain: %s",
					ferry_strerror(err));
	}
	log_info("d%u: resumed at epoch %llu of '%s'", r->domid,
		 (unsigned long long)s->committed, r->cfg.name);
	return 0;
}
