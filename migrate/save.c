// SPDX-License-Identifier: MIT
/*
 * The save side: one pass over a paused domain, in the record order of
 * Xen's own HVM writer (formats/SPEC.md).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bitmap.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "formats/hvm-context.h"
#include "hyp/abi.h"
#include "hyp/context.h"
#include "hyp/gmem.h"
#include "migrate/save.h"
#include "stream/codec.h"

#define XEN_ABI_MAJOR 4
#define XEN_ABI_MINOR 19
#define CONSOLE_SAVE_MAX 65536

struct save {
	struct hyp *h;
	uint32_t domid;
	struct strm_enc *enc;
	struct strm_io *io;
	struct iovec iov[STRM_ENC_IOV_MAX + PAGE_DATA_BATCH_MAX];
	char *err;
	size_t errlen;
	/* HVM_CONTEXT body being built */
	uint8_t *ctx;
	size_t ctx_len, ctx_cap;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(struct save *s, int err, const char *fmt, ...) PRINTF_FMT(3, 4);
static int fail(struct save *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, s->errlen, fmt, ap);
	va_end(ap);
	log_err("d%u: save: %s", s->domid, s->err);
	return err;
}

/* Writes what an encoder call produced (n iovecs or -errno). */
static int put(struct save *s, int n, const char *what)
{
	int err;

	if (n < 0)
		return fail(s, n, "encoding %s: %s", what, ferry_strerror(n));
	err = strm_io_writev(s->io, s->iov, n);
	if (err)
		return fail(s, err, "writing %s: %s%s%s", what, ferry_strerror(err),
			    *strm_io_error(s->io) ? ": " : "", strm_io_error(s->io));
	return 0;
}

static int put_libxc(struct save *s, uint32_t type, const void *body, size_t len)
{
	struct iovec b = { .iov_base = (void *)body, .iov_len = len };

	return put(s, strm_enc_libxc_rec(s->enc, type, &b, len ? 1 : 0, s->iov),
		   libxc_rec_name(type) ? libxc_rec_name(type) : "a libxc record");
}

static int send_pages(struct save *s, struct hyp_domain *d, uint64_t *sent)
{
	const void *pages[PAGE_DATA_BATCH_MAX];
	uint64_t pfns[PAGE_DATA_BATCH_MAX];
	struct hyp_gmem gm;
	uint64_t *map, n = 0;
	uint32_t count = 0;
	int err;

	hyp_domain_gmem(d, &gm);
	map = malloc(BITMAP_BYTES(gm.npages));
	if (!map)
		return fail(s, -ENOMEM, "no memory for the page bitmap");
	err = hyp_gmem_populated(d, map, NULL);
	if (err) {
		free(map);
		return fail(s, err, "finding the populated pages: %s", ferry_strerror(err));
	}
	for (uint64_t pfn = 0; pfn < gm.npages; pfn++) {
		if (!(pfn % 64) && !map[pfn / 64]) {
			pfn += 63;
			continue;
		}
		if (!bitmap_test(map, pfn))
			continue;
		pfns[count] = pfn | ((uint64_t)PAGE_TYPE_NOTAB << PAGE_DATA_TYPE_SHIFT);
		pages[count] = gm.hva + (pfn << PAGE_SHIFT);
		if (++count == PAGE_DATA_BATCH_MAX) {
			err = put(s, strm_enc_page_data(s->enc, pfns, count, pages, s->iov),
				  "PAGE_DATA");
			if (err)
				goto out;
			n += count;
			count = 0;
		}
	}
	if (count) {
		err = put(s, strm_enc_page_data(s->enc, pfns, count, pages, s->iov),
			  "PAGE_DATA");
		n += count;
	}
out:
	free(map);
	*sent = n;
	return err;
}

static int ctx_append(struct save *s, const void *p, size_t len)
{
	if (s->ctx_len + len > s->ctx_cap) {
		size_t cap = s->ctx_cap ? s->ctx_cap * 2 : 65536;
		uint8_t *n;

		while (cap < s->ctx_len + len)
			cap *= 2;
		n = realloc(s->ctx, cap);
		if (!n)
			return -ENOMEM;
		s->ctx = n;
		s->ctx_cap = cap;
	}
	memcpy(s->ctx + s->ctx_len, p, len);
	s->ctx_len += len;
	return 0;
}

static int ctx_entry(void *opaque, uint16_t code, uint16_t instance, const void *data,
		     uint32_t len)
{
	struct save *s = opaque;
	struct hvm_save_descriptor desc = { code, instance, len };

	return ctx_append(s, &desc, sizeof(desc)) ?: ctx_append(s, data, len);
}

static int send_context(struct save *s, uint32_t tsc_khz)
{
	struct hvm_save_header hdr = { .magic = HVM_FILE_MAGIC,
				       .version = HVM_FILE_VERSION,
				       .gtsc_khz = tsc_khz };
	int err;

	s->ctx_len = 0;
	err = ctx_entry(s, HVM_SAVE_CODE_HEADER, 0, &hdr, sizeof(hdr));
	if (!err)
		err = hyp_domain_save_context(s->h, s->domid, ctx_entry, s);
	if (!err)
		err = ctx_entry(s, HVM_SAVE_CODE_END, 0, NULL, 0);
	if (err)
		return fail(s, err, "collecting the vCPU and platform state: %s",
			    ferry_strerror(err));
	return put_libxc(s, REC_TYPE_HVM_CONTEXT, s->ctx, s->ctx_len);
}

