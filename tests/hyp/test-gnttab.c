// SPDX-License-Identifier: MIT
/*
 * Grant tables (v1): a guest places its table and grants pages; another
 * guest copies through GNTTABOP_copy, ferryd maps and copies through
 * gnttab.h. Paused soft domains, hypercalls through hyp_test_hypercall.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>

#include "harness.h"
#include "abi/guest.h"
#include "hyp/evtchn.h" /* hyp_test_hypercall */
#include "hyp/gmem.h"
#include "hyp/gnttab.h"

#define ARG_GPA 0x500000u
#define TABLE_GFN 0x600u /* A's grant frame 0 */
#define DATA_GFN 0x700u	 /* the page A grants */
#define OWN_GFN 0x800u	 /* the copier's own page */

struct env {
	struct hyp *h;
	uint32_t a, b;
	struct hyp_domain *da, *db;
};

static struct hyp_domain *dom_of(struct env *e, uint32_t id)
{
	return id == e->a ? e->da : e->db;
}

static int64_t gnttab_op(struct env *e, uint32_t dom, unsigned cmd, void *ops, size_t len,
			 unsigned count)
{
	struct hyp_domain *d = dom_of(e, dom);
	const uint64_t args[5] = { cmd, ARG_GPA, count, 0, 0 };
	int64_t r;

	cr_assert_eq(hyp_gmem_write(d, ARG_GPA, ops, len), 0);
	r = hyp_test_hypercall(e->h, dom, 0, __HYPERVISOR_grant_table_op, args);
	cr_assert_eq(hyp_gmem_read(d, ARG_GPA, ops, len), 0);
	return r;
}

static void put_entry(struct env *e, uint32_t ref, uint16_t flags, uint16_t domid,
		      uint32_t frame)
{
	struct grant_entry_v1 g = { .flags = flags, .domid = domid, .frame = frame };

	cr_assert_eq(hyp_gmem_write(e->da, TABLE_GFN * 4096ULL + ref * 8ULL, &g, sizeof(g)), 0);
}

static struct grant_entry_v1 get_entry(struct env *e, uint32_t ref)
{
	struct grant_entry_v1 g;

	cr_assert_eq(hyp_gmem_read(e->da, TABLE_GFN * 4096ULL + ref * 8ULL, &g, sizeof(g)), 0);
	return g;
}

/* Two paused domains; A's grant frame 0 is placed at TABLE_GFN and its
 * DATA_GFN page holds a greeting. */
static void env_up(struct env *e)
{
	struct hyp_dom_config c = harness_cfg("ga", 16, "workload=idle");
	struct xen_add_to_physmap x = {
		.domid = DOMID_SELF, .space = XENMAPSPACE_grant_table, .idx = 0,
		.gpfn = TABLE_GFN,
	};
	const uint64_t args[5] = { XENMEM_add_to_physmap, ARG_GPA, 0, 0, 0 };
	static const char hello[] = "hello from A";

	e->h = harness_hyp("soft", 128);
	cr_assert_eq(hyp_domain_create(e->h, &c, true, &e->a), 0);
	snprintf(c.name, sizeof(c.name), "gb");
	cr_assert_eq(hyp_domain_create(e->h, &c, true, &e->b), 0);
	cr_assert_eq(hyp_domain_get(e->h, e->a, &e->da), 0);
	cr_assert_eq(hyp_domain_get(e->h, e->b, &e->db), 0);
	/* Stale data in the page: placing it as a grant frame zeroes it. */
	cr_assert_eq(hyp_gmem_write(e->da, TABLE_GFN * 4096ULL, "\x01\x00\x02\x00", 4), 0);
	cr_assert_eq(hyp_gmem_write(e->da, ARG_GPA, &x, sizeof(x)), 0);
	cr_assert_eq(hyp_test_hypercall(e->h, e->a, 0, __HYPERVISOR_memory_op, args), 0);
	cr_assert_eq(get_entry(e, 0).flags, 0, "grant frame not zeroed");
	cr_assert_eq(hyp_gmem_write(e->da, DATA_GFN * 4096ULL, hello, sizeof(hello)), 0);
}

