/* SPDX-License-Identifier: MIT */
/*
 * data=mix: page contents like a real guest's RAM, after research/limits.md
 * section 3 ("mix"): runs of 1-16 pages of one kind, 40.2 % zero pages,
 * 15.3 % binary-like (x86 code), 14.9 % text-like and 29.7 % random.
 * A page's kind depends on its pfn only (code stays code, as in a guest);
 * its contents on (pfn, generation), so verify can regenerate and check
 * it. Generated 256 bytes at a time from a seed per chunk, so a check
 * needs only a small buffer on the guest's 8 KiB stack; about 0.6 us a
 * page on average here (2-3 GiB/s), a word store per 8 bytes.
 */
#include "internal.h"

#define CHUNK 256u
#define CHUNKS (WL_PAGE_SIZE / CHUNK)
#define CHUNK_WORDS (CHUNK / 8)

enum mix_kind { MIX_ZERO, MIX_BIN, MIX_TEXT, MIX_RAND };

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t xs(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* Per mille: zero 402, binary 153, text 149, random 296 (limits.md). */
static unsigned kind_of_draw(uint64_t h)
{
	unsigned r = (unsigned)(h % 1000);

	if (r < 402)
		return MIX_ZERO;
	if (r < 555)
		return MIX_BIN;
	if (r < 704)
		return MIX_TEXT;
	return MIX_RAND;
}

/* Each aligned block of 16 pages is cut into runs of 1-16 pages (one
 * nibble of the block's hash per run), each run of one kind. */
static unsigned page_kind(uint64_t pfn)
{
	uint64_t h = mix64((pfn >> 4) ^ 0x6d69786d69780000ull);
	unsigned off = (unsigned)(pfn & 15), start = 0, k;

	for (k = 0; k < 16; k++) {
		start += 1 + (unsigned)((h >> (4 * k)) & 15);
		if (off < start)
			break;
	}
	return kind_of_draw(mix64(h + k));
}

/*
 * Text and code are built from 8-byte tokens, one aligned word store each:
 * no per-byte branches, so a page costs a few microseconds. Text tokens are
 * words and fragments of C, Python and prose; a skewed pick (the smaller
 * of two draws) makes some far more frequent, as in real text.
 */
static const union {
	char c[64][8];
	uint64_t w[64];
} text = { .c = {
	"the     ", " of the ", "return  ", " int i =", "static  ", "struct  ",
	"if (err)", "\n\t\t     ", " = 0;\n\t\t", "void    ", "const ch", "ar *name",
	" and the", " is not ", "for (i =", " 0; i < ", "n; i++)\n", "{\n\t\t    ",
	"}\n\n     ", "#include", " <stdio.", "h>\n     ", "#define ", "NULL;\n  ",
	"self.val", "ue = val", "def __in", "it__(sel", "import o", "s\n      ",
	"uint64_t", " size_t ", "  data  ", " error  ", "  file  ", "  list  ",
	"  page  ", " memory ", "function", "printf(\"", "%s\\n\", n", "ame);\n  ",
	"while (n", " > 0) {\n", "  len   ", "  buf   ", "->next =", " NULL;  ",
	"/* The  ", "value is", " used */", "// TODO ", "my $self", " = shift", ";\n      ",
	"else {\n\t", "goto out", ";\n}\n    ", "unsigned", " long   ", "char buf",
	"[256];\n ", "in the  ", "that it ",
} };

/* x86-64-like code: common 8-byte instruction sequences; where an
 * immediate, displacement or call offset sits, the mask lets some random
 * bits through (small values, high bytes mostly 0x00). */
static const uint64_t code[32] = {
	0xec8348e589485541ull, 0x8b48f87d8948c35dull, 0x00000000e8c78948ull,
	0x0000000000441f0full, 0xc08548c031f8458bull, 0x4c00000000058b48ull,
	0x75c08500000000b8ull, 0x5b5c415dc35b5d41ull, 0x4800000000be0f66ull,
	0x8b4810ec83485355ull, 0x00000000c0c74800ull, 0x48c289480824448bull,
	0xe8df894800000000ull, 0x0000841f0f2e6690ull, 0x74c0854808478b48ull,
	0xc3c031d889481074ull, 0xf0458b48e8458948ull, 0x0c75003d83000000ull,
	0x01c083c789f87d89ull, 0x000000b70f48e874ull, 0x8948ffffff00e900ull,
	0x3d8d4800000000c7ull, 0xc7c749fc458b4800ull, 0x8d4800ebffffffffull,
	0x8900000000000000ull, 0xd0ff4110c4834858ull, 0x5d415c415e415f41ull,
	0xc35b28c48348c389ull, 0xfffffff8458b4866ull, 0x90909090909090c3ull,
	0x0000000025048b64ull, 0x4c8b48d231e43145ull,
};
static const uint64_t code_mask[8] = {
	0, 0, 0, 0x0000000000ff0000ull, 0x00000000ffff0000ull, 0x000000ff00000000ull,
	0x0000ffff00000000ull, 0x00000000000000f8ull,
};

static void gen_text(uint64_t *w, uint64_t s)
{
	for (unsigned i = 0; i < CHUNK_WORDS; i += 2) {
		uint64_t r = xs(&s);
		unsigned a = r & 63, b = (r >> 6) & 63, c = (r >> 12) & 63, e = (r >> 18) & 63;

		w[i] = text.w[a < b ? a : b];
		w[i + 1] = text.w[c < e ? c : e];
	}
}

static void gen_bin(uint64_t *w, uint64_t s)
{
	for (unsigned i = 0; i < CHUNK_WORDS; i++) {
		uint64_t r = xs(&s);
		unsigned a = r & 31, b = (r >> 5) & 31;

		w[i] = code[a < b ? a : b] ^ (r & code_mask[(r >> 10) & 7]);
	}
}

static void gen_rand(uint64_t *w, uint64_t s)
{
	for (unsigned i = 0; i < CHUNK_WORDS; i++)
		w[i] = xs(&s);
}

static void gen_chunk(uint64_t *d, unsigned kind, uint64_t pfn, uint32_t gen,
		      unsigned c)
{
	uint64_t s = mix64((pfn << 20) ^ ((uint64_t)gen << 4) ^ c) | 1;

	switch (kind) {
	case MIX_BIN: gen_bin(d, s); break;
	case MIX_TEXT: gen_text(d, s); break;
	case MIX_RAND: gen_rand(d, s); break;
	default:
		for (unsigned i = 0; i < CHUNK_WORDS; i++)
			d[i] = 0;
	}
}

/* page: page-aligned guest memory, written as words as workload.c does. */
void wl_mix_page(void *page, uint64_t pfn, uint32_t gen)
{
	unsigned kind = page_kind(pfn);

	for (unsigned c = 0; c < CHUNKS; c++)
		gen_chunk((uint64_t *)page + c * CHUNK_WORDS, kind, pfn, gen, c);
}

bool wl_mix_matches(const void *page, uint64_t pfn, uint32_t gen)
{
	const uint64_t *p = page;
	unsigned kind = page_kind(pfn);
	uint64_t want[CHUNK_WORDS];

	for (unsigned c = 0; c < CHUNKS; c++, p += CHUNK_WORDS) {
		gen_chunk(want, kind, pfn, gen, c);
		for (unsigned i = 0; i < CHUNK_WORDS; i++)
			if (p[i] != want[i])
				return false;
	}
	return true;
}
