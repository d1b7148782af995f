/* SPDX-License-Identifier: MIT */
/*
 * Test data for the I/O and frame tests (header-only): a guest-RAM-like
 * "mix" buffer, random bytes, and an independent reading of the frame
 * format of formats/SPEC.md section 7 (its own CRC32C and header builder), so that
 * the tests check the spec, not the implementation against itself.
 */
#ifndef TESTS_STREAM_FRAME_DATA_H
#define TESTS_STREAM_FRAME_DATA_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FD_PAGE	   4096u
#define FD_HDR_LEN 32u

static inline uint64_t fd_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
struct fd_rng {
	uint64_t s[4];
};

static inline void fd_rng_seed(struct fd_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++) {
		uint64_t z = (seed += 0x9e3779b97f4a7c15ull);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		r->s[i] = z ^ (z >> 31);
	}
}

static inline uint64_t fd_rng_next(struct fd_rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = fd_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = fd_rotl(s[3], 45);
	return res;
}

static inline void fd_random(void *buf, size_t len, uint64_t seed)
{
	struct fd_rng r;
	uint8_t *p = buf;

	fd_rng_seed(&r, seed);
	while (len >= 8) {
		uint64_t v = fd_rng_next(&r);

		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	while (len--)
		*p++ = (uint8_t)fd_rng_next(&r);
}

static inline uint8_t *fd_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f)
		return NULL;
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got);
	fclose(f);
	*len = n;
	return buf;
}

/*
 * Like research/limits.md's "mix": runs of 1-16 pages, about 40 % zero
 * pages, 15 % pages of an ELF binary (this test program), 15 % text (the
 * project's own sources) and 30 % random pages. len need not be a multiple
 * of the page size.
 */
static inline uint8_t *fd_mix(size_t len, uint64_t seed)
{
	static const char *const texts[] = {
		"/stream/frame.c",
		"/stream/frame-io.c",
		"/stream/include/stream/io.h",
		"/stream/include/stream/codec.h",
		"/common/log.c",
		"/CMakeLists.txt",
		"/hyp/domain.c",
		"/hyp/loader.c",
		"/README.md",
		"/docs/ARCHITECTURE.md",
		"/tests/stream/test-frame.c",
		"/tests/stream/test-io.c",
	};
	uint8_t *buf = malloc(len + FD_PAGE * 16), *elf, *text = NULL;
	size_t elf_len = 0, text_len = 0, pos = 0;
	struct fd_rng r;

	cr_assert_not_null(buf);
	elf = fd_slurp("/proc/self/exe", &elf_len);
	cr_assert(elf && elf_len > 16 * FD_PAGE);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		char path[512];
		size_t n = 0;
		uint8_t *t;

		snprintf(path, sizeof(path), "%s%s", FERRY_SOURCE_DIR, texts[i]);
		t = fd_slurp(path, &n);
		if (!t)
			continue;
		text = realloc(text, text_len + n);
		cr_assert_not_null(text);
		memcpy(text + text_len, t, n);
		text_len += n;
		free(t);
	}
	cr_assert(text_len > 8 * FD_PAGE, "need project sources for text pages");
	fd_rng_seed(&r, seed);
	while (pos < len) {
		unsigned int kind = (unsigned int)(fd_rng_next(&r) % 1000);
		unsigned int run = 1 + (unsigned int)(fd_rng_next(&r) % 16);

		for (unsigned int i = 0; i < run; i++, pos += FD_PAGE) {
			uint8_t *pg = buf + pos;

			if (kind < 402) {
				memset(pg, 0, FD_PAGE);
			} else if (kind < 555) {
				size_t o = (fd_rng_next(&r) % (elf_len / FD_PAGE - 1)) * FD_PAGE;

				memcpy(pg, elf + o, FD_PAGE);
			} else if (kind < 704) {
				size_t o = fd_rng_next(&r) % (text_len - FD_PAGE);

				memcpy(pg, text + o, FD_PAGE);
			} else {
				fd_random(pg, FD_PAGE, fd_rng_next(&r));
			}
		}
	}
	free(elf);
	free(text);
	return buf;
}

/* Bitwise CRC32C, independent of stream/frame.c. */
static inline uint32_t fd_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

static inline void fd_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t fd_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A frame header per formats/SPEC.md section 7, with both checksums correct (payload NULL:
 * the frame checksum covers the header only, for headers refused first). */
static inline void fd_frame_hdr(uint8_t h[FD_HDR_LEN], uint8_t version, uint8_t codec,
				uint16_t flags, uint32_t raw, uint32_t stored, uint64_t seq,
				const void *payload)
{
	memcpy(h, "FRRY", 4);
	h[4] = version;
	h[5] = codec;
	h[6] = (uint8_t)flags;
	h[7] = (uint8_t)(flags >> 8);
	fd_put32(h + 8, raw);
	fd_put32(h + 12, stored);
	fd_put32(h + 16, (uint32_t)seq);
	fd_put32(h + 20, (uint32_t)(seq >> 32));
	fd_put32(h + 24, fd_crc32c(0, h, 24));
	fd_put32(h + 28, fd_crc32c(fd_crc32c(0, h, 28), payload, payload ? stored : 0));
}

/* Byte offsets of the frames of a well-formed stream, walking headers. */
static inline size_t fd_frame_offsets(const uint8_t *s, size_t len, size_t *offs, size_t max)
{
	size_t n = 0, pos = 0;

	while (pos + FD_HDR_LEN <= len && n < max) {
		offs[n++] = pos;
		pos += FD_HDR_LEN + fd_get32(s + pos + 12);
	}
	return n;
}

#endif
