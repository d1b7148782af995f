// SPDX-License-Identifier: MIT
/* Record codec: encode -> decode round trips, chunking, frames, encoder. */
#include <criterion/criterion.h>

#include "codec-gen.h"

static void cap_assert_eq(const struct capture *got, const struct capture *want)
{
	cr_assert_eq(got->n, want->n, "%zu records decoded, %zu written", got->n, want->n);
	for (size_t i = 0; i < got->n; i++) {
		const struct cap_rec *a = &got->v[i], *b = &want->v[i];

		cr_assert_eq(a->layer, b->layer, "record %zu: layer", i);
		cr_assert_eq(a->type, b->type, "record %zu: type 0x%x, want 0x%x", i, a->type,
			     b->type);
		cr_assert_eq(a->offset, b->offset, "record %zu (type 0x%x): offset 0x%llx, want 0x%llx",
			     i, a->type, (unsigned long long)a->offset,
			     (unsigned long long)b->offset);
		cr_assert_eq(a->len, b->len, "record %zu (type 0x%x): len", i, a->type);
		cr_assert_eq(memcmp(a->body, b->body, a->len), 0, "record %zu: body", i);
		cr_assert_eq(a->flags, b->flags, "record %zu (type 0x%x): flags 0x%x want 0x%x", i,
			     a->type, a->flags, b->flags);
		cr_assert_eq(a->page_count, b->page_count, "record %zu: page count", i);
		if (a->type == STRM_REC_LIBXC_HEADERS)
			cr_assert_eq(memcmp(&a->dhdr, &b->dhdr, sizeof(a->dhdr)), 0);
	}
}

static void roundtrip(const struct gen *g, size_t chunk)
{
	struct capture got = { 0 };
	char err[400];
	int rc = decode(g->b.p, g->b.len, chunk, 0, &got, err, sizeof(err));

	cr_assert_eq(rc, 0, "decode (chunk %zu): %d %s", chunk, rc, err);
	cap_assert_eq(&got, &g->want);
	cap_free(&got);
}

Test(codec, fixture_roundtrip)
{
	struct gen g;

	gen_init(&g);
	gen_fixture(&g, 0, 3);
	cr_assert_lt(g.b.len, 20000);
	roundtrip(&g, 0);
	cr_assert_eq(decode(g.b.p, g.b.len, 0, 3, NULL, NULL, 0), 0, "3 pages fit 3");
	cr_assert_eq(decode(g.b.p, g.b.len, 0, 2, NULL, NULL, 0), -ERANGE);
	gen_free(&g);
}

Test(codec, chunking_gives_the_same_records)
{
	static const size_t chunks[] = { 1, 2, 3, 7, 8, 13, 64, 4095, 4097, 9000 };
	struct gen g;

	gen_init(&g);
	gen_fixture(&g, 0, 3);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++)
		roundtrip(&g, chunks[i]);
	gen_free(&g);
}

/* As restore.c reads: a body that spans reads is read straight into the
 * decoder's buffer. The records are the same, and for a stream of pages
 * the space is offered (the copy it saves is the point). */
static void read_into_body_space(const struct gen *g, size_t chunk, size_t *offered)
{
	struct strm_dec_limits lim = { 0 };
	struct capture got = { 0 };
	struct strm_dec *dec;
	uint8_t *buf = malloc(chunk);
	size_t off = 0;
	int rc = strm_dec_new(&lim, &dec);

	cr_assert_eq(rc, 0);
	*offered = 0;
	while (!rc && off < g->b.len) {
		void *at = buf;
		size_t want = strm_dec_body_space(dec, &at), n;

		if (want)
			(*offered)++;
		n = want ? want : chunk;
		if (n > chunk)
			n = chunk; /* a short read into the space */
		if (n > g->b.len - off)
			n = g->b.len - off;
		memcpy(at, g->b.p + off, n);
		off += n;
		rc = strm_dec_feed(dec, at, n, cap_fn, &got);
	}
	cr_assert_eq(rc, 0, "chunk %zu: %s", chunk, strm_dec_error(dec));
	cr_assert_eq(strm_dec_finish(dec), 0);
	cap_assert_eq(&got, &g->want);
	cap_free(&got);
	strm_dec_free(dec);
	free(buf);
}

