// SPDX-License-Identifier: MIT
/*
 * Golden streams: the generator in codec-gen.h rebuilds each fixture in
 * memory and the bytes must equal the committed file. With
 * FERRY_REGEN_FIXTURES=1 (scripts/regen-fixtures.sh) the files are
 * rewritten instead, along with the stream fuzz corpus, whose files start
 * with the byte tests/fuzz/fuzz-stream.c reads its chunking from.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec-gen.h"

enum fix_kind { FIX_PLAIN, FIX_FRAMED, FIX_MINIMAL };

static const struct fixture {
	const char *path; /* under the source tree */
	enum fix_kind kind;
	unsigned data_pages;
	int fuzz_prefix; /* -1: a plain stream; else the fuzz target's first byte */
} fixtures[] = {
	{ "tests/fixtures/hvm-3page.bin", FIX_PLAIN, 3, -1 },
	{ "tests/fixtures/hvm-3page-frames-none.bin", FIX_FRAMED, 3, -1 },
	{ "tests/fuzz/corpus/stream/hvm-3page.bin", FIX_PLAIN, 3, 0x00 },
	{ "tests/fuzz/corpus/stream/hvm-xtab.bin", FIX_PLAIN, 0, 0x0b },
	{ "tests/fuzz/corpus/stream/hvm-1page-frames.bin", FIX_FRAMED, 1, 0x05 },
	{ "tests/fuzz/corpus/stream/minimal.bin", FIX_MINIMAL, 0, 0x01 },
};

static void build(const struct fixture *f, struct gen *g)
{
	gen_init(g);
	switch (f->kind) {
	case FIX_PLAIN: gen_fixture(g, 0, f->data_pages); break;
	case FIX_FRAMED: gen_framed(g, STRM_CODEC_NONE, f->data_pages); break;
	case FIX_MINIMAL: gen_with(g, STRM_LIBXC, REC_TYPE_VERIFY, "", 0); break;
	}
	if (f->fuzz_prefix >= 0) {
		uint8_t b = (uint8_t)f->fuzz_prefix;
		struct bytes s = { 0 };

		bytes_put(&s, &b, 1);
		bytes_put(&s, g->b.p, g->b.len);
		free(g->b.p);
		g->b = s;
	}
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	p = malloc((size_t)n + 1);
	cr_assert(p);
	cr_assert_eq(fread(p, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return p;
}

Test(codec_fixtures, golden_streams_match)
{
	const char *regen = getenv("FERRY_REGEN_FIXTURES");

	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		char path[1024];
		struct gen g;
		uint8_t *old;
		size_t len = 0, skip;

		snprintf(path, sizeof(path), "%s/%s", FERRY_SOURCE_DIR, fixtures[i].path);
		build(&fixtures[i], &g);
		skip = fixtures[i].fuzz_prefix >= 0;
		cr_assert_eq(decode(g.b.p + skip, g.b.len - skip, 0, 3, NULL, NULL, 0), 0, "%s",
			     path);
		if (regen && !strcmp(regen, "1")) {
			FILE *f = fopen(path, "wb");

			cr_assert(f, "cannot write %s", path);
			cr_assert_eq(fwrite(g.b.p, 1, g.b.len, f), g.b.len);
			cr_assert_eq(fclose(f), 0);
			printf("wrote %s (%zu bytes)\n", path, g.b.len);
		} else {
			old = slurp(path, &len);
			cr_assert(old, "%s missing: run scripts/regen-fixtures.sh", path);
			cr_assert_eq(len, g.b.len, "%s: %zu bytes, the generator makes %zu", path,
				     len, g.b.len);
			for (size_t o = 0; o < len; o++)
				cr_assert_eq(old[o], g.b.p[o],
					     "%s: first difference at byte 0x%zx "
					     "(the format or the generator changed: "
					     "scripts/regen-fixtures.sh, and say why in the commit)",
					     path, o);
			free(old);
		}
		gen_free(&g);
	}
}

Test(codec_fixtures, committed_streams_decode)
{
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		char path[1024], err[400];
		size_t len = 0, skip;
		uint8_t *p;
		int rc;

		snprintf(path, sizeof(path), "%s/%s", FERRY_SOURCE_DIR, fixtures[i].path);
		p = slurp(path, &len);
		if (!p)
			cr_skip_test("%s missing", path);
		skip = fixtures[i].fuzz_prefix >= 0;
		rc = decode(p + skip, len - skip, 1, 3, NULL, err, sizeof(err));
		cr_assert_eq(rc, 0, "%s: %s", path, err);
		free(p);
	}
}
