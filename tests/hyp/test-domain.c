// SPDX-License-Identifier: MIT
/* Domain lifecycle, memory accounting and the built-in guest, per backend. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>

#include "common/clock.h"
#include "harness.h"
#include "hyp/gmem.h"
#include "hyp/pv.h"

/* Parameters are copied into each test process: no pointers inside. */
struct backend {
	char name[8];
};
static struct backend backends[] = { { "soft" }, { "kvm" } };

ParameterizedTestParameters(domain, verify_runs_clean)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/* The built-in guest boots and verify sweeps its memory without a mismatch. */
ParameterizedTest(struct backend *backend, domain, verify_runs_clean, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct hyp *h = harness_hyp(backend->name, 256);
	struct hyp_dom_config c = harness_cfg("v", 64, "workload=verify ws=8M rate=8M");
	uint32_t id;

	cr_assert_eq(hyp_domain_create(h, &c, false, &id), 0);
	cr_assert(harness_wait_console(h, id, "verify: sweep", 2, 20),
		  "no three verify sweeps; console:\n%s", harness_console(h, id));
	cr_expect(strstr(harness_console(h, id), "ferry-guest: booted"),
		  "no boot line; console:\n%s", harness_console(h, id));
	cr_expect_null(strstr(harness_console(h, id), "mismatches=1"));
	cr_expect(strstr(harness_console(h, id), "mismatches=0"));
	cr_expect_null(strstr(harness_console(h, id), "verify: mismatch"));
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
	hyp_destroy(h);
}

ParameterizedTestParameters(domain, lifecycle)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/* Ids grow and are never reused, names are unique, pause parks the vCPUs,
 * and destroy gives every frame back to the pool. */
ParameterizedTest(struct backend *backend, domain, lifecycle, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct hyp *h = harness_hyp(backend->name, 256);
	struct hyp_dom_config c = harness_cfg("a", 64, "workload=idle");
	struct hyp_info before, during, after;
	struct hyp_dom_info di;
	uint32_t a, b, a2;

	hyp_get_info(h, &before);
	cr_assert_eq(hyp_domain_create(h, &c, false, &a), 0);
	cr_expect_eq(a, 1);
	cr_expect_eq(hyp_domain_create(h, &c, false, &b), -EEXIST, "duplicate name accepted");
	snprintf(c.name, sizeof(c.name), "b");
	cr_assert_eq(hyp_domain_create(h, &c, true, &b), 0);
	cr_expect_eq(b, 2);
	hyp_get_info(h, &during);
	cr_expect_eq(before.free_bytes - during.free_bytes, 128ULL << 20);

	cr_assert_eq(hyp_domain_info(h, b, &di), 0);
	cr_expect_eq(di.state, HYP_DOM_PAUSED, "created paused, state %d", di.state);
	cr_assert_eq(hyp_domain_pause(h, a), 0);
	cr_assert_eq(hyp_domain_info(h, a, &di), 0);
	cr_expect_eq(di.state, HYP_DOM_PAUSED);
	cr_assert_eq(hyp_domain_unpause(h, a), 0);
	cr_assert_eq(hyp_domain_lookup(h, "b", &b), 0);
	cr_expect_eq(b, 2);
	cr_expect_eq(hyp_domain_lookup(h, "nope", &b), -ENOENT);

	cr_assert_eq(hyp_domain_destroy(h, a), 0);
	cr_expect_eq(hyp_domain_destroy(h, a), -ENOENT);
	snprintf(c.name, sizeof(c.name), "a");
	cr_assert_eq(hyp_domain_create(h, &c, false, &a2), 0);
	cr_expect_eq(a2, 3, "domid reused: %u", a2);
	cr_assert_eq(hyp_domain_destroy(h, a2), 0);
	cr_assert_eq(hyp_domain_destroy(h, 2), 0);
	hyp_get_info(h, &after);
	cr_expect_eq(after.free_bytes, before.free_bytes, "frames leaked");
	hyp_destroy(h);
}

/* hyp links no guest code: a soft domain without hyp_params.soft_guest is
 * refused at create, and leaves nothing behind. */
