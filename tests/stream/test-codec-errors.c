// SPDX-License-Identifier: MIT
/* Record decoder on bad input: each refusal, truncation, bit flips. */
#include <criterion/criterion.h>

#include "codec-gen.h"
#include "common/log.h"

static const struct cap_rec *find(const struct gen *g, enum strm_layer layer, uint32_t type)
{
	for (size_t i = 0; i < g->want.n; i++)
		if (g->want.v[i].layer == layer && g->want.v[i].type == type)
			return &g->want.v[i];
	cr_assert_fail("no record 0x%x in the generated stream", type);
	return NULL;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void expect_err(const uint8_t *p, size_t len, uint64_t max_pfn, int want_rc,
		       const char *want_msg)
{
	char err[400];
	int rc = decode(p, len, 0, max_pfn, NULL, err, sizeof(err));
	int rc1 = decode(p, len, 1, max_pfn, NULL, NULL, 0);

	cr_assert_eq(rc, want_rc, "rc %d, want %d: %s", rc, want_rc, err);
	cr_assert_eq(rc1, rc, "byte at a time: rc %d, at once: %d", rc1, rc);
	cr_assert(strstr(err, want_msg), "message \"%s\" lacks \"%s\"", err, want_msg);
}

/* The fixture with one change. */
#define FIXTURE(g)                     \
	struct gen g;                  \
	gen_init(&g);                  \
	gen_fixture(&g, 0, 3)

Test(codec_err, xl_header)
{
	FIXTURE(g);
	uint32_t flags;

	g.b.p[0] ^= 1;
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "xl header at offset 0: not an xl save file");
	g.b.p[0] ^= 1;
	memcpy(&flags, g.b.p + 36, 4);
	put32(g.b.p + 36, flags | 1u << 5 | 1u << 20);
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "unknown mandatory flags 0x00100020 (bits 5, 20)");
	put32(g.b.p + 36, flags & ~XL_MANDATORY_FLAG_STREAMV2);
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "a version 1 stream");
	put32(g.b.p + 36, flags | XL_MANDATORY_FLAG_FERRY_FRAMES);
	log_set_stderr(0);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "frame layer");
	log_set_stderr(1);
	put32(g.b.p + 36, flags);
	put32(g.b.p + 32, 0x04030201);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "byte order mark 0x04030201");
	put32(g.b.p + 32, XL_SAVE_BYTEORDER);
	put32(g.b.p + 44, XL_CONFIG_MAX + 5);
	expect_err(g.b.p, g.b.len, 0, -E2BIG, "over the limit");
	put32(g.b.p + 44, 2);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "cannot hold a config length");
	put32(g.b.p + 44, (uint32_t)strlen(FIX_JSON) + 5);
	g.b.p[48 + 4 + 3] = 0;
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "config has a NUL before its end");
	g.b.p[48 + 4 + 3] = 'a';
	g.b.p[48 + 4 + strlen(FIX_JSON)] = '}';
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "config not NUL-terminated");
	g.b.p[48 + 4 + strlen(FIX_JSON)] = 0;
	put32(g.b.p + 48, (uint32_t)strlen(FIX_JSON) + 2);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "exceeds the");
	gen_free(&g);
}

