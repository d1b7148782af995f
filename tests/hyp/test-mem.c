// SPDX-License-Identifier: MIT
/*
 * The machine-memory pool (hyp/mem.c): frames given back keep their host
 * pages as warm frames exactly where the pool holds data, and finding
 * them is one sweep of the pool however scattered the frames are (a
 * SEEK_DATA/SEEK_HOLE pair per run of frames scanned to the end of each
 * run's extent: a 1 GiB domain restored onto scattered frames took 21-27 s
 * to destroy, with the pool's lock held).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../hyp/internal.h"
#include "common/bitmap.h"
#include "common/clock.h"

#define POOL_MB 512
#define FRAMES	((uint64_t)POOL_MB << 8)
#define CHUNK	((size_t)4 << 20)
#define STRIDE	4099 /* prime: g -> g * STRIDE % FRAMES is a permutation */

static bool is_hole(uint64_t f)
{
	return f % 8191 == 17; /* a few: the pool's extents stay long */
}

Test(mem, scattered_frames_go_back_warm_in_one_sweep, .timeout = 120)
{
	struct hyp_mem m;
	uint32_t *p2m = malloc(FRAMES * sizeof(*p2m));
	uint64_t holes = 0, bad = 0;
	uint8_t *buf;
	double t0, secs;

	cr_assert_not_null(p2m);
	cr_assert_eq(hyp__mem_init(&m, (uint64_t)POOL_MB << 20, false, NULL), 0);
	/* A domain owns every frame, each gfn's on its own (no two adjacent
	 * gfns on adjacent frames), and all of the pool holds data but a few
	 * holes. */
	buf = malloc(CHUNK);
	cr_assert_not_null(buf);
	memset(buf, 0x5a, CHUNK); /* written: fallocate's pages read as holes */
	for (uint64_t off = 0; off < FRAMES << 12; off += CHUNK)
		cr_assert_eq(pwrite(m.memfd, buf, CHUNK, (off_t)off), (ssize_t)CHUNK);
	free(buf);
	for (uint64_t f = 0; f < FRAMES; f++)
		if (is_hole(f)) {
			cr_assert_eq(fallocate(m.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					       (off_t)(f << 12), 4096),
				     0);
			holes++;
		}
	for (uint64_t g = 0; g < FRAMES; g++)
		p2m[g] = (uint32_t)(g * STRIDE % FRAMES);
	memset(m.free_map, 0, BITMAP_BYTES(FRAMES));
	m.nfree = 0;

	t0 = ferry_now_s();
	hyp__mem_release(&m, p2m, FRAMES);
	secs = ferry_now_s() - t0;

	cr_assert_eq(m.nfree, FRAMES);
	cr_assert_eq(m.nwarm_free, FRAMES - holes, "%llu warm of %llu frames with data",
		     (unsigned long long)m.nwarm_free, (unsigned long long)(FRAMES - holes));
	for (uint64_t f = 0; f < FRAMES; f++)
		bad += bitmap_test(m.warm_map, f) == is_hole(f);
	cr_assert_eq(bad, 0, "%llu frames warm that are holes or the reverse",
		     (unsigned long long)bad);
	for (uint64_t g = 0; g < FRAMES; g++)
		cr_assert_eq(p2m[g], MFN_INVALID);
	cr_expect_lt(secs, 1.0, "releasing %llu scattered frames took %.2f s",
		     (unsigned long long)FRAMES, secs);
	hyp__mem_fini(&m);
	free(p2m);
}

/* --prealloc's populator (hyp/mem.c) and an allocation racing it. */
#define PA_MB	  64
#define PA_FRAMES ((uint64_t)PA_MB << 8)
#define DOM_PAGES 2048
#define D2_PAGES  7168 /* more than the holes left: takes warm frames */

static bool is_gap(uint64_t f)
{
	return f % HYP_MEM_PREALLOC_GAP == HYP_MEM_PREALLOC_GAP - 1;
}

/* --prealloc backs the pool's top half (hyp/mem.c), but for the gaps. */
static bool to_back(const struct hyp_mem *m, uint64_t f)
{
	return f >= m->nframes / 2 && !is_gap(f);
}

/* The free frames it is to back. */
static uint64_t free_to_back(const struct hyp_mem *m)
{
	uint64_t n = 0;

	for (uint64_t f = 0; f < m->nframes; f++)
		n += bitmap_test(m->free_map, f) && to_back(m, f);
	return n;
}

/* Waits (at most 60 s: it runs at nice 19 on a busy machine) until the
 * populator has gone over the whole pool; false if it never did. */