Test(domain, soft_without_guest_refused)
{
	struct hyp_params p = { .backend = "soft", .memory_bytes = 64ULL << 20 };
	struct hyp_dom_config c = harness_cfg("noguest", 16, "workload=idle");
	struct hyp_info info;
	struct hyp *h = NULL;
	uint32_t id;

	cr_assert_eq(hyp_create(&p, &h), 0);
	cr_expect_eq(hyp_domain_create(h, &c, false, &id), -EINVAL);
	hyp_get_info(h, &info);
	cr_expect_eq(info.free_bytes, 64ULL << 20);
	cr_expect_eq(info.ndomains, 0);
	hyp_destroy(h);
}

/* The PV rings' backends are handed in (hyp_params.pv_backend, devices/):
 * without them a domain gets no ports for the rings, and its guest writes
 * its console through console_io, which still reaches the domain's. */
Test(domain, no_pv_backend_no_rings)
{
	struct hyp_params p = { .backend = "soft", .memory_bytes = 64ULL << 20,
				.guest_elf = FERRY_GUEST_ELF, .soft_guest = &wl_soft_guest_ops };
	struct hyp_dom_config c = harness_cfg("nopv", 16, "workload=idle");
	struct hyp *h = NULL;
	uint32_t id, con = 7, xs = 7;

	cr_assert_eq(hyp_create(&p, &h), 0);
	cr_assert_eq(hyp_domain_create(h, &c, false, &id), 0);
	cr_expect_eq(hyp_pv_ports(h, id, &con, &xs), 0);
	cr_expect_eq(con, 0, "console port %u", con);
	cr_expect_eq(xs, 0, "xenstore port %u", xs);
	cr_expect(harness_wait_console(h, id, "workload: idle", 1, 20), "console:\n%s",
		  harness_console(h, id));
	hyp_destroy(h);
}

/* A fake guest through the same seam: its slices run on vCPU 0 with the
 * platform hyp hands it, and its console output reaches the domain's. */
struct fake_guest {
	const struct hyp_soft_platform *plat;
	uint64_t mem_size;
	unsigned slices;
};

static int fake_attach(void *ctx, const struct hyp_soft_platform *plat,
		       hyp_soft_hypercall_fn hypercall, uintptr_t mem_base, uint64_t mem_size,
		       const char *cmdline)
{
	struct fake_guest *g = ctx;

	g->plat = plat;
	g->mem_size = mem_size;
	return strcmp(cmdline, "fake") ? -EINVAL : 0;
}

static void fake_run_slice(void *ctx)
{
	struct fake_guest *g = ctx;
	char line[64];
	int n = snprintf(line, sizeof(line), "fake: slice %u of %llu MiB\n", ++g->slices,
			 (unsigned long long)(g->mem_size >> 20));

	g->plat->console(g->plat->opaque, line, (size_t)n);
	g->plat->block_until(g->plat->opaque, g->plat->now_ns(g->plat->opaque) + 1000000);
}

static const struct hyp_soft_guest_ops fake_guest_ops = {
	.ctx_size = sizeof(struct fake_guest),
	.attach = fake_attach,
	.run_slice = fake_run_slice,
};

Test(domain, soft_runs_the_guest_it_is_given, .timeout = 30)
{
	struct hyp_params p = { .backend = "soft", .memory_bytes = 64ULL << 20,
				.soft_guest = &fake_guest_ops };
	struct hyp_dom_config c = harness_cfg("fake", 16, "fake");
	struct hyp *h = NULL;
	uint32_t id;

	cr_assert_eq(hyp_create(&p, &h), 0);
	cr_assert_eq(hyp_domain_create(h, &c, false, &id), 0);
	cr_assert(harness_wait_console(h, id, "fake: slice 3 of 16 MiB", 1, 10),
		  "no third slice; console:\n%s", harness_console(h, id));
	cr_expect_null(strstr(harness_console(h, id), "workload"));
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
	hyp_destroy(h);
}

