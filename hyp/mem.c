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
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "common/bitmap.h"
#include "common/clock.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/hugemap.h"
#include "common/log.h"
#include "internal.h"

/*
 * The M2P's pages, touched once each while ferryd is idle. On these
 * machines (guests of a shadow-paging hypervisor) the first touch of an
 * anonymous page costs 10-30 us, and a domain built on frames never used
 * since start paid it for its share of the M2P: 2 MiB per GiB, 13-20 ms
 * of a lazy restore's 10 ms budget. On huge pages (common/hugemap.h) a
 * touch per 2 MiB does it; the rest are for a kernel without THP. An
 * atomic add of zero writes the page without changing an entry an
 * allocation wrote meanwhile.
 */
static void *touch_m2p(void *arg)
{
	struct hyp_mem *m = arg;
	uint64_t per_page = PAGE_SIZE / sizeof(*m->m2p);

	for (uint64_t f = 0; f < m->nframes && !m->toucher_stop; f += per_page)
		__atomic_fetch_add(&m->m2p[f], 0, __ATOMIC_RELAXED);
	return NULL;
}

static void *prealloc_pool(void *arg);
static void mark_warm(void *opaque, const struct hyp__run *r, uint64_t first, uint64_t last);

/*
 * --pool-file: the pool is a file on tmpfs that outlives ferryd, so the
 * next ferryd finds the frames its domains held still backed by the host
 * (warm). On a machine that is itself a VM a freed page goes back to the
 * host below (free page reporting) and costs 2-3 s/GiB to back again;
 * pages of a file are never freed. It is shmem as a memfd is: holes,
 * punches, SEEK_DATA and pwrite behave the same. Root's alone (a guest's
 * old memory is in it), one ferryd's at a time (flock), and refused where
 * the tmpfs could not hold the whole pool: a write to a mapped page that
 * tmpfs cannot back is a SIGBUS in ferryd. Returns the fd or -errno.
 */
static int open_pool_file(const char *path, uint64_t bytes)
{
	struct statfs fs;
	struct stat st;
	uint64_t room;
	int fd, err;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		log_err("pool file %s: %s", path, strerror(errno));
		return err;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		log_err("pool file %s: %s", path,
			err == -EBUSY ? "in use by another ferryd" : strerror(-err));
		goto err_fd;
	}
	err = -EINVAL;
	if (fstat(fd, &st) || fstatfs(fd, &fs)) {
		err = -errno;
		log_err("pool file %s: %s", path, strerror(errno));
		goto err_fd;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid() ||
	    (st.st_mode & 077)) {
		log_err("pool file %s: not a regular file of ours alone (owner %u, mode %o, "
			"%u links): guests' memory goes there",
			path, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
			(unsigned)st.st_nlink);
		goto err_fd;
	}
	if (fs.f_type != TMPFS_MAGIC) {
		log_err("pool file %s: not on tmpfs (a disk file would write guests' memory "
			"to disk)", path);
		goto err_fd;
	}
	/* What the file holds already is its own; the rest must fit. */
	room = (uint64_t)fs.f_bavail * (uint64_t)fs.f_bsize + (uint64_t)st.st_blocks * 512;
	if (fs.f_blocks && room < bytes) {
		log_err("pool file %s: its tmpfs has room for %llu MiB, the pool is %llu MiB",
			path, (unsigned long long)(room >> 20), (unsigned long long)(bytes >> 20));
		err = -ENOSPC;
		goto err_fd;
	}
	return fd;

err_fd:
	close(fd);
	return err;
}

/* A kept pool's data is what earlier ferryds' domains left: warm frames. */
static void find_kept(struct hyp_mem *m, const char *path)
{
	uint64_t f = 0, first, last;
	double t0 = ferry_now_s();

	while (f < m->nframes && hyp__mem_next_data(m, f, m->nframes, &first, &last) == 1) {
		mark_warm(m, NULL, first, last);
		f = last;
	}
	log_info("memory pool: %s, %llu MiB of it backed from before (found in %.0f ms)", path,
		 (unsigned long long)(m->nwarm_free >> 8), (ferry_now_s() - t0) * 1e3);
}

