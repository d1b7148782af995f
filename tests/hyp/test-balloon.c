// SPDX-License-Identifier: MIT
/*
 * Ballooning: XENMEM_decrease_reservation / populate_physmap /
 * current_reservation / maximum_reservation with Xen's results, the pool's
 * accounting, mem-max, the holes a save lists, per backend. Hypercalls
 * through hyp_test_hypercall on paused domains.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>

#include "common/err.h"
#include "harness.h"
#include "abi/guest.h"
#include "hyp/evtchn.h" /* hyp_test_hypercall */
#include "hyp/gmem.h"

#define MEM_MB 64
#define ARG_GPA 0x1f00000u  /* the reservation struct: above any arena here */
#define LIST_GPA 0x1f01000u /* its extent list */
#define BAL_GFN 0x2000u	   /* 32 MiB: above the idle guest's arena */
#define PAGES (MEM_MB << 8)

struct backend {
	char name[8];
};
static struct backend backends[] = { { "soft" }, { "kvm" } };
#define BOTH_BACKENDS(test)                                            \
	ParameterizedTestParameters(balloon, test)                     \
	{                                                              \
		return cr_make_param_array(struct backend, backends, 2); \
	}                                                              \
	struct backend

struct env {
	struct hyp *h;
	uint32_t id;
	struct hyp_domain *d;
};

static void env_up(struct env *e, const char *backend, const char *cmdline, bool paused)
{
	struct hyp_dom_config c = harness_cfg("b", MEM_MB, cmdline);

	e->h = harness_hyp(backend, 256);
	cr_assert_eq(hyp_domain_create(e->h, &c, paused, &e->id), 0);
	cr_assert_eq(hyp_domain_get(e->h, e->id, &e->d), 0);
}

static void env_down(struct env *e)
{
	hyp_domain_put(e->d);
	cr_assert_eq(hyp_domain_destroy(e->h, e->id), 0);
	hyp_destroy(e->h);
}

/* One reservation call on gfns[0..n) (order 0 unless given). */
static int64_t resv(struct env *e, unsigned op, const uint64_t *gfns, uint64_t n,
		    uint16_t domid, uint32_t order)
{
	struct xen_memory_reservation r = { .extent_start = LIST_GPA, .nr_extents = n,
					    .extent_order = order, .domid = domid };
	const uint64_t args[5] = { op, ARG_GPA, 0, 0, 0 };

	cr_assert_eq(hyp_gmem_write(e->d, ARG_GPA, &r, sizeof(r)), 0);
	if (n)
		cr_assert_eq(hyp_gmem_write(e->d, LIST_GPA, gfns, n * 8), 0);
	return hyp_test_hypercall(e->h, e->id, 0, __HYPERVISOR_memory_op, args);
}

static int64_t resv_range(struct env *e, unsigned op, uint64_t first, uint64_t n)
{
	static uint64_t g[512];

	cr_assert_leq(n, 512);
	for (uint64_t i = 0; i < n; i++)
		g[i] = first + i;
	return resv(e, op, g, n, DOMID_SELF, 0);
}

static int64_t size_op(struct env *e, unsigned op, uint16_t domid)
{
	const uint64_t args[5] = { op, ARG_GPA, 0, 0, 0 };

	cr_assert_eq(hyp_gmem_write(e->d, ARG_GPA, &domid, sizeof(domid)), 0);
	return hyp_test_hypercall(e->h, e->id, 0, __HYPERVISOR_memory_op, args);
}

static uint64_t free_bytes(struct env *e)
{
	struct hyp_info i;

	cr_assert_eq(hyp_get_info(e->h, &i), 0);
	return i.free_bytes;
}

static uint64_t dom_kb(struct env *e)
{
	struct hyp_dom_info di;

	cr_assert_eq(hyp_domain_info(e->h, e->id, &di), 0);
	return di.memory_kb;
}

BOTH_BACKENDS(give_back_and_take);

/* Pages given back leave the domain and join the pool, read as zeros, are
 * holes for a save; populated again they are fresh zero pages. */