Test(domain, memory_beyond_pool_refused)
{
	struct hyp *h = harness_hyp("soft", 64);
	struct hyp_dom_config c = harness_cfg("big", 128, "workload=idle");
	struct hyp_info info;
	uint32_t id;

	cr_expect_eq(hyp_domain_create(h, &c, false, &id), -ENOMEM);
	hyp_get_info(h, &info);
	cr_expect_eq(info.free_bytes, 64ULL << 20);
	cr_expect_eq(info.ndomains, 0);
	hyp_destroy(h);
}

ParameterizedTestParameters(domain, guest_shutdown)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/* xl shutdown: the guest sees the request, shuts itself down, and the
 * default on_poweroff (destroy) removes it. */
ParameterizedTest(struct backend *backend, domain, guest_shutdown, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct hyp *h = harness_hyp(backend->name, 256);
	struct hyp_dom_config c = harness_cfg("s", 32, "workload=idle");
	struct hyp_dom_info di;
	uint32_t id;
	double end;

	cr_assert_eq(hyp_domain_create(h, &c, false, &id), 0);
	cr_assert(harness_wait_console(h, id, "workload: idle", 1, 20), "console:\n%s",
		  harness_console(h, id));
	cr_assert_eq(hyp_domain_shutdown(h, id, false), 0);
	end = ferry_now_s() + 10;
	while (hyp_domain_info(h, id, &di) == 0 && ferry_now_s() < end)
		usleep(20000);
	cr_expect_eq(hyp_domain_info(h, id, &di), -ENOENT, "domain still there, state %d",
		     di.state);
	hyp_destroy(h);
}

ParameterizedTestParameters(domain, crash_preserved)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/* A guest that cannot run its workload crashes; on_crash=preserve keeps it. */
ParameterizedTest(struct backend *backend, domain, crash_preserved, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct hyp *h = harness_hyp(backend->name, 256);
	struct hyp_dom_config c = harness_cfg("c", 32, "workload=verify ws=1G");
	struct hyp_dom_info di = { 0 };
	uint32_t id;
	double end;

	c.on_crash = HYP_ON_PRESERVE;
	cr_assert_eq(hyp_domain_create(h, &c, false, &id), 0);
	end = ferry_now_s() + 20;
	while (hyp_domain_info(h, id, &di) == 0 && di.state != HYP_DOM_CRASHED &&
	       ferry_now_s() < end)
		usleep(20000);
	cr_expect_eq(di.state, HYP_DOM_CRASHED, "state %d; console:\n%s", di.state,
		     harness_console(h, id));
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
	hyp_destroy(h);
}

/* ferryd's own writes into guest memory are marked dirty. */
Test(domain, host_writes_marked)
{
	struct hyp *h = harness_hyp("soft", 64);
	struct hyp_dom_config c = harness_cfg("w", 16, "workload=idle");
	struct hyp_domain *d;
	uint64_t bitmap[(16 << 20) / 4096 / 64] = { 0 };
	uint32_t id;

	cr_assert_eq(hyp_domain_create(h, &c, true, &id), 0);
	cr_assert_eq(hyp_domain_get(h, id, &d), 0);
	hyp_gmem_take_host_dirty(d, bitmap);
	memset(bitmap, 0, sizeof(bitmap));
	cr_assert_eq(hyp_gmem_write(d, 0x5000 - 2, "abcd", 4), 0);
	cr_expect_eq(hyp_gmem_take_host_dirty(d, bitmap), 2);
	cr_expect_eq(bitmap[0], 0x30);
	cr_expect_eq(hyp_gmem_write(d, (16 << 20) - 2, "abcd", 4), -EFAULT);
	hyp_domain_put(d);
	hyp_destroy(h);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Destroying a soft domain does not wait for its workload's slice: right
 * after boot the workload waits up to 0.5 s for xenstore (none here), and
 * destroy used to wait that out (bench-lifecycle: 500 ms for 1 GiB). */
Test(domain, soft_destroy_is_prompt, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 1088);
	struct hyp_dom_config c = harness_cfg("d", 1024, "workload=idle");

	double t[3];

	for (int i = 0; i < 3; i++) {
		uint32_t id;

		cr_assert_eq(hyp_domain_create(h, &c, false, &id), 0);
		cr_assert(harness_wait_console(h, id, "ferry-guest: booted", 1, 20),
			  "no boot line; console:\n%s", harness_console(h, id));
		t[i] = ferry_now_s();
		cr_assert_eq(hyp_domain_destroy(h, id), 0);
		t[i] = ferry_now_s() - t[i];
		cr_log_info("destroying a 1 GiB soft domain took %.1f ms", t[i] * 1e3);
	}
	/* The median: the bug waited out 500 ms every time; one slow destroy
	 * is a shared host's neighbour. */
	qsort(t, 3, sizeof(t[0]), cmp_double);
	cr_expect_lt(t[1], 0.1,
		     "destroying a 1 GiB soft domain took %.0f ms (median of 3), want < 100 ms",
		     t[1] * 1e3);
	hyp_destroy(h);
}

