// SPDX-License-Identifier: MIT
/*
 * Writing the records of a domain's stream, in the record order of Xen's
 * own HVM writer (formats/SPEC.md): shared by the one-pass save and live
 * migration.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi/guest.h"
#include "common/err.h"
#include "common/log.h"
#include "formats/hvm-context.h"
#include "hyp/context.h"
#include "hyp/gmem.h"
#include "internal.h"

#define XEN_ABI_MAJOR 4
#define XEN_ABI_MINOR 19

int mig_fail(struct mig_out *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, s->errlen, fmt, ap);
	va_end(ap);
	log_err("d%u: save: %s", s->domid, s->err);
	return err;
}

int mig_fail_logged(struct mig_out *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, s->errlen, fmt, ap);
	va_end(ap);
	return err;
}

int mig_put(struct mig_out *s, int n, const char *what)
{
	int err;

	if (n < 0)
		return mig_fail(s, n, "encoding %s: %s", what, ferry_strerror(n));
	err = strm_io_writev(s->io, s->iov, n);
	if (err)
		return mig_fail(s, err, "writing %s: %s%s%s", what, ferry_strerror(err),
				*strm_io_error(s->io) ? ": " : "", strm_io_error(s->io));
	return 0;
}

int mig_put_libxc(struct mig_out *s, uint32_t type, const void *body, size_t len)
{
	struct iovec b = { .iov_base = (void *)body, .iov_len = len };

	return mig_put(s, strm_enc_libxc_rec(s->enc, type, &b, len ? 1 : 0, s->iov),
		       fmt_libxc_rec_name(type) ? fmt_libxc_rec_name(type) : "a libxc record");
}

int mig_open_stream(struct mig_out *s, const char *json, enum strm_codec codec, bool codec_auto,
		    double bandwidth, struct strm_io **framed)
{
	bool frames = codec != STRM_CODEC_NONE || codec_auto;
	uint32_t flags = XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMV2;
	int err;

	*framed = NULL;
	if (codec_auto)
		codec = STRM_CODEC_LZ4;
	err = strm_enc_new(&s->enc);
	if (err)
		return mig_fail(s, err, "no memory for the encoder");
	if (frames)
		flags |= XL_MANDATORY_FLAG_FERRY_FRAMES;
	err = mig_put(s, strm_enc_xl_header(s->enc, json, flags, s->iov), "the xl header");
	if (err || !frames)
		return err;
	err = strm_io_frame_writer_borrow(s->io, codec, 0, framed);
	if (!err && codec_auto)
		err = strm_io_frame_writer_auto(*framed, bandwidth);
	if (err)
		return mig_fail(s, err, "setting up %s frames: %s",
				codec_auto ? "auto" : strm_codec_name(codec), ferry_strerror(err));
	s->io = *framed;
	return 0;
}

int mig_put_headers(struct mig_out *s)
{
	return mig_put(s, strm_enc_libxl_header(s->enc, s->iov), "the libxl header") ?:
	       mig_put(s, strm_enc_libxl_rec(s->enc, LIBXL_REC_LIBXC_CONTEXT, NULL, 0, s->iov),
		       "LIBXC_CONTEXT") ?:
	       mig_put(s, strm_enc_libxc_ihdr(s->enc, s->iov), "the libxc image header") ?:
	       mig_put(s, strm_enc_libxc_dhdr(s->enc, DHDR_TYPE_X86_HVM, XEN_ABI_MAJOR,
					      XEN_ABI_MINOR, s->iov),
		       "the libxc domain header") ?:
	       mig_put_libxc(s, REC_TYPE_STATIC_DATA_END, NULL, 0);
}

static int ctx_append(struct mig_out *s, const void *p, size_t len)
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
	if (len) /* p may be NULL then (the END entry) */
		memcpy(s->ctx + s->ctx_len, p, len);
	s->ctx_len += len;
	return 0;
}

