/* SPDX-License-Identifier: MIT */
/*
 * Stream generator and record capture for the codec tests (header-only).
 * The generator writes a stream through the encoder and remembers every
 * record it wrote (layer, type, offset, body), so a decode can be compared
 * with what was meant. The golden fixtures (tests/fixtures/) are made
 * by the gen_fixture_* functions here; scripts/regen-fixtures.sh rewrites
 * them, and the fixtures test compares them byte for byte.
 */
#ifndef TESTS_STREAM_CODEC_GEN_H
#define TESTS_STREAM_CODEC_GEN_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hvm-context.h"
#include "stream/codec.h"
#include "stream/io.h"

/* ---- bytes and records ------------------------------------------------- */

struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static inline void bytes_put(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 256;
		b->p = realloc(b->p, b->cap);
		cr_assert(b->p);
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static inline void bytes_iov(struct bytes *b, const struct iovec *iov, int n)
{
	cr_assert_gt(n, 0, "encoder: %d", n);
	for (int i = 0; i < n; i++)
		bytes_put(b, iov[i].iov_base, iov[i].iov_len);
}

struct cap_rec {
	enum strm_layer layer;
	uint32_t type, len, flags, page_count;
	uint64_t offset;
	uint8_t *body;
	struct xc_sr_dhdr dhdr;
};

struct capture {
	struct cap_rec *v;
	size_t n, cap;
};

static inline void cap_add(struct capture *c, enum strm_layer layer, uint32_t type,
			   uint64_t offset, const void *body, uint32_t len)
{
	struct cap_rec *r;

	if (c->n == c->cap) {
		c->cap = c->cap * 2 + 16;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
		cr_assert(c->v);
	}
	r = &c->v[c->n++];
	memset(r, 0, sizeof(*r));
	r->layer = layer;
	r->type = type;
	r->offset = offset;
	r->len = len;
	r->body = malloc(len + 1);
	cr_assert(r->body);
	if (len)
		memcpy(r->body, body, len);
}

static inline void cap_free(struct capture *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].body);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

static inline int cap_fn(void *opaque, const struct strm_rec *rec)
{
	struct capture *c = opaque;
	struct cap_rec *r;

	cap_add(c, rec->layer, rec->type, rec->offset, rec->body, rec->len);
	r = &c->v[c->n - 1];
	r->flags = rec->flags;
	r->page_count = rec->page_count;
	r->dhdr = rec->dhdr;
	if (rec->layer == STRM_XL)
		cr_assert_eq(rec->body[rec->len], 0, "xl config not NUL-terminated");
	if (rec->layer == STRM_LIBXC && rec->type == REC_TYPE_PAGE_DATA) {
		cr_assert_eq((const uint8_t *)rec->page_pfns, rec->body + 8);
		cr_assert_eq(rec->page_data, rec->body + 8 + 8 * (size_t)rec->page_count);
		cr_assert_eq((uintptr_t)rec->page_pfns % 8, 0, "pfns unaligned");
	}
	return 0;
}

/* Decodes [p, p + len) fed in chunks of chunk bytes (0: all at once). */
static inline int decode(const uint8_t *p, size_t len, size_t chunk, uint64_t max_pfn,
			 struct capture *c, char *err, size_t errsz)
{
	struct strm_dec_limits lim = { .max_pfn = max_pfn };
	struct strm_dec *dec;
	int rc = strm_dec_new(&lim, &dec);

	cr_assert_eq(rc, 0);
	if (!chunk)
		chunk = len ? len : 1;
	for (size_t off = 0; !rc && off < len; off += chunk)
		rc = strm_dec_feed(dec, p + off, len - off < chunk ? len - off : chunk,
				   c ? cap_fn : NULL, c);
	if (!rc)
		rc = strm_dec_finish(dec);
	if (rc)
		cr_assert(strm_dec_error(dec)[0], "error %d without a message", rc);
	else
		cr_assert(strm_dec_done(dec));
	if (err)
		snprintf(err, errsz, "%s", strm_dec_error(dec));
	strm_dec_free(dec);
	return rc;
}

/* ---- generator ---------------------------------------------------------- */

