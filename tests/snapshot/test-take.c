// SPDX-License-Identifier: MIT
/*
 * snap_take (snapshot/take.h) on a soft domain running the built-in
 * guest's verify workload: a chain of live snapshots, each after the first
 * storing only what changed; every one taken with leave_paused must equal
 * the guest's memory at its pause page for page (and so hold the guest's
 * write counter, the sum of its page generations, of that instant); one
 * taken without it leaves the guest running and is checked through the
 * next, which inherits from it. A failing snapshot leaves the guest
 * running and the chain usable; a deleted parent makes the next one full.
 * A dirtying guest is paused briefly; a paused one's incremental snapshot
 * holds what changed and keeps the user's pause. The 1 GiB figures are
 * bench-snapshot's (bench/snapshot.c).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/compiler.h"
#include "formats/xl-header.h"
#include "guests/workload.h"
#include "harness.h"
#include "hyp/gmem.h"
#include "migrate/precopy.h"
#include "snapshot/repo.h"
#include "snapshot/take.h"
#include "stream/io.h"
#include "tmpdir.h"

TestSuite(snapshot_take, .init = setup, .fini = teardown);

static const uint8_t uuid[16] = {0x7a, 0x4e};

struct env {
	struct hyp *h;
	uint32_t id;
	struct hyp_domain *d;
	struct hyp_gmem gm;
	struct snap_repo *r;
	struct snap_chain *c;
	char err[512];
};

static void env_start(struct env *e, uint64_t mem_mb, const char *cmdline, const char *ready)
{
	struct hyp_dom_config cfg = harness_cfg("take", mem_mb, cmdline);
	struct snap_repo_opts ro = {.create = true};

	e->h = harness_hyp("soft", mem_mb + 64);
	cr_assert_eq(hyp_domain_create(e->h, &cfg, false, &e->id), 0);
	cr_assert(harness_wait_console(e->h, e->id, ready, 1, 30), "no \"%s\"; console:\n%s", ready,
		  harness_console(e->h, e->id));
	cr_assert_eq(hyp_domain_get(e->h, e->id, &e->d), 0);
	hyp_domain_gmem(e->d, &e->gm);
	cr_assert_eq(snap_repo_open(dir, &ro, &e->r, e->err, sizeof(e->err)), 0, "%s", e->err);
	cr_assert_eq(snap_chain_new(&e->c), 0);
}

static void env_stop(struct env *e)
{
	/* The chain holds a domain reference: it goes before the hyp. */
	snap_chain_free(e->c);
	snap_repo_close(e->r);
	if (e->d)
		hyp_domain_put(e->d);
	hyp_destroy(e->h);
}

static int take(struct env *e, const char *name, bool leave_paused, struct snap_take_report *rep)
{
	struct snap_take_opts o = {
		.name = name,
		.config_json = "{}",
		.leave_paused = leave_paused,
		.chain = e->c,
	};

	return snap_take(e->h, e->id, e->r, uuid, &o, rep, e->err, sizeof(e->err));
}

static struct hyp_dom_info info(struct env *e)
{
	struct hyp_dom_info di;

	cr_assert_eq(hyp_domain_info(e->h, e->id, &di), 0);
	return di;
}

/* Neither the toolstack nor an operation holds the domain. */
static void expect_running(struct env *e, const char *when)
{
	struct hyp_dom_info di = info(e);

	cr_assert_eq(di.pause_count, 0, "%s: paused by the toolstack", when);
	cr_assert_eq(di.op_pause_count, 0, "%s: paused by an operation", when);
	cr_assert(di.state == HYP_DOM_RUNNING || di.state == HYP_DOM_BLOCKED, "%s: %s", when,
		  hyp_state_name(di.state));
}

/* The verify workload's write counter in memory at mem (a resumed wl_ctx
 * reads its state; the platform is never called). */
static uint64_t guest_writes(const uint8_t *mem, uint64_t size)
{
	static const struct wl_platform plat;
	struct wl_ctx c;
	uint64_t n = 0;

	cr_assert_eq(wl_attach(&c, &plat, (uintptr_t)mem, size, ""), 0);
	cr_assert_gt(wl_ws_pages(&c), 0);
	for (uint64_t i = 0; i < wl_ws_pages(&c); i++)
		n += wl_page_gen(&c, i);
	return n;
}

/*
 * The snapshot read whole equals the paused guest's memory, page for page
 * (holes aside); returns the guest's write counter, the same in both.
 */