struct pause_case {
	char cmdline[64];
	char ready[32]; /* past the boot-time xenstore probe (none here) */
};
static struct pause_case pause_cases[] = {
	{ "workload=dirty ws=64M rate=64G", "dirty: rate=" },
	{ "workload=verify ws=64M rate=1G", "verify: sweep" },
	{ "workload=idle ws=64M fill=64M", "idle: heartbeat" },
	{ "workload=spin", "spin: count=" },
};

ParameterizedTestParameters(domain, soft_pause_is_prompt)
{
	return cr_make_param_array(struct pause_case, pause_cases, 4);
}

/*
 * A soft domain pauses within about 100 us of the request, whatever its
 * workload is doing, not when its slice (up to 10 ms) ends: snapshots and
 * HA epochs pause many times a second. 200 pauses, each after the
 * workload has run ~2 ms: p50 < 500 us and p90 < 5 ms (in one of two
 * runs). Waiting for the slice's end puts the median at ~5 ms; a loaded
 * host adds the wait for a CPU (p90 1-2 ms seen with two builds running,
 * 1-4 ms tails even for a workload that only blocks), which is not the
 * workload's. verify still finds every page as written across them.
 * Measured once the boot-time xenstore probe is over: a pause during a
 * xenstore request waits for its reply (here, with no xenstore, its 0.5 s
 * timeout).
 */
ParameterizedTest(struct pause_case *pc, domain, soft_pause_is_prompt, .timeout = 120)
{
	enum { N = 200 };
	struct hyp *h = harness_hyp("soft", 256);
	struct hyp_dom_config c = harness_cfg("p", 128, pc->cmdline);
	static double lat[N];
	uint32_t id;

	cr_assert_eq(hyp_domain_create(h, &c, false, &id), 0);
	cr_assert(harness_wait_console(h, id, pc->ready, 1, 60), "no '%s'; console:\n%s", pc->ready,
		  harness_console(h, id));
	/* A second run of N if the first's p90 misses: a broken pause misses
	 * in every run, a neighbour's burst in one. */
	for (int run = 0; run < 2; run++) {
		for (int i = 0; i < N; i++) {
			struct timespec ts = {0, 2000000};
			double t;

			nanosleep(&ts, NULL);
			t = ferry_now_s();
			cr_assert_eq(hyp_domain_pause(h, id), 0);
			lat[i] = ferry_now_s() - t;
			cr_assert_eq(hyp_domain_unpause(h, id), 0);
		}
		qsort(lat, N, sizeof(lat[0]), cmp_double);
		fprintf(stderr,
			"pause latency '%s' over %d pauses: p50 %.0f us, p90 %.0f us, p99 %.0f "
			"us, max %.0f us\n",
			pc->cmdline, N, lat[N / 2] * 1e6, lat[N * 9 / 10] * 1e6,
			lat[N * 99 / 100] * 1e6, lat[N - 1] * 1e6);
		if (lat[N / 2] < 500e-6 && lat[N * 9 / 10] < 5e-3)
			break;
	}
	cr_expect_lt(lat[N / 2], 500e-6, "p50 pause latency %.0f us, want < 500 us",
		     lat[N / 2] * 1e6);
	cr_expect_lt(lat[N * 9 / 10], 5e-3, "p90 pause latency %.0f us, want < 5 ms",
		     lat[N * 9 / 10] * 1e6);
	if (strstr(pc->cmdline, "verify")) {
		cr_assert(harness_wait_console(h, id, "verify: sweep", 3, 30),
			  "no three verify sweeps; console:\n%s", harness_console(h, id));
		cr_expect_null(strstr(harness_console(h, id), "verify: mismatch"), "console:\n%s",
			       harness_console(h, id));
		cr_expect_null(strstr(harness_console(h, id), "mismatches=1"));
	}
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
	hyp_destroy(h);
}

