// SPDX-License-Identifier: MIT
/*
 * The P2M's type per gfn (hyp/gmem.h): RAM after create, a hole where the
 * balloon took the frame and RAM again when it comes back, PENDING for a
 * lazy restore's pages until they are loaded, INVALID outside the
 * physmap; hyp_gmem_holes() lists exactly the holes. A soft domain, paused.
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "common/bitmap.h"
#include "harness.h"
#include "hyp/gmem.h"

#define MEM_MB 64
#define PAGES (MEM_MB << 8)
#define GFN 0x2000u /* 32 MiB: above the idle guest's arena */

struct env {
	struct hyp *h;
	uint32_t id;
	struct hyp_domain *d;
};

static void env_up(struct env *e)
{
	struct hyp_dom_config c = harness_cfg("p2m", MEM_MB, "workload=idle");

	e->h = harness_hyp("soft", 128);
	cr_assert_eq(hyp_domain_create(e->h, &c, true, &e->id), 0);
	cr_assert_eq(hyp_domain_get(e->h, e->id, &e->d), 0);
}

static void env_down(struct env *e)
{
	hyp_domain_put(e->d);
	cr_assert_eq(hyp_domain_destroy(e->h, e->id), 0);
	hyp_destroy(e->h);
}

static uint64_t count_of(struct env *e, enum hyp_p2m_type t)
{
	static uint64_t map[BITMAP_WORDS(PAGES)];
	uint64_t n;

	hyp_p2m_find(e->d, t, map, &n);
	cr_assert_eq(bitmap_weight(map, PAGES), n);
	return n;
}

Test(p2m, types_follow_the_balloon, .timeout = 60)
{
	static uint64_t holes[BITMAP_WORDS(PAGES)];
	struct env e;
	uint64_t n;

	env_up(&e);
	cr_expect_eq(count_of(&e, HYP_P2M_RAM), PAGES, "all RAM after create");
	cr_expect_eq(hyp_p2m_type(e.d, PAGES - 1), HYP_P2M_RAM);
	cr_expect_eq(hyp_p2m_type(e.d, PAGES), HYP_P2M_INVALID, "outside the physmap");
	cr_expect_str_eq(hyp_p2m_type_name(HYP_P2M_PENDING), "pending");

	cr_assert_eq(hyp_gmem_unpopulate(e.d, GFN, 16), 0);
	cr_expect_eq(hyp_p2m_type(e.d, GFN - 1), HYP_P2M_RAM);
	cr_expect_eq(hyp_p2m_type(e.d, GFN), HYP_P2M_HOLE);
	cr_expect_eq(hyp_p2m_type(e.d, GFN + 15), HYP_P2M_HOLE);
	cr_expect_eq(hyp_p2m_type(e.d, GFN + 16), HYP_P2M_RAM);
	cr_expect_eq(count_of(&e, HYP_P2M_HOLE), 16);
	cr_assert_eq(hyp_gmem_holes(e.d, holes, &n), 0);
	cr_expect_eq(n, 16);
	cr_expect(bitmap_test(holes, GFN) && bitmap_test(holes, GFN + 15) &&
		  !bitmap_test(holes, GFN + 16));

	/* A page arriving for a hole gets a frame: RAM again. */
	static uint8_t page[4096] = { 1 };
	cr_assert_eq(hyp_gmem_load(e.d, GFN + 2, page, 1), 0);
	cr_expect_eq(hyp_p2m_type(e.d, GFN + 2), HYP_P2M_RAM);
	cr_expect_eq(count_of(&e, HYP_P2M_HOLE), 15);
	env_down(&e);
}

Test(p2m, pending_until_loaded, .timeout = 60)
{
	static uint8_t page[2 * 4096] = { 7 }; /* two pages are loaded */
	struct env e;

	env_up(&e);
	cr_assert_eq(hyp_gmem_unpopulate(e.d, GFN + 4, 1), 0);
	cr_assert_eq(hyp_p2m_set_pending(e.d, GFN, 8), 0);
	cr_expect_eq(hyp_p2m_type(e.d, GFN), HYP_P2M_PENDING);
	cr_expect_eq(hyp_p2m_type(e.d, GFN + 4), HYP_P2M_HOLE, "a hole stays a hole");
	cr_expect_eq(hyp_p2m_type(e.d, GFN + 8), HYP_P2M_RAM);
	cr_expect_eq(count_of(&e, HYP_P2M_PENDING), 7);
	cr_expect_eq(count_of(&e, HYP_P2M_HOLE), 1, "pending pages are no holes for a save");

	cr_assert_eq(hyp_gmem_load(e.d, GFN + 1, page, 2), 0);
	cr_expect_eq(hyp_p2m_type(e.d, GFN + 1), HYP_P2M_RAM, "loaded: arrived");
	cr_expect_eq(hyp_p2m_type(e.d, GFN + 2), HYP_P2M_RAM);
	cr_expect_eq(count_of(&e, HYP_P2M_PENDING), 5);
	cr_assert_eq(hyp_p2m_set_arrived(e.d, GFN, 8), 0);
	cr_expect_eq(count_of(&e, HYP_P2M_PENDING), 0);
	cr_expect_eq(hyp_p2m_type(e.d, GFN + 4), HYP_P2M_HOLE);
	cr_expect_eq(hyp_p2m_set_pending(e.d, PAGES - 1, 2), -EFAULT);
	cr_expect_eq(hyp_p2m_type(e.d, PAGES - 1), HYP_P2M_RAM, "nothing changed");
	env_down(&e);
}