Test(codec_err, libxl_header_and_records)
{
	FIXTURE(g);
	size_t h = g.want.v[1].offset - 16;

	g.b.p[h + 15] = 1;
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "big-endian");
	g.b.p[h + 15] = 0;
	g.b.p[h + 11] = 3;
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "libxl header at offset 0x");
	g.b.p[h + 11] = 2;
	g.b.p[h] = 'l';
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "is not \"LibxlFmt\"");
	gen_free(&g);

	{
		struct gen g2;

		gen_init(&g2);
		gen_with(&g2, STRM_LIBXL, LIBXL_REC_OPTIONAL | 9, "abc", 3);
		expect_err(g2.b.p, g2.b.len, 0, -EPROTO,
			   "libxl record type 0x80000009 at offset 0x");
		gen_free(&g2);
		gen_init(&g2);
		gen_with(&g2, STRM_LIBXL, LIBXL_REC_CHECKPOINT_END, "", 0);
		expect_err(g2.b.p, g2.b.len, 0, -EPROTO, "CHECKPOINT_END at offset");
		gen_free(&g2);
		gen_init(&g2);
		gen_with(&g2, STRM_LIBXL, LIBXL_REC_LIBXC_CONTEXT, "", 0);
		expect_err(g2.b.p, g2.b.len, 0, -EPROTO, "a second LIBXC_CONTEXT");
		gen_free(&g2);
		gen_init(&g2);
		gen_with(&g2, STRM_LIBXL, LIBXL_REC_EMULATOR_XENSTORE_DATA,
			 "\0\0\0\0\0\0\0\0/abs\0v\0", 15);
		expect_err(g2.b.p, g2.b.len, 0, -EBADMSG, "is absolute");
		gen_free(&g2);
		gen_init(&g2);
		gen_with(&g2, STRM_LIBXL, LIBXL_REC_EMULATOR_XENSTORE_DATA,
			 "\0\0\0\0\0\0\0\0key\0val", 15);
		expect_err(g2.b.p, g2.b.len, 0, -EBADMSG, "not NUL-terminated");
		gen_free(&g2);
		gen_init(&g2);
		gen_with(&g2, STRM_LIBXL, LIBXL_REC_EMULATOR_CONTEXT, "\2\0\0", 3);
		expect_err(g2.b.p, g2.b.len, 0, -EBADMSG, "expected at least 8");
		gen_free(&g2);
	}
}

Test(codec_err, libxc_headers)
{
	FIXTURE(g);
	const struct cap_rec *r = find(&g, STRM_LIBXC, STRM_REC_LIBXC_HEADERS);
	uint8_t *ih = g.b.p + r->offset, *dh = ih + 24;

	ih[17] = 1;
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "libxc image header at offset 0x");
	ih[17] = 0;
	ih[15] = 4;
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "version 4");
	ih[15] = 3;
	ih[3] = 0;
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "legacy");
	ih[3] = 0xff;
	dh[0] = 1;
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "PV");
	dh[0] = 2;
	dh[4] = 13;
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "page shift 13");
	gen_free(&g);
}