static uint64_t expect_guest(struct env *e, const char *name)
{
	uint8_t *mem = calloc(e->gm.npages, SNAP_PAGE_SIZE);
	enum snap_page_kind kind;
	struct snap_view *v;
	uint64_t data = 0, w;
	const void *state;
	size_t len;

	cr_assert_not_null(mem);
	cr_assert_eq(snap_view_open(e->r, uuid, name, &v, e->err, sizeof(e->err)), 0, "%s", e->err);
	for (uint64_t pfn = 0; pfn < e->gm.npages; pfn++) {
		uint8_t *page = mem + pfn * SNAP_PAGE_SIZE;

		cr_assert_eq(snap_view_read(v, pfn, page, &kind, e->err, sizeof(e->err)), 0, "%s",
			     e->err);
		if (kind == SNAP_PAGE_HOLE)
			continue;
		data += kind == SNAP_PAGE_DATA;
		cr_assert_eq(memcmp(page, e->gm.hva + pfn * SNAP_PAGE_SIZE, SNAP_PAGE_SIZE), 0,
			     "%s: pfn %#lx differs from the paused guest's", name,
			     (unsigned long)pfn);
	}
	/* The STATE BLOB: the session's plain stream, from the xl header on. */
	cr_assert_eq(snap_view_state(v, &state, &len), 0);
	cr_assert_gt(len, XL_SAVE_MAGIC_LEN);
	cr_assert_eq(memcmp(state, XL_SAVE_MAGIC, XL_SAVE_MAGIC_LEN), 0, "%s: no xl header", name);
	snap_view_close(v);
	cr_assert_gt(data, 0);
	w = guest_writes(mem, e->gm.npages * SNAP_PAGE_SIZE);
	cr_assert_eq(w, guest_writes(e->gm.hva, e->gm.size), "%s: the guest's counter", name);
	free(mem);
	return w;
}

static struct snap_info find(struct env *e, const char *name)
{
	struct snap_info *l, out = {0};
	size_t n;

	cr_assert_eq(snap_list(e->r, uuid, &l, &n), 0);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(l[i].name, name))
			continue;
		out = l[i];
		free(l);
		return out;
	}
	cr_assert_fail("snapshot %s is not listed", name);
	free(l);
	return out;
}

static void print_rep(const char *what, const char *name, const struct snap_take_report *rep)
{
	printf("%s %s: %s%s, pause %.2f ms, %.3f s, %u rounds + %llu paused pages, "
	       "%.1f MiB written, pages %llu (stored %llu, deduped %llu, zero %llu)\n",
	       what, name, rep->incremental ? "incremental from " : "full",
	       rep->incremental ? rep->parent : "", rep->pause_s * 1e3, rep->seconds, rep->rounds,
	       (unsigned long long)rep->final_pages, (double)rep->bytes / (1 << 20),
	       (unsigned long long)rep->pages, (unsigned long long)rep->stored,
	       (unsigned long long)rep->deduped, (unsigned long long)rep->zero);
	fflush(stdout);
}

/* Resumes a domain left paused by leave_paused (the toolstack's pause). */
static void resume(struct env *e, const char *name)
{
	struct hyp_dom_info di = info(e);

	cr_assert_eq(di.pause_count, 1, "%s: leave_paused leaves one toolstack pause", name);
	cr_assert_eq(di.op_pause_count, 0, "%s: the operation's pause is released", name);
	cr_assert_eq(hyp_domain_unpause(e->h, e->id), 0);
	expect_running(e, name);
}

static void expect_no_mismatch(struct env *e)
{
	int before = 0;
	const char *con = harness_console(e->h, e->id);

	for (const char *p = strstr(con, "mismatches=0"); p; p = strstr(p + 1, "mismatches=0"))
		before++;
	cr_assert(harness_wait_console(e->h, e->id, "mismatches=0", before + 1, 15),
		  "no clean sweep; console:\n%s", harness_console(e->h, e->id));
	cr_assert_null(strstr(harness_console(e->h, e->id), "verify: mismatch "), "console:\n%s",
		       harness_console(e->h, e->id));
}

