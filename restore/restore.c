// SPDX-License-Identifier: MIT
/*
 * The restore side: decode the stream as it arrives, create the domain once
 * the headers have been checked, fill its memory from PAGE_DATA, load the
 * vCPU and platform state from HVM_CONTEXT at the libxc END.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "formats/hvm-context.h"
#include "hyp/context.h"
#include "hyp/gmem.h"
#include "restore/restore.h"
#include "stream/codec.h"
#include "xenstore/xenstore.h"

/* Small enough to stay in the cache between the read and the decoder's use
 * of it; a record body that spans reads is read straight into place
 * (strm_dec_body_space). */
#define READ_CHUNK (256u << 10)

struct rst {
	struct hyp *h;
	const struct rst_opts *o;
	struct strm_dec *dec;
	struct hyp_dom_config cfg;
	bool have_cfg;
	bool created;
	bool loaded;	  /* libxc END applied */
	uint32_t domid;
	struct hyp_domain *d;
	struct hyp_gmem gm;
	uint64_t pages;
	char *xs_pairs; /* EMULATOR_XENSTORE_DATA's, after its header */
	size_t xs_len;
	char *err;
	size_t errlen;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(struct rst *r, int err, const char *fmt, ...) PRINTF_FMT(3, 4);
static int fail(struct rst *r, int err, const char *fmt, ...)
{
	va_list ap;

	if (r->err[0])
		return err; /* the first error is the one that matters */
	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	log_err("restore: %s", r->err);
	return err;
}

static int on_xl_header(struct rst *r, const struct strm_rec *rec)
{
	char msg[256] = "";
	char stream_backend[8];
	int err;

	if (!(rec->flags & XL_MANDATORY_FLAG_JSON) || !rec->len)
		return fail(r, -EPROTO, "the xl header carries no JSON config");
	err = r->o->config(r->o->opaque, (const char *)rec->body, &r->cfg, msg, sizeof(msg));
	if (err)
		return fail(r, err, "the stream's config: %s", msg);
	/* The backend is part of what was saved: vCPU state of one cannot
	 * run on the other. */
	snprintf(stream_backend, sizeof(stream_backend), "%s", r->cfg.backend);
	if (!stream_backend[0])
		return fail(r, -EPROTO, "the stream's config names no backend");
	r->have_cfg = true;
	strm_dec_set_max_pfn(r->dec, r->cfg.maxmem_mb << 8);
	return 0;
}

static int create_domain(struct rst *r, const struct strm_rec *rec)
{
	struct hyp_info info;
	int err;

	if (!r->have_cfg)
		return fail(r, -EPROTO, "libxc stream before the xl header");
	if (rec->dhdr.type != DHDR_TYPE_X86_HVM)
		return fail(r, -EPROTO, "domain type %u is not x86 HVM", rec->dhdr.type);
	err = hyp_get_info(r->h, &info);
	if (!err && (r->cfg.memory_mb << 20) > info.free_bytes)
		return fail(r, -ENOMEM, "domain '%s' needs %llu MiB, %llu MiB free of %llu MiB",
			    r->cfg.name, (unsigned long long)r->cfg.memory_mb,
			    (unsigned long long)(info.free_bytes >> 20),
			    (unsigned long long)(info.total_bytes >> 20));
	err = hyp_domain_create_restore(r->h, &r->cfg, &r->domid);
	if (err == -EEXIST)
		return fail(r, err, "domain name '%s' is already in use (restore with -n NAME)",
			    r->cfg.name);
	if (err == -FERRY_ENOKVM)
		return fail(r, err, "the stream is from a %s domain and this ferryd cannot run %s",
			    r->cfg.backend, r->cfg.backend);
	if (err)
		return fail(r, err, "cannot create domain '%s': %s", r->cfg.name,
			    ferry_strerror(err));
	r->created = true;
	err = hyp_domain_get(r->h, r->domid, &r->d);
	if (err)
		return fail(r, err, "domain %u vanished while restoring", r->domid);
	hyp_domain_gmem(r->d, &r->gm);
	return 0;
}

static int on_pages(struct rst *r, const struct strm_rec *rec)
{
	const uint8_t *data = rec->page_data;

	if (!r->created)
		return fail(r, -EPROTO, "PAGE_DATA at offset %llu before the headers",
			    (unsigned long long)rec->offset);
	for (uint32_t i = 0; i < rec->page_count;) {
		uint64_t pfn = rec->page_pfns[i] & PAGE_DATA_PFN_MASK, n = 1;
		unsigned type = (unsigned)(rec->page_pfns[i] >> PAGE_DATA_TYPE_SHIFT);
		int err;

		if (type == PAGE_TYPE_XTAB) {
			/* A balloon hole in the sender: the same hole here. */
			if (pfn >= r->gm.npages)
				return fail(r, -ERANGE, "PAGE_DATA at offset %llu: XTAB pfn 0x%llx "
					    "beyond the domain's %llu pages",
					    (unsigned long long)rec->offset,
					    (unsigned long long)pfn,
					    (unsigned long long)r->gm.npages);
			err = hyp_gmem_unpopulate(r->d, pfn, 1);
			if (err)
				return fail(r, err, "PAGE_DATA at offset %llu: cannot release "
					    "pfn 0x%llx", (unsigned long long)rec->offset,
					    (unsigned long long)pfn);
			i++;
			continue;
		}
		if (type == PAGE_TYPE_BROKEN || type == PAGE_TYPE_XALLOC) {
			i++;
			continue;
		}
		/* A run of consecutive pfns with data is one write. */
		while (i + n < rec->page_count &&
		       rec->page_pfns[i + n] == (rec->page_pfns[i] & PAGE_DATA_PFN_MASK) + n)
			n++;
		if (pfn >= r->gm.npages || n > r->gm.npages - pfn)
			return fail(r, -ERANGE,
				    "PAGE_DATA at offset %llu: pfn 0x%llx beyond the domain's "
				    "%llu pages",
				    (unsigned long long)rec->offset,
				    (unsigned long long)(pfn + n - 1),
				    (unsigned long long)r->gm.npages);
		err = hyp_gmem_load(r->d, pfn, data, n);
		if (err)
			return fail(r, err, "PAGE_DATA at offset %llu: cannot write pfn 0x%llx",
				    (unsigned long long)rec->offset, (unsigned long long)pfn);
		data += n * 4096;
		r->pages += n;
		i += (uint32_t)n;
	}
	return 0;
}

static int on_context(struct rst *r, const struct strm_rec *rec)
{
	const uint8_t *p = rec->body, *end = rec->body + rec->len;

	if (!r->created)
		return fail(r, -EPROTO, "HVM_CONTEXT before the headers");
	while (p + sizeof(struct hvm_save_descriptor) <= end) {
		struct hvm_save_descriptor desc;
		int err;

		memcpy(&desc, p, sizeof(desc));
		p += sizeof(desc);
		if (desc.length > (size_t)(end - p))
			return fail(r, -EPROTO, "HVM_CONTEXT at offset %llu: entry %s overruns",
				    (unsigned long long)rec->offset,
				    hvm_code_name(desc.typecode) ?: "?");
		if (desc.typecode == HVM_SAVE_CODE_END)
			return 0;
		if (desc.typecode != HVM_SAVE_CODE_HEADER) {
			err = hyp_domain_load_entry(r->h, r->domid, desc.typecode,
						    desc.instance, p, desc.length);
			if (err)
				return fail(r, err,
					    "HVM_CONTEXT at offset %llu: entry %s (0x%x) "
					    "instance %u refused: %s",
					    (unsigned long long)rec->offset,
					    hvm_code_name(desc.typecode) ?: "unknown",
					    desc.typecode, desc.instance, ferry_strerror(err));
		}
		p += desc.length;
	}
	return fail(r, -EPROTO, "HVM_CONTEXT at offset %llu has no END entry",
		    (unsigned long long)rec->offset);
}

/* FERRY_CONSOLE, from saves written before the console history moved into
 * HVM_CONTEXT (its CONSOLE entry, which hyp loads): still restored. */
static int on_console(struct rst *r, const struct strm_rec *rec)
{
	struct ferry_hvm_console hdr;

	if (rec->len < sizeof(hdr))
		return 0; /* optional: a short one is ignored */
	memcpy(&hdr, rec->body, sizeof(hdr));
	if (hdr.version != FERRY_CONSOLE_VERSION || hdr.length > rec->len - sizeof(hdr))
		return 0;
	return hyp_console_seed(r->h, r->domid, (const char *)rec->body + sizeof(hdr), hdr.length,
				hdr.total_written);
}

/* Kept until the domain is complete: Ferry's subtree (emulator id 0). */
static int on_xenstore(struct rst *r, const struct strm_rec *rec)
{
	struct libxl_sr_emulator_hdr eh;
	size_t len = rec->len - sizeof(eh);
	char why[XS_PAIRS_WHY_MAX];
	int err;

	memcpy(&eh, rec->body, sizeof(eh)); /* the decoder checked the length */
	if (eh.id != LIBXL_EMULATOR_UNKNOWN || eh.index)
		return fail(r, -EPROTO,
			    "EMULATOR_XENSTORE_DATA at offset %llu is for emulator %u index %u; "
			    "Ferry has no device model (only id 0, index 0)",
			    (unsigned long long)rec->offset, eh.id, eh.index);
	if (r->xs_pairs)
		return fail(r, -EPROTO, "a second EMULATOR_XENSTORE_DATA at offset %llu",
			    (unsigned long long)rec->offset);
	/* Refused here, naming the pair, not later by the store with a bare
	 * EINVAL after the whole stream has been read. */
	err = xs_check_pairs((const char *)rec->body + sizeof(eh), len, why, sizeof(why));
	if (err)
		return fail(r, err, "EMULATOR_XENSTORE_DATA at offset %llu: %s",
			    (unsigned long long)rec->offset, why);
	r->xs_pairs = malloc(len ? len : 1);
	if (!r->xs_pairs)
		return fail(r, -ENOMEM, "no memory for the xenstore subtree");
	memcpy(r->xs_pairs, rec->body + sizeof(eh), len);
	r->xs_len = len;
	return 0;
}

static int on_record(void *opaque, const struct strm_rec *rec)
{
	struct rst *r = opaque;
	int err;

	switch (rec->layer) {
	case STRM_XL:
		return on_xl_header(r, rec);
	case STRM_LIBXL:
		/* END and LIBXC_CONTEXT drive the decoder itself */
		return rec->type == LIBXL_REC_EMULATOR_XENSTORE_DATA ? on_xenstore(r, rec) : 0;
	case STRM_LIBXC:
		break;
	}
	switch (rec->type) {
	case STRM_REC_LIBXC_HEADERS:
		return create_domain(r, rec);
	case REC_TYPE_PAGE_DATA:
		return on_pages(r, rec);
	case REC_TYPE_HVM_CONTEXT:
		return on_context(r, rec);
	case REC_TYPE_FERRY_CONSOLE:
		return r->created ? on_console(r, rec) : 0;
	case REC_TYPE_END:
		if (!r->created)
			return fail(r, -EPROTO, "libxc END before the headers");
		err = hyp_domain_load_commit(r->h, r->domid);
		if (!err)
			err = hyp_domain_resume_restored(r->h, r->domid);
		if (err)
			return fail(r, err, "the saved state is incomplete: %s",
				    ferry_strerror(err));
		r->loaded = true;
		return 0;
	default:
		/* TSC_INFO, HVM_PARAMS, STATIC_DATA_END: the context carries
		 * what Ferry needs of them. */
		return 0;
	}
}

int rst_restore_domain(struct hyp *h, struct strm_io *io, const struct rst_opts *o,
		       uint32_t *domid, struct rst_stats *st, char *errbuf, size_t errlen)
{
	struct rst r = { .h = h, .o = o, .err = errbuf, .errlen = errlen };
	struct strm_dec_limits lim = { 0 };
	uint8_t *buf = NULL;
	uint64_t bytes = 0;
	double t0 = now_s();
	int err;

	errbuf[0] = 0;
	err = strm_dec_new(&lim, &r.dec);
	buf = malloc(READ_CHUNK);
	if (err || !buf) {
		err = fail(&r, -ENOMEM, "no memory for the decoder");
		goto out;
	}
	for (;;) {
		void *at = buf;
		size_t want = strm_dec_body_space(r.dec, &at);
		ssize_t n = strm_io_read(io, at, want ? want : READ_CHUNK);

		if (n < 0) {
			err = fail(&r, (int)n, "reading the stream at offset %llu: %s",
				   (unsigned long long)bytes, ferry_strerror((int)n));
			goto out;
		}
		if (n == 0)
			break;
		bytes += (uint64_t)n;
		err = strm_dec_feed(r.dec, at, (size_t)n, on_record, &r);
		if (err) {
			fail(&r, err, "%s", strm_dec_error(r.dec));
			goto out;
		}
		if (strm_dec_done(r.dec))
			break;
	}
	err = strm_dec_finish(r.dec);
	if (err) {
		fail(&r, err, "%s", strm_dec_error(r.dec));
		goto out;
	}
	if (!r.loaded) {
		err = fail(&r, -EPROTO, "the stream ended without the domain's state");
		goto out;
	}
	if (o->xenstore) {
		err = o->xenstore(o->xenstore_opaque, r.domid, r.xs_pairs, r.xs_len);
		if (err) {
			fail(&r, err, "cannot give the domain its xenstore entries: %s",
			     ferry_strerror(err));
			goto out;
		}
	}
	if (!o->paused) {
		err = hyp_domain_unpause(h, r.domid);
		if (err) {
			fail(&r, err, "cannot unpause the restored domain: %s", ferry_strerror(err));
			goto out;
		}
	}
	*domid = r.domid;
	log_info("d%u: restored '%s': %llu pages, %llu bytes in %.3f s", r.domid, r.cfg.name,
		 (unsigned long long)r.pages, (unsigned long long)bytes, now_s() - t0);
out:
	if (r.d)
		hyp_domain_put(r.d);
	if (err && r.created)
		hyp_domain_destroy(h, r.domid);
	if (st) {
		st->pages = r.pages;
		st->bytes = bytes;
		st->seconds = now_s() - t0;
	}
	strm_dec_free(r.dec);
	free(r.xs_pairs);
	free(buf);
	return err;
}