/* ev.run's calls, as a run log records them. */
static struct run_rec {
	uint32_t domid;
	bool running;
	uint64_t ns;
} runs[16];
static unsigned nruns;
static pthread_mutex_t runs_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_run(void *opaque, uint32_t domid, bool running, uint64_t ns)
{
	(void)opaque;
	pthread_mutex_lock(&runs_lock);
	if (nruns < 16)
		runs[nruns++] = (struct run_rec){domid, running, ns};
	pthread_mutex_unlock(&runs_lock);
}

/* Calls fn(h, id) and checks that it said exactly one start or stop, stamped
 * inside the call: an HA pair's no-overlap proof rests on these times. */
static void expect_edge(struct hyp *h, uint32_t id, int (*fn)(struct hyp *, uint32_t), bool running,
			const char *what)
{
	unsigned before = nruns;
	uint64_t t0 = ferry_now_ns(), t1;

	cr_assert_eq(fn(h, id), 0, "%s", what);
	t1 = ferry_now_ns();
	cr_assert_eq(nruns, before + 1, "%s: %u calls of ev.run, want 1", what, nruns - before);
	cr_expect_eq(runs[before].domid, id, "%s", what);
	cr_expect_eq(runs[before].running, running, "%s: said %s", what,
		     runs[before].running ? "running" : "stopped");
	cr_expect(runs[before].ns >= t0 && runs[before].ns <= t1, "%s: stamped outside the call",
		  what);
}

static int fence(struct hyp *h, uint32_t id)
{
	return hyp_domain_set_fenced(h, id, true);
}

static int unfence(struct hyp *h, uint32_t id)
{
	return hyp_domain_set_fenced(h, id, false);
}

static int unpause_twice(struct hyp *h, uint32_t id)
{
	return hyp_domain_unpause(h, id) ?: hyp_domain_unpause(h, id);
}

/* Every start and stop of a domain's vCPUs is said once, when it happens:
 * pause, unpause, the fence and destroy; a second pause says nothing, and
 * a domain that never ran says nothing. */
Test(domain, run_transitions_are_said_once_when_they_happen, .timeout = 60)
{
	struct hyp_events ev = {.run = on_run};
	struct hyp *h = harness_hyp_ev("soft", 256, &ev);
	struct hyp_dom_config c = harness_cfg("r", 64, "workload=verify ws=8M rate=8M");
	uint32_t id, quiet;

	cr_assert_eq(hyp_domain_create(h, &c, true, &id), 0);
	cr_expect_eq(nruns, 0, "a domain created paused said it ran");
	expect_edge(h, id, hyp_domain_unpause, true, "the first unpause");
	cr_assert(harness_wait_console(h, id, "verify: sweep", 1, 20));
	expect_edge(h, id, hyp_domain_pause, false, "pause");
	cr_assert_eq(hyp_domain_pause(h, id), 0);
	cr_expect_eq(nruns, 2, "a second pause said something");
	expect_edge(h, id, unpause_twice, true, "unpause, twice");
	expect_edge(h, id, fence, false, "the fence");
	expect_edge(h, id, unfence, true, "the fence lifted");
	expect_edge(h, id, hyp_domain_destroy, false, "destroy of a running domain");

	snprintf(c.name, sizeof(c.name), "q");
	cr_assert_eq(hyp_domain_create(h, &c, true, &quiet), 0);
	cr_assert_eq(hyp_domain_destroy(h, quiet), 0);
	cr_expect_eq(nruns, 6, "a domain that never ran said something");
	hyp_destroy(h);
}
