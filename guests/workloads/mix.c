/* SPDX-License-Identifier: MIT */
/*
 * data=mix: page contents like a real guest's RAM, after research/limits.md
 * section 3 ("mix"): runs of 1-16 pages of one kind, 40.2 % zero pages,
 * 15.3 % binary-like (x86 code), 14.9 % text-like and 29.7 % random.
 * A page's kind depends on its pfn only (code stays code, as in a guest);
 * its contents on (pfn, generation), so verify can regenerate and check
 * it. Generated 256 bytes at a time from a seed per chunk, so a check
 * needs only a small buffer on the guest's 8 KiB stack.
 */
#include "internal.h"

#define CHUNK 256u
#define CHUNKS (WL_PAGE_SIZE / CHUNK)

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

static const char *const words[] = {
	"the", "of", "and", "to", "a", "in", "is", "that", "for", "it",
	"int", "return", "if", "else", "struct", "static", "const", "void",
	"char", "uint64_t", "size_t", "NULL", "self", "def", "import",
	"from", "with", "this", "be", "are", "not", "or", "on", "by",
	"value", "data", "error", "file", "list", "name", "len", "buf",
	"page", "memory", "function", "#include", "#define", "printf",
	"while", "for (i = 0; i < n; i++)", "{", "}", "(", ");", "=", "==",
	"->", "0", "1", "// ", "/*", "*/", "my", "$_",
};

static const char *const phrases[] = {
	"#include <stdio.h>\n", "\treturn 0;\n}\n", "if (err)\n\t\tgoto out;",
	"for (i = 0; i < n; i++) {", "self.assertEqual(", "of the",
	"static int", "const char *name", "in the", "unsigned long",
	"return -EINVAL;", "#define MAX_", "def __init__(self", "} else {",
	"print(\"", "my $self = shift;",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

#define PHRASE_IN 2

/* Text: words from a small vocabulary, skewed toward the first ones,
 * with spaces, line breaks and indentation. */
static void gen_text(uint8_t *d, uint64_t s)
{
	unsigned n = 0;

	while (n < CHUNK) {
		uint64_t r = xs(&s);
		unsigned a = (unsigned)(r % NWORDS), b = (unsigned)((r >> 8) % NWORDS);
		unsigned c = (unsigned)((r >> 40) % NWORDS);
		const char *w = words[a < b ? (a < c ? a : c) : (b < c ? b : c)];

		if ((r >> 48) % PHRASE_IN == 0)
			w = phrases[(r >> 52) % 16];

		while (*w && n < CHUNK)
			d[n++] = (uint8_t)*w++;
		if (n < CHUNK)
			d[n++] = (r >> 16) % 8 ? ' ' : '\n';
		if ((r >> 19) % 8 == 0)
			for (unsigned t = (unsigned)(r >> 22) % 3; t && n < CHUNK; t--)
				d[n++] = '\t';
		if ((r >> 24) % 64 == 0 && n < CHUNK)	/* a name, a number */
			d[n++] = (uint8_t)('a' + (r >> 28) % 26);
	}
}

/* x86-64-like code: common opcodes and ModRM bytes, small displacements
 * and call offsets whose high bytes are 0x00 or 0xff. */
static const uint8_t ops[][8] = {
	{ 4, 0x55, 0x48, 0x89, 0xe5 }, { 2, 0x5d, 0xc3 }, { 3, 0x48, 0x8b, 0x45 },
	{ 4, 0x48, 0x83, 0xec, 0x10 }, { 2, 0x89, 0xc7 }, { 2, 0x31, 0xc0 },
	{ 7, 0x48, 0x89, 0xdf, 0x41, 0x5c, 0x5b, 0x5d },
	{ 7, 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00 }, { 3, 0x48, 0x8d, 0x3d }, { 2, 0x8b, 0x45 },
	{ 2, 0x89, 0x45 }, { 5, 0x48, 0x89, 0x7d, 0xf8, 0x48 }, { 2, 0x85, 0xc0 },
	{ 5, 0x0f, 0x1f, 0x44, 0x00, 0x00 }, { 3, 0x41, 0x54, 0x53 },
	{ 7, 0x48, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00 },
};

static void gen_bin(uint8_t *d, uint64_t s)
{
	unsigned n = 0;

	while (n < CHUNK) {
		uint64_t r = xs(&s);
		const uint8_t *op = ops[r & 15];
		unsigned i;

		for (i = 1; i <= op[0] && n < CHUNK; i++)
			d[n++] = op[i];
		switch ((r >> 4) & 7) {
		case 0:	/* call rel32 */
			if (n < CHUNK) d[n++] = 0xe8;
			/* fall through */
		case 1:	/* imm32 / disp32 */
			if (n < CHUNK) d[n++] = (uint8_t)(r >> 8);
			if (n < CHUNK) d[n++] = (uint8_t)(r >> 16);
			for (i = 0; i < 2 && n < CHUNK; i++)
				d[n++] = (r >> 24) & 1 ? 0xff : 0x00;
			break;
		case 2:
		case 3:	/* disp8 / imm8 */
			if (n < CHUNK) d[n++] = (uint8_t)((r >> 8) & 0x38);
			break;
		default:
			break;
		}
	}
}

static void gen_rand(uint8_t *d, uint64_t s)
{
	for (unsigned i = 0; i < CHUNK; i += 8) {
		uint64_t r = xs(&s);

		for (unsigned j = 0; j < 8; j++)
			d[i + j] = (uint8_t)(r >> (8 * j));
	}
}

static void gen_chunk(uint8_t *d, unsigned kind, uint64_t pfn, uint32_t gen,
		      unsigned c)
{
	uint64_t s = mix64((pfn << 20) ^ ((uint64_t)gen << 4) ^ c) | 1;

	switch (kind) {
	case MIX_BIN: gen_bin(d, s); break;
	case MIX_TEXT: gen_text(d, s); break;
	case MIX_RAND: gen_rand(d, s); break;
	default:
		for (unsigned i = 0; i < CHUNK; i++)
			d[i] = 0;
	}
}

void wl_mix_page(void *page, uint64_t pfn, uint32_t gen)
{
	unsigned kind = page_kind(pfn);

	for (unsigned c = 0; c < CHUNKS; c++)
		gen_chunk((uint8_t *)page + c * CHUNK, kind, pfn, gen, c);
}

bool wl_mix_matches(const void *page, uint64_t pfn, uint32_t gen)
{
	const uint8_t *p = page;
	unsigned kind = page_kind(pfn);
	uint8_t want[CHUNK];

	for (unsigned c = 0; c < CHUNKS; c++, p += CHUNK) {
		gen_chunk(want, kind, pfn, gen, c);
		for (unsigned i = 0; i < CHUNK; i++)
			if (p[i] != want[i])
				return false;
	}
	return true;
}