ParameterizedTest(struct backend *backend, balloon, give_back_and_take, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct env e;
	static uint64_t holes[PAGES / 64];
	uint64_t before, nholes, word = 0x5a5a5a5a5a5a5a5aULL;
	uint8_t page[4096], zero[4096] = { 0 };

	env_up(&e, backend->name, "workload=idle", true);
	cr_assert_eq(hyp_gmem_write(e.d, BAL_GFN * 4096ULL, &word, sizeof(word)), 0);
	before = free_bytes(&e);
	cr_expect_eq(size_op(&e, XENMEM_current_reservation, DOMID_SELF), PAGES);
	cr_expect_eq(size_op(&e, XENMEM_maximum_reservation, DOMID_SELF), PAGES);

	cr_assert_eq(resv_range(&e, XENMEM_decrease_reservation, BAL_GFN, 512), 512);
	cr_expect_eq(free_bytes(&e) - before, 512 * 4096ULL, "pool grew by %llu",
		     (unsigned long long)(free_bytes(&e) - before));
	cr_expect_eq(dom_kb(&e), (MEM_MB << 10) - 2048);
	cr_expect_eq(size_op(&e, XENMEM_current_reservation, DOMID_SELF), PAGES - 512);
	cr_assert_eq(hyp_gmem_read(e.d, BAL_GFN * 4096ULL, page, sizeof(page)), 0);
	cr_expect_arr_eq(page, zero, sizeof(page), "a hole reads as zeros");
	cr_assert_eq(hyp_gmem_holes(e.d, holes, &nholes), 0);
	cr_expect_eq(nholes, 512);
	cr_expect(holes[BAL_GFN / 64] == ~0ULL && !holes[BAL_GFN / 64 - 1]);

	/* Twice is nothing done: the first is a hole now. */
	cr_expect_eq(resv_range(&e, XENMEM_decrease_reservation, BAL_GFN, 1), 0);

	cr_assert_eq(resv_range(&e, XENMEM_populate_physmap, BAL_GFN, 512), 512);
	cr_expect_eq(free_bytes(&e), before);
	cr_expect_eq(dom_kb(&e), MEM_MB << 10);
	cr_assert_eq(hyp_gmem_read(e.d, BAL_GFN * 4096ULL, page, sizeof(page)), 0);
	cr_expect_arr_eq(page, zero, sizeof(page), "a repopulated page is zero");
	cr_assert_eq(hyp_gmem_holes(e.d, holes, &nholes), 0);
	cr_expect_eq(nholes, 0);
	/* Populating what is populated is nothing done. */
	cr_expect_eq(resv_range(&e, XENMEM_populate_physmap, BAL_GFN, 1), 0);
	env_down(&e);
}

BOTH_BACKENDS(maxmem);

/* mem-max is refused below what the domain holds; populate stops at it. */
ParameterizedTest(struct backend *backend, balloon, maxmem, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct env e;
	struct hyp_dom_info di;

	env_up(&e, backend->name, "workload=idle", true);
	cr_expect_eq(hyp_domain_set_maxmem(e.h, e.id, (MEM_MB << 10) - 4), -EINVAL);
	cr_assert_eq(resv_range(&e, XENMEM_decrease_reservation, BAL_GFN, 512), 512);
	cr_assert_eq(hyp_domain_set_maxmem(e.h, e.id, ((PAGES - 512) + 100) * 4ULL), 0);
	cr_assert_eq(hyp_domain_info(e.h, e.id, &di), 0);
	cr_expect_eq(di.maxmem_kb, ((PAGES - 512) + 100) * 4ULL);
	cr_expect_eq(size_op(&e, XENMEM_maximum_reservation, DOMID_SELF), PAGES - 512 + 100);
	/* Past the maximum: Xen's short count, the rest stays a hole. */
	cr_expect_eq(resv_range(&e, XENMEM_populate_physmap, BAL_GFN, 512), 100);
	cr_expect_eq(resv_range(&e, XENMEM_populate_physmap, BAL_GFN + 100, 1), 0);
	cr_expect_eq(dom_kb(&e), (PAGES - 412) * 4ULL);
	cr_assert_eq(hyp_domain_set_maxmem(e.h, e.id, MEM_MB << 10), 0);
	cr_expect_eq(resv_range(&e, XENMEM_populate_physmap, BAL_GFN + 100, 412), 412);
	cr_expect_eq(dom_kb(&e), MEM_MB << 10);
	cr_expect_eq(hyp_domain_set_maxmem(e.h, 999, MEM_MB << 10), -ENOENT);
	env_down(&e);
}

BOTH_BACKENDS(maxmem_ceiling_and_travel);

/* mem-max above the physmap is refused (it could never be reached); the
 * domain's config reports the current maximum, and a domain made from that
 * config (restore's) starts with it, as Xen's max_memkb does. */