Test(codec, reading_into_the_body_space_gives_the_same_records)
{
	static const size_t chunks[] = { 5, 64, 1000, 4097 };
	struct gen g;
	size_t offered;

	gen_init(&g);
	gen_fixture(&g, 0, 3);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		read_into_body_space(&g, chunks[i], &offered);
		cr_assert_gt(offered, 0, "chunk %zu: no body space offered", chunks[i]);
	}
	gen_free(&g);
}

Test(codec, unaligned_input_is_copied_and_aligned)
{
	struct gen g;
	struct capture got = { 0 };
	uint8_t *buf;

	gen_init(&g);
	gen_fixture(&g, 0, 3);
	buf = malloc(g.b.len + 1);
	memcpy(buf + 1, g.b.p, g.b.len);
	cr_assert_eq(decode(buf + 1, g.b.len, 0, 0, &got, NULL, 0), 0);
	cap_assert_eq(&got, &g.want);
	cap_free(&got);
	free(buf);
	gen_free(&g);
}

Test(codec, every_record_type_roundtrips)
{
	struct {
		enum strm_layer layer;
		uint32_t type;
		const char *body;
		uint32_t len;
	} cases[] = {
		{ STRM_LIBXC, REC_TYPE_X86_CPUID_POLICY, "012345678901234567890123", 24 },
		{ STRM_LIBXC, REC_TYPE_X86_MSR_POLICY, "\xce\0\0\0\0\0\0\0\1\2\3\4\5\6\7\x8", 16 },
		{ STRM_LIBXC, REC_TYPE_X86_TSC_INFO, "abcdefghijklmnopqrstuvwx", 24 },
		{ STRM_LIBXC, REC_TYPE_HVM_PARAMS, "\0\0\0\0\0\0\0\0", 8 },
		{ STRM_LIBXC, REC_TYPE_HVM_PARAMS,
		  "\1\0\0\0\0\0\0\0" "\x11\0\0\0\0\0\0\0" "\x22\0\0\0\0\0\0\0", 24 },
		{ STRM_LIBXC, REC_TYPE_VERIFY, "", 0 },
		{ STRM_LIBXC, REC_TYPE_FERRY_CONSOLE,
		  "\1\0\0\0\0\0\0\0" "\x10\0\0\0\0\0\0\0" "\3\0\0\0\0\0\0\0" "hi\n", 27 },
		{ STRM_LIBXC, REC_TYPE_FERRY_CONSOLE,
		  "\1\0\0\0\0\0\0\0" "\0\0\0\0\0\0\0\0" "\0\0\0\0\0\0\0\0", 24 },
		{ STRM_LIBXC, REC_TYPE_OPTIONAL | 0x1234, "opaque", 6 },
		{ STRM_LIBXC, REC_TYPE_OPTIONAL | 0x7ffffff0, "", 0 },
		{ STRM_LIBXL, LIBXL_REC_EMULATOR_XENSTORE_DATA,
		  "\0\0\0\0\0\0\0\0" "a\0b\0" "c/d\0\0", 17 },
		{ STRM_LIBXL, LIBXL_REC_EMULATOR_XENSTORE_DATA,
		  "\2\0\0\0\0\0\0\0" "physmap/1/name\0vga\0", 27 },
		{ STRM_LIBXL, LIBXL_REC_EMULATOR_XENSTORE_DATA, "\0\0\0\0\0\0\0\0", 8 },
		{ STRM_LIBXL, LIBXL_REC_EMULATOR_CONTEXT, "\2\0\0\0\0\0\0\0QEVM blob", 17 },
	};
	struct hvmctx h;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gen g;

		gen_init(&g);
		gen_with(&g, cases[i].layer, cases[i].type, cases[i].body, cases[i].len);
		roundtrip(&g, 0);
		roundtrip(&g, 1);
		gen_free(&g);
	}
	/* HVM_CONTEXT with entries, and without (HEADER and END only). */
	hvmctx_begin(&h);
	hvmctx_entry(&h, FERRY_HVM_KVM_MP_STATE, 3, "\0\0\0\0", 4);
	hvmctx_entry(&h, 0x22, 0, "xen's own typecode", 18);
	hvmctx_entry(&h, FERRY_HVM_KVM_XCRS, 1, NULL, 0);
	hvmctx_end(&h);
	{
		struct gen g;

		gen_init(&g);
		gen_with(&g, STRM_LIBXC, REC_TYPE_HVM_CONTEXT, h.b.p, (uint32_t)h.b.len);
		roundtrip(&g, 0);
		roundtrip(&g, 5);
		gen_free(&g);
	}
	free(h.b.p);
}