static bool prealloc_finished(struct hyp_mem *m)
{
	for (int i = 0; i < 6000; i++) {
		bool done;

		pthread_mutex_lock(&m->lock);
		done = !m->prealloc_held && m->nwarm_free == free_to_back(m);
		pthread_mutex_unlock(&m->lock);
		if (done)
			return true;
		usleep(10000);
	}
	return false;
}

static bool frame_has_data(struct hyp_mem *m, uint64_t f)
{
	uint64_t first, last;

	return hyp__mem_next_data(m, f, f + 1, &first, &last) == 1 && first == f;
}

static uint8_t *reserve(uint64_t pages)
{
	void *p = mmap(NULL, pages << 12, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);

	cr_assert_neq(p, MAP_FAILED);
	return p;
}

Test(mem, prealloc_warms_free_frames_and_never_touches_a_domains, .timeout = 120)
{
	uint32_t *p2m = malloc(DOM_PAGES * sizeof(*p2m)), *p2m2 = malloc(D2_PAGES * sizeof(*p2m2));
	uint8_t *hva = reserve(DOM_PAGES), *hva2 = reserve(D2_PAGES);
	uint64_t warm_holes = 0, zeros_bad = 0;
	struct hyp_mem m;

	cr_assert(p2m && p2m2);
	for (uint64_t g = 0; g < DOM_PAGES; g++)
		p2m[g] = MFN_INVALID;
	for (uint64_t g = 0; g < D2_PAGES; g++)
		p2m2[g] = MFN_INVALID;
	cr_assert_eq(hyp__mem_init(&m, (uint64_t)PA_MB << 20, true, NULL), 0);
	/* A domain built while the populator runs writes its even pages. */
	cr_assert_eq(hyp__mem_populate(&m, 1, p2m, hva, 0, DOM_PAGES), 0);
	for (uint64_t g = 0; g < DOM_PAGES; g += 2)
		memset(hva + (g << 12), (int)(g % 251) + 1, 4096);
	cr_assert(prealloc_finished(&m),
		  "the populator never covered the pool: %llu warm of %llu free",
		  (unsigned long long)m.nwarm_free, (unsigned long long)m.nfree);

	cr_assert_eq(m.nfree, PA_FRAMES - DOM_PAGES);
	for (uint64_t f = 0; f < PA_FRAMES; f++)
		if (bitmap_test(m.free_map, f))
			warm_holes += to_back(&m, f) !=
				      (bitmap_test(m.warm_map, f) && frame_has_data(&m, f));
	cr_assert_eq(warm_holes, 0,
		     "%llu free frames warm and backed that should not be or the reverse",
		     (unsigned long long)warm_holes);
	/* One hole per 64 MiB: no scan of the pool's data runs past it. */
	for (uint64_t f = HYP_MEM_PREALLOC_GAP - 1; f < PA_FRAMES; f += HYP_MEM_PREALLOC_GAP)
		cr_assert(!frame_has_data(&m, f), "frame %llu holds a page", (unsigned long long)f);
	/* Its data is intact and the pages it never wrote are still holes
	 * (a save would send them otherwise). */
	for (uint64_t g = 0; g < DOM_PAGES; g++) {
		cr_assert(!bitmap_test(m.free_map, p2m[g]));
		if (g % 2) {
			cr_assert(!frame_has_data(&m, p2m[g]),
				  "gfn %llu (never written) has a page", (unsigned long long)g);
			continue;
		}
		for (int k = 0; k < 4096; k++)
			cr_assert_eq(hva[(g << 12) + k], (uint8_t)(g % 251 + 1), "gfn %llu changed",
				     (unsigned long long)g);
	}
	/* A domain built now reads zeros, on holes and on warm frames. */
	cr_assert_eq(hyp__mem_populate(&m, 2, p2m2, hva2, 0, D2_PAGES), 0);
	for (uint64_t i = 0; i < (uint64_t)D2_PAGES << 12; i++)
		zeros_bad += hva2[i] != 0;
	cr_assert_eq(zeros_bad, 0);

	hyp__mem_release(&m, p2m, DOM_PAGES);
	hyp__mem_release(&m, p2m2, D2_PAGES);
	hyp__mem_fini(&m);
	munmap(hva, DOM_PAGES << 12);
	munmap(hva2, (size_t)D2_PAGES << 12);
	free(p2m);
	free(p2m2);
}

/* The populator holds a window of free frames out of the free map while it
 * writes them: a domain that needs the whole pool waits, never fails. */