ParameterizedTest(struct backend *backend, balloon, maxmem_ceiling_and_travel, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct hyp_dom_config c, big = harness_cfg("big", MEM_MB, "workload=idle");
	struct hyp_dom_info di;
	struct env e;
	uint32_t id2;
	const uint64_t held = (PAGES - 512) * 4ULL;

	env_up(&e, backend->name, "workload=idle", true);
	cr_assert_eq(hyp_domain_config(e.h, e.id, &c), 0);
	cr_expect_eq(c.max_kb, MEM_MB << 10, "a new domain's maximum is its maxmem");
	cr_expect_eq(hyp_domain_set_maxmem(e.h, e.id, (MEM_MB << 10) + 4), -ERANGE);
	cr_assert_eq(resv_range(&e, XENMEM_decrease_reservation, BAL_GFN, 512), 512);
	cr_assert_eq(hyp_domain_set_maxmem(e.h, e.id, held), 0);
	cr_assert_eq(hyp_domain_config(e.h, e.id, &c), 0);
	cr_expect_eq(c.max_kb, held);
	cr_expect_eq(c.maxmem_mb, MEM_MB, "the reservation is the config's still");

	/* What a save carries, created again (pages before holes: the
	 * domain holds more than its maximum until the stream's holes). */
	snprintf(c.name, sizeof(c.name), "copy");
	cr_assert_eq(hyp_domain_create(e.h, &c, true, &id2), 0);
	cr_assert_eq(hyp_domain_info(e.h, id2, &di), 0);
	cr_expect_eq(di.maxmem_kb, held);
	cr_expect_eq(di.memory_kb, MEM_MB << 10);
	cr_assert_eq(hyp_domain_destroy(e.h, id2), 0);
	c.max_kb = (MEM_MB << 10) + 4;
	cr_expect_eq(hyp_domain_create(e.h, &c, true, &id2), -FERRY_EBADCFG,
		     "a maximum above maxmem is refused");

	/* A config's maxmem above memory reserves space the domain never
	 * fills: mem-max cannot reach it again once lowered. */
	big.maxmem_mb = 2 * MEM_MB;
	cr_assert_eq(hyp_domain_create(e.h, &big, true, &id2), 0);
	cr_assert_eq(hyp_domain_info(e.h, id2, &di), 0);
	cr_expect_eq(di.maxmem_kb, 2 * MEM_MB << 10);
	cr_expect_eq(hyp_domain_set_maxmem(e.h, id2, 2 * MEM_MB << 10), -ERANGE);
	cr_expect_eq(hyp_domain_set_maxmem(e.h, id2, MEM_MB << 10), 0);
	cr_assert_eq(hyp_domain_destroy(e.h, id2), 0);

	/* Past the host's pool (256 MiB here) a maxmem is refused before
	 * anything is reserved for it. */
	big.maxmem_mb = 1ull << 20;
	cr_expect_eq(hyp_domain_create(e.h, &big, true, &id2), -FERRY_EBADCFG,
		     "1 TiB of maxmem on a 256 MiB pool");
	big.maxmem_mb = 256;
	cr_assert_eq(hyp_domain_create(e.h, &big, true, &id2), 0, "maxmem = the pool");
	cr_assert_eq(hyp_domain_destroy(e.h, id2), 0);
	env_down(&e);
}

BOTH_BACKENDS(wild_arguments);

/* Every argument is checked against the caller: wild gfns, another
 * domain, larger orders and bad pointers do nothing, with Xen's results. */
