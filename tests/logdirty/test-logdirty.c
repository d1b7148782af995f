// SPDX-License-Identifier: MIT
/*
 * Log-dirty against real domains, per backend (kvm-bitmap, kvm-ring, wp):
 * every working-set page whose write generation (kept by the guest's own
 * workload in guest memory) changed between two peeks is in the second
 * peek's bitmap; an idle guest dirties only a handful of pages, none in
 * the workload arena beyond its state page; ferryd's own writes show up.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/bitmap.h"
#include "common/compiler.h"
#include "guests/workload.h"
#include "harness.h"
#include "abi/guest.h"
#include "hyp/gmem.h"
#include "logdirty/logdirty.h"

struct ld_case {
	const char *backend;  /* hyp exec backend */
	const char *logdirty; /* domain config logdirty */
	const char *expect;   /* ld backend chosen */
};

static const struct ld_case cases[] = {
	{ "kvm", "bitmap", "kvm-bitmap" },
	{ "kvm", "ring", "kvm-ring" },
	{ "soft", "", "wp" },
};

/* Parameters are indexes into cases[]: Criterion runs each test in a new
 * process, where pointers into the parent's data would not be valid. */
static int case_ids[] = { 0, 1, 2 };

/* One running domain with log-dirty on and the guest's workload attached. */
struct ld_env {
	struct hyp *h;
	uint32_t id;
	struct hyp_domain *d;
	struct hyp_gmem gm;
	struct ld *ld;
	struct wl_ctx wl;
	uint64_t *bm;
	uint64_t nwords;
};

static uint64_t fake_now(void *opaque) { return 0; }
static void fake_console(void *opaque, const char *s, size_t len) {}
static void fake_block(void *opaque, uint64_t deadline) {}
static void fake_shutdown(void *opaque, unsigned reason) {}
static const struct wl_platform fake_plat = {
	.now_ns = fake_now,
	.console = fake_console,
	.block_until = fake_block,
	.shutdown = fake_shutdown,
};

/* Creates the domain running cmdline, pauses it, enables log-dirty and
 * discards the first peek. The domain is left paused. */
static void env_start(struct ld_env *e, const struct ld_case *c, uint64_t mem_mb,
		      const char *cmdline)
{
	struct hyp_dom_config cfg = harness_cfg("ld", mem_mb, cmdline);
	uint64_t n = 0;

	memset(e, 0, sizeof(*e));
	harness_need_backend(c->backend);
	e->h = harness_hyp(c->backend, 512);
	snprintf(cfg.backend, sizeof(cfg.backend), "%s", c->backend);
	snprintf(cfg.logdirty, sizeof(cfg.logdirty), "%s", c->logdirty);
	cr_assert_eq(hyp_domain_create(e->h, &cfg, false, &e->id), 0);
	cr_assert(harness_wait_console(e->h, e->id, "workload:", 1, 20),
		  "workload did not start; console:\n%s", harness_console(e->h, e->id));
	cr_assert_eq(hyp_domain_get(e->h, e->id, &e->d), 0);
	hyp_domain_gmem(e->d, &e->gm);
	e->nwords = BITMAP_WORDS(e->gm.npages);
	e->bm = calloc(e->nwords, sizeof(uint64_t));
	cr_assert_not_null(e->bm);

	cr_assert_eq(hyp_domain_pause(e->h, e->id), 0);
	cr_assert_eq(ld_enable(e->d, &e->ld), 0);
	cr_assert_str_eq(ld_backend_name(e->ld), c->expect);
	cr_assert_eq(ld_peek_clean(e->ld, e->bm, e->gm.npages, &n), 0);
	memset(e->bm, 0, e->nwords * 8);
	cr_assert_eq(wl_attach(&e->wl, &fake_plat, (uintptr_t)e->gm.hva, e->gm.size, ""),
		     0, "no workload state in guest memory");
}

static void env_stop(struct ld_env *e)
{
	ld_disable(e->ld);
	hyp_domain_put(e->d);
	cr_expect_eq(hyp_domain_destroy(e->h, e->id), 0);
	hyp_destroy(e->h);
	free(e->bm);
}

static uint32_t *gens_snapshot(struct ld_env *e)
{
	uint64_t n = wl_ws_pages(&e->wl);
	uint32_t *g = malloc(n * sizeof(*g));

	cr_assert_not_null(g);
	for (uint64_t i = 0; i < n; i++)
		g[i] = wl_page_gen(&e->wl, i);
	return g;
}