Test(codec_err, libxc_records)
{
	struct {
		uint32_t type;
		const char *body;
		uint32_t len;
		int rc;
		const char *msg;
	} cases[] = {
		{ 0x1234, "x", 1, -EPROTO, "libxc record type 0x00001234 at offset 0x" },
		{ REC_TYPE_CHECKPOINT, "", 0, -EPROTO, "CHECKPOINT in a plain stream" },
		{ REC_TYPE_SHARED_INFO, "", 0, -EPROTO, "PV record" },
		{ REC_TYPE_TOOLSTACK, "", 0, -EPROTO, "deprecated" },
		{ REC_TYPE_X86_TSC_INFO, "0123456789abcdef", 16, -EBADMSG,
		  "X86_TSC_INFO at offset 0x" },
		{ REC_TYPE_HVM_PARAMS, "\2\0\0\0\0\0\0\0" "0123456789abcdef", 24, -EBADMSG,
		  "expected 40 for 2 params" },
		{ REC_TYPE_X86_CPUID_POLICY, "0123456789abcdef", 16, -EBADMSG,
		  "multiple of 24" },
		{ REC_TYPE_X86_MSR_POLICY, "\xce\0\0\0\1\0\0\0" "01234567", 16, -EBADMSG,
		  "flags 0x00000001 must be 0" },
		{ REC_TYPE_VERIFY, "x", 1, -EBADMSG, "expected 0" },
		{ REC_TYPE_STATIC_DATA_END, "", 0, -EPROTO, "a second STATIC_DATA_END" },
		{ REC_TYPE_FERRY_CONSOLE,
		  "\2\0\0\0\0\0\0\0" "\0\0\0\0\0\0\0\0" "\0\0\0\0\0\0\0\0", 24, -EPROTO,
		  "version 2" },
		{ REC_TYPE_FERRY_CONSOLE,
		  "\1\0\0\0\0\0\0\0" "\1\0\0\0\0\0\0\0" "\2\0\0\0\0\0\0\0" "ab", 26, -EBADMSG,
		  "only 1 ever written" },
		{ REC_TYPE_FERRY_CONSOLE,
		  "\1\0\0\0\0\0\0\0" "\x09\0\0\0\0\0\0\0" "\3\0\0\0\0\0\0\0" "ab", 26, -EBADMSG,
		  "data length 3" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gen g;

		gen_init(&g);
		gen_with(&g, STRM_LIBXC, cases[i].type, cases[i].body, cases[i].len);
		expect_err(g.b.p, g.b.len, 0, cases[i].rc, cases[i].msg);
		gen_free(&g);
	}
}

Test(codec_err, hvm_context)
{
	struct {
		const char *what;
		int mutate;
		const char *msg;
	} cases[] = {
		{ "no header", 0, "not HEADER" },
		{ "bad magic", 1, "HEADER magic" },
		{ "overrun", 2, "runs past the body" },
		{ "no END", 3, "no END entry" },
		{ "bytes after END", 4, "bytes after the END entry" },
		{ "second header", 5, "a second HEADER" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hvmctx h;
		struct gen g;

		hvmctx_begin(&h);
		hvmctx_entry(&h, FERRY_HVM_DOMAIN, 0, "0123456789", 10);
		switch (cases[i].mutate) {
		case 0: h.b.p[0] = 2; break;
		case 1: h.b.p[8] ^= 1; break;
		case 2: put32(h.b.p + 32 + 4, 100); break;
		case 3: break;
		case 4: break;
		case 5: hvmctx_entry(&h, HVM_SAVE_CODE_HEADER, 0, h.b.p + 8, 24); break;
		}
		if (cases[i].mutate != 3)
			hvmctx_end(&h);
		if (cases[i].mutate == 4)
			bytes_put(&h.b, "xyz", 3);
		gen_init(&g);
		gen_with(&g, STRM_LIBXC, REC_TYPE_HVM_CONTEXT, h.b.p, (uint32_t)h.b.len);
		expect_err(g.b.p, g.b.len, 0, -EBADMSG, cases[i].msg);
		expect_err(g.b.p, g.b.len, 0, -EBADMSG, "libxc record HVM_CONTEXT at offset 0x");
		gen_free(&g);
		free(h.b.p);
	}
}

Test(codec_err, page_data)
{
	FIXTURE(g);
	const struct cap_rec *r = find(&g, STRM_LIBXC, REC_TYPE_PAGE_DATA);
	uint8_t *p = g.b.p + r->offset + 8;
	char msg[120];
	uint64_t e;

	snprintf(msg, sizeof(msg),
		 "libxc record PAGE_DATA at offset 0x%llx: pfn 0x2 beyond the domain's 2 pages",
		 (unsigned long long)r->offset);
	expect_err(g.b.p, g.b.len, 2, -ERANGE, msg);
	put32(p, 0);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "count 0 (must be 1..1024)");
	put32(p, 1025);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "count 1025");
	put32(p, 2);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "expected 8216 for 2 entries");
	put32(p, 3);
	memcpy(&e, p + 16, 8);
	e |= 1ull << 52;
	memcpy(p + 16, &e, 8);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "entry 1 (pfn 0x1): reserved bits");
	e = 1 | 5ull << 60;
	memcpy(p + 16, &e, 8);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "unknown page type 0x5");
	e = 1 | (uint64_t)PAGE_TYPE_XTAB << 60; /* one page of data too many */
	memcpy(p + 16, &e, 8);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "of which 2 carry data");
	gen_free(&g);
}