static int ctx_entry(void *opaque, uint16_t code, uint16_t instance, const void *data,
		     uint32_t len)
{
	struct mig_out *s = opaque;
	struct hvm_save_descriptor desc = { code, instance, len };

	return ctx_append(s, &desc, sizeof(desc)) ?: ctx_append(s, data, len);
}

int mig_build_context(struct mig_out *s, uint32_t tsc_khz)
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
		return mig_fail(s, err, "collecting the vCPU and platform state: %s",
				ferry_strerror(err));
	return 0;
}

static int send_params(struct mig_out *s, uint64_t callback)
{
	struct {
		struct xc_sr_rec_hvm_params hdr;
		struct xc_sr_rec_hvm_params_entry e[1];
	} p = { .hdr.count = 1, .e[0] = { HVM_PARAM_CALLBACK_IRQ, callback } };

	/* Xen's writer sends only non-zero params, and no record if none. */
	if (!callback)
		return 0;
	return mig_put_libxc(s, REC_TYPE_HVM_PARAMS, &p, sizeof(p));
}

/* After the libxc stream, as libxl writes it: the subtree, if any. */
static int send_xenstore(struct mig_out *s)
{
	struct libxl_sr_emulator_hdr eh = { .id = LIBXL_EMULATOR_UNKNOWN, .index = 0 };
	struct iovec b[2] = { { .iov_base = &eh, .iov_len = sizeof(eh) } };
	char *pairs = NULL;
	size_t len = 0;
	int err;

	if (!s->xs.read)
		return 0;
	err = s->xs.read(s->xs.opaque, s->domid, &pairs, &len);
	if (err)
		return mig_fail(s, err, "reading the domain's xenstore subtree: %s",
				ferry_strerror(err));
	if (len) {
		b[1] = (struct iovec){ .iov_base = pairs, .iov_len = len };
		err = mig_put(s, strm_enc_libxl_rec(s->enc, LIBXL_REC_EMULATOR_XENSTORE_DATA, b,
						    2, s->iov),
			      "EMULATOR_XENSTORE_DATA");
	}
	free(pairs);
	return err;
}

int mig_put_state(struct mig_out *s, struct hyp_domain *d)
{
	struct hyp_tsc_info tsc;
	struct xc_sr_rec_x86_tsc_info ti;
	int err;

	err = hyp_domain_tsc_info(s->h, s->domid, &tsc);
	if (err)
		return mig_fail(s, err, "reading the TSC information: %s", ferry_strerror(err));
	ti = (struct xc_sr_rec_x86_tsc_info){ .mode = tsc.mode, .khz = tsc.khz,
					      .nsec = tsc.nsec,
					      .incarnation = tsc.incarnation };
	return mig_put_libxc(s, REC_TYPE_X86_TSC_INFO, &ti, sizeof(ti)) ?:
	       mig_build_context(s, tsc.khz) ?:
	       mig_put_libxc(s, REC_TYPE_HVM_CONTEXT, s->ctx, s->ctx_len) ?:
	       send_params(s, hyp_domain_callback_param(d));
}

/*
 * libxc's part ends with CHECKPOINT (libxl's records of the epoch follow,
 * then libxc's next epoch) or END (libxl's records to the end), as
 * libxl_stream_write.c writes them: the subtree, then its closing record.
 */
int mig_put_epoch_close(struct mig_out *s, bool checkpoint)
{
	uint32_t xc = checkpoint ? REC_TYPE_CHECKPOINT : REC_TYPE_END;
	uint32_t xl = checkpoint ? LIBXL_REC_CHECKPOINT_END : LIBXL_REC_END;

	return mig_put_libxc(s, xc, NULL, 0) ?: send_xenstore(s) ?:
	       mig_put(s, strm_enc_libxl_rec(s->enc, xl, NULL, 0, s->iov),
		       checkpoint ? "the libxl CHECKPOINT_END" : "the libxl END");
}

void mig_out_fini(struct mig_out *s)
{
	strm_enc_free(s->enc);
	free(s->ctx);
	s->enc = NULL;
	s->ctx = NULL;
}