/* Runs the domain for secs, then peeks; returns pages the guest wrote
 * (generation changed) and checks each is in the bitmap. */
static uint64_t run_and_check(struct ld_env *e, double secs, uint64_t *count)
{
	uint64_t ws_pfn = wl_ws_gpa(&e->wl) >> 12, np = wl_ws_pages(&e->wl);
	uint64_t changed = 0, missing = 0;
	uint32_t *g0 = gens_snapshot(e), *g1;

	cr_assert_eq(hyp_domain_unpause(e->h, e->id), 0);
	usleep((useconds_t)(secs * 1e6));
	cr_assert_eq(hyp_domain_pause(e->h, e->id), 0);
	cr_assert_eq(ld_peek_clean(e->ld, e->bm, e->gm.npages, count), 0);
	g1 = gens_snapshot(e);
	for (uint64_t i = 0; i < np; i++) {
		if (g0[i] == g1[i])
			continue;
		changed++;
		if (!bitmap_test(e->bm, ws_pfn + i) && missing++ < 5)
			cr_log_error("page %llu (pfn %#llx) written (gen %u -> %u) "
				     "but not reported", (unsigned long long)i,
				     (unsigned long long)(ws_pfn + i), g0[i], g1[i]);
	}
	cr_expect_eq(missing, 0, "%llu of %llu written pages missed",
		     (unsigned long long)missing, (unsigned long long)changed);
	cr_expect_geq(*count, changed, "count %llu < pages written %llu",
		      (unsigned long long)*count, (unsigned long long)changed);
	cr_expect_eq(bitmap_weight(e->bm, e->gm.npages), *count);
	free(g0);
	free(g1);
	return changed;
}


ParameterizedTestParameters(logdirty, guest_writes_are_reported)
{
	return cr_make_param_array(int, case_ids, ARRAY_SIZE(case_ids));
}

static void dirty_test(const struct ld_case *c, const char *pattern)
{
	struct ld_env e;
	char cmd[128];
	uint64_t count = 0, changed;
	struct ld_stats st;

	snprintf(cmd, sizeof(cmd), "workload=dirty ws=16M rate=8M pattern=%s", pattern);
	env_start(&e, c, 64, cmd);
	changed = run_and_check(&e, 1.0, &count);
	/* 8 MiB/s is 2048 pages/s; allow for a slow start and PVM's faults. */
	cr_expect_gt(changed, 200, "the guest wrote only %llu pages in 1 s",
		     (unsigned long long)changed);
	/* A second round: only what was written since the first peek. */
	memset(e.bm, 0, e.nwords * 8);
	changed = run_and_check(&e, 0.5, &count);
	cr_expect_gt(changed, 100);
	ld_stats(e.ld, &st);
	cr_expect_eq(st.peeks, 3);
	cr_expect_gt(st.total_pages, 300);
	cr_log_info("%s/%s: round 2 wrote %llu pages, reported %llu\n", c->expect, pattern,
		    (unsigned long long)changed, (unsigned long long)count);
	env_stop(&e);
}

ParameterizedTest(int *ci, logdirty, guest_writes_are_reported,
		  .timeout = 120)
{
	dirty_test(&cases[*ci], "random");
}

ParameterizedTestParameters(logdirty, guest_writes_are_reported_seq)
{
	return cr_make_param_array(int, case_ids, ARRAY_SIZE(case_ids));
}

ParameterizedTest(int *ci, logdirty, guest_writes_are_reported_seq,
		  .timeout = 120)
{
	dirty_test(&cases[*ci], "seq");
}

ParameterizedTestParameters(logdirty, idle_guest_is_quiet)
{
	return cr_make_param_array(int, case_ids, ARRAY_SIZE(case_ids));
}

/* An idle guest dirties a handful of pages (stack, console ring, the
 * workload's state page), none in the working set or its generation table. */