struct gen {
	struct strm_enc *enc;
	struct bytes b;
	struct capture want; /* what a decoder must report */
	struct iovec iov[STRM_ENC_IOV_MAX + PAGE_DATA_BATCH_MAX + 8];
};

static inline void gen_init(struct gen *g)
{
	memset(g, 0, sizeof(*g));
	cr_assert_eq(strm_enc_new(&g->enc), 0);
}

static inline void gen_free(struct gen *g)
{
	strm_enc_free(g->enc);
	free(g->b.p);
	cap_free(&g->want);
}

static inline void gen_xl(struct gen *g, const char *json, uint32_t flags)
{
	int n = strm_enc_xl_header(g->enc, json, flags, g->iov);
	size_t l = json ? strlen(json) : 0;

	bytes_iov(&g->b, g->iov, n);
	cap_add(&g->want, STRM_XL, 0, 0, json ? json : "", (uint32_t)l);
	g->want.v[g->want.n - 1].flags = XL_MANDATORY_FLAG_STREAMV2 | flags |
					 (json ? XL_MANDATORY_FLAG_JSON : 0);
}

static inline void gen_libxl_hdr(struct gen *g)
{
	bytes_iov(&g->b, g->iov, strm_enc_libxl_header(g->enc, g->iov));
}

static inline void gen_libxl(struct gen *g, uint32_t type, const void *body, uint32_t len)
{
	struct iovec bi = { (void *)body, len };

	cap_add(&g->want, STRM_LIBXL, type, g->b.len, body, len);
	bytes_iov(&g->b, g->iov, strm_enc_libxl_rec(g->enc, type, &bi, 1, g->iov));
}

static inline void gen_libxc_hdrs(struct gen *g, uint32_t xen_major, uint32_t xen_minor)
{
	uint64_t off = g->b.len;
	struct cap_rec *r;

	bytes_iov(&g->b, g->iov, strm_enc_libxc_ihdr(g->enc, g->iov));
	bytes_iov(&g->b, g->iov,
		  strm_enc_libxc_dhdr(g->enc, DHDR_TYPE_X86_HVM, xen_major, xen_minor, g->iov));
	cap_add(&g->want, STRM_LIBXC, STRM_REC_LIBXC_HEADERS, off, NULL, 0);
	r = &g->want.v[g->want.n - 1];
	r->flags = IHDR_VERSION;
	r->dhdr.type = DHDR_TYPE_X86_HVM;
	r->dhdr.page_shift = 12;
	r->dhdr.xen_major = xen_major;
	r->dhdr.xen_minor = xen_minor;
}

static inline void gen_libxc(struct gen *g, uint32_t type, const void *body, uint32_t len)
{
	struct iovec bi = { (void *)body, len };

	cap_add(&g->want, STRM_LIBXC, type, g->b.len, body, len);
	if (!fmt_libxc_rec_name(type))
		g->want.v[g->want.n - 1].flags = STRM_REC_UNKNOWN_OPTIONAL;
	bytes_iov(&g->b, g->iov, strm_enc_libxc_rec(g->enc, type, &bi, 1, g->iov));
}

static inline void gen_pages(struct gen *g, const uint64_t *pfns, uint32_t count,
			     const void *const *pages)
{
	size_t start = g->b.len;
	int n = strm_enc_page_data(g->enc, pfns, count, pages, g->iov);
	struct cap_rec *r;

	bytes_iov(&g->b, g->iov, n);
	cap_add(&g->want, STRM_LIBXC, REC_TYPE_PAGE_DATA, start, g->b.p + start + 8,
		(uint32_t)(g->b.len - start - 8));
	r = &g->want.v[g->want.n - 1];
	r->page_count = count;
}

/* An HVM_CONTEXT body: HEADER, entries, END. */
struct hvmctx {
	struct bytes b;
};

static inline void hvmctx_entry(struct hvmctx *h, uint16_t code, uint16_t inst,
				const void *p, uint32_t len)
{
	struct hvm_save_descriptor d = { code, inst, len };

	bytes_put(&h->b, &d, sizeof(d));
	bytes_put(&h->b, p, len);
}