Test(codec_err, order)
{
	struct gen g;
	struct hvmctx h;
	uint64_t pfn = 0;
	static uint8_t page[4096];
	const void *pp[1] = { page };

	/* PAGE_DATA before STATIC_DATA_END (v3). */
	gen_init(&g);
	gen_xl(&g, "{}", 0);
	gen_libxl_hdr(&g);
	gen_libxl(&g, LIBXL_REC_LIBXC_CONTEXT, NULL, 0);
	gen_libxc_hdrs(&g, 4, 17);
	gen_pages(&g, &pfn, 1, pp);
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "PAGE_DATA at offset 0x77: before STATIC_DATA_END");
	/* Static data after it; libxc END without HVM_CONTEXT. */
	gen_free(&g);
	gen_init(&g);
	gen_xl(&g, "{}", 0);
	gen_libxl_hdr(&g);
	gen_libxl(&g, LIBXL_REC_LIBXC_CONTEXT, NULL, 0);
	gen_libxc_hdrs(&g, 4, 17);
	gen_libxc(&g, REC_TYPE_STATIC_DATA_END, NULL, 0);
	gen_libxc(&g, REC_TYPE_END, NULL, 0);
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "ends without HVM_CONTEXT");
	g.b.len -= 8;
	gen_libxc(&g, REC_TYPE_X86_CPUID_POLICY, "012345678901234567890123", 24);
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "static data after STATIC_DATA_END");
	gen_free(&g);
	/* libxl END before any libxc. */
	gen_init(&g);
	gen_xl(&g, "{}", 0);
	gen_libxl_hdr(&g);
	gen_libxl(&g, LIBXL_REC_END, NULL, 0);
	expect_err(g.b.p, g.b.len, 0, -EPROTO, "ends before LIBXC_CONTEXT");
	gen_free(&g);
	/* Bytes after libxl END. */
	gen_init(&g);
	gen_with(&g, STRM_LIBXC, REC_TYPE_VERIFY, "", 0);
	bytes_put(&g.b, "junk", 4);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "4 bytes after libxl END");
	gen_free(&g);
	(void)h;
}

Test(codec_err, padding_and_limits)
{
	FIXTURE(g);
	const struct cap_rec *r = find(&g, STRM_LIBXC, REC_TYPE_FERRY_CONSOLE);
	size_t pad = r->offset + 8 + r->len;
	struct strm_dec_limits lim = { .max_rec_len = 4096 };
	struct strm_dec *dec;
	char msg[100];

	cr_assert_neq(r->len % 8, 0, "the console record needs padding for this test");
	g.b.p[pad] = 0x40;
	snprintf(msg, sizeof(msg), "padding byte at offset 0x%zx is 0x40", pad);
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, msg);
	g.b.p[pad] = 0;
	r = find(&g, STRM_LIBXL, LIBXL_REC_EMULATOR_XENSTORE_DATA);
	g.b.p[r->offset + 8 + r->len + 2] = 1;
	expect_err(g.b.p, g.b.len, 0, -EBADMSG, "libxl record EMULATOR_XENSTORE_DATA");
	g.b.p[r->offset + 8 + r->len + 2] = 0;

	cr_assert_eq(strm_dec_new(&lim, &dec), 0);
	cr_assert_eq(strm_dec_feed(dec, g.b.p, g.b.len, NULL, NULL), -E2BIG);
	cr_assert(strstr(strm_dec_error(dec), "PAGE_DATA at offset"), "%s", strm_dec_error(dec));
	cr_assert(strstr(strm_dec_error(dec), "over the limit of 4096"));
	/* Errors stick. */
	cr_assert_eq(strm_dec_feed(dec, "", 1, NULL, NULL), -E2BIG);
	cr_assert_eq(strm_dec_finish(dec), -E2BIG);
	strm_dec_free(dec);
	/* A record length far over any limit is refused before allocation. */
	r = find(&g, STRM_LIBXC, REC_TYPE_HVM_PARAMS);
	put32(g.b.p + r->offset + 4, 0xfffffff8u);
	expect_err(g.b.p, g.b.len, 0, -E2BIG, "length 4294967288 is over the limit");
	gen_free(&g);
}

static int refuse_tsc(void *opaque, const struct strm_rec *rec)
{
	(void)opaque;
	return rec->layer == STRM_LIBXC && rec->type == REC_TYPE_X86_TSC_INFO ? -ECANCELED : 0;
}