Test(snapshot_take, a_chain_stores_only_what_changed_and_each_is_its_instant, .timeout = 180)
{
	struct snap_take_report r1, r2, r3, r4, rep;
	struct env e = {0};
	uint64_t w1, w3, w4;

	/* 8 MiB verified, 2 MiB/s written: all of it once after 4 s, then
	 * about a hundred pages between two snapshots. */
	env_start(&e, 64, "workload=verify ws=8M rate=2M", "verify: sweep");
	usleep(4500 * 1000);

	cr_assert_eq(take(&e, "s1", true, &r1), 0, "%s", e.err);
	print_rep("chain", "s1", &r1);
	cr_assert_not(r1.incremental);
	cr_assert_str_empty(r1.parent);
	w1 = expect_guest(&e, "s1");
	resume(&e, "s1");
	cr_assert_gt(r1.stored, 2048, "the whole working set is in the first");

	usleep(200 * 1000);
	cr_assert_eq(take(&e, "s2", false, &r2), 0, "%s", e.err);
	print_rep("chain", "s2", &r2);
	expect_running(&e, "after s2");
	cr_assert(r2.incremental);
	cr_assert_str_eq(r2.parent, "s1");
	cr_assert_gt(r2.pause_s, 0);
	cr_assert_leq(r2.pause_s, r2.seconds);

	usleep(200 * 1000);
	cr_assert_eq(take(&e, "s3", true, &r3), 0, "%s", e.err);
	print_rep("chain", "s3", &r3);
	cr_assert(r3.incremental);
	cr_assert_str_eq(r3.parent, "s2");
	/* s3 holds only its own pages: the rest comes through s2 from s1, so
	 * this also checks what s2 stored. */
	w3 = expect_guest(&e, "s3");
	resume(&e, "s3");
	cr_assert_gt(w3, w1, "the guest wrote between s1 and s3");

	usleep(200 * 1000);
	cr_assert_eq(take(&e, "s4", true, &r4), 0, "%s", e.err);
	print_rep("chain", "s4", &r4);
	cr_assert(r4.incremental);
	cr_assert_str_eq(r4.parent, "s3");
	w4 = expect_guest(&e, "s4");
	resume(&e, "s4");
	cr_assert_gt(w4, w3);

	/* Own entries: everything for s1, about what the guest dirtied after. */
	cr_assert_gt(find(&e, "s2").own_entries, 0);
	cr_assert_leq(find(&e, "s2").own_entries, r2.pages + r2.holes);
	cr_assert_str_eq(find(&e, "s4").parent, "s3");
	/* About a hundred pages each against the whole working set; a
	 * quarter leaves room for a slow commit on a loaded machine (the
	 * guest writes on meanwhile). */
	const struct snap_take_report *inc[] = {&r2, &r3, &r4};

	for (size_t i = 0; i < ARRAY_SIZE(inc); i++) {
		cr_assert_lt(inc[i]->pages, r1.pages / 4, "s%zu: %llu pages against %llu in s1",
			     i + 2, (unsigned long long)inc[i]->pages,
			     (unsigned long long)r1.pages);
		cr_assert_lt(inc[i]->bytes, r1.bytes / 4, "s%zu: %llu bytes against %llu in s1",
			     i + 2, (unsigned long long)inc[i]->bytes,
			     (unsigned long long)r1.bytes);
	}

	/* A taken name: refused before anything is paused or spent. */
	cr_assert_eq(take(&e, "s2", false, &rep), -EEXIST);
	cr_assert(strstr(e.err, "exists"), "%s", e.err);
	expect_running(&e, "after a refused snapshot");
	cr_assert_eq(take(&e, "s5", true, &rep), 0, "%s", e.err);
	cr_assert(rep.incremental, "the chain survives a refused snapshot");
	cr_assert_str_eq(rep.parent, "s4");
	expect_guest(&e, "s5");
	resume(&e, "s5");

	/* The parent gone: the next one is full, and still exact. */
	cr_assert_eq(snap_delete(e.r, uuid, "s5", e.err, sizeof(e.err)), 0, "%s", e.err);
	cr_assert_eq(take(&e, "s6", true, &rep), 0, "%s", e.err);
	print_rep("chain", "s6", &rep);
	cr_assert_not(rep.incremental);
	cr_assert_gt(rep.pages, r1.pages / 2);
	expect_guest(&e, "s6");
	resume(&e, "s6");
	cr_assert_eq(take(&e, "s7", false, &rep), 0, "%s", e.err);
	cr_assert(rep.incremental);
	cr_assert_str_eq(rep.parent, "s6");
	expect_running(&e, "after s7");

	cr_assert_eq(
		snap_verify(e.r, uuid, NULL, &(struct snap_verify_report){0}, e.err, sizeof(e.err)),
		0, "%s", e.err);
	expect_no_mismatch(&e);
	env_stop(&e);
}