static void env_down(struct env *e)
{
	if (e->da)
		hyp_domain_put(e->da);
	if (e->db)
		hyp_domain_put(e->db);
	hyp_destroy(e->h);
}

Test(gnttab, setup_and_query, .timeout = 30)
{
	struct env e = { 0 };
	struct gnttab_query_size q = { .dom = DOMID_SELF };
	struct gnttab_setup_table st = {
		.dom = DOMID_SELF, .nr_frames = 2, .frame_list = ARG_GPA + 0x100,
	};
	uint64_t frames[2];

	env_up(&e);
	cr_assert_eq(gnttab_op(&e, e.a, GNTTABOP_query_size, &q, sizeof(q), 1), 0);
	cr_expect_eq(q.status, GNTST_okay);
	cr_expect_eq(q.nr_frames, 1);
	cr_expect_eq(q.max_nr_frames, 64);
	cr_assert_eq(gnttab_op(&e, e.a, GNTTABOP_setup_table, &st, sizeof(st), 1), 0);
	cr_expect_eq(st.status, GNTST_okay);
	cr_assert_eq(hyp_gmem_read(e.da, ARG_GPA + 0x100, frames, sizeof(frames)), 0);
	cr_expect_eq(frames[0], TABLE_GFN);
	cr_expect_eq(frames[1], ~0ULL, "frame 1 is not placed");
	cr_expect_eq(gnttab_nr_frames(e.da), 2);

	st.nr_frames = 65;
	cr_assert_eq(gnttab_op(&e, e.a, GNTTABOP_setup_table, &st, sizeof(st), 1), 0);
	cr_expect_eq(st.status, GNTST_general_error);
	st = (struct gnttab_setup_table){ .dom = (uint16_t)e.b, .nr_frames = 1 };
	cr_assert_eq(gnttab_op(&e, e.a, GNTTABOP_setup_table, &st, sizeof(st), 1), 0);
	cr_expect_eq(st.status, GNTST_permission_denied);
	q.dom = 999;
	cr_assert_eq(gnttab_op(&e, e.a, GNTTABOP_query_size, &q, sizeof(q), 1), 0);
	cr_expect_eq(q.status, GNTST_bad_domain);
	st = (struct gnttab_setup_table){ .dom = DOMID_SELF, .nr_frames = 1,
					  .frame_list = ~0ULL - 7 };
	cr_assert_eq(gnttab_op(&e, e.a, GNTTABOP_setup_table, &st, sizeof(st), 1), 0);
	cr_expect_eq(st.status, GNTST_bad_virt_addr);
	cr_expect_eq(gnttab_op(&e, e.a, GNTTABOP_map_grant_ref, &q, sizeof(q), 1), -XEN_ENOSYS);
	cr_expect_eq(gnttab_op(&e, e.a, 99, &q, sizeof(q), 1), -XEN_ENOSYS);
	{
		const uint64_t args[5] = { GNTTABOP_query_size, 64ULL << 20, 1, 0, 0 };

		cr_expect_eq(hyp_test_hypercall(e.h, e.a, 0, __HYPERVISOR_grant_table_op, args),
			     -XEN_EFAULT);
	}
	env_down(&e);
}

static struct gnttab_copy copy_from_a(struct env *e, uint32_t ref, uint16_t len)
{
	return (struct gnttab_copy){
		.source = { .u.ref = ref, .domid = (uint16_t)e->a, .offset = 0 },
		.dest = { .u.gmfn = OWN_GFN, .domid = DOMID_SELF, .offset = 16 },
		.len = len,
		.flags = GNTCOPY_source_gref,
	};
}