static int send_params(struct save *s, uint64_t callback)
{
	struct {
		struct xc_sr_rec_hvm_params hdr;
		struct xc_sr_rec_hvm_params_entry e[1];
	} p = { .hdr.count = 1, .e[0] = { HVM_PARAM_CALLBACK_IRQ, callback } };

	/* Xen's writer sends only non-zero params, and no record if none. */
	if (!callback)
		return 0;
	return put_libxc(s, REC_TYPE_HVM_PARAMS, &p, sizeof(p));
}

static int send_console(struct save *s)
{
	struct {
		uint32_t version, _res1;
		uint64_t total;
		uint32_t len, _res2;
	} hdr = { .version = 1 };
	char *buf = malloc(sizeof(hdr) + CONSOLE_SAVE_MAX);
	size_t got = 0;
	int err;

	if (!buf)
		return fail(s, -ENOMEM, "no memory for the console state");
	err = hyp_console_state(s->h, s->domid, buf + sizeof(hdr), CONSOLE_SAVE_MAX, &got,
				&hdr.total);
	if (!err) {
		hdr.len = (uint32_t)got;
		memcpy(buf, &hdr, sizeof(hdr));
		err = put_libxc(s, REC_TYPE_FERRY_CONSOLE, buf, sizeof(hdr) + got);
	}
	free(buf);
	return err;
}

int mig_save_domain(struct hyp *h, uint32_t domid, struct strm_io *io,
		    const struct mig_save_opts *o, struct mig_save_stats *st,
		    char *errbuf, size_t errlen)
{
	struct save s = { .h = h, .domid = domid, .io = io, .err = errbuf,
			  .errlen = errlen };
	struct hyp_dom_info info;
	struct hyp_tsc_info tsc;
	struct hyp_domain *d = NULL;
	double t0 = now_s();
	uint32_t flags = XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMV2;
	uint64_t pages = 0;
	int err, cerr;

	errbuf[0] = 0;
	err = hyp_domain_info(h, domid, &info);
	if (err) {
		fail(&s, err, "no domain %u", domid);
		goto out;
	}
	if (info.state != HYP_DOM_PAUSED) {
		err = fail(&s, -EBUSY, "domain %u is not paused", domid);
		goto out;
	}
	err = strm_enc_new(&s.enc);
	if (err) {
		fail(&s, err, "no memory for the encoder");
		goto out;
	}
	if (o->codec != STRM_CODEC_NONE)
		flags |= XL_MANDATORY_FLAG_FERRY_FRAMES;
	err = put(&s, strm_enc_xl_header(s.enc, o->config_json, flags, s.iov), "the xl header");
	if (err)
		goto out;
	if (o->codec != STRM_CODEC_NONE) {
		struct strm_io *framed;

		err = strm_io_frame_writer(io, o->codec, 0, &framed);
		if (err) {
			fail(&s, err, "setting up %s frames", strm_codec_name(o->codec));
			goto out;
		}
		s.io = io = framed;
	}
	err = hyp_domain_get(h, domid, &d);
	if (err) {
		fail(&s, err, "domain %u went away", domid);
		goto out;
	}
	err = hyp_domain_tsc_info(h, domid, &tsc);
	if (err) {
		fail(&s, err, "reading the TSC information: %s", ferry_strerror(err));
		goto out;
	}
	err = put(&s, strm_enc_libxl_header(s.enc, s.iov), "the libxl header") ?:
	      put(&s, strm_enc_libxl_rec(s.enc, LIBXL_REC_LIBXC_CONTEXT, NULL, 0, s.iov),
		  "LIBXC_CONTEXT") ?:
	      put(&s, strm_enc_libxc_ihdr(s.enc, s.iov), "the libxc image header") ?:
	      put(&s, strm_enc_libxc_dhdr(s.enc, DHDR_TYPE_X86_HVM, XEN_ABI_MAJOR,
					  XEN_ABI_MINOR, s.iov),
		  "the libxc domain header") ?:
	      put_libxc(&s, REC_TYPE_STATIC_DATA_END, NULL, 0) ?:
	      send_pages(&s, d, &pages);
	if (err)
		goto out;
	{
		struct xc_sr_rec_x86_tsc_info ti = { .mode = tsc.mode, .khz = tsc.khz,
						     .nsec = tsc.nsec,
						     .incarnation = tsc.incarnation };
		uint64_t callback = 0;

		err = put_libxc(&s, REC_TYPE_X86_TSC_INFO, &ti, sizeof(ti)) ?:
		      send_context(&s, tsc.khz);
		if (err)
			goto out;
		callback = hyp_domain_callback_param(d);
		err = send_params(&s, callback) ?: send_console(&s) ?:
		      put_libxc(&s, REC_TYPE_END, NULL, 0) ?:
		      put(&s, strm_enc_libxl_rec(s.enc, LIBXL_REC_END, NULL, 0, s.iov),
			  "the libxl END");
	}
out:
	if (st) {
		st->pages = pages;
		st->bytes = io ? strm_io_offset(io) : 0;
	}
	cerr = strm_io_close(io);
	if (!err && cerr)
		err = fail(&s, cerr, "finishing the stream: %s", ferry_strerror(cerr));
	if (st)
		st->seconds = now_s() - t0;
	if (d)
		hyp_domain_put(d);
	strm_enc_free(s.enc);
	free(s.ctx);
	return err;
}