Test(snapshot_take, without_a_chain_each_is_full, .timeout = 120)
{
	struct snap_take_report a, b;
	struct env e = {0};

	/* the working set written whole after a second */
	env_start(&e, 64, "workload=verify ws=4M rate=4M", "verify: sweep");
	usleep(1500 * 1000);
	cr_assert_eq(snap_take(e.h, e.id, e.r, uuid,
			       &(struct snap_take_opts){.name = "a", .config_json = "{}"}, &a,
			       e.err, sizeof(e.err)),
		     0, "%s", e.err);
	expect_running(&e, "after a");
	cr_assert_eq(snap_take(e.h, e.id, e.r, uuid,
			       &(struct snap_take_opts){
				       .name = "b", .config_json = "{}", .leave_paused = true},
			       &b, e.err, sizeof(e.err)),
		     0, "%s", e.err);
	cr_assert_not(a.incremental);
	cr_assert_not(b.incremental);
	cr_assert_str_empty(find(&e, "b").parent);
	cr_assert_gt(b.pages, 1024);
	/* Full, and written after a: the working set deduplicates. */
	cr_assert_gt(b.deduped, b.stored, "%llu deduplicated, %llu stored",
		     (unsigned long long)b.deduped, (unsigned long long)b.stored);
	expect_guest(&e, "b");
	resume(&e, "b");
	expect_no_mismatch(&e);
	env_stop(&e);
}

Test(snapshot_take, a_bad_name_or_a_gone_domain_fails_and_the_guest_runs, .timeout = 120)
{
	struct snap_take_report rep;
	struct env e = {0};
	struct snap_info *l;
	size_t n;

	env_start(&e, 64, "workload=verify ws=4M rate=1M", "verify: sweep");
	cr_assert_eq(take(&e, "a/b", true, &rep), -EINVAL);
	expect_running(&e, "after a bad name");
	cr_assert_eq(snap_take(e.h, e.id + 100, e.r, uuid, &(struct snap_take_opts){.name = "x"},
			       &rep, e.err, sizeof(e.err)),
		     -ENOENT);
	cr_assert_eq(snap_list(e.r, uuid, &l, &n), 0);
	cr_assert_eq(n, 0, "nothing was left behind");
	free(l);
	/* Cancelled in pre-copy: nothing is kept, the guest runs on. */
	{
		static volatile int cancel = 1;
		struct snap_take_opts o = {.name = "c", .cancel = &cancel, .chain = e.c};

		cr_assert_eq(snap_take(e.h, e.id, e.r, uuid, &o, &rep, e.err, sizeof(e.err)),
			     -ECANCELED, "%s", e.err);
	}
	expect_running(&e, "after a cancel");
	cr_assert_eq(snap_list(e.r, uuid, &l, &n), 0);
	cr_assert_eq(n, 0, "the cancelled snapshot is gone");
	free(l);
	cr_assert_eq(take(&e, "d", false, &rep), 0, "%s", e.err);
	cr_assert_not(rep.incremental);
	expect_running(&e, "after d");
	/* An incremental one failing after the chain's consumer was spent:
	 * the guest runs, the next is full again. */
	{
		static volatile int cancel = 1;
		struct snap_take_opts o = {.name = "e", .cancel = &cancel, .chain = e.c};

		cr_assert_eq(snap_take(e.h, e.id, e.r, uuid, &o, &rep, e.err, sizeof(e.err)),
			     -ECANCELED, "%s", e.err);
		cr_assert(rep.incremental, "it was to be incremental from d");
	}
	expect_running(&e, "after a cancelled incremental one");
	cr_assert_eq(take(&e, "f", true, &rep), 0, "%s", e.err);
	cr_assert_not(rep.incremental, "the chain's consumer was spent by e");
	expect_guest(&e, "f");
	resume(&e, "f");
	expect_no_mismatch(&e);
	env_stop(&e);
}

/*
 * Another log-dirty consumer comes and goes between two snapshots (a live
 * migration's send that the domain survives, as a failed migration or a
 * checkpoint save): the tracker is shared, so the chain goes on
 * incrementally, and exactly.
 */