int hyp__mem_init(struct hyp_mem *m, uint64_t bytes, bool prealloc, const char *pool_file)
{
	uint64_t words;
	int err;

	memset(m, 0, sizeof(*m));
	m->nframes = bytes >> PAGE_SHIFT;
	if (!m->nframes)
		return -EINVAL;
	if (pool_file) {
		m->memfd = open_pool_file(pool_file, bytes);
		if (m->memfd < 0)
			return m->memfd;
	} else {
		m->memfd = memfd_create("ferry-machine-memory", MFD_CLOEXEC);
		if (m->memfd < 0) {
			err = -errno;
			log_err("memfd_create for the machine-memory pool: %s", strerror(errno));
			return err;
		}
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
	m->warm_map = mmap(NULL, words * 8, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	/* On huge pages: a domain's share of it, 2 MiB per GiB, in one fault. */
	m->m2p = ferry_hugemap(m->nframes * 8, false);
	if (m->free_map == MAP_FAILED || m->warm_map == MAP_FAILED || !m->m2p) {
		err = -ENOMEM;
		log_err("allocating the frame tables for %llu frames",
			(unsigned long long)m->nframes);
		goto err_maps;
	}
	memset(m->free_map, 0xff, words * 8);
	if (m->nframes % 64)
		m->free_map[words - 1] = (1ULL << (m->nframes % 64)) - 1;
	m->nfree = m->nframes;
	if (pool_file)
		find_kept(m, pool_file);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->prealloc_done, NULL);
	/* Without it the first domains only pay the touches themselves. */
	m->toucher_on = !pthread_create(&m->toucher, NULL, touch_m2p, m);
	if (prealloc) {
		err = -pthread_create(&m->prealloc, NULL, prealloc_pool, m);
		if (err)
			log_warn("starting the pool's populator: %s; --prealloc is off",
				 ferry_strerror(-err));
		m->prealloc_on = !err;
	}
	return 0;

err_maps:
	if (m->free_map != MAP_FAILED)
		munmap(m->free_map, words * 8);
	if (m->warm_map != MAP_FAILED)
		munmap(m->warm_map, words * 8);
	ferry_hugeunmap(m->m2p, m->nframes * 8);
err_fd:
	close(m->memfd);
	return err;
}

void hyp__mem_fini(struct hyp_mem *m)
{
	if (m->toucher_on) {
		m->toucher_stop = 1;
		pthread_join(m->toucher, NULL);
	}
	if (m->prealloc_on) {
		m->prealloc_stop = 1;
		pthread_join(m->prealloc, NULL);
	}
	munmap(m->free_map, BITMAP_BYTES(m->nframes));
	munmap(m->warm_map, BITMAP_BYTES(m->nframes));
	ferry_hugeunmap(m->m2p, m->nframes * 8);
	close(m->memfd);
	pthread_cond_destroy(&m->prealloc_done);
	pthread_mutex_destroy(&m->lock);
}

/* Which free frames a search takes: those with a host page, or holes. */
enum fclass { F_WARM, F_COLD };

/* Bits of word w set for the free frames of class c. */
static uint64_t avail(const struct hyp_mem *m, uint64_t w, enum fclass c)
{
	return m->free_map[w] & (c == F_WARM ? m->warm_map[w] : ~m->warm_map[w]);
}

static bool avail_bit(const struct hyp_mem *m, uint64_t f, enum fclass c)
{
	return (avail(m, f / 64, c) >> (f % 64)) & 1;
}

/* The first run of up to want free frames of class c at or after *pos:
 * its length (0 if none), *pos its start. Word at a time over full words. */
static uint64_t find_run(struct hyp_mem *m, uint64_t *pos, uint64_t want, enum fclass c)
{
	uint64_t i = *pos, n = 0;

	while (i < m->nframes) {
		if (!(i % 64) && !avail(m, i / 64, c)) {
			i += 64;
			continue;
		}
		if (avail_bit(m, i, c))
			break;
		i++;
	}
	if (i >= m->nframes)
		return 0;
	*pos = i;
	while (i + n < m->nframes && n < want) {
		uint64_t f = i + n;

		if (!(f % 64) && n + 64 <= want && avail(m, f / 64, c) == UINT64_MAX) {
			n += 64;
			continue;
		}
		if (!avail_bit(m, f, c))
			break;
		n++;
	}
	if (i + n > m->nframes)
		n = m->nframes - i;
	return n;
}

int hyp__mem_next_data(struct hyp_mem *m, uint64_t from, uint64_t end, uint64_t *first,
		       uint64_t *last)
{
	off_t data = lseek(m->memfd, (off_t)(from << PAGE_SHIFT), SEEK_DATA), hole;

	/* Defined on every return: an empty run at end unless one is found. */
	*first = *last = end;
	if (data < 0 && errno == ENXIO)
		return 0;
	if (data < 0)
		return -errno;
	if ((uint64_t)data >= end << PAGE_SHIFT)
		return 0;
	hole = lseek(m->memfd, data, SEEK_HOLE);
	if (hole < 0 || (uint64_t)hole > end << PAGE_SHIFT)
		hole = (off_t)(end << PAGE_SHIFT);
	*first = (uint64_t)data >> PAGE_SHIFT;
	*last = ((uint64_t)hole + PAGE_SIZE - 1) >> PAGE_SHIFT;
	return 1;
}

static void punch(struct hyp_mem *m, uint64_t mfn, uint64_t n)
{
	fallocate(m->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)mfn << PAGE_SHIFT,
		  (off_t)n << PAGE_SHIFT);
}

