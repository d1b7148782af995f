// SPDX-License-Identifier: MIT
/*
 * snap_sink_ops behind a real migration session: a soft domain running
 * the built-in guest's verify workload is snapshotted live (pre-copy into
 * the repository, then the final paused epoch), and while it stays paused
 * every page of the snapshot must equal its memory; a second snapshot
 * with the first as parent, taken after it ran on, too.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hyp/gmem.h"
#include "migrate/session.h"
#include "snapshot/repo.h"
#include "tmpdir.h"
#include "stream/io.h"

TestSuite(snapshot_session, .init = setup, .fini = teardown);

/* The snapshot equals the paused guest's memory, page for page. */
static void expect_guest(struct snap_repo *r, const uint8_t *uuid, const char *name,
			 const struct hyp_gmem *gm)
{
	static uint8_t buf[SNAP_PAGE_SIZE];
	enum snap_page_kind kind;
	struct snap_view *v;
	char err[512];
	uint64_t data = 0;

	cr_assert_eq(snap_view_open(r, uuid, name, &v, err, sizeof(err)), 0, "%s", err);
	for (uint64_t pfn = 0; pfn < gm->npages; pfn++) {
		cr_assert_eq(snap_view_read(v, pfn, buf, &kind, err, sizeof(err)), 0, "%s", err);
		if (kind == SNAP_PAGE_HOLE)
			continue;
		data += kind == SNAP_PAGE_DATA;
		cr_assert_eq(memcmp(buf, gm->hva + pfn * SNAP_PAGE_SIZE, SNAP_PAGE_SIZE), 0,
			     "%s: pfn %#lx differs from the guest's", name, (unsigned long)pfn);
	}
	cr_assert_gt(data, 0);
	snap_view_close(v);
}

/* One live snapshot through a session: pre-copy, then END (paused). */
static void take_live(struct hyp *h, uint32_t id, struct snap_repo *r, const uint8_t *uuid,
		      const char *name, const char *parent, uint64_t npages)
{
	struct mig_precopy_opts po = { 0 };
	struct mig_session_opts so = { .config_json = "{}", .sink_ops = &snap_sink_ops };
	struct snap_write_stats st;
	struct mig_epoch_stats es;
	struct mig_session *s;
	struct snap_writer *w;
	struct strm_io *io;
	char err[512];

	cr_assert_eq(snap_begin(r, uuid, name, parent, npages, &w, err, sizeof(err)), 0, "%s",
		     err);
	so.sink = w;
	cr_assert_eq(strm_io_mem_writer(&io), 0);
	cr_assert_eq(mig_session_create(h, id, io, &so, err, sizeof(err), &s), 0, "%s", err);
	cr_assert_eq(mig_session_precopy(s, &po), 0, "%s", err);
	cr_assert_eq(mig_session_epoch(s, MIG_EPOCH_END, &es), 0, "%s", err);
	mig_session_close(s);
	strm_io_close(io);
	cr_assert_eq(snap_commit(w, &st), 0, "%s", err);
	cr_assert_gt(st.pages, 0);
}

Test(snapshot_session, a_live_session_writes_the_paused_guest_into_a_snapshot, .timeout = 120)
{
	const uint8_t uuid[16] = { 0x5e, 0x55 };
	struct hyp_dom_config cfg = harness_cfg("snap", 64, "workload=verify ws=4M rate=4M");
	struct snap_repo_opts o = { .create = true };
	struct hyp_domain *d;
	struct snap_repo *r;
	struct hyp_gmem gm;
	struct hyp *h;
	uint32_t id;
	char err[512];

	h = harness_hyp("soft", 256);
	cr_assert_eq(hyp_domain_create(h, &cfg, false, &id), 0);
	cr_assert(harness_wait_console(h, id, "verify: sweep", 1, 20), "no sweep; console:\n%s",
		  harness_console(h, id));
	cr_assert_eq(hyp_domain_get(h, id, &d), 0);
	hyp_domain_gmem(d, &gm);
	cr_assert_eq(snap_repo_open(dir, &o, &r, err, sizeof(err)), 0, "%s", err);

	take_live(h, id, r, uuid, "first", NULL, gm.npages);
	expect_guest(r, uuid, "first", &gm);
	cr_assert_eq(hyp_domain_op_unpause(h, id), 0);
	usleep(200 * 1000);
	take_live(h, id, r, uuid, "second", "first", gm.npages);
	expect_guest(r, uuid, "second", &gm);
	cr_assert_eq(hyp_domain_op_unpause(h, id), 0);

	snap_repo_close(r);
	hyp_domain_put(d);
	hyp_destroy(h);
}
