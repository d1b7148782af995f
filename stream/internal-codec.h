/* SPDX-License-Identifier: MIT */
/* Private to the record codec (codec-enc.c, codec-dec.c, dump.c). */
#ifndef STREAM_INTERNAL_CODEC_H
#define STREAM_INTERNAL_CODEC_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "formats/libxc-stream.h"
#include "stream/codec.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the codec writes records in host order and assumes a little-endian host"
#endif

#define STRM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define STRM_DEC_MAX_REC_LEN_DEFAULT (16u << 20)
#define STRM_ROUNDUP8(x) (((x) + 7u) & ~(uint64_t)7)

/* Unaligned little- and big-endian loads and stores. */
static inline uint16_t get_le16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return __builtin_bswap32(get_le32(p));
}

static inline uint64_t get_be64(const uint8_t *p)
{
	return __builtin_bswap64(get_le64(p));
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
	v = __builtin_bswap16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	v = __builtin_bswap32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	v = __builtin_bswap64(v);
	memcpy(p, &v, sizeof(v));
}

/* PAGE_DATA page types (the 4-bit value in bits 63-60 of an entry). */
static inline bool strm_page_type_known(unsigned t)
{
	return t <= PAGE_TYPE_L4TAB ||
	       (t >= (PAGE_TYPE_LPINTAB | PAGE_TYPE_L1TAB) &&
		t <= (PAGE_TYPE_LPINTAB | PAGE_TYPE_L4TAB)) ||
	       t == PAGE_TYPE_BROKEN || t == PAGE_TYPE_XALLOC || t == PAGE_TYPE_XTAB;
}

static inline bool strm_page_type_has_data(unsigned t)
{
	return strm_page_type_known(t) && t != PAGE_TYPE_BROKEN &&
	       t != PAGE_TYPE_XALLOC && t != PAGE_TYPE_XTAB;
}

/*
 * The records of one epoch of a checkpointed stream, held until it is
 * complete (codec-dec-epoch.c): copies of the decoder's reports with their
 * bodies in one arena, 8-byte aligned as the decoder's own.
 */
struct strm_held_rec;
struct strm_held {
	struct strm_held_rec *v;
	size_t n, cap;
	uint8_t *arena;
	size_t used, arena_cap;
};
/* Copies rec; -E2BIG when the epoch would pass max_bytes, -ENOMEM. */
int strm_held_add(struct strm_held *hd, const struct strm_rec *rec, uint64_t max_bytes);
/* Bytes held: the bound max_bytes applies to. */
uint64_t strm_held_bytes(const struct strm_held *hd);
/* Calls fn on every held record in order; stops at the first error. */
int strm_held_each(struct strm_held *hd, int (*fn)(void *opaque, struct strm_rec *rec),
		   void *opaque);
/* Drops the held records (keeps the memory for the next epoch). */
void strm_held_clear(struct strm_held *hd);
void strm_held_free(struct strm_held *hd);

/* Bits 59-52 of a PAGE_DATA entry. */
#define STRM_PAGE_DATA_RES_MASK ((uint64_t)~(PAGE_DATA_PFN_MASK | PAGE_DATA_TYPE_MASK))

#endif