Test(snapshot_take, a_chain_goes_on_through_a_migration, .timeout = 120)
{
	struct mig_live_opts mo = {.config_json = "{}"};
	struct snap_take_report rep;
	struct env e = {0};
	struct mig_report mr;
	struct strm_io *io;

	env_start(&e, 64, "workload=verify ws=4M rate=2M", "verify: sweep");
	cr_assert_eq(take(&e, "a", false, &rep), 0, "%s", e.err);
	usleep(200 * 1000);
	cr_assert_eq(strm_io_mem_writer(&io), 0);
	cr_assert_eq(mig_live_send(e.h, e.id, io, &mo, &mr, e.err, sizeof(e.err)), 0, "%s", e.err);
	strm_io_close(io);
	cr_assert_eq(hyp_domain_op_unpause(e.h, e.id), 0);
	expect_running(&e, "after the migration's send");
	usleep(200 * 1000);
	cr_assert_eq(take(&e, "b", true, &rep), 0, "%s", e.err);
	cr_assert(rep.incremental, "the chain broke");
	cr_assert_str_eq(rep.parent, "a");
	expect_guest(&e, "b");
	resume(&e, "b");
	expect_no_mismatch(&e);
	env_stop(&e);
}

/* A domain destroyed while a chain holds its log-dirty consumer and a
 * reference: the next snapshot finds no domain, the chain still frees. */
Test(snapshot_take, a_chain_outlives_its_domain, .timeout = 120)
{
	struct snap_take_report rep;
	struct env e = {0};

	env_start(&e, 64, "workload=verify ws=4M rate=1M", "verify: sweep");
	cr_assert_eq(take(&e, "a", false, &rep), 0, "%s", e.err);
	hyp_domain_put(e.d);
	e.d = NULL;
	cr_assert_eq(hyp_domain_destroy(e.h, e.id), 0);
	cr_assert_eq(take(&e, "b", false, &rep), -ENOENT);
	cr_assert(strstr(e.err, "no domain"), "%s", e.err);
	snap_chain_free(e.c);
	e.c = NULL;
	cr_assert(find(&e, "a").complete);
	env_stop(&e);
}

/*
 * A guest dirtying 128 MiB at 200 MiB/s: a full snapshot then two
 * incremental ones, each pausing it briefly (1 s: loose, the machine is
 * shared) and leaving it running. bench-snapshot prints the 1 GiB
 * figures (idle, 50 and 200 MiB/s) against their targets.
 */
Test(snapshot_take, a_dirtying_guest_is_paused_briefly, .timeout = 120)
{
	struct snap_take_report rep;
	struct env e = {0};
	char name[16];

	env_start(&e, 256, "workload=dirty ws=128M rate=200M data=mix", "workload:");
	usleep(1000 * 1000); /* the working set written whole */
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		cr_assert_eq(take(&e, name, false, &rep), 0, "%s", e.err);
		print_rep("200MiB/s", name, &rep);
		expect_running(&e, name);
		cr_assert_eq(rep.incremental, i > 0);
		cr_assert_lt(rep.pause_s, 1.0, "%s: a pause of %.1f ms", name, rep.pause_s * 1e3);
		usleep(300 * 1000);
	}
	env_stop(&e);
}

/*
 * The incremental case: a guest that changed 64 MiB since its
 * last snapshot (verify pages: none zero, none alike) and then held still
 * (paused by the toolstack) writes at most 70 MiB, and the user's pause
 * stays. bench-snapshot prints the 1 GiB guest's time against the 0.3 s
 * target.
 */
Test(snapshot_take, a_paused_guest_that_changed_64m_writes_at_most_70m, .timeout = 120)
{
	struct snap_take_report full, rep;
	struct env e = {0};

	env_start(&e, 256, "workload=verify ws=64M rate=64M", "verify: sweep");
	usleep(1500 * 1000); /* the working set written whole */
	cr_assert_eq(take(&e, "full", false, &full), 0, "%s", e.err);
	print_rep("changed 64MiB", "full", &full);
	usleep(1200 * 1000); /* all of it written again */
	cr_assert_eq(hyp_domain_pause(e.h, e.id), 0);
	cr_assert_eq(take(&e, "inc", false, &rep), 0, "%s", e.err);
	print_rep("changed 64MiB", "inc", &rep);
	cr_assert_eq(info(&e).pause_count, 1, "the user's pause stays");
	cr_assert_eq(info(&e).op_pause_count, 0);
	cr_assert(rep.incremental);
	cr_assert_geq(rep.stored, 15 * 1024, "the working set changed: %llu pages stored",
		      (unsigned long long)rep.stored);
	cr_assert_leq(rep.bytes, 70ull << 20, "%.1f MiB written", (double)rep.bytes / (1 << 20));
	cr_assert_eq(hyp_domain_unpause(e.h, e.id), 0);
	expect_running(&e, "after inc");
	env_stop(&e);
}
