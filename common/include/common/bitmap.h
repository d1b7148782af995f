/* SPDX-License-Identifier: MIT */
/* Page bitmaps: bit n of word n / 64, as KVM's dirty bitmaps lay them out. */
#ifndef COMMON_BITMAP_H
#define COMMON_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

#define BITMAP_WORDS(nbits) (((nbits) + 63) / 64)
#define BITMAP_BYTES(nbits) (BITMAP_WORDS(nbits) * 8)

static inline void bitmap_set(uint64_t *map, uint64_t bit)
{
	map[bit / 64] |= 1ULL << (bit % 64);
}

static inline void bitmap_clear(uint64_t *map, uint64_t bit)
{
	map[bit / 64] &= ~(1ULL << (bit % 64));
}

static inline bool bitmap_test(const uint64_t *map, uint64_t bit)
{
	return (map[bit / 64] >> (bit % 64)) & 1;
}

static inline void bitmap_set_atomic(uint64_t *map, uint64_t bit)
{
	__atomic_fetch_or(&map[bit / 64], 1ULL << (bit % 64), __ATOMIC_RELAXED);
}

/* Number of set bits, word at a time. */
static inline uint64_t bitmap_weight(const uint64_t *map, uint64_t nbits)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < nbits / 64; i++)
		n += (uint64_t)__builtin_popcountll(map[i]);
	if (nbits % 64)
		n += (uint64_t)__builtin_popcountll(map[nbits / 64] &
						    ((1ULL << (nbits % 64)) - 1));
	return n;
}

#endif
