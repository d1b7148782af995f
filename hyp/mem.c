// SPDX-License-Identifier: MIT
/*
 * Machine memory: one sparse memfd is the pool of machine frames. A frame
 * allocator (a free bitmap, next-fit, extent at a time) hands frames to
 * domains; the M2P records each frame's owner and gfn. A domain's
 * guest-physical view is its frames' extents mapped side by side into one
 * reserved host range, which KVM then takes as memslots.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/bitmap.h"
#include "common/compiler.h"
#include "common/log.h"
#include "internal.h"

int mem_init(struct hyp_mem *m, uint64_t bytes)
{
	uint64_t words;
	int err;

	memset(m, 0, sizeof(*m));
	m->nframes = bytes >> PAGE_SHIFT;
	if (!m->nframes)
		return -EINVAL;
	m->memfd = memfd_create("ferry-machine-memory", MFD_CLOEXEC);
	if (m->memfd < 0) {
		err = -errno;
		log_err("memfd_create for the machine-memory pool: %s", strerror(errno));
		return err;
	}
	if (ftruncate(m->memfd, (off_t)(m->nframes << PAGE_SHIFT)) < 0) {
		err = -errno;
		log_err("sizing the machine-memory pool to %llu MiB: %s",
			(unsigned long long)(bytes >> 20), strerror(errno));
		goto err_fd;
	}
	words = BITMAP_WORDS(m->nframes);
	/* Anonymous mappings stay untouched until used: the M2P of an idle
	 * 16 GiB pool costs nothing. */
	m->free_map = mmap(NULL, words * 8, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	m->m2p = mmap(NULL, m->nframes * 8, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m->free_map == MAP_FAILED || m->m2p == MAP_FAILED) {
		err = -ENOMEM;
		log_err("allocating the frame tables for %llu frames",
			(unsigned long long)m->nframes);
		goto err_maps;
	}
	memset(m->free_map, 0xff, words * 8);
	if (m->nframes % 64)
		m->free_map[words - 1] = (1ULL << (m->nframes % 64)) - 1;
	m->nfree = m->nframes;
	pthread_mutex_init(&m->lock, NULL);
	return 0;

err_maps:
	if (m->free_map != MAP_FAILED)
		munmap(m->free_map, words * 8);
	if (m->m2p != MAP_FAILED)
		munmap(m->m2p, m->nframes * 8);
err_fd:
	close(m->memfd);
	return err;
}

void mem_fini(struct hyp_mem *m)
{
	munmap(m->free_map, BITMAP_BYTES(m->nframes));
	munmap(m->m2p, m->nframes * 8);
	close(m->memfd);
	pthread_mutex_destroy(&m->lock);
}

/* Finds the longest free run starting at or after *pos, up to want frames.
 * Returns its length (0 if none after pos). Word at a time over full words. */
static uint64_t find_run(struct hyp_mem *m, uint64_t *pos, uint64_t want)
{
	uint64_t i = *pos, n = 0;

	while (i < m->nframes) {
		if (!(i % 64) && !m->free_map[i / 64]) {
			i += 64;
			continue;
		}
		if (bitmap_test(m->free_map, i))
			break;
		i++;
	}
	if (i >= m->nframes)
		return 0;
	*pos = i;
	while (i + n < m->nframes && n < want) {
		uint64_t f = i + n;

		if (!(f % 64) && n + 64 <= want && m->free_map[f / 64] == UINT64_MAX) {
			n += 64;
			continue;
		}
		if (!bitmap_test(m->free_map, f))
			break;
		n++;
	}
	if (i + n > m->nframes)
		n = m->nframes - i;
	return n;
}

static void release_frames(struct hyp_mem *m, uint32_t *p2m, uint64_t n)
{
	uint64_t g = 0;

	while (g < n) {
		uint32_t start = p2m[g];
		uint64_t len = 1;

		if (start == MFN_INVALID) {
			g++;
			continue;
		}
		while (g + len < n && p2m[g + len] == start + len)
			len++;
		/* Returning the pages to the host keeps the pool sparse. */
		fallocate(m->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)start << PAGE_SHIFT, (off_t)len << PAGE_SHIFT);
		for (uint64_t k = 0; k < len; k++) {
			bitmap_set(m->free_map, start + k);
			m->m2p[start + k] = M2P_INVALID;
			p2m[g + k] = MFN_INVALID;
		}
		m->nfree += len;
		g += len;
	}
}

int mem_populate(struct hyp_mem *m, uint32_t domid, uint32_t *p2m,
		 uint8_t *hva, uint64_t gfn, uint64_t n)
{
	uint64_t done = 0, pos;
	int err = 0;

	pthread_mutex_lock(&m->lock);
	if (n > m->nfree) {
		pthread_mutex_unlock(&m->lock);
		return -ENOMEM;
	}
	pos = m->cursor;
	while (done < n) {
		uint64_t start = pos, len = find_run(m, &start, n - done);
		void *at;

		if (!len) {
			if (pos == 0) {
				err = -ENOMEM;
				break;
			}
			pos = 0; /* wrap once */
			continue;
		}
		at = mmap(hva + ((gfn + done) << PAGE_SHIFT), len << PAGE_SHIFT,
			  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			  m->memfd, (off_t)start << PAGE_SHIFT);
		if (at == MAP_FAILED) {
			err = -errno;
			log_err("d%u: mapping %llu frames at gfn 0x%llx: %s", domid,
				(unsigned long long)len,
				(unsigned long long)(gfn + done), strerror(errno));
			break;
		}
		for (uint64_t k = 0; k < len; k++) {
			bitmap_clear(m->free_map, start + k);
			m->m2p[start + k] = ((uint64_t)domid << 48) | (gfn + done + k);
			p2m[gfn + done + k] = (uint32_t)(start + k);
		}
		m->nfree -= len;
		done += len;
		pos = start + len;
	}
	m->cursor = pos;
	if (err)
		release_frames(m, p2m + gfn, done);
	pthread_mutex_unlock(&m->lock);
	return err;
}

void mem_release(struct hyp_mem *m, uint32_t *p2m, uint64_t n)
{
	pthread_mutex_lock(&m->lock);
	release_frames(m, p2m, n);
	pthread_mutex_unlock(&m->lock);
}

int mem_unpopulate(struct hyp_mem *m, uint32_t domid, uint32_t *p2m,
		   uint8_t *hva, uint64_t gfn, uint64_t n)
{
	void *at;

	/*
	 * The view goes first: once the frames are free another domain may
	 * get them. What replaces it is private zero memory, writable so that
	 * no ferryd path holding a pointer into the domain (a grant mapping,
	 * a ring, shared_info) can fault; a guest that writes a page it gave
	 * back gets scratch memory, never a pool frame.
	 */
	at = mmap(hva + (gfn << PAGE_SHIFT), n << PAGE_SHIFT, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	if (at == MAP_FAILED) {
		int err = -errno;

		log_err("d%u: unmapping %llu frames at gfn 0x%llx: %s", domid,
			(unsigned long long)n, (unsigned long long)gfn, strerror(errno));
		return err;
	}
	mem_release(m, p2m + gfn, n);
	return 0;
}