Test(codec_err, consumer_stops_the_decoder)
{
	FIXTURE(g);
	struct strm_dec *dec;

	cr_assert_eq(strm_dec_new(NULL, &dec), 0);
	cr_assert_eq(strm_dec_feed(dec, g.b.p, g.b.len, refuse_tsc, NULL), -ECANCELED);
	cr_assert(strstr(strm_dec_error(dec), "X86_TSC_INFO at offset 0x"), "%s",
		  strm_dec_error(dec));
	strm_dec_free(dec);
	gen_free(&g);
}

/* Every prefix of a stream is a truncation, reported as such. */
static void all_prefixes(const struct gen *g)
{
	for (size_t n = 0; n < g->b.len; n++) {
		char err[400], want[40];
		int rc = decode(g->b.p, n, 0, 0, NULL, err, sizeof(err));

		cr_assert_eq(rc, -ENODATA, "prefix %zu: rc %d %s", n, rc, err);
		cr_assert(strstr(err, "truncated"), "prefix %zu: %s", n, err);
		snprintf(want, sizeof(want), "after %zu bytes", n);
		if (!strstr(err, "frame"))
			cr_assert(strstr(err, want), "prefix %zu: %s", n, err);
	}
}

Test(codec_err, every_prefix_is_a_truncation)
{
	struct gen g;

	gen_init(&g);
	gen_fixture(&g, 0, 3);
	all_prefixes(&g);
	gen_free(&g);
	gen_init(&g);
	gen_framed(&g, STRM_CODEC_LZ4, 3);
	log_set_stderr(0);
	all_prefixes(&g);
	log_set_stderr(1);
	gen_free(&g);
}

/* Every bit of a small stream flipped: a clear error or a decode. */
static void all_flips(struct gen *g, bool check_padding, size_t *refused)
{
	uint8_t *pad = calloc(1, g->b.len), *pages = calloc(1, g->b.len);

	for (size_t i = 0; i < g->want.n; i++) {
		const struct cap_rec *r = &g->want.v[i];

		if (r->layer == STRM_XL || r->type == STRM_REC_LIBXC_HEADERS)
			continue;
		for (uint64_t o = r->offset + 8 + r->len; o < r->offset + 8 + ((r->len + 7) & ~7u);
		     o++)
			pad[o] = 1;
		if (r->layer == STRM_LIBXC && r->type == REC_TYPE_PAGE_DATA)
			for (uint64_t o = r->offset + 16 + 8 * r->page_count + 8;
			     o < r->offset + 8 + r->len - 8; o++)
				pages[o] = 1;
	}
	for (size_t byte = 0; byte < g->b.len; byte++) {
		if (pages[byte])
			continue; /* page contents: always decode; a few are enough */
		for (int bit = 0; bit < 8; bit++) {
			char err[400];
			int rc;

			g->b.p[byte] ^= (uint8_t)(1u << bit);
			rc = decode(g->b.p, g->b.len, 0, 0x10000, NULL, err, sizeof(err));
			g->b.p[byte] ^= (uint8_t)(1u << bit);
			if (rc) {
				(*refused)++;
				cr_assert(strstr(err, "offset"), "byte %zu bit %d: %s", byte, bit, err);
			}
			if (check_padding && pad[byte])
				cr_assert_eq(rc, -EBADMSG, "padding byte %zu bit %d: rc %d", byte,
					     bit, rc);
		}
	}
	free(pad);
	free(pages);
}

Test(codec_err, every_bit_flip_is_refused_or_decodes)
{
	struct gen g;
	size_t refused = 0;

	gen_init(&g);
	gen_fixture(&g, 0, 1);
	all_flips(&g, true, &refused);
	cr_assert_gt(refused, 1000);
	gen_free(&g);
	refused = 0;
	gen_init(&g);
	gen_framed(&g, STRM_CODEC_NONE, 1);
	log_set_stderr(0); /* the frame decoder logs each bad frame */
	all_flips(&g, false, &refused);
	log_set_stderr(1);
	gen_free(&g);
}