static inline void hvmctx_begin(struct hvmctx *h)
{
	struct hvm_save_header hh = {
		.magic = HVM_FILE_MAGIC,
		.version = HVM_FILE_VERSION,
		.gtsc_khz = 2000000,
	};

	memset(h, 0, sizeof(*h));
	hvmctx_entry(h, HVM_SAVE_CODE_HEADER, 0, &hh, sizeof(hh));
}

static inline void hvmctx_end(struct hvmctx *h)
{
	hvmctx_entry(h, HVM_SAVE_CODE_END, 0, NULL, 0);
}

/* ---- the fixtures -------------------------------------------------------- */

#define FIX_JSON                                                                    \
	"{\"name\":\"fixture\",\"memory\":12,\"maxmem\":12,\"vcpus\":1,"              \
	"\"backend\":\"soft\",\"extra\":\"workload=idle\"}"

static inline void fix_page(uint8_t *page, unsigned pfn)
{
	for (unsigned i = 0; i < 4096; i++)
		page[i] = (uint8_t)(pfn * 37u + i * 7u + (i >> 8));
}

/*
 * The main fixture: a 3-page soft domain in Ferry's writer order with
 * every record Ferry writes. pages: how many of pfns 0..2 carry data (the
 * others go as XTAB), so small variants serve the bit-flip test.
 */
static inline void gen_fixture(struct gen *g, uint32_t xl_flags, unsigned data_pages)
{
	static uint8_t pages[3][4096];
	const void *pp[3];
	uint64_t pfns[4];
	struct xc_sr_cpuid_leaf cpuid[2] = {
		{ 0x0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69 },
		{ 0x1, 0, 0x000806f8, 0x00010800, 0x80200000, 0x178bfbff },
	};
	struct xc_sr_msr_entry msr[1] = { { 0xce, 0, 0x80000000ull } };
	struct xc_sr_rec_x86_tsc_info tsc = { 0, 2000000, 123456789ull, 0, 0 };
	struct ferry_hvm_domain dom = { 1, 1, 0x2000, (2ull << 56) | 0xf3, 123456789ull,
					0x100000 };
	struct ferry_soft_vcpu vcpu = { 1, 1, 223456789ull };
	uint8_t params[8 + 3 * 16];
	static const char con_text[] = "ferry guest: hello from the fixture\n";
	uint8_t con[sizeof(struct ferry_hvm_console) + sizeof(con_text) - 1];
	struct ferry_hvm_console ch = { FERRY_CONSOLE_VERSION, 0, 1000, sizeof(con_text) - 1,
					0 };
	static const char xs[] = "\0\0\0\0\0\0\0\0"
				 "name\0fixture-1\0"
				 "memory/target\0" "12288\0"
				 "console/port\0" "2\0";
	struct hvmctx h;
	uint64_t pv[6] = { 1, 2, 2, 3, 17, 1 }; /* store pfn, evtchn, console pfn */
	uint32_t n = 0;

	gen_xl(g, FIX_JSON, xl_flags);
	gen_libxl_hdr(g);
	gen_libxl(g, LIBXL_REC_LIBXC_CONTEXT, NULL, 0);
	gen_libxc_hdrs(g, 4, 17);
	gen_libxc(g, REC_TYPE_X86_CPUID_POLICY, cpuid, sizeof(cpuid));
	gen_libxc(g, REC_TYPE_X86_MSR_POLICY, msr, sizeof(msr));
	gen_libxc(g, REC_TYPE_STATIC_DATA_END, NULL, 0);
	for (unsigned i = 0; i < 3; i++) {
		if (i < data_pages) {
			fix_page(pages[i], i);
			pp[n++] = pages[i];
			pfns[i] = i;
		} else {
			pfns[i] = i | ((uint64_t)PAGE_TYPE_XTAB << PAGE_DATA_TYPE_SHIFT);
		}
	}
	gen_pages(g, pfns, 3, pp);
	gen_libxc(g, REC_TYPE_X86_TSC_INFO, &tsc, sizeof(tsc));
	hvmctx_begin(&h);
	hvmctx_entry(&h, FERRY_HVM_DOMAIN, 0, &dom, sizeof(dom));
	hvmctx_entry(&h, FERRY_HVM_SOFT_VCPU, 0, &vcpu, sizeof(vcpu));
	hvmctx_end(&h);
	gen_libxc(g, REC_TYPE_HVM_CONTEXT, h.b.p, (uint32_t)h.b.len);
	free(h.b.p);
	memset(params, 0, sizeof(params));
	params[0] = 3;
	memcpy(params + 8, pv, sizeof(pv));
	gen_libxc(g, REC_TYPE_HVM_PARAMS, params, sizeof(params));
	memcpy(con, &ch, sizeof(ch));
	memcpy(con + sizeof(ch), con_text, sizeof(con_text) - 1);
	gen_libxc(g, REC_TYPE_FERRY_CONSOLE, con, sizeof(con));
	gen_libxc(g, REC_TYPE_END, NULL, 0);
	gen_libxl(g, LIBXL_REC_EMULATOR_XENSTORE_DATA, xs, sizeof(xs) - 1);
	gen_libxl(g, LIBXL_REC_END, NULL, 0);
}