ParameterizedTest(int *ci, logdirty, idle_guest_is_quiet, .timeout = 120)
{
	const struct ld_case *c = &cases[*ci];
	struct ld_env e;
	uint64_t count = 0, arena = FERRY_ARENA_GPA >> 12, end;

	env_start(&e, c, 64, "workload=idle ws=16M");
	end = (wl_ws_gpa(&e.wl) >> 12) + wl_ws_pages(&e.wl);
	run_and_check(&e, 1.0, &count);
	cr_expect_leq(count, 64, "idle guest dirtied %llu pages", (unsigned long long)count);
	for (uint64_t p = arena + 1; p < end && p < e.gm.npages; p++)
		cr_expect(!bitmap_test(e.bm, p), "idle guest dirtied arena pfn %#llx",
			  (unsigned long long)p);
	cr_log_info("%s idle: %llu pages in 1 s\n", c->expect, (unsigned long long)count);
	env_stop(&e);
}

ParameterizedTestParameters(logdirty, ferryd_writes_are_reported)
{
	return cr_make_param_array(int, case_ids, ARRAY_SIZE(case_ids));
}

/* Writes ferryd makes through hyp_gmem_write are invisible to KVM's log but
 * must be in the next peek; ld_peek reports without consuming. */
ParameterizedTest(int *ci, logdirty, ferryd_writes_are_reported,
		  .timeout = 120)
{
	const struct ld_case *c = &cases[*ci];
	struct ld_env e;
	static char buf[3 * 4096];
	uint64_t gpa, count = 0, pfn;

	env_start(&e, c, 64, "workload=idle ws=16M");
	gpa = wl_ws_gpa(&e.wl) + 4096 * 10 + 100; /* spans pages 10..13 */
	pfn = gpa >> 12;
	memset(buf, 0xab, sizeof(buf));
	cr_assert_eq(hyp_gmem_write(e.d, gpa, buf, sizeof(buf)), 0);

	cr_assert_eq(ld_peek(e.ld, e.bm, e.gm.npages, &count), 0);
	for (uint64_t p = pfn; p < pfn + 4; p++)
		cr_expect(bitmap_test(e.bm, p), "peek: pfn %#llx missing",
			  (unsigned long long)p);
	/* The paused guest writes nothing, but ferryd may (wp sees all
	 * writes through the mapping, e.g. the soft backend's own state). */
	cr_expect_geq(count, 4);
	cr_expect_leq(count, 16, "count %llu", (unsigned long long)count);
	for (uint64_t p = 0; p < e.gm.npages; p++)
		if (bitmap_test(e.bm, p) && (p < pfn || p >= pfn + 4))
			cr_log_info("%s: pfn %#llx also dirty\n", c->expect,
				    (unsigned long long)p);

	memset(e.bm, 0, e.nwords * 8);
	cr_assert_eq(ld_peek_clean(e.ld, e.bm, e.gm.npages, &count), 0);
	for (uint64_t p = pfn; p < pfn + 4; p++)
		cr_expect(bitmap_test(e.bm, p), "clean: pfn %#llx missing",
			  (unsigned long long)p);
	cr_expect_geq(count, 4, "count %llu", (unsigned long long)count);
	cr_expect_leq(count, 16, "count %llu", (unsigned long long)count);

	memset(e.bm, 0, e.nwords * 8);
	cr_assert_eq(ld_peek_clean(e.ld, e.bm, e.gm.npages, &count), 0);
	cr_expect_eq(count, 0, "cleaned log reported %llu", (unsigned long long)count);
	env_stop(&e);
}

/* A ring smaller than what the guest dirties between peeks: the vCPU exits
 * with RING_FULL, the hook harvests, and nothing is lost. */
Test(logdirty, ring_full_loses_nothing, .timeout = 120)
{
	struct ld_env e;
	struct ld_stats st;
	uint64_t count = 0, changed;

	env_start(&e, &cases[1], 128, "workload=dirty ws=64M rate=512M pattern=seq");
	changed = run_and_check(&e, 1.5, &count);
	ld_stats(e.ld, &st);
	cr_log_info("kvm-ring: %llu pages written, %llu reported, %llu ring-full harvests\n",
		    (unsigned long long)changed, (unsigned long long)count,
		    (unsigned long long)st.ring_full_events);
	cr_expect_gt(st.ring_full_events, 0, "no RING_FULL exit (%llu pages written)",
		     (unsigned long long)changed);
	env_stop(&e);
}