Test(gnttab, guest_copy, .timeout = 30)
{
	struct env e = { 0 };
	struct gnttab_copy ops[8];
	char buf[32] = { 0 };

	env_up(&e);
	put_entry(&e, 5, GTF_permit_access, (uint16_t)e.b, DATA_GFN);
	put_entry(&e, 6, GTF_permit_access | GTF_readonly, (uint16_t)e.b, DATA_GFN);
	put_entry(&e, 7, GTF_permit_access, 99, DATA_GFN);	  /* someone else */
	put_entry(&e, 8, GTF_invalid, (uint16_t)e.b, DATA_GFN); /* revoked */
	put_entry(&e, 9, GTF_permit_access, (uint16_t)e.b, 0xfffff); /* beyond RAM */

	ops[0] = copy_from_a(&e, 5, 13);			/* ok */
	ops[1] = copy_from_a(&e, 6, 13);			/* read of r/o: ok */
	ops[2] = copy_from_a(&e, 7, 13);			/* wrong domid */
	ops[3] = copy_from_a(&e, 8, 13);			/* not granted */
	ops[4] = copy_from_a(&e, 512, 13);			/* beyond the table */
	ops[5] = copy_from_a(&e, 9, 13);			/* bad frame */
	ops[6] = copy_from_a(&e, 5, 13);
	ops[6].source.offset = 4090;				/* crosses the page */
	ops[7] = copy_from_a(&e, 5, 13);
	ops[7].source.domid = 999;				/* no such domain */
	cr_assert_eq(gnttab_op(&e, e.b, GNTTABOP_copy, ops, sizeof(ops), 8), 0);
	cr_expect_eq(ops[0].status, GNTST_okay);
	cr_expect_eq(ops[1].status, GNTST_okay);
	cr_expect_eq(ops[2].status, GNTST_general_error);
	cr_expect_eq(ops[3].status, GNTST_general_error);
	cr_expect_eq(ops[4].status, GNTST_bad_gntref);
	cr_expect_eq(ops[5].status, GNTST_bad_page);
	cr_expect_eq(ops[6].status, GNTST_bad_copy_arg);
	cr_expect_eq(ops[7].status, GNTST_bad_domain);
	cr_assert_eq(hyp_gmem_read(e.db, OWN_GFN * 4096ULL + 16, buf, 13), 0);
	cr_expect_str_eq(buf, "hello from A");
	/* The copy's transient pin is gone. */
	cr_expect_eq(get_entry(&e, 5).flags, GTF_permit_access);

	/* B writes into A's page: allowed for ref 5, not through r/o ref 6. */
	cr_assert_eq(hyp_gmem_write(e.db, OWN_GFN * 4096ULL, "HELLO", 5), 0);
	memset(ops, 0, sizeof(ops));
	for (int i = 0; i < 2; i++)
		ops[i] = (struct gnttab_copy){
			.source = { .u.gmfn = OWN_GFN, .domid = DOMID_SELF },
			.dest = { .u.ref = i ? 6 : 5, .domid = (uint16_t)e.a },
			.len = 5,
			.flags = GNTCOPY_dest_gref,
		};
	/* A source frame that is not the caller's own. */
	ops[2] = ops[0];
	ops[2].source.domid = (uint16_t)e.a;
	cr_assert_eq(gnttab_op(&e, e.b, GNTTABOP_copy, ops, 3 * sizeof(ops[0]), 3), 0);
	cr_expect_eq(ops[0].status, GNTST_okay);
	cr_expect_eq(ops[1].status, GNTST_general_error, "wrote through a read-only grant");
	cr_expect_eq(ops[2].status, GNTST_permission_denied);
	cr_assert_eq(hyp_gmem_read(e.da, DATA_GFN * 4096ULL, buf, 13), 0);
	cr_expect_eq(memcmp(buf, "HELLO from A", 12), 0, "A's page: %.12s", buf);
	cr_expect_eq(get_entry(&e, 5).flags, GTF_permit_access);
	cr_expect_eq(get_entry(&e, 6).flags, GTF_permit_access | GTF_readonly);
	/* A itself is not the grantee of ref 5. */
	ops[0] = copy_from_a(&e, 5, 4);
	ops[0].source.domid = DOMID_SELF;
	cr_assert_eq(gnttab_op(&e, e.a, GNTTABOP_copy, ops, sizeof(ops[0]), 1), 0);
	cr_expect_eq(ops[0].status, GNTST_general_error);
	env_down(&e);
}