/*
 * The same stream cut into frames (FERRY_FRAMES): the xl header raw, the
 * rest through a frame writer of codec c and 1 KiB frames. Records in
 * g->want keep their decoded-stream offsets.
 */
static inline void gen_framed(struct gen *g, enum strm_codec c, unsigned data_pages)
{
	struct gen plain;
	struct strm_io *mem, *fr;
	const void *data;
	size_t len, xl_len;

	gen_init(&plain);
	gen_fixture(&plain, XL_MANDATORY_FLAG_FERRY_FRAMES, data_pages);
	xl_len = plain.want.v[1].offset - 16; /* the libxl header is 16 bytes */
	cr_assert_eq(strm_io_mem_writer(&mem), 0);
	cr_assert_eq(strm_io_frame_writer(mem, c, 1024, &fr), 0);
	cr_assert_eq(strm_io_write(fr, plain.b.p + xl_len, plain.b.len - xl_len), 0);
	cr_assert_eq(strm_io_finish(fr), 0);
	data = strm_io_mem_data(mem, &len);
	bytes_put(&g->b, plain.b.p, xl_len);
	bytes_put(&g->b, data, len);
	strm_io_close(fr);
	g->want = plain.want;
	plain.want.v = NULL;
	plain.want.n = 0;
	gen_free(&plain);
}

/* A stream with exactly one record of (layer, type, body) in a valid spot. */
static inline void gen_with(struct gen *g, enum strm_layer layer, uint32_t type,
			    const void *body, uint32_t len)
{
	struct hvmctx h;

	gen_xl(g, "{}", 0);
	gen_libxl_hdr(g);
	gen_libxl(g, LIBXL_REC_LIBXC_CONTEXT, NULL, 0);
	gen_libxc_hdrs(g, 4, 17);
	if (layer == STRM_LIBXC && (type == REC_TYPE_X86_CPUID_POLICY ||
				    type == REC_TYPE_X86_MSR_POLICY))
		gen_libxc(g, type, body, len);
	gen_libxc(g, REC_TYPE_STATIC_DATA_END, NULL, 0);
	hvmctx_begin(&h);
	hvmctx_end(&h);
	if (layer == STRM_LIBXC && type == REC_TYPE_HVM_CONTEXT)
		gen_libxc(g, type, body, len);
	else
		gen_libxc(g, REC_TYPE_HVM_CONTEXT, h.b.p, (uint32_t)h.b.len);
	free(h.b.p);
	if (layer == STRM_LIBXC && type != REC_TYPE_X86_CPUID_POLICY &&
	    type != REC_TYPE_X86_MSR_POLICY && type != REC_TYPE_HVM_CONTEXT) {
		gen_libxc(g, type, body, len);
	}
	gen_libxc(g, REC_TYPE_END, NULL, 0);
	if (layer == STRM_LIBXL)
		gen_libxl(g, type, body, len);
	gen_libxl(g, LIBXL_REC_END, NULL, 0);
}

#endif
