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
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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
	cr_assert_eq(hyp__mem_init(&m, (uint64_t)POOL_MB << 20), 0);
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