Test(mem, prealloc_never_fails_an_allocation_of_the_whole_pool, .timeout = 120)
{
	uint64_t frames = 4096; /* 16 MiB: 4 windows */
	uint32_t *p2m = malloc(frames * sizeof(*p2m));
	uint8_t *hva = reserve(frames);

	cr_assert_not_null(p2m);
	for (int i = 0; i < 20; i++) {
		struct hyp_mem m;

		for (uint64_t g = 0; g < frames; g++)
			p2m[g] = MFN_INVALID;
		cr_assert_eq(hyp__mem_init(&m, frames << 12, true, NULL), 0);
		usleep((useconds_t)(i % 5) * 1000);
		cr_assert_eq(hyp__mem_populate(&m, 1, p2m, hva, 0, frames), 0, "run %d", i);
		cr_assert_eq(m.nfree, 0);
		hyp__mem_release(&m, p2m, frames);
		hyp__mem_fini(&m);
	}
	munmap(hva, frames << 12);
	free(p2m);
}

/* --pool-file (hyp/mem.c): a file on /dev/shm (tmpfs), removed at the end. */
#define KP_FRAMES 4096 /* 16 MiB */
#define KP_DOM	  1024

static void kept_path(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "/dev/shm/ferry-test-mem-%s.%d", what, (int)getpid());
	unlink(buf);
}

/* A ferryd stopped, a ferryd started on its pool: what the first one's
 * domain held is backed still, as warm frames, and its data never reaches
 * the next domain, which reads zeros everywhere. */
Test(mem, a_kept_pool_file_gives_the_next_ferryd_its_frames_warm, .timeout = 60)
{
	uint32_t *p2m = malloc(KP_FRAMES * sizeof(*p2m));
	uint8_t *hva = reserve(KP_FRAMES);
	uint64_t bad = 0;
	struct hyp_mem m;
	char path[128];

	cr_assert_not_null(p2m);
	kept_path(path, sizeof(path), "kept");
	for (uint64_t g = 0; g < KP_FRAMES; g++)
		p2m[g] = MFN_INVALID;
	cr_assert_eq(hyp__mem_init(&m, KP_FRAMES << 12, false, path), 0);
	cr_assert_eq(m.nwarm_free, 0, "a new pool file holds no data");
	cr_assert_eq(hyp__mem_populate(&m, 1, p2m, hva, 0, KP_DOM), 0);
	memset(hva, 0xa5, KP_DOM << 12);
	hyp__mem_release(&m, p2m, KP_DOM);
	/* As a domain's destroy does: the view holds the file (and its lock). */
	munmap(hva, (size_t)KP_FRAMES << 12);
	hyp__mem_fini(&m);
	hva = reserve(KP_FRAMES);

	cr_assert_eq(hyp__mem_init(&m, KP_FRAMES << 12, false, path), 0);
	cr_assert_eq(m.nwarm_free, KP_DOM, "%llu warm frames found, %d written before",
		     (unsigned long long)m.nwarm_free, KP_DOM);
	cr_assert_eq(m.nfree, KP_FRAMES);
	/* The whole pool: the warm frames too, which must read as zeros. */
	cr_assert_eq(hyp__mem_populate(&m, 2, p2m, hva, 0, KP_FRAMES), 0);
	for (uint64_t i = 0; i < (uint64_t)KP_FRAMES << 12; i++)
		bad += hva[i] != 0;
	cr_assert_eq(bad, 0, "%llu bytes of the last ferryd's domain reached a new one",
		     (unsigned long long)bad);
	hyp__mem_release(&m, p2m, KP_FRAMES);
	hyp__mem_fini(&m);
	unlink(path);
	munmap(hva, (size_t)KP_FRAMES << 12);
	free(p2m);
}

/* Refused, and why: in use by another ferryd, open to others, not tmpfs. */
Test(mem, a_pool_file_is_refused_where_it_is_not_ours_alone, .timeout = 30)
{
	struct hyp_mem m, m2;
	char path[128], disk[] = "ferry-test-mem-disk.XXXXXX";
	int fd;

	kept_path(path, sizeof(path), "refused");
	cr_assert_eq(hyp__mem_init(&m, KP_FRAMES << 12, false, path), 0);
	cr_assert_eq(hyp__mem_init(&m2, KP_FRAMES << 12, false, path), -EBUSY,
		     "two ferryds on one pool file");
	hyp__mem_fini(&m);
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_eq(hyp__mem_init(&m, KP_FRAMES << 12, false, path), -EINVAL,
		     "a pool file others can read");
	unlink(path);
	cr_assert_eq(symlink("/dev/shm", path), 0);
	cr_assert_neq(hyp__mem_init(&m, KP_FRAMES << 12, false, path), 0, "a symlink");
	unlink(path);

	/* The build tree is on a disk wherever this runs, but say so if not. */
	fd = mkstemp(disk);
	cr_assert_geq(fd, 0);
	close(fd);
	if (hyp__mem_init(&m, KP_FRAMES << 12, false, disk) == 0) {
		hyp__mem_fini(&m);
		unlink(disk);
		cr_skip_test("the build tree is on tmpfs: no disk file to refuse");
	}
	unlink(disk);
}