/* Bitmaps too small for the domain: -ERANGE, and the part that fits is filled. */
Test(logdirty, short_bitmap_is_an_error, .timeout = 60)
{
	struct ld_env e;
	uint64_t count = 0;

	env_start(&e, &cases[2], 64, "workload=idle ws=16M");
	cr_assert_eq(hyp_gmem_write(e.d, 0x10000, "x", 1), 0);
	cr_assert_eq(hyp_gmem_write(e.d, e.gm.size - 1, "x", 1), 0);
	cr_expect_eq(ld_peek_clean(e.ld, e.bm, 64, &count), -ERANGE);
	cr_expect(bitmap_test(e.bm, 0x10));
	cr_expect_geq(count, 2);
	env_stop(&e);
}

/* ---- several consumers of one domain's tracker ------------------------- */

/* Harvests ld into a fresh bitmap and checks it holds exactly pfns[0..n). */
static void expect_exactly(struct ld_env *e, struct ld *ld, const char *who,
			   const uint64_t *pfns, unsigned n)
{
	uint64_t count = 0;

	memset(e->bm, 0, e->nwords * 8);
	cr_assert_eq(ld_peek_clean(ld, e->bm, e->gm.npages, &count), 0);
	for (unsigned i = 0; i < n; i++)
		cr_expect(bitmap_test(e->bm, pfns[i]), "%s: pfn %#llx not reported", who,
			  (unsigned long long)pfns[i]);
	cr_expect_eq(count, n, "%s: %llu pages reported, %u expected", who,
		     (unsigned long long)count, n);
}

/* A write through the guest mapping, as a vCPU of the soft backend makes. */
static void touch(struct ld_env *e, uint64_t pfn)
{
	e->gm.hva[pfn << 12] ^= 1;
}

/* Two consumers (a migration and a snapshot schedule) harvesting at
 * different times each see every page dirtied since their own last
 * harvest, ferryd's writes too; tracking stays on until the last leaves. */
Test(logdirty, consumers_each_see_what_changed_since_they_looked, .timeout = 60)
{
	struct ld_env e;
	struct ld *snap, *again;
	uint64_t top;

	env_start(&e, &cases[2], 64, "workload=idle ws=16M");
	top = e.gm.npages - 64; /* above the idle guest's arena */
	touch(&e, top + 1);
	touch(&e, top + 2);
	cr_assert_eq(ld_enable(e.d, &snap), 0, "a second consumer of the same domain");
	cr_expect_str_eq(ld_backend_name(snap), "wp");
	cr_expect_eq(ld_enable_backend(e.d, "kvm-bitmap", &again), -ENOTSUP);
	touch(&e, top + 3);
	expect_exactly(&e, e.ld, "migration", (uint64_t[]){ top + 1, top + 2, top + 3 }, 3);
	touch(&e, top + 4);
	expect_exactly(&e, snap, "snapshot", (uint64_t[]){ top + 3, top + 4 }, 2);
	expect_exactly(&e, e.ld, "migration", (uint64_t[]){ top + 4 }, 1);
	expect_exactly(&e, snap, "snapshot, nothing new", NULL, 0);

	/* ferryd's own writes, and a peek that leaves both logs as they are */
	cr_assert_eq(hyp_gmem_write(e.d, (top + 5) << 12, "x", 1), 0);
	touch(&e, top + 6);
	memset(e.bm, 0, e.nwords * 8);
	cr_assert_eq(ld_peek(snap, e.bm, e.gm.npages, NULL), 0);
	cr_expect(bitmap_test(e.bm, top + 5) && bitmap_test(e.bm, top + 6));
	expect_exactly(&e, e.ld, "migration", (uint64_t[]){ top + 5, top + 6 }, 2);
	expect_exactly(&e, snap, "snapshot", (uint64_t[]){ top + 5, top + 6 }, 2);

	/* the first leaves: tracking goes on for the other */
	ld_disable(e.ld);
	touch(&e, top + 7);
	expect_exactly(&e, snap, "snapshot alone", (uint64_t[]){ top + 7 }, 1);
	/* the last leaves: off; a new consumer starts a new tracker */
	ld_disable(snap);
	touch(&e, top + 8);
	cr_assert_eq(ld_enable(e.d, &e.ld), 0);
	expect_exactly(&e, e.ld, "after tracking restarted", NULL, 0);
	touch(&e, top + 9);
	expect_exactly(&e, e.ld, "after tracking restarted", (uint64_t[]){ top + 9 }, 1);
	env_stop(&e);
}