Test(codec, page_data_types_and_batches)
{
	static uint8_t pages[PAGE_DATA_BATCH_MAX][4096];
	const void *pp[PAGE_DATA_BATCH_MAX];
	uint64_t pfns[PAGE_DATA_BATCH_MAX];
	const unsigned types[] = { PAGE_TYPE_NOTAB, PAGE_TYPE_XTAB, PAGE_TYPE_BROKEN,
				   PAGE_TYPE_XALLOC, PAGE_TYPE_L1TAB,
				   PAGE_TYPE_LPINTAB | PAGE_TYPE_L4TAB };
	struct gen g;
	struct hvmctx h;
	struct capture got = { 0 };
	uint32_t nd = 0;

	for (unsigned i = 0; i < 6; i++) {
		pfns[i] = (0x1000 + i) | ((uint64_t)types[i] << PAGE_DATA_TYPE_SHIFT);
		if (types[i] < PAGE_TYPE_BROKEN) {
			fix_page(pages[nd], i);
			pp[nd] = pages[nd];
			nd++;
		}
	}
	cr_assert_eq(nd, 3);
	gen_init(&g);
	gen_xl(&g, NULL, 0);
	gen_libxl_hdr(&g);
	gen_libxl(&g, LIBXL_REC_LIBXC_CONTEXT, NULL, 0);
	gen_libxc_hdrs(&g, 0, 1);
	gen_libxc(&g, REC_TYPE_STATIC_DATA_END, NULL, 0);
	gen_pages(&g, pfns, 6, pp);
	/* A full batch. */
	for (unsigned i = 0; i < PAGE_DATA_BATCH_MAX; i++) {
		pfns[i] = i;
		fix_page(pages[i], i);
		pp[i] = pages[i];
	}
	gen_pages(&g, pfns, PAGE_DATA_BATCH_MAX, pp);
	hvmctx_begin(&h);
	hvmctx_end(&h);
	gen_libxc(&g, REC_TYPE_HVM_CONTEXT, h.b.p, (uint32_t)h.b.len);
	free(h.b.p);
	gen_libxc(&g, REC_TYPE_END, NULL, 0);
	gen_libxl(&g, LIBXL_REC_END, NULL, 0);
	roundtrip(&g, 0);
	roundtrip(&g, 4000);
	cr_assert_eq(decode(g.b.p, g.b.len, 0, 0x1006, &got, NULL, 0), 0);
	cr_assert_eq(got.v[4].type, REC_TYPE_PAGE_DATA);
	cr_assert_eq(got.v[4].page_count, 6);
	cr_assert_eq(got.v[4].len, 8 + 6 * 8 + 3 * 4096);
	/* Data pages follow the pfns, in entry order (entries 0, 4 and 5). */
	fix_page(pages[0], 4);
	cr_assert_eq(memcmp(got.v[4].body + 8 + 48 + 4096, pages[0], 4096), 0);
	cap_free(&got);
	gen_free(&g);
}

Test(codec, framed_streams_decode_to_the_same_records)
{
	static const enum strm_codec codecs[] = { STRM_CODEC_NONE, STRM_CODEC_LZ4,
						  STRM_CODEC_ZSTD };

	for (size_t i = 0; i < 3; i++) {
		struct gen g;

		gen_init(&g);
		gen_framed(&g, codecs[i], 3);
		roundtrip(&g, 0);
		roundtrip(&g, 1);
		roundtrip(&g, 333);
		gen_free(&g);
	}
}

