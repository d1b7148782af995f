// SPDX-License-Identifier: MIT
/*
 * The epoch applier (restore/applier.h) in front of a recording applier:
 * nothing reaches the target before commit, commit replays pages and holes
 * in stream order then commits the target, discard drops the epoch, and the
 * staging bound holds.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "restore/applier.h"

struct call {
	char op; /* 'L'oad, 'U'npopulate, 'C'ommit */
	uint64_t pfn, npages;
	uint8_t first; /* first byte of the data */
};

struct rec {
	struct call v[32];
	unsigned n;
	int fail_load; /* -errno for the next load */
};

static int rec_load(void *priv, uint64_t pfn, const void *data, uint64_t npages)
{
	struct rec *r = priv;

	if (r->fail_load)
		return r->fail_load;
	cr_assert_lt(r->n, 32);
	r->v[r->n++] = (struct call){ 'L', pfn, npages, *(const uint8_t *)data };
	return 0;
}

static int rec_unpopulate(void *priv, uint64_t pfn, uint64_t npages)
{
	struct rec *r = priv;

	cr_assert_lt(r->n, 32);
	r->v[r->n++] = (struct call){ 'U', pfn, npages, 0 };
	return 0;
}

static int rec_commit(void *priv)
{
	struct rec *r = priv;

	cr_assert_lt(r->n, 32);
	r->v[r->n++] = (struct call){ 'C', 0, 0, 0 };
	return 0;
}

static void rec_discard(void *priv)
{
	(void)priv;
	cr_assert_fail("the epoch applier passed a discard on: it holds the epoch itself");
}

static const struct rst_applier_ops rec_ops = {
	.load = rec_load,
	.unpopulate = rec_unpopulate,
	.commit = rec_commit,
	.discard = rec_discard,
};

static void pages(uint8_t *buf, unsigned n, uint8_t fill)
{
	for (unsigned i = 0; i < n; i++)
		memset(buf + 4096 * i, fill + i, 4096);
}

Test(applier, epoch_stages_until_commit)
{
	struct rec r = { 0 };
	struct rst_applier *target, *ep;
	uint8_t buf[3 * 4096];

	cr_assert_eq(rst_applier_new(&rec_ops, &r, &target), 0);
	cr_assert_eq(rst_applier_epoch_new(target, 0, &ep), 0);
	pages(buf, 3, 0x40);
	cr_assert_eq(rst_applier_load(ep, 10, buf, 3), 0);
	cr_assert_eq(rst_applier_unpopulate(ep, 11, 1), 0);
	pages(buf, 1, 0x50);
	cr_assert_eq(rst_applier_load(ep, 11, buf, 1), 0);
	memset(buf, 0, sizeof(buf)); /* staged copies, not the caller's memory */
	cr_assert_eq(r.n, 0, "the target saw %u calls before commit", r.n);

	cr_assert_eq(rst_applier_commit(ep), 0);
	cr_assert_eq(r.n, 4);
	cr_expect(r.v[0].op == 'L' && r.v[0].pfn == 10 && r.v[0].npages == 3 &&
		  r.v[0].first == 0x40);
	cr_expect(r.v[1].op == 'U' && r.v[1].pfn == 11 && r.v[1].npages == 1);
	cr_expect(r.v[2].op == 'L' && r.v[2].pfn == 11 && r.v[2].first == 0x50,
		  "the later page of pfn 11 must come last");
	cr_expect_eq(r.v[3].op, 'C');

	/* A second epoch starts empty: a commit replays nothing again. */
	cr_assert_eq(rst_applier_commit(ep), 0);
	cr_assert_eq(r.n, 5);
	cr_expect_eq(r.v[4].op, 'C');
	rst_applier_free(ep);
	rst_applier_free(target);
}

Test(applier, epoch_discard_drops_everything)
{
	struct rec r = { 0 };
	struct rst_applier *target, *ep;
	uint8_t buf[4096];

	cr_assert_eq(rst_applier_new(&rec_ops, &r, &target), 0);
	cr_assert_eq(rst_applier_epoch_new(target, 0, &ep), 0);
	pages(buf, 1, 0x60);
	cr_assert_eq(rst_applier_load(ep, 3, buf, 1), 0);
	cr_assert_eq(rst_applier_unpopulate(ep, 4, 1), 0);
	rst_applier_discard(ep);
	cr_assert_eq(rst_applier_commit(ep), 0);
	cr_assert_eq(r.n, 1, "a discarded epoch reached the target");
	cr_expect_eq(r.v[0].op, 'C');
	rst_applier_free(ep);
	rst_applier_free(target);
}

Test(applier, epoch_bound_and_target_errors)
{
	struct rec r = { 0 };
	struct rst_applier *target, *ep;
	uint8_t buf[3 * 4096] = { 0 };

	cr_assert_eq(rst_applier_new(&rec_ops, &r, &target), 0);
	cr_assert_eq(rst_applier_epoch_new(target, 2 * 4096, &ep), 0);
	cr_assert_eq(rst_applier_load(ep, 0, buf, 2), 0);
	cr_assert_eq(rst_applier_load(ep, 2, buf, 1), -E2BIG);
	cr_assert_eq(rst_applier_unpopulate(ep, 5, 1), 0, "holes take no page data");
	r.fail_load = -EIO;
	cr_assert_eq(rst_applier_commit(ep), -EIO, "a target's error comes back");
	cr_assert_eq(r.n, 0, "committed after a failed write");
	r.fail_load = 0;
	cr_assert_eq(rst_applier_commit(ep), 0);
	cr_assert_eq(r.n, 1, "the failed epoch was kept: %u calls", r.n);
	rst_applier_free(ep);
	rst_applier_free(target);
}

Test(applier, ops_must_be_complete)
{
	struct rst_applier_ops ops = rec_ops;
	struct rst_applier *a;

	ops.commit = NULL;
	cr_expect_eq(rst_applier_new(&ops, NULL, &a), -EINVAL);
}