Test(gnttab, ferryd_map_and_copy, .timeout = 30)
{
	struct env e = { 0 };
	struct gnttab_mapping m, m2;
	struct hyp_gmem g;
	uint64_t *bm;
	char buf[16] = { 0 };

	env_up(&e);
	put_entry(&e, 1, GTF_permit_access, GNTTAB_DOMID_FERRYD, DATA_GFN);
	put_entry(&e, 2, GTF_permit_access | GTF_readonly, GNTTAB_DOMID_FERRYD, DATA_GFN);
	put_entry(&e, 3, GTF_permit_access, (uint16_t)e.b, DATA_GFN);

	cr_assert_eq(gnttab_map(e.da, 1, GNTTAB_DOMID_FERRYD, false, &m), 0);
	cr_expect_str_eq((char *)m.ptr, "hello from A");
	cr_expect_eq(get_entry(&e, 1).flags, GTF_permit_access | GTF_reading);
	/* A second, writable pin of the same grant. */
	cr_assert_eq(gnttab_map(e.da, 1, GNTTAB_DOMID_FERRYD, true, &m2), 0);
	cr_expect_eq(get_entry(&e, 1).flags, GTF_permit_access | GTF_reading | GTF_writing);
	hyp_domain_gmem(e.da, &g);
	bm = calloc((g.npages + 63) / 64, 8);
	hyp_gmem_take_host_dirty(e.da, bm);
	memset(bm, 0, (g.npages + 63) / 64 * 8);
	memcpy(m2.ptr, "J", 1);
	gnttab_unmap(&m2);
	cr_expect_eq(get_entry(&e, 1).flags, GTF_permit_access | GTF_reading);
	hyp_gmem_take_host_dirty(e.da, bm);
	cr_expect(bm[DATA_GFN / 64] >> (DATA_GFN % 64) & 1, "written page not marked dirty");
	free(bm);
	gnttab_unmap(&m);
	cr_expect_eq(get_entry(&e, 1).flags, GTF_permit_access);

	cr_expect_eq(gnttab_map(e.da, 2, GNTTAB_DOMID_FERRYD, true, &m), -EROFS);
	cr_expect_eq(get_entry(&e, 2).flags, GTF_permit_access | GTF_readonly);
	cr_expect_eq(gnttab_map(e.da, 3, GNTTAB_DOMID_FERRYD, false, &m), -EPERM,
		     "a grant to B mapped by ferryd");
	cr_expect_eq(gnttab_map(e.da, 4, GNTTAB_DOMID_FERRYD, false, &m), -EPERM);
	cr_expect_eq(gnttab_map(e.da, 512, GNTTAB_DOMID_FERRYD, false, &m), -EINVAL);
	cr_expect_eq(gnttab_map(e.db, 1, GNTTAB_DOMID_FERRYD, false, &m), -EINVAL,
		     "B has no table");

	cr_assert_eq(gnttab_copy_from(e.da, 2, GNTTAB_DOMID_FERRYD, 1, buf, 11), 0);
	cr_expect_str_eq(buf, "ello from A");
	cr_expect_eq(gnttab_copy_to(e.da, 2, GNTTAB_DOMID_FERRYD, 0, "x", 1), -EROFS);
	cr_assert_eq(gnttab_copy_to(e.da, 1, GNTTAB_DOMID_FERRYD, 0, "Y", 1), 0);
	cr_expect_eq(gnttab_copy_from(e.da, 1, GNTTAB_DOMID_FERRYD, 4000, buf, 97), -EINVAL);
	cr_expect_eq(gnttab_copy_from(e.da, 3, GNTTAB_DOMID_FERRYD, 0, buf, 1), -EPERM);
	cr_assert_eq(gnttab_copy_from(e.da, 1, GNTTAB_DOMID_FERRYD, 0, buf, 5), 0);
	cr_expect_eq(memcmp(buf, "Yello", 5), 0);
	cr_expect_eq(get_entry(&e, 1).flags, GTF_permit_access);
	env_down(&e);
}