Test(codec, libxc_version_2_without_static_data_end)
{
	struct gen g;
	struct hvmctx h;
	struct capture got = { 0 };
	uint64_t pfn = 1;
	static uint8_t page[4096];
	const void *pp[1] = { page };
	size_t ihdr;

	gen_init(&g);
	gen_xl(&g, "{}", 0);
	gen_libxl_hdr(&g);
	gen_libxl(&g, LIBXL_REC_LIBXC_CONTEXT, NULL, 0);
	ihdr = g.b.len;
	gen_libxc_hdrs(&g, 4, 5);
	g.b.p[ihdr + 15] = 2;
	gen_pages(&g, &pfn, 1, pp);
	hvmctx_begin(&h);
	hvmctx_end(&h);
	gen_libxc(&g, REC_TYPE_HVM_CONTEXT, h.b.p, (uint32_t)h.b.len);
	free(h.b.p);
	gen_libxc(&g, REC_TYPE_END, NULL, 0);
	gen_libxl(&g, LIBXL_REC_END, NULL, 0);
	cr_assert_eq(decode(g.b.p, g.b.len, 0, 0, &got, NULL, 0), 0);
	cr_assert_eq(got.v[2].type, STRM_REC_LIBXC_HEADERS);
	cr_assert_eq(got.v[2].flags, 2, "image version reported");
	cap_free(&got);
	gen_free(&g);
}

Test(codec, xl_header_without_config)
{
	struct gen g;
	struct capture got = { 0 };

	gen_init(&g);
	gen_xl(&g, NULL, 0);
	cr_assert_eq(g.b.len, sizeof(struct xl_save_header));
	gen_libxl_hdr(&g);
	gen_libxl(&g, LIBXL_REC_LIBXC_CONTEXT, NULL, 0);
	gen_libxc_hdrs(&g, 4, 17);
	{
		struct hvmctx h;

		hvmctx_begin(&h);
		hvmctx_end(&h);
		gen_libxc(&g, REC_TYPE_HVM_CONTEXT, h.b.p, (uint32_t)h.b.len);
		free(h.b.p);
	}
	gen_libxc(&g, REC_TYPE_END, NULL, 0);
	gen_libxl(&g, LIBXL_REC_END, NULL, 0);
	cr_assert_eq(decode(g.b.p, g.b.len, 1, 0, &got, NULL, 0), 0);
	cr_assert_eq(got.v[0].layer, STRM_XL);
	cr_assert_eq(got.v[0].len, 0);
	cr_assert_eq(got.v[0].flags, XL_MANDATORY_FLAG_STREAMV2);
	cap_free(&got);
	gen_free(&g);
}

Test(codec, hvm_ctx_iterator)
{
	struct hvmctx h;
	struct strm_hvm_entry e;
	uint32_t pos = 0;

	hvmctx_begin(&h);
	hvmctx_entry(&h, FERRY_HVM_DOMAIN, 0, "0123456789", 10);
	hvmctx_end(&h);
	cr_assert_eq(strm_hvm_ctx_next(h.b.p, (uint32_t)h.b.len, &pos, &e), 1);
	cr_assert_eq(e.typecode, HVM_SAVE_CODE_HEADER);
	cr_assert_eq(strm_hvm_ctx_next(h.b.p, (uint32_t)h.b.len, &pos, &e), 1);
	cr_assert_eq(e.typecode, FERRY_HVM_DOMAIN);
	cr_assert_eq(e.length, 10);
	cr_assert_eq(memcmp(e.payload, "0123456789", 10), 0);
	cr_assert_eq(strm_hvm_ctx_next(h.b.p, (uint32_t)h.b.len, &pos, &e), 0);
	cr_assert_eq(pos, h.b.len);
	pos = 0;
	cr_assert_eq(strm_hvm_ctx_next(h.b.p, 20, &pos, &e), -EBADMSG);
	pos = 32;
	cr_assert_eq(strm_hvm_ctx_next(h.b.p, 45, &pos, &e), -EBADMSG);
	free(h.b.p);
}

/* ---- encoder ------------------------------------------------------------- */

Test(codec_enc, iovecs_reference_caller_memory)
{
	struct strm_enc *enc;
	struct iovec out[STRM_ENC_IOV_MAX + 2];
	static const char body[13] = "thirteen byte";
	struct iovec bi[2] = { { (void *)body, 5 }, { (void *)(body + 5), 8 } };
	int n;

	cr_assert_eq(strm_enc_new(&enc), 0);
	n = strm_enc_libxc_rec(enc, REC_TYPE_OPTIONAL | 7, bi, 2, out);
	cr_assert_eq(n, 4);
	cr_assert_eq(out[1].iov_base, body);
	cr_assert_eq(out[2].iov_base, body + 5);
	cr_assert_eq(out[3].iov_len, 3, "padding to 8");
	cr_assert_eq(memcmp(out[3].iov_base, "\0\0\0", 3), 0);
	cr_assert_eq(strm_iov_len(out, n), 8 + 16);
	/* An 8-byte multiple has no padding iovec. */
	n = strm_enc_libxl_rec(enc, LIBXL_REC_EMULATOR_CONTEXT, bi + 1, 1, out);
	cr_assert_eq(n, 2);
	n = strm_enc_libxl_rec(enc, LIBXL_REC_END, NULL, 0, out);
	cr_assert_eq(n, 1);
	cr_assert_eq(out[0].iov_len, 8);
	strm_enc_free(enc);
}