ParameterizedTest(struct backend *backend, balloon, wild_arguments, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct hyp_dom_config c = harness_cfg("other", MEM_MB, "workload=idle");
	struct env e;
	struct hyp_dom_info oi;
	uint32_t other;
	uint64_t g[3], before;
	const uint64_t bad[5] = { XENMEM_decrease_reservation, MEM_MB << 20, 0, 0, 0 };

	env_up(&e, backend->name, "workload=idle", true);
	cr_assert_eq(hyp_domain_create(e.h, &c, true, &other), 0);
	before = free_bytes(&e);

	g[0] = PAGES;		/* one past the physmap */
	cr_expect_eq(resv(&e, XENMEM_decrease_reservation, g, 1, DOMID_SELF, 0), 0);
	g[0] = 1ULL << 40;
	cr_expect_eq(resv(&e, XENMEM_decrease_reservation, g, 1, DOMID_SELF, 0), 0);
	cr_expect_eq(resv(&e, XENMEM_populate_physmap, g, 1, DOMID_SELF, 0), 0);
	/* A wild gfn stops the batch there. */
	g[0] = BAL_GFN;
	g[1] = ~0ULL;
	g[2] = BAL_GFN + 2;
	cr_expect_eq(resv(&e, XENMEM_decrease_reservation, g, 3, DOMID_SELF, 0), 1);
	cr_expect_eq(free_bytes(&e) - before, 4096);
	/* Another domain's reservation: nothing done, its memory untouched. */
	g[0] = BAL_GFN + 8;
	cr_expect_eq(resv(&e, XENMEM_decrease_reservation, g, 1, (uint16_t)other, 0), 0);
	cr_expect_eq(resv(&e, XENMEM_decrease_reservation, g, 1, 0, 0), 0);
	cr_assert_eq(hyp_domain_info(e.h, other, &oi), 0);
	cr_expect_eq(oi.memory_kb, MEM_MB << 10);
	cr_expect_eq(size_op(&e, XENMEM_current_reservation, (uint16_t)other), -XEN_EPERM);
	/* Orders above 0 are not taken. */
	cr_expect_eq(resv(&e, XENMEM_decrease_reservation, g, 1, DOMID_SELF, 1), 0);
	/* An extent list outside RAM, an argument outside RAM. */
	{
		struct xen_memory_reservation r = { .extent_start = MEM_MB << 20,
						    .nr_extents = 4, .domid = DOMID_SELF };

		cr_assert_eq(hyp_gmem_write(e.d, ARG_GPA, &r, sizeof(r)), 0);
		cr_expect_eq(hyp_test_hypercall(e.h, e.id, 0, __HYPERVISOR_memory_op,
						(const uint64_t[5]){ XENMEM_decrease_reservation,
								     ARG_GPA, 0, 0, 0 }),
			     0);
	}
	cr_expect_eq(hyp_test_hypercall(e.h, e.id, 0, __HYPERVISOR_memory_op, bad), -XEN_EFAULT);
	cr_expect_eq(hyp_test_hypercall(e.h, e.id, 0, __HYPERVISOR_memory_op,
					(const uint64_t[5]){ XENMEM_increase_reservation, ARG_GPA,
							     0, 0, 0 }),
		     -XEN_ENOSYS);
	cr_expect_eq(free_bytes(&e) - before, 4096, "only the one page left");
	cr_assert_eq(hyp_domain_destroy(e.h, other), 0);
	env_down(&e);
}

BOTH_BACKENDS(restore_holes);

/* What restore does with a stream's XTABs and pages: holes made, and a
 * page arriving for a hole gets a frame again. */
ParameterizedTest(struct backend *backend, balloon, restore_holes, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct env e;
	uint64_t before, nholes, word = 0x1234, back = 0;
	static uint64_t holes[PAGES / 64];
	static uint8_t page[4096];

	env_up(&e, backend->name, "workload=idle", true);
	before = free_bytes(&e);
	cr_assert_eq(hyp_gmem_unpopulate(e.d, BAL_GFN, 64), 0);
	cr_assert_eq(hyp_gmem_unpopulate(e.d, BAL_GFN, 65), 0, "holes are skipped");
	cr_expect_eq(free_bytes(&e) - before, 65 * 4096ULL);
	cr_expect_eq(hyp_gmem_unpopulate(e.d, PAGES, 1), -EFAULT);
	memcpy(page, &word, sizeof(word));
	cr_assert_eq(hyp_gmem_load(e.d, BAL_GFN + 3, page, 1), 0);
	cr_assert_eq(hyp_gmem_read(e.d, (BAL_GFN + 3) * 4096ULL, &back, sizeof(back)), 0);
	cr_expect_eq(back, word);
	cr_assert_eq(hyp_gmem_holes(e.d, holes, &nholes), 0);
	cr_expect_eq(nholes, 64);
	cr_expect_eq(dom_kb(&e), (PAGES - 64) * 4ULL);
	env_down(&e);
}

BOTH_BACKENDS(running_guest);

/* A running verify guest keeps running clean with RAM above its arena
 * given back (kvm: the memslot's backing changed under it). */
ParameterizedTest(struct backend *backend, balloon, running_guest, .timeout = 90)
{
	harness_need_backend(backend->name);
	struct env e;

	env_up(&e, backend->name, "workload=verify ws=8M rate=8M", false);
	cr_assert(harness_wait_console(e.h, e.id, "verify: sweep", 1, 30),
		  "no sweep; console:\n%s", harness_console(e.h, e.id));
	cr_assert_eq(hyp_domain_pause(e.h, e.id), 0);
	for (uint64_t g = BAL_GFN; g < PAGES; g += 512)
		cr_assert_eq(resv_range(&e, XENMEM_decrease_reservation, g, 512), 512);
	cr_assert_eq(hyp_domain_unpause(e.h, e.id), 0);
	cr_expect_eq(dom_kb(&e), 32 << 10);
	cr_assert(harness_wait_console(e.h, e.id, "verify: sweep", 3, 40),
		  "no sweeps after the balloon; console:\n%s", harness_console(e.h, e.id));
	cr_expect_null(strstr(harness_console(e.h, e.id), "mismatches=1"));
	cr_expect_null(strstr(harness_console(e.h, e.id), "verify: mismatch"));
	env_down(&e);
}