Test(gnttab, revoke_while_mapped, .timeout = 30)
{
	struct env e = { 0 };
	struct gnttab_mapping m, m2;
	struct grant_entry_v1 g;
	char buf[4];

	env_up(&e);
	put_entry(&e, 1, GTF_permit_access, GNTTAB_DOMID_FERRYD, DATA_GFN);
	cr_assert_eq(gnttab_map(e.da, 1, GNTTAB_DOMID_FERRYD, true, &m), 0);

	/* A well-behaved guest's end_foreign_access sees the flags and waits. */
	g = get_entry(&e, 1);
	cr_expect(g.flags & (GTF_reading | GTF_writing), "mapped grant shows no use");
	/* A guest that revokes anyway: only its permit bit goes. */
	put_entry(&e, 1, (uint16_t)(g.flags & ~GTF_permit_access), g.domid, g.frame);
	cr_expect_str_eq((char *)m.ptr, "hello from A", "the mapping stays valid");
	memcpy(m.ptr, "h", 1);
	cr_expect_eq(get_entry(&e, 1).flags, GTF_reading | GTF_writing);
	/* New uses of the revoked grant fail; the live one goes on. */
	cr_expect_eq(gnttab_map(e.da, 1, GNTTAB_DOMID_FERRYD, false, &m2), 0,
		     "a read-only re-pin of a live mapping");
	gnttab_unmap(&m2);
	cr_expect_eq(gnttab_copy_from(e.da, 1, 7, 0, buf, 1), -EPERM);
	gnttab_unmap(&m);
	cr_expect_eq(get_entry(&e, 1).flags, 0, "flags left after unmap");
	cr_expect_eq(gnttab_map(e.da, 1, GNTTAB_DOMID_FERRYD, false, &m), -EPERM);

	/* A mapping outlives the granter's destruction; unmap frees it. */
	put_entry(&e, 1, GTF_permit_access, GNTTAB_DOMID_FERRYD, DATA_GFN);
	cr_assert_eq(gnttab_map(e.da, 1, GNTTAB_DOMID_FERRYD, false, &m), 0);
	hyp_domain_put(e.da);
	e.da = NULL;
	cr_assert_eq(hyp_domain_destroy(e.h, e.a), 0);
	cr_expect_eq(memcmp(m.ptr, "hello", 5), 0);
	gnttab_unmap(&m);
	env_down(&e);
}

Test(gnttab, frame_moves_with_its_entries, .timeout = 30)
{
	struct env e = { 0 };
	struct xen_add_to_physmap x = {
		.domid = DOMID_SELF, .space = XENMAPSPACE_grant_table, .idx = 0,
		.gpfn = TABLE_GFN + 1,
	};
	const uint64_t args[5] = { XENMEM_add_to_physmap, ARG_GPA, 0, 0, 0 };
	struct gnttab_mapping m;

	env_up(&e);
	put_entry(&e, 1, GTF_permit_access, GNTTAB_DOMID_FERRYD, DATA_GFN);
	cr_assert_eq(gnttab_map(e.da, 1, GNTTAB_DOMID_FERRYD, false, &m), 0);
	cr_assert_eq(hyp_gmem_write(e.da, ARG_GPA, &x, sizeof(x)), 0);
	cr_expect_eq(hyp_test_hypercall(e.h, e.a, 0, __HYPERVISOR_memory_op, args),
		     -XEN_EBUSY, "moved a frame with a mapped grant");
	gnttab_unmap(&m);
	cr_assert_eq(hyp_test_hypercall(e.h, e.a, 0, __HYPERVISOR_memory_op, args), 0);
	{
		struct grant_entry_v1 g;

		cr_assert_eq(hyp_gmem_read(e.da, (TABLE_GFN + 1) * 4096ULL + 8, &g, sizeof(g)),
			     0);
		cr_expect_eq(g.flags, GTF_permit_access);
		cr_expect_eq(g.frame, DATA_GFN);
	}
	x.idx = 64;
	cr_assert_eq(hyp_gmem_write(e.da, ARG_GPA, &x, sizeof(x)), 0);
	cr_expect_eq(hyp_test_hypercall(e.h, e.a, 0, __HYPERVISOR_memory_op, args), -XEN_EINVAL);
	x.idx = 1;
	x.gpfn = 1ULL << 52;
	cr_assert_eq(hyp_gmem_write(e.da, ARG_GPA, &x, sizeof(x)), 0);
	cr_expect_eq(hyp_test_hypercall(e.h, e.a, 0, __HYPERVISOR_memory_op, args), -XEN_EINVAL);
	env_down(&e);
}