Test(codec_enc, adjacent_pages_share_an_iovec)
{
	static uint8_t mem[4][4096];
	const void *pp[4] = { mem[0], mem[1], mem[3], mem[2] };
	uint64_t pfns[4] = { 10, 11, 13, 12 };
	struct iovec out[STRM_ENC_IOV_MAX + 4];
	struct strm_enc *enc;
	int n;

	cr_assert_eq(strm_enc_new(&enc), 0);
	n = strm_enc_page_data(enc, pfns, 4, pp, out);
	cr_assert_eq(n, 2 + 3, "header, pfns, then runs [0,1], [3], [2]");
	cr_assert_eq(out[2].iov_base, mem[0]);
	cr_assert_eq(out[2].iov_len, 8192);
	cr_assert_eq(out[3].iov_base, mem[3]);
	cr_assert_eq(out[4].iov_base, mem[2]);
	cr_assert_eq(strm_iov_len(out, n), 16 + 4 * 8 + 4 * 4096);
	strm_enc_free(enc);
}

Test(codec_enc, refuses_bad_arguments)
{
	struct strm_enc *enc;
	struct iovec out[STRM_ENC_IOV_MAX + PAGE_DATA_BATCH_MAX + 1];
	static uint64_t pfns[PAGE_DATA_BATCH_MAX + 1];
	static uint8_t page[4096];
	const void *pp[1] = { page };
	struct iovec huge[2] = { { page, REC_LENGTH_MAX }, { page, 1 } };

	cr_assert_eq(strm_enc_new(&enc), 0);
	for (unsigned i = 0; i <= PAGE_DATA_BATCH_MAX; i++)
		pfns[i] = i | ((uint64_t)PAGE_TYPE_XTAB << PAGE_DATA_TYPE_SHIFT);
	cr_assert_eq(strm_enc_page_data(enc, pfns, 0, NULL, out), -EINVAL);
	cr_assert_eq(strm_enc_page_data(enc, pfns, PAGE_DATA_BATCH_MAX + 1, NULL, out),
		     -EINVAL);
	cr_assert_eq(strm_enc_page_data(enc, pfns, PAGE_DATA_BATCH_MAX, NULL, out),
		     2, "a full batch of XTAB entries");
	pfns[0] = 5; /* NOTAB needs a page */
	cr_assert_eq(strm_enc_page_data(enc, pfns, 1, NULL, out), -EINVAL);
	cr_assert_eq(strm_enc_page_data(enc, pfns, 1, pp, out), 3);
	pfns[0] = 5 | (1ull << 55); /* reserved bit */
	cr_assert_eq(strm_enc_page_data(enc, pfns, 1, pp, out), -EINVAL);
	pfns[0] = 5 | (6ull << 60); /* unknown type */
	cr_assert_eq(strm_enc_page_data(enc, pfns, 1, pp, out), -EINVAL);
	cr_assert_eq(strm_enc_libxc_rec(enc, REC_TYPE_PAGE_DATA, huge, 1, out), 2,
		     "REC_LENGTH_MAX itself is allowed");
	cr_assert_eq(strm_enc_libxc_rec(enc, REC_TYPE_PAGE_DATA, huge, 2, out), -E2BIG);
	cr_assert_eq(strm_enc_libxl_rec(enc, LIBXL_REC_EMULATOR_CONTEXT, huge, 2, out),
		     -E2BIG);
	cr_assert_eq(strm_enc_libxc_rec(enc, 1, huge, -1, out), -EINVAL);
	cr_assert_eq(strm_enc_xl_header(enc, "{}", 1u << 5, out), -EINVAL);
	cr_assert_eq(strm_enc_libxc_dhdr(enc, 3, 4, 17, out), -EINVAL);
	strm_enc_free(enc);
}