static int run_cmp(const void *a, const void *b)
{
	const struct hyp__run *x = a, *y = b;

	return (x->mfn > y->mfn) - (x->mfn < y->mfn);
}

int hyp__mem_runs(const uint32_t *p2m, uint64_t n, struct hyp__run **runs, size_t *nruns)
{
	struct hyp__run *v;
	size_t k = 0;

	for (uint64_t g = 0; g < n; g++)
		k += p2m[g] != MFN_INVALID && (!g || p2m[g] != p2m[g - 1] + 1 ||
					       p2m[g - 1] == MFN_INVALID);
	v = malloc((k ? k : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	k = 0;
	for (uint64_t g = 0; g < n;) {
		uint64_t len = 1;

		if (p2m[g] == MFN_INVALID) {
			g++;
			continue;
		}
		while (g + len < n && p2m[g + len] == p2m[g] + len)
			len++;
		v[k++] = (struct hyp__run){.mfn = p2m[g], .gfn = g, .len = len};
		g += len;
	}
	qsort(v, k, sizeof(*v), run_cmp);
	*runs = v;
	*nruns = k;
	return 0;
}

int hyp__mem_runs_data(struct hyp_mem *m, const struct hyp__run *runs, size_t nruns,
		       void (*fn)(void *opaque, const struct hyp__run *r, uint64_t first,
				  uint64_t last),
		       void *opaque)
{
	uint64_t first = 0, last = 0; /* the extent in hand: data up to last */
	/* Past the last run no extent is wanted: a SEEK_HOLE there would only
	 * scan the pool's data beyond it. */
	uint64_t end = nruns ? runs[nruns - 1].mfn + runs[nruns - 1].len : 0;

	for (size_t i = 0; i < nruns; i++) {
		uint64_t lo = runs[i].mfn, hi = lo + runs[i].len;

		while (lo < hi) {
			if (last <= lo) {
				int r = hyp__mem_next_data(m, lo, end, &first, &last);

				if (r <= 0)
					return r; /* 0: no data from lo on */
			}
			if (first >= hi)
				break; /* the extent is past this run: kept for the next */
			if (first > lo)
				lo = first;
			fn(opaque, &runs[i], lo, last < hi ? last : hi);
			lo = last < hi ? last : hi;
		}
	}
	return 0;
}

static void mark_warm(void *opaque, const struct hyp__run *r, uint64_t first, uint64_t last)
{
	struct hyp_mem *m = opaque;

	(void)r;
	for (uint64_t f = first; f < last; f++)
		bitmap_set(m->warm_map, f);
	m->nwarm_free += last - first;
}

/*
 * Returns p2m[0, n)'s frames to the pool: those holding a host page become
 * warm when keep, the rest stay (or become) holes. Keeping them is what
 * Xen does with its heap; here it spares the next restore the host's page
 * allocation, which on a machine that is itself a VM costs as much again
 * as the copy (a fresh page is backed by the host below on first touch).
 */
static void release_frames(struct hyp_mem *m, uint32_t *p2m, uint64_t n, bool keep)
{
	struct hyp__run *runs = NULL;
	size_t nruns = 0;
	uint64_t g = 0;

	/* An error only leaves frames cold: they are holes or get punched. */
	if (keep && !hyp__mem_runs(p2m, n, &runs, &nruns))
		hyp__mem_runs_data(m, runs, nruns, mark_warm, m);
	free(runs);
	while (g < n) {
		uint32_t start = p2m[g];
		uint64_t len = 1;

		if (start == MFN_INVALID) {
			g++;
			continue;
		}
		while (g + len < n && p2m[g + len] == start + len)
			len++;
		if (!keep)
			punch(m, start, len);
		for (uint64_t k = 0; k < len; k++) {
			bitmap_set(m->free_map, start + k);
			m->m2p[start + k] = M2P_INVALID;
			p2m[g + k] = MFN_INVALID;
		}
		m->nfree += len;
		g += len;
	}
}

/* Shows frames [mfn, mfn + len) at gfn's place in the domain's view. A
 * remap: the callers of what calls it bracket it with
 * hyp__uffd_remap_begin/_end (hyp/uffd.h), which registers it again. */
static int map_run(struct hyp_mem *m, uint8_t *hva, uint64_t gfn, uint64_t mfn, uint64_t len)
{
	void *at = mmap(hva + (gfn << PAGE_SHIFT), len << PAGE_SHIFT, PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_FIXED, m->memfd, (off_t)mfn << PAGE_SHIFT);

	return at == MAP_FAILED ? -errno : 0;
}

/* Clears bits [bit, bit + n) of map, whole words at a time. */
static void clear_bits(uint64_t *map, uint64_t bit, uint64_t n)
{
	uint64_t end = bit + n;

	for (; bit < end && bit % 64; bit++)
		bitmap_clear(map, bit);
	for (; bit + 64 <= end; bit += 64)
		map[bit / 64] = 0;
	for (; bit < end; bit++)
		bitmap_clear(map, bit);
}

/*
 * A SEEK_HOLE scans the pool's data page by page to the end of its extent:
 * 6 ms per GiB here. A pool backed whole would be one extent, so releasing
 * a domain (under the pool's lock) or listing what a save sends would scan
 * from its frames to the end of the pool (25 ms for 4 GiB). The populator
 * leaves one hole per HYP_MEM_PREALLOC_GAP frames (internal.h), which
 * bounds that to 64 MiB of free frames.
 */

/* Frames the populator holds at a time: 4 MiB, 5-15 ms of the host's
 * backing here, the longest an allocation may wait for them. */
#define PREALLOC_WINDOW 1024

/*
 * --prealloc, Xen's bootscrub=idle for this pool: on a machine that is
 * itself a VM, a page the host below has not backed costs 2.5-3.5 s/GiB
 * on first write, 10x the copy, so the first restore into a fresh ferryd
 * ran 3x as long as one into a ferryd that had held a domain. This gives
 * the free holes of the pool's top half a page each at nice 19, from the
 * top down, and makes them warm: what a restore swaps in. Only half: a
 * restore's domain is first built on holes (taken from the bottom), which
 * the warm frames then replace as the stream writes, so a guest of S
 * frames gets min(S, pool - S) warm ones whether half the pool is backed
 * or all of it; backing all would hold twice the memory and have the
 * domain's build punch the warm frames it takes. A window's free holes are
 * taken out of free_map while they are written (zeros, by pwrite: no
 * mapping, no page tables), so no domain ever owns a frame this writes;
 * populate() waits for them if it must.
 */
static void *prealloc_pool(void *arg)
{
	static uint8_t zeros[64 << 10];
	struct hyp_mem *m = arg;
	uint64_t mask[PREALLOC_WINDOW / 64 + 1]; /* + 1: lo is rounded down */
	uint64_t hi = m->nframes, n_done = 0;
	double t0 = ferry_now_s();

	setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
	while (hi > m->nframes / 2 && !m->prealloc_stop) {
		uint64_t half = m->nframes / 2, n = 0;
		uint64_t lo = hi > half + PREALLOC_WINDOW ? hi - PREALLOC_WINDOW : half;

		lo &= ~63ULL;
		pthread_mutex_lock(&m->lock);
		for (uint64_t w = lo / 64; w * 64 < hi; w++) {
			mask[w - lo / 64] = avail(m, w, F_COLD);
			/* The last frame of every HYP_MEM_PREALLOC_GAP stays a hole. */
			if (w % (HYP_MEM_PREALLOC_GAP / 64) == HYP_MEM_PREALLOC_GAP / 64 - 1)
				mask[w - lo / 64] &= ~(1ULL << 63);
			m->free_map[w] &= ~mask[w - lo / 64];
			n += (uint64_t)__builtin_popcountll(mask[w - lo / 64]);
		}
		m->prealloc_held = n;
		pthread_mutex_unlock(&m->lock);
		for (uint64_t f = lo; f < hi && n; f++) {
			uint64_t len = 0;

			while (f + len < hi && bitmap_test(mask, f + len - lo) &&
			       len < sizeof(zeros) >> PAGE_SHIFT)
				len++;
			/* An error leaves the frame a hole, still free and cold. */
			if (len && pwrite(m->memfd, zeros, len << PAGE_SHIFT,
					  (off_t)(f << PAGE_SHIFT)) != (ssize_t)(len << PAGE_SHIFT))
				for (uint64_t k = 0; k < len; k++)
					bitmap_clear(mask, f + k - lo);
			f += len ? len - 1 : 0;
		}
		pthread_mutex_lock(&m->lock);
		for (uint64_t w = lo / 64; w * 64 < hi; w++) {
			uint64_t back = mask[w - lo / 64];

			m->free_map[w] |= back;
			m->warm_map[w] |= back;
			m->nwarm_free += (uint64_t)__builtin_popcountll(back);
			n_done += (uint64_t)__builtin_popcountll(back);
		}
		m->prealloc_held = 0;
		pthread_cond_broadcast(&m->prealloc_done);
		pthread_mutex_unlock(&m->lock);
		hi = lo;
	}
	log_info("memory pool: %llu MiB of free frames backed in %.1f s (--prealloc)%s",
		 (unsigned long long)(n_done >> 8), ferry_now_s() - t0,
		 hi > m->nframes / 2 ? ", stopped" : "");
	return NULL;
}

/*
 * Makes [p, p + bytes) of an anonymous table resident in one call rather
 * than a page fault per page as a loop first writes it. An error (a
 * kernel without MADV_POPULATE_WRITE) only leaves that to the faults.
 */
static void prefault(void *p, size_t bytes)
{
	uintptr_t lo = (uintptr_t)p & ~(uintptr_t)(PAGE_SIZE - 1);
	uintptr_t hi = ((uintptr_t)p + bytes + PAGE_SIZE - 1) & ~(uintptr_t)(PAGE_SIZE - 1);

	if (bytes >= 2 * PAGE_SIZE)
		madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
}

/* Gives the free frames [mfn, mfn + len), all of class c (as find_run
 * returned them), to gfns [gfn, gfn + len). */
static void own_run(struct hyp_mem *m, uint32_t domid, uint32_t *p2m, uint64_t gfn, uint64_t mfn,
		    uint64_t len, enum fclass c)
{
	if (c == F_WARM) {
		clear_bits(m->warm_map, mfn, len);
		m->nwarm_free -= len;
	}
	clear_bits(m->free_map, mfn, len);
	prefault(&m->m2p[mfn], len * sizeof(*m->m2p));
	for (uint64_t k = 0; k < len; k++) {
		m->m2p[mfn + k] = ((uint64_t)domid << 48) | (gfn + k);
		p2m[gfn + k] = (uint32_t)(mfn + k);
	}
	m->nfree -= len;
}

/* Takes up to n - *done frames of class c, searching from *pos (wrapping
 * once), for gfns from gfn + *done. Warm frames are punched unless keep:
 * they read as zeros. */
static int take(struct hyp_mem *m, uint32_t domid, uint32_t *p2m, uint8_t *hva, uint64_t gfn,
		uint64_t n, uint64_t *done, uint64_t *pos, enum fclass c, bool keep)
{
	bool wrapped = *pos == 0;

	while (*done < n) {
		uint64_t start = *pos, len = find_run(m, &start, n - *done, c);
		int err;

		if (!len) {
			if (wrapped)
				return 0;
			*pos = 0;
			wrapped = true;
			continue;
		}
		err = map_run(m, hva, gfn + *done, start, len);
		if (err) {
			log_err("d%u: mapping %llu frames at gfn 0x%llx: %s", domid,
				(unsigned long long)len, (unsigned long long)(gfn + *done),
				ferry_strerror(-err));
			return err;
		}
		if (c == F_WARM && !keep)
			punch(m, start, len);
		own_run(m, domid, p2m, gfn + *done, start, len, c);
		*done += len;
		*pos = start + len;
	}
	return 0;
}

static int populate(struct hyp_mem *m, uint32_t domid, uint32_t *p2m, uint8_t *hva, uint64_t gfn,
		    uint64_t n, bool keep_warm)
{
	uint64_t done = 0, pos, wpos = 0;
	int err;

	pthread_mutex_lock(&m->lock);
	if (n > m->nfree) {
		pthread_mutex_unlock(&m->lock);
		return -ENOMEM;
	}
	/* Holes first: warm frames are worth more to a restore. */
	pos = m->cursor;
	for (;;) {
		err = take(m, domid, p2m, hva, gfn, n, &done, &pos, F_COLD, false);
		if (!err)
			err = take(m, domid, p2m, hva, gfn, n, &done, &wpos, F_WARM, keep_warm);
		if (err || done == n || !m->prealloc_held)
			break;
		/* The rest is in the populator's hands for a few ms. */
		pthread_cond_wait(&m->prealloc_done, &m->lock);
	}
	if (!err && done < n)
		err = -ENOMEM; /* nfree said otherwise: cannot happen */
	m->cursor = pos;
	if (err)
		release_frames(m, p2m + gfn, done, true);
	pthread_mutex_unlock(&m->lock);
	return err;
}

int hyp__mem_populate(struct hyp_mem *m, uint32_t domid, uint32_t *p2m, uint8_t *hva, uint64_t gfn,
		      uint64_t n)
{
	return populate(m, domid, p2m, hva, gfn, n, false);
}

/*
 * Punching 1 GiB of warm frames costs 8-12 ms here, more than a lazy
 * restore's whole budget before the guest runs: its frames are taken as
 * they are, and each page is written whole before the guest maps it.
 */
int hyp__mem_populate_unscrubbed(struct hyp_mem *m, uint32_t domid, uint32_t *p2m, uint8_t *hva,
				 uint64_t n)
{
	return populate(m, domid, p2m, hva, 0, n, true);
}

void hyp__mem_swap_warm(struct hyp_mem *m, uint32_t domid, uint32_t *p2m, uint8_t *hva,
			uint64_t gfn,
			uint64_t n)
{
	uint64_t done = 0;

	pthread_mutex_lock(&m->lock);
	while (done < n && m->nwarm_free) {
		uint64_t start = m->warm_cursor, len = find_run(m, &start, n - done, F_WARM);
		int err;

		if (!len) {
			if (!m->warm_cursor)
				break;
			m->warm_cursor = 0;
			continue;
		}
		err = map_run(m, hva, gfn + done, start, len);
		if (err) {
			/* The old view is still in place: the write goes there. */
			log_debug("d%u: mapping %llu warm frames at gfn 0x%llx: %s", domid,
				  (unsigned long long)len, (unsigned long long)(gfn + done),
				  ferry_strerror(-err));
			break;
		}
		/* The old frames are holes the stream has not written: free. */
		release_frames(m, p2m + gfn + done, len, true);
		own_run(m, domid, p2m, gfn + done, start, len, F_WARM);
		done += len;
		m->warm_cursor = start + len;
	}
	pthread_mutex_unlock(&m->lock);
}

void hyp__mem_release(struct hyp_mem *m, uint32_t *p2m, uint64_t n)
{
	pthread_mutex_lock(&m->lock);
	release_frames(m, p2m, n, true);
	pthread_mutex_unlock(&m->lock);
}

int hyp__mem_unpopulate(struct hyp_mem *m, uint32_t domid, uint32_t *p2m,
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
	/* A balloon gives memory back to the host, not to the next restore. */
	pthread_mutex_lock(&m->lock);
	release_frames(m, p2m + gfn, n, false);
	pthread_mutex_unlock(&m->lock);
	return 0;
}
