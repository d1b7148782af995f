// SPDX-License-Identifier: MIT
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "common/hugemap.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define HUGE_SIZE ((size_t)2 << 20)
/*
 * Maps given back are kept, up to this much, for the next of the same
 * length: a huge page the kernel hands out fresh is backed by the host
 * below on first touch, 4 ms per 2 MiB here, where one kept is only
 * cleared (0.2 ms). Enough for the tables of a few 4 GiB domains.
 */
#define CACHE_BYTES ((size_t)48 << 20)
#define CACHE_SLOTS 16

static struct {
	pthread_mutex_t lock;
	size_t bytes;
	struct {
		void *p;
		size_t len;
	} slot[CACHE_SLOTS];
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t map_len(size_t bytes)
{
	if (bytes < FERRY_HUGEMAP_MIN)
		return bytes;
	return (bytes + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
}

/* A kept map of exactly len, or NULL. */
static void *cache_take(size_t len)
{
	void *p = NULL;

	pthread_mutex_lock(&cache.lock);
	for (unsigned i = 0; i < CACHE_SLOTS && !p; i++)
		if (cache.slot[i].p && cache.slot[i].len == len) {
			p = cache.slot[i].p;
			cache.slot[i].p = NULL;
			cache.bytes -= len;
		}
	pthread_mutex_unlock(&cache.lock);
	return p;
}

/* Keeps p (len bytes) if there is room: true when kept. */
static bool cache_put(void *p, size_t len)
{
	bool kept = false;

	pthread_mutex_lock(&cache.lock);
	for (unsigned i = 0; i < CACHE_SLOTS && !kept; i++)
		if (!cache.slot[i].p && cache.bytes + len <= CACHE_BYTES) {
			cache.slot[i].p = p;
			cache.slot[i].len = len;
			cache.bytes += len;
			kept = true;
		}
	pthread_mutex_unlock(&cache.lock);
	return kept;
}

void *ferry_hugemap(size_t bytes, bool populate)
{
	size_t len = map_len(bytes), extra = bytes < FERRY_HUGEMAP_MIN ? 0 : HUGE_SIZE;
	uint8_t *p, *a;

	if (!bytes || len < bytes) {
		errno = bytes ? ENOMEM : EINVAL;
		return NULL;
	}
	if (extra) {
		a = cache_take(len);
		if (a) {
			memset(a, 0, len); /* resident already: populate or not */
			return a;
		}
	}
	p = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	a = p;
	if (extra) {
		/* Trim to a 2 MiB boundary: a huge page maps only an aligned
		 * 2 MiB of the range. */
		a = (uint8_t *)(((uintptr_t)p + HUGE_SIZE - 1) & ~(uintptr_t)(HUGE_SIZE - 1));
		if (a > p)
			munmap(p, (size_t)(a - p));
		if (p + len + extra > a + len)
			munmap(a + len, (size_t)(p + len + extra - (a + len)));
		/* Advice only: without THP it is ordinary memory. */
		madvise(a, len, MADV_HUGEPAGE);
	}
	/* Advice too: an old kernel leaves it to the first touches. */
	if (populate)
		madvise(a, len, MADV_POPULATE_WRITE);
	return a;
}

void ferry_hugeunmap(void *p, size_t bytes)
{
	size_t len = map_len(bytes);

	if (!p)
		return;
	if (bytes >= FERRY_HUGEMAP_MIN && cache_put(p, len))
		return;
	munmap(p, len);
}