Test(codec_enc, headers_are_xens_bytes)
{
	struct strm_enc *enc;
	struct iovec out[STRM_ENC_IOV_MAX];
	struct bytes b = { 0 };
	static const uint8_t libxl_hdr[16] = { 'L', 'i', 'b', 'x', 'l', 'F', 'm', 't',
					       0, 0, 0, 2, 0, 0, 0, 0 };
	static const uint8_t ihdr[24] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					  'X', 'E', 'N', 'F', 0, 0, 0, 3 };
	static const uint8_t dhdr[16] = { 2, 0, 0, 0, 12, 0, 0, 0, 4, 0, 0, 0, 17, 0, 0, 0 };

	cr_assert_eq(strm_enc_new(&enc), 0);
	bytes_iov(&b, out, strm_enc_xl_header(enc, "{\"a\":1}", 0, out));
	cr_assert_eq(b.len, 48 + 4 + 8);
	cr_assert_eq(memcmp(b.p, "Xen saved domain, xl format\n \0 \r", 32), 0);
	cr_assert_eq(memcmp(b.p + 32, "\x04\x03\x02\x01\x03\0\0\0\0\0\0\0\x0c\0\0\0\x08\0\0\0",
			    20), 0);
	cr_assert_eq(memcmp(b.p + 52, "{\"a\":1}", 8), 0);
	b.len = 0;
	bytes_iov(&b, out, strm_enc_libxl_header(enc, out));
	cr_assert_eq(memcmp(b.p, libxl_hdr, 16), 0);
	b.len = 0;
	bytes_iov(&b, out, strm_enc_libxc_ihdr(enc, out));
	cr_assert_eq(memcmp(b.p, ihdr, 24), 0);
	b.len = 0;
	bytes_iov(&b, out, strm_enc_libxc_dhdr(enc, DHDR_TYPE_X86_HVM, 4, 17, out));
	cr_assert_eq(memcmp(b.p, dhdr, 16), 0);
	free(b.p);
	strm_enc_free(enc);
}

/* ---- dump ---------------------------------------------------------------- */

#include <unistd.h>

#include "stream/dump.h"

static char *dump_of(const struct gen *g, size_t cut, bool verbose, int *rc)
{
	char path[] = "/tmp/ferry-dump-XXXXXX", *text = NULL;
	size_t len = 0;
	int fd = mkstemp(path);
	FILE *out = open_memstream(&text, &len);

	cr_assert(fd >= 0 && out);
	unlink(path);
	cr_assert_eq(write(fd, g->b.p, g->b.len - cut), (ssize_t)(g->b.len - cut));
	lseek(fd, 0, SEEK_SET);
	*rc = strm_dump(out, fd, verbose);
	fclose(out);
	close(fd);
	return text;
}

Test(codec_dump, prints_headers_records_and_summary)
{
	struct gen g;
	char *text;
	int rc;

	gen_init(&g);
	gen_fixture(&g, 0, 3);
	text = dump_of(&g, 0, true, &rc);
	cr_assert_eq(rc, 0, "%s", text);
	cr_assert(strstr(text, "xl header: mandatory flags 0x00000003 (JSON STREAMV2), config 93 bytes"),
		  "%s", text);
	cr_assert(strstr(text, "libxl header: version 2"), "%s", text);
	cr_assert(strstr(text, "libxc headers: image version 3, domain type HVM, page shift 12"),
		  "%s", text);
	cr_assert(strstr(text, "length 12320 pfns 3 (3 with data)"), "%s", text);
	cr_assert(strstr(text, "param 17 = 0x1"), "%s", text);
	cr_assert(strstr(text, "DOMAIN           instance 0   length 40"), "%s", text);
	cr_assert(strstr(text, "name = \"fixture-1\""), "%s", text);
	cr_assert(strstr(text, "pages: 3 pfns sent, 3 with data (12288 bytes)"), "%s", text);
	free(text);
	text = dump_of(&g, 100, false, &rc);
	cr_assert_eq(rc, -ENODATA);
	cr_assert(strstr(text, "error: truncated after"), "%s", text);
	free(text);
	gen_free(&g);
}
