// SPDX-License-Identifier: MIT
/*
 * The built-in guest's workloads, hosted: guest memory is an anonymous
 * mapping at a non-zero host address (as in ferryd's soft backend), the
 * platform is a fake whose clock only moves when the test (or the
 * workload's block_until) moves it, and struct ferry_ctl is laid down at
 * FERRY_CTL_GPA before wl_attach, as ferryd's loader does.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <lz4.h>
#include <zstd.h>

#include <abi/guest.h>
#include <guests/workload.h>

#define MiB ((uint64_t)1 << 20)
#define NS_PER_MS ((uint64_t)1000000)
#define NS_PER_S ((uint64_t)1000000000)
#define PAGE ((uint64_t)4096)

/* Host addresses the guest memory buffers are mapped at. */
#define HOST_A ((uintptr_t)64 * MiB)
#define HOST_B ((uintptr_t)1536 * MiB)

/* ---- the fake platform --------------------------------------------------- */

#define CON_MAX (4 * MiB)

static struct fake {
	uint64_t now;
	char *con;
	size_t con_len;
	unsigned shutdowns;
	unsigned reason;
	unsigned blocks;
	bool preempt; /* a pause pending at every look */
} F;

static uint64_t fake_now(void *opaque)
{
	(void)opaque;
	return F.now;
}

static void fake_console(void *opaque, const char *s, size_t len)
{
	(void)opaque;
	cr_assert_lt(F.con_len + len, CON_MAX, "console buffer full");
	memcpy(F.con + F.con_len, s, len);
	F.con_len += len;
	F.con[F.con_len] = '\0';
}

static void fake_block_until(void *opaque, uint64_t deadline)
{
	(void)opaque;
	F.blocks++;
	if (deadline > F.now)
		F.now = deadline;
}

static void fake_shutdown(void *opaque, unsigned reason)
{
	(void)opaque;
	F.shutdowns++;
	F.reason = reason;
}

static bool fake_preempted(void *opaque)
{
	(void)opaque;
	return F.preempt;
}

static const struct wl_platform plat = {
	.now_ns = fake_now,
	.console = fake_console,
	.block_until = fake_block_until,
	.shutdown = fake_shutdown,
	.preempted = fake_preempted,
	.opaque = &F,
};

/* ---- guest memory ---------------------------------------------------------- */

struct guest {
	uint8_t *mem;
	uint64_t size;
};

static struct guest *mapped[4];

/* Maps size bytes of zeroed "guest RAM" at host address at (or, if the
 * kernel will not place it there, anywhere non-zero). */
static uint8_t *map_at(uintptr_t at, uint64_t size)
{
	void *p = mmap((void *)at, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
		       -1, 0);

	if (p == MAP_FAILED)
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(p, MAP_FAILED, "mmap %" PRIu64 " bytes", size);
	cr_assert_neq((uintptr_t)p, 0);
	return p;
}

static struct ferry_ctl *ctl_of(const struct guest *g)
{
	return (struct ferry_ctl *)(g->mem + FERRY_CTL_GPA);
}

/* New guest memory with ferry_ctl in place, as ferryd's loader leaves it. */
static struct guest *guest_new(uintptr_t at, uint64_t size)
{
	struct guest *g = calloc(1, sizeof(*g));
	unsigned i;

	cr_assert_not_null(g);
	g->mem = map_at(at, size);
	g->size = size;
	ctl_of(g)->magic = FERRY_CTL_MAGIC;
	for (i = 0; i < 4 && mapped[i]; i++)
		;
	cr_assert_lt(i, 4u);
	mapped[i] = g;
	return g;
}

static void guest_free(struct guest *g)
{
	for (unsigned i = 0; i < 4; i++)
		if (mapped[i] == g)
			mapped[i] = NULL;
	munmap(g->mem, g->size);
	free(g);
}

/* The guest's memory, copied byte for byte into a new mapping elsewhere:
 * what a save and restore (or a migration) into a new process does. */
static struct guest *guest_copy(const struct guest *src, uintptr_t at)
{
	struct guest *g = guest_new(at, src->size);

	cr_assert_neq((uintptr_t)g->mem, (uintptr_t)src->mem);
	memcpy(g->mem, src->mem, src->size);
	return g;
}

static void setup(void)
{
	memset(&F, 0, sizeof(F));
	F.con = calloc(1, CON_MAX);
	cr_assert_not_null(F.con);
	F.now = 5 * NS_PER_S; /* guest time does not start at 0 */
}

static void teardown(void)
{
	for (unsigned i = 0; i < 4; i++)
		if (mapped[i])
			guest_free(mapped[i]);
	free(F.con);
	F.con = NULL;
}

TestSuite(workloads, .init = setup, .fini = teardown, .timeout = 60);

static int attach(struct wl_ctx *c, const struct guest *g, const char *cmdline)
{
	return wl_attach(c, &plat, (uintptr_t)g->mem, g->size, cmdline);
}

static void attach_ok(struct wl_ctx *c, const struct guest *g, const char *cmdline)
{
	int rc = attach(c, g, cmdline);

	cr_assert_eq(rc, 0, "wl_attach('%s') = %d; console:\n%s", cmdline, rc, F.con);
}

/* Runs slices until the fake clock has moved on past now + ns, so that all
 * work due up to then is done. A slice that has nothing to do blocks
 * (moving the clock); one that worked returns and is called again. A
 * workload that never blocks would hang its vCPU. */
static void run_for(struct wl_ctx *c, uint64_t ns)
{
	uint64_t end = F.now + ns;
	unsigned still = 0;

	while (F.now <= end) {
		uint64_t before = F.now;

		wl_run_slice(c);
		if (F.now != before) {
			still = 0;
			continue;
		}
		cr_assert_lt(++still, 1000u,
			     "1000 slices in a row at t=%" PRIu64 " without blocking", F.now);
	}
}

/* ---- console helpers -------------------------------------------------------- */

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* Last line in s starting with prefix, or NULL. */
static const char *last_line(const char *s, const char *prefix)
{
	const char *last = NULL;

	for (const char *p = strstr(s, prefix); p; p = strstr(p + 1, prefix))
		if (p == s || p[-1] == '\n')
			last = p;
	return last;
}

static uint64_t sum_gens(const struct wl_ctx *c)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < wl_ws_pages(c); i++)
		n += wl_page_gen(c, i);
	return n;
}

static uint64_t *page_of(const struct guest *g, const struct wl_ctx *c, uint64_t idx)
{
	return (uint64_t *)(g->mem + wl_ws_gpa(c) + idx * PAGE);
}

/* ---- command line ------------------------------------------------------------- */

Test(workloads, defaults)
{
	struct guest *g = guest_new(HOST_A, 80 * MiB);
	struct wl_ctx c;

	attach_ok(&c, g, "workload=dirty");
	cr_expect(strstr(F.con, "workload: dirty ws=64M rate=20M pattern=seq\n"),
		  "console:\n%s", F.con);
	cr_expect_eq(wl_ws_pages(&c), 64 * MiB / PAGE);
	cr_expect_geq(wl_ws_gpa(&c), (uint64_t)FERRY_ARENA_GPA);
	cr_expect_eq(wl_ws_gpa(&c) % PAGE, 0);
	cr_expect_leq(wl_ws_gpa(&c) + wl_ws_pages(&c) * PAGE, g->size);
	guest_free(g);

	/* No command line at all: idle. */
	F.con_len = 0;
	F.con[0] = '\0';
	g = guest_new(HOST_A, 16 * MiB);
	attach_ok(&c, g, "");
	cr_expect(strstr(F.con, "workload: idle "), "console:\n%s", F.con);
	cr_expect_eq(wl_ws_pages(&c), 0);
	guest_free(g);

	F.con_len = 0;
	F.con[0] = '\0';
	g = guest_new(HOST_A, 16 * MiB);
	cr_assert_eq(wl_attach(&c, &plat, (uintptr_t)g->mem, g->size, NULL), 0);
	cr_expect(strstr(F.con, "workload: idle "), "console:\n%s", F.con);
}

struct size_case {
	const char *cmdline;
	const char *banner;
	uint64_t ws_pages;
};

Test(workloads, size_suffixes)
{
	static const struct size_case cases[] = {
		{ "workload=dirty ws=512K rate=4M", "ws=512K rate=4M ", 128 },
		{ "workload=dirty ws=512k rate=4m", "ws=512K rate=4M ", 128 },
		{ "workload=dirty ws=2M rate=4096K", "ws=2M rate=4M ", 512 },
		{ "workload=dirty ws=2097152 rate=1G", "ws=2M rate=1G ", 512 },
		{ "workload=dirty ws=1g rate=1g", "ws=1G rate=1G ", 262144 },
		{ "workload=dirty ws=1 rate=0", "ws=4K rate=0 ", 1 },
		{ "workload=dirty ws=5000 rate=3", "ws=8K rate=3 ", 2 },
		{ "workload=verify ws=8M rate=8M pattern=random",
		  "workload: verify ws=8M rate=8M pattern=random", 2048 },
		{ "console=hvc0 workload=verify root=/dev/xvda1 quiet ws=1M",
		  "workload: verify ws=1M rate=20M pattern=seq", 256 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct guest *g = guest_new(HOST_A, 1024 * MiB + 16 * MiB);
		struct wl_ctx c;

		F.con_len = 0;
		F.con[0] = '\0';
		attach_ok(&c, g, cases[i].cmdline);
		cr_expect(strstr(F.con, cases[i].banner), "'%s': console:\n%s",
			  cases[i].cmdline, F.con);
		cr_expect_eq(wl_ws_pages(&c), cases[i].ws_pages, "'%s': %" PRIu64 " pages",
			     cases[i].cmdline, wl_ws_pages(&c));
		guest_free(g);
	}
}

Test(workloads, pattern_random_is_not_sequential)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;
	uint64_t written = 0, beyond = 0, n = 2048;

	attach_ok(&c, g, "workload=dirty ws=8M rate=400K pattern=random");
	run_for(&c, NS_PER_S);
	for (uint64_t i = 0; i < n; i++) {
		if (!wl_page_gen(&c, i))
			continue;
		written++;
		if (i >= 100)
			beyond++;
	}
	cr_expect_geq(written, 80, "%" PRIu64 " pages written", written);
	cr_expect_gt(beyond, written / 2, "random writes stay at the start: %" PRIu64
		     " of %" PRIu64 " pages past index 100", beyond, written);
}

struct bad_case {
	const char *cmdline;
	const char *why;
};

Test(workloads, bad_command_lines_are_refused)
{
	static const struct bad_case cases[] = {
		{ "workload=bogus", "bad value 'bogus' for workload" },
		{ "workload=Verify", "bad value 'Verify' for workload" },
		{ "workload=", "for workload" },
		{ "workload=dirty pattern=zigzag", "bad value 'zigzag' for pattern" },
		{ "workload=dirty ws=12Q", "bad value '12Q' for ws" },
		{ "workload=dirty ws=0", "bad value '0' for ws" },
		{ "workload=dirty ws=M", "bad value 'M' for ws" },
		{ "workload=dirty ws=4MB", "bad value '4MB' for ws" },
		{ "workload=dirty rate=fast", "bad value 'fast' for rate" },
		{ "workload=dirty rate=99999999999999999999", "for rate" },
		{ "workload=dirty rate=17179869184G", "for rate" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct guest *g = guest_new(HOST_A, 16 * MiB);
		struct wl_ctx c;

		F.con_len = 0;
		F.con[0] = '\0';
		cr_expect_eq(attach(&c, g, cases[i].cmdline), -22, "'%s' accepted",
			     cases[i].cmdline);
		cr_expect(strstr(F.con, "workload: ") && strstr(F.con, cases[i].why) &&
				  F.con[F.con_len - 1] == '\n',
			  "'%s': expected a console line with \"%s\"; console:\n%s",
			  cases[i].cmdline, cases[i].why, F.con);
		cr_expect_eq(wl_ws_pages(&c), 0);
		/* Refused means not running: slices do nothing, and a later
		 * good command line starts from scratch. */
		wl_run_slice(&c);
		cr_expect_eq(F.shutdowns, 0);
		F.con_len = 0;
		F.con[0] = '\0';
		attach_ok(&c, g, "workload=dirty ws=1M");
		cr_expect(strstr(F.con, "workload: dirty ws=1M"), "console:\n%s", F.con);
		guest_free(g);
	}
}

Test(workloads, ws_larger_than_arena_is_refused)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;
	unsigned long long max_kib = 0, mib = 0;
	const char *line;
	char cmd[64];

	cr_assert_eq(attach(&c, g, "workload=verify ws=16M"), -22);
	line = strstr(F.con, "workload: ws=16M does not fit in the arena");
	cr_assert(line, "console:\n%s", F.con);
	cr_assert_eq(sscanf(strstr(line, "(max"), "(max %llu KiB with %llu MiB", &max_kib, &mib),
		     2, "console:\n%s", F.con);
	cr_expect_eq(mib, 16);
	/* 16 MiB - 4 MiB of arena, less the state page and the gen table. */
	cr_expect(max_kib > 12 * 1024 - 64 && max_kib < 12 * 1024, "max %llu KiB", max_kib);
	cr_expect_eq(wl_ws_pages(&c), 0);

	cr_expect_eq(attach(&c, g, "workload=dirty ws=1G"), -22);
	cr_expect_eq(attach(&c, g, "workload=dirty ws=16777216G"), -22);

	/* The maximum it names fits; one page more does not. */
	snprintf(cmd, sizeof(cmd), "workload=dirty ws=%lluK", max_kib + 4);
	cr_expect_eq(attach(&c, g, cmd), -22, "'%s' accepted", cmd);
	snprintf(cmd, sizeof(cmd), "workload=verify ws=%lluK rate=0", max_kib);
	attach_ok(&c, g, cmd);
	cr_expect_eq(wl_ws_pages(&c), max_kib / 4);
	cr_expect_leq(wl_ws_gpa(&c) + wl_ws_pages(&c) * PAGE, g->size);
	F.con_len = 0;
	F.con[0] = '\0';
	run_for(&c, 2 * NS_PER_S + NS_PER_MS);
	snprintf(cmd, sizeof(cmd), "verify: sweep pages=%llu mismatches=0\n", max_kib / 4);
	cr_expect(strstr(F.con, cmd), "console:\n%s", F.con);
}

/* wl_check_cmdline says what wl_attach would, without guest memory: the
 * same reasons for the same command lines, and 0 for what attaches. */
Test(workloads, check_cmdline_agrees_with_attach)
{
	static const struct bad_case cases[] = {
		{"workload=nonesuch", "bad value 'nonesuch' for workload"},
		{"workload=dirty ws=12Q", "bad value '12Q' for ws"},
		{"workload=verify ws=16M", "ws=16M does not fit in the arena"},
		{"workload=dirty ws=1G", "ws=1G does not fit in the arena"},
		{"workload=idle fill=1G", "fill=1G does not fit in the arena"},
		{"workload=pingpong role=ping", "needs role=ping|pong and peer=DOMID"},
		{"workload=pingpong role=ping peer=3 port=4", "give both port= and gref="},
		{"workload=pingpong peer=0", "bad value '0' for peer"},
		{"workload=pingpong port=4096", "bad value '4096' for port"},
		{"workload=dirty ws=1M", NULL},
		{"workload=spin ws=1G", NULL}, /* spin has no working set */
		{"workload=idle fill=1M", NULL},
		{"", NULL},
	};
	char err[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct guest *g = guest_new(HOST_A, 16 * MiB);
		const char *why = cases[i].why;
		struct wl_ctx c;
		int rc;

		err[0] = '\0';
		rc = wl_check_cmdline(cases[i].cmdline, 16 * MiB, err, sizeof(err));
		cr_expect_eq(rc, why ? -22 : 0, "'%s': %d (%s)", cases[i].cmdline, rc, err);
		cr_expect(!why || strstr(err, why), "'%s': \"%s\" lacks \"%s\"", cases[i].cmdline,
			  err, why);
		F.con_len = 0;
		F.con[0] = '\0';
		cr_expect_eq(attach(&c, g, cases[i].cmdline), rc, "'%s': attach differs",
			     cases[i].cmdline);
		cr_expect(!why || strstr(F.con, err), "'%s': console:\n%s", cases[i].cmdline,
			  F.con);
		guest_free(g);
	}
	cr_expect_eq(wl_check_cmdline("workload=idle", 4 * MiB, err, sizeof(err)), -22);
	cr_expect(strstr(err, "leave no arena"), "%s", err);
}

Test(workloads, idle_needs_no_working_set)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;

	attach_ok(&c, g, "workload=idle ws=1G");
	cr_expect(strstr(F.con, "workload: idle ws=0 "), "console:\n%s", F.con);
	cr_expect_eq(wl_ws_pages(&c), 0);
	run_for(&c, 3 * NS_PER_S);
	cr_expect(strstr(F.con, "idle: heartbeat n=1\n"), "console:\n%s", F.con);
	cr_expect(strstr(F.con, "idle: heartbeat n=3\n"), "console:\n%s", F.con);
	cr_expect_eq(count(F.con, "idle: heartbeat"), 3, "console:\n%s", F.con);
	/* One block per heartbeat, not a busy loop. */
	cr_expect_leq(F.blocks, 5);
}

/* idle fill=: an idle guest whose memory holds data (migration benchmarks). */
Test(workloads, idle_fill_writes_once_then_idles)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;
	uint64_t gpa, nonzero = 0;

	attach_ok(&c, g, "workload=idle fill=1M");
	cr_expect_eq(wl_ws_pages(&c), 256);
	run_for(&c, 2 * NS_PER_S);
	cr_expect_eq(count(F.con, "idle: filled pages=256\n"), 1, "console:\n%s", F.con);
	cr_expect(strstr(F.con, "idle: heartbeat n=1\n"), "console:\n%s", F.con);
	gpa = wl_ws_gpa(&c);
	for (uint64_t p = 0; p < 256; p++) {
		const uint64_t *w = (const uint64_t *)(g->mem + gpa + p * 4096);

		nonzero += w[1] != 0;
	}
	cr_expect_eq(nonzero, 256, "every filled page holds data");
}

/* Slices with a pause pending at every look, each ending after one batch
 * (and never blocking); the pause then takes 1 ms of guest time. */
static void run_preempted(struct wl_ctx *c, uint64_t ns)
{
	uint64_t end = F.now + ns;

	F.preempt = true;
	while (F.now <= end) {
		uint64_t before = F.now;

		wl_run_slice(c);
		if (F.now == before)
			F.now += NS_PER_MS;
	}
	F.preempt = false;
}

/* A pause pending at every look ends each slice after one batch, and so
 * after the last page: the fill is still reported (it was not, and a test
 * waiting for "filled" waited forever). */
Test(workloads, idle_fill_is_reported_when_preempted_after_the_last_page)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;

	attach_ok(&c, g, "workload=idle fill=1M");
	run_preempted(&c, 2 * NS_PER_S);
	cr_expect_eq(count(F.con, "idle: filled pages=256\n"), 1, "console:\n%s", F.con);
}

/* ---- verify ---------------------------------------------------------------------- */

/* 512 pages written in order at 32 pages/s: a written page is not rewritten
 * for 16 s, longer than any of these tests runs after corrupting it. */
#define VERIFY_CMD "workload=verify ws=2M rate=128K pattern=seq"
#define VERIFY_PAGES 512

static const char *mark(void)
{
	return F.con + F.con_len;
}

Test(workloads, verify_sweeps_clean)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;

	attach_ok(&c, g, VERIFY_CMD);
	cr_assert_eq(wl_ws_pages(&c), VERIFY_PAGES);
	run_for(&c, 2 * NS_PER_S + 100 * NS_PER_MS);
	cr_expect_eq(count(F.con, "verify: sweep pages=512 mismatches=0\n"), 1,
		     "console:\n%s", F.con);
	cr_expect_gt(sum_gens(&c), 20, "only %" PRIu64 " writes", sum_gens(&c));
	run_for(&c, 4 * NS_PER_S);
	cr_expect_eq(count(F.con, "verify: sweep pages=512 mismatches=0\n"), 3,
		     "console:\n%s", F.con);
	cr_expect_null(strstr(F.con, "mismatch pfn"), "console:\n%s", F.con);
}

/* As for idle's fill: a sweep whose last page ends a slice is reported. */
Test(workloads, verify_sweep_is_reported_when_preempted_after_the_last_page)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;

	attach_ok(&c, g, VERIFY_CMD);
	run_preempted(&c, 2 * NS_PER_S + 100 * NS_PER_MS);
	cr_expect_eq(count(F.con, "verify: sweep pages=512 mismatches=0\n"), 1, "console:\n%s",
		     F.con);
}

Test(workloads, verify_reports_a_corrupted_page)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;
	const char *m, *line;
	uint64_t idx = 3, pfn;
	uint32_t gen;
	char want[64];

	attach_ok(&c, g, VERIFY_CMD);
	run_for(&c, 2 * NS_PER_S + 100 * NS_PER_MS);
	cr_assert(strstr(F.con, "verify: sweep pages=512 mismatches=0\n"), "console:\n%s", F.con);

	gen = wl_page_gen(&c, idx);
	cr_assert_gt(gen, 0, "page %" PRIu64 " not written yet", idx);
	page_of(g, &c, idx)[100] ^= 1ull << 17;
	pfn = wl_ws_gpa(&c) / PAGE + idx;

	m = mark();
	run_for(&c, 2 * NS_PER_S);
	line = last_line(m, "verify: sweep ");
	cr_assert(line, "no sweep after the corruption; console:\n%s", m);
	cr_expect_eq(strncmp(line, "verify: sweep pages=512 mismatches=1\n", 37), 0,
		     "console:\n%s", m);
	snprintf(want, sizeof(want), "verify: mismatch pfn=0x%" PRIx64 " gen=%u\n", pfn, gen);
	cr_expect(strstr(m, want), "no '%s'; console:\n%s", want, m);
	cr_expect_eq(count(m, "verify: mismatch pfn="), 1, "console:\n%s", m);
	cr_expect_eq(wl_page_gen(&c, idx), gen, "the corrupted page was rewritten");

	/* It keeps being reported while it stays wrong. */
	m = mark();
	run_for(&c, 2 * NS_PER_S);
	cr_expect(strstr(m, "verify: sweep pages=512 mismatches=1\n"), "console:\n%s", m);

	/* An unwritten page must stay zero. */
	cr_assert_eq(wl_page_gen(&c, VERIFY_PAGES - 1), 0);
	page_of(g, &c, VERIFY_PAGES - 1)[0] = 1;
	m = mark();
	run_for(&c, 2 * NS_PER_S);
	cr_expect(strstr(m, "verify: sweep pages=512 mismatches=2\n"), "console:\n%s", m);
	snprintf(want, sizeof(want), "verify: mismatch pfn=0x%" PRIx64 " gen=0\n",
		 wl_ws_gpa(&c) / PAGE + VERIFY_PAGES - 1);
	cr_expect(strstr(m, want), "no '%s'; console:\n%s", want, m);
}

Test(workloads, verify_caps_mismatch_lines)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;
	const char *m;
	unsigned sweeps;

	attach_ok(&c, g, "workload=verify ws=1M rate=0");
	run_for(&c, NS_PER_S);
	for (uint64_t i = 0; i < 40; i++)
		page_of(g, &c, i * 3)[511] = 0xdead;
	m = mark();
	run_for(&c, 2 * NS_PER_S);
	sweeps = count(m, "verify: sweep ");
	cr_assert_geq(sweeps, 1, "console:\n%s", m);
	cr_expect_eq(count(m, "verify: sweep pages=256 mismatches=40\n"), sweeps,
		     "console:\n%s", m);
	cr_expect_eq(count(m, "verify: mismatch pfn="), 16 * sweeps, "console:\n%s", m);
	cr_expect_eq(count(m, "verify: 24 more mismatches not printed\n"), sweeps,
		     "console:\n%s", m);
}

Test(workloads, verify_resume_check)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct ferry_ctl *ctl = ctl_of(g);
	struct wl_ctx c;
	const char *m;

	attach_ok(&c, g, VERIFY_CMD);
	run_for(&c, NS_PER_S);
	cr_expect_null(strstr(F.con, "verify: resume"), "console:\n%s", F.con);

	ctl->resume_count++;
	m = mark();
	wl_run_slice(&c);
	cr_expect_eq(count(m, "verify: resume "), 1, "console:\n%s", m);
	cr_expect(strstr(m, "verify: resume pages=512 mismatches=0\n"), "console:\n%s", m);
	/* Once per resume, not once per slice. */
	run_for(&c, 3 * NS_PER_S);
	cr_expect_eq(count(m, "verify: resume "), 1, "console:\n%s", m);

	/* Resumed again, with a page damaged on the way. */
	cr_assert_gt(wl_page_gen(&c, 0), 0);
	page_of(g, &c, 0)[0] ^= 1;
	ctl->resume_count++;
	m = mark();
	wl_run_slice(&c);
	cr_expect_eq(count(m, "verify: resume "), 1, "console:\n%s", m);
	cr_expect(strstr(m, "verify: resume pages=512 mismatches=1\n"), "console:\n%s", m);
	cr_expect_eq(count(m, "verify: mismatch pfn="), 1, "console:\n%s", m);
}

/* ---- data=mix -------------------------------------------------------------------- */

/*
 * research/limits.md section 3, "mix" at 4 KiB frames: lz4 (default) 2.14,
 * zstd -1 (stream/codec-zstd.c's level) 2.23; without the zero pages
 * ("mix-nz") 1.29 and 1.34; 40.2 % zero pages. Each frame compressed on
 * its own, as the page path does.
 */
struct ratios {
	double zero_share, lz4, zstd, lz4_nz, zstd_nz;
};

static struct ratios measure_ws(const struct guest *g, const struct wl_ctx *c)
{
	static char out[8192];
	ZSTD_CCtx *z = ZSTD_createCCtx();
	uint64_t pages = wl_ws_pages(c), zero = 0, lz = 0, zs = 0, lz_nz = 0, zs_nz = 0;
	struct ratios r;

	cr_assert_not_null(z);
	cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, -1)));
	for (uint64_t i = 0; i < pages; i++) {
		const char *p = (const char *)page_of(g, c, i);
		int l = LZ4_compress_default(p, out, (int)PAGE, (int)sizeof(out));
		size_t n = ZSTD_compress2(z, out, sizeof(out), p, PAGE);
		bool is_zero = true;

		cr_assert_gt(l, 0);
		cr_assert(!ZSTD_isError(n));
		for (unsigned w = 0; w < PAGE / 8 && is_zero; w++)
			is_zero = !((const uint64_t *)p)[w];
		zero += is_zero;
		lz += (uint64_t)l;
		zs += n;
		if (!is_zero) {
			lz_nz += (uint64_t)l;
			zs_nz += n;
		}
	}
	ZSTD_freeCCtx(z);
	r.zero_share = (double)zero / (double)pages;
	r.lz4 = (double)(pages * PAGE) / (double)lz;
	r.zstd = (double)(pages * PAGE) / (double)zs;
	r.lz4_nz = (double)((pages - zero) * PAGE) / (double)lz_nz;
	r.zstd_nz = (double)((pages - zero) * PAGE) / (double)zs_nz;
	return r;
}

#define expect_within_15pc(got, want, what) \
	cr_expect((got) >= 0.85 * (want) && (got) <= 1.15 * (want), \
		  "%s: %.3f, limits.md %.3f", what, got, want)

Test(workloads, mix_fill_compresses_like_limits_md)
{
	struct guest *g = guest_new(HOST_A, 80 * MiB);
	struct wl_ctx c;
	struct ratios r;

	attach_ok(&c, g, "workload=idle fill=64M data=mix");
	cr_expect(strstr(F.con, "workload: idle ws=64M rate=20M pattern=seq data=mix\n"),
		  "console:\n%s", F.con);
	run_for(&c, NS_PER_S);
	cr_assert(strstr(F.con, "idle: filled pages=16384\n"), "console:\n%s", F.con);
	r = measure_ws(g, &c);
	cr_log_info("mix: zero %.3f lz4 %.3f zstd-1 %.3f; mix-nz lz4 %.3f zstd-1 %.3f",
		    r.zero_share, r.lz4, r.zstd, r.lz4_nz, r.zstd_nz);
	expect_within_15pc(r.zero_share, 0.402, "zero-page share");
	expect_within_15pc(r.lz4, 2.14, "lz4 4 KiB, mix");
	expect_within_15pc(r.zstd, 2.23, "zstd -1 4 KiB, mix");
	expect_within_15pc(r.lz4_nz, 1.29, "lz4 4 KiB, mix-nz");
	expect_within_15pc(r.zstd_nz, 1.34, "zstd -1 4 KiB, mix-nz");
}

/* The plain fill is the near-incompressible case the mix is there to
 * contrast with: the measure above can tell them apart. */
Test(workloads, plain_fill_is_not_the_mix)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;
	struct ratios r;

	attach_ok(&c, g, "workload=idle fill=4M");
	run_for(&c, NS_PER_S);
	r = measure_ws(g, &c);
	cr_expect_lt(r.zero_share, 0.01);
	cr_expect_lt(r.lz4_nz, 1.1, "plain fill lz4 %.3f", r.lz4_nz);
}

Test(workloads, mix_bad_value_is_refused)
{
	char err[128];

	cr_expect_eq(wl_check_cmdline("workload=dirty data=mixed", 16 * MiB, err, sizeof(err)),
		     -22);
	cr_expect_str_eq(err, "bad value 'mixed' for data");
	cr_expect_eq(wl_check_cmdline("workload=verify ws=1M data=mix", 16 * MiB, err, sizeof(err)), 0);
}

/* Is page idx of the working set all zero? */
static bool page_is_zero(const struct guest *g, const struct wl_ctx *c, uint64_t idx)
{
	const uint64_t *p = page_of(g, c, idx);

	for (unsigned w = 0; w < PAGE / 8; w++)
		if (p[w])
			return false;
	return true;
}

/* dirty data=mix writes whole pages (plain dirty writes two words); the
 * zero-kind pages stay zero. */
Test(workloads, dirty_mix_writes_whole_pages)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;
	uint64_t full = 0, zero = 0;

	attach_ok(&c, g, "workload=dirty ws=1M rate=1M pattern=seq data=mix");
	cr_expect(strstr(F.con, "workload: dirty ws=1M rate=1M pattern=seq data=mix\n"),
		  "console:\n%s", F.con);
	run_for(&c, NS_PER_S + 100 * NS_PER_MS);
	for (uint64_t i = 0; i < 256; i++) {
		const uint64_t *p = page_of(g, &c, i);
		unsigned nz = 0;

		cr_assert_gt(wl_page_gen(&c, i), 0, "page %" PRIu64 " not written", i);
		for (unsigned w = 0; w < PAGE / 8; w++)
			nz += p[w] != 0;
		zero += nz == 0;
		full += nz > PAGE / 8 / 2;
	}
	cr_expect_gt(full, 256 / 3, "%" PRIu64 " pages more than half written", full);
	cr_expect_gt(zero, 256 / 5, "%" PRIu64 " zero-kind pages", zero);
	cr_expect_eq(full + zero, 256, "pages neither zero nor mostly written");
}

/* verify data=mix: pages rewritten with new mix contents each generation;
 * the sweep checks them, and a damaged or stale page is caught (not on
 * zero-kind pages, which are zero in every generation). */
Test(workloads, verify_mix_checks_pages)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct ferry_ctl *ctl = ctl_of(g);
	struct wl_ctx c;
	static uint64_t old[PAGE / 8];
	uint64_t idx = UINT64_MAX;
	uint32_t gen;
	const char *m;

	attach_ok(&c, g, "workload=verify ws=256K rate=128K pattern=seq data=mix");
	run_for(&c, 2 * NS_PER_S + 100 * NS_PER_MS);
	cr_assert(strstr(F.con, "verify: sweep pages=64 mismatches=0\n"), "console:\n%s", F.con);
	cr_assert_null(strstr(F.con, "mismatch pfn"), "console:\n%s", F.con);
	for (uint64_t i = 0; i < 64 && idx == UINT64_MAX; i++)
		if (wl_page_gen(&c, i) && !page_is_zero(g, &c, i))
			idx = i;
	cr_assert_neq(idx, UINT64_MAX, "no written non-zero page");

	/* A generation's contents, put back after the page moved on. */
	gen = wl_page_gen(&c, idx);
	memcpy(old, page_of(g, &c, idx), PAGE);
	run_for(&c, 2 * NS_PER_S);
	cr_assert_gt(wl_page_gen(&c, idx), gen);
	cr_assert_neq(memcmp(old, page_of(g, &c, idx), PAGE), 0, "a new generation, same bytes");
	memcpy(page_of(g, &c, idx), old, PAGE);
	ctl->resume_count++;
	m = mark();
	wl_run_slice(&c);
	cr_expect(strstr(m, "verify: resume pages=64 mismatches=1\n"), "console:\n%s", m);

	/* One flipped byte. */
	memcpy(old, page_of(g, &c, idx), PAGE);
	((uint8_t *)page_of(g, &c, idx))[4000] ^= 0x10;
	ctl->resume_count++;
	m = mark();
	wl_run_slice(&c);
	cr_expect(strstr(m, "verify: resume pages=64 mismatches=1\n"), "console:\n%s", m);
}

/* ---- state lives in guest memory -------------------------------------------------- */

Test(workloads, state_survives_a_move_to_another_address)
{
	struct guest *a = guest_new(HOST_A, 16 * MiB);
	struct guest *b;
	struct wl_ctx ca, cb;
	uint32_t gens[VERIFY_PAGES];
	uint64_t before, ws_gpa;
	const char *m;

	attach_ok(&ca, a, VERIFY_CMD);
	run_for(&ca, 3 * NS_PER_S);
	cr_assert(strstr(F.con, "verify: sweep pages=512 mismatches=0\n"), "console:\n%s", F.con);
	for (unsigned i = 0; i < VERIFY_PAGES; i++)
		gens[i] = wl_page_gen(&ca, i);
	before = sum_gens(&ca);
	ws_gpa = wl_ws_gpa(&ca);
	cr_assert_gt(before, 0);

	b = guest_copy(a, HOST_B);
	/* Nothing may still point into the old mapping. */
	guest_free(a);

	m = mark();
	attach_ok(&cb, b, "workload=dirty ws=2M rate=1M pattern=random");
	cr_expect_null(strstr(m, "workload:"), "state re-initialised; console:\n%s", m);
	cr_expect_eq(wl_ws_pages(&cb), VERIFY_PAGES);
	cr_expect_eq(wl_ws_gpa(&cb), ws_gpa);
	for (unsigned i = 0; i < VERIFY_PAGES; i++)
		cr_expect_eq(wl_page_gen(&cb, i), gens[i], "page %u gen %u, was %u", i,
			     wl_page_gen(&cb, i), gens[i]);

	/* Still verify at the old rate (32 pages/s), and still clean. */
	run_for(&cb, 2 * NS_PER_S + 100 * NS_PER_MS);
	cr_expect(strstr(m, "verify: sweep pages=512 mismatches=0\n"), "console:\n%s", m);
	cr_expect_null(strstr(m, "mismatch pfn"), "console:\n%s", m);
	cr_expect_null(strstr(m, "dirty:"), "console:\n%s", m);
	cr_expect(sum_gens(&cb) - before >= 60 && sum_gens(&cb) - before <= 75,
		  "%" PRIu64 " writes in 2.1 s at 32 pages/s", sum_gens(&cb) - before);

	ctl_of(b)->resume_count++;
	m = mark();
	wl_run_slice(&cb);
	cr_expect(strstr(m, "verify: resume pages=512 mismatches=0\n"), "console:\n%s", m);
}

Test(workloads, state_survives_a_clock_that_restarts_lower)
{
	struct guest *a = guest_new(HOST_A, 16 * MiB);
	struct guest *b;
	struct wl_ctx ca, cb;
	uint64_t before;
	const char *m;

	F.now = 100 * NS_PER_S;
	attach_ok(&ca, a, VERIFY_CMD);
	run_for(&ca, 3 * NS_PER_S);
	before = sum_gens(&ca);
	b = guest_copy(a, HOST_B);
	guest_free(a);

	/* The new host's guest time starts from scratch. */
	F.now = 1 * NS_PER_S;
	m = mark();
	attach_ok(&cb, b, VERIFY_CMD);
	run_for(&cb, 3 * NS_PER_S);
	cr_expect_geq(sum_gens(&cb) - before, 80, "%" PRIu64 " writes in 3 s after the restore",
		      sum_gens(&cb) - before);
	cr_expect(strstr(m, "verify: sweep pages=512 mismatches=0\n"), "console:\n%s", m);
}

Test(workloads, idle_state_survives_a_move_to_another_address)
{
	struct guest *a = guest_new(HOST_A, 16 * MiB);
	struct guest *b;
	struct wl_ctx ca, cb;
	const char *m;

	attach_ok(&ca, a, "workload=idle");
	run_for(&ca, 2 * NS_PER_S + 100 * NS_PER_MS);
	cr_assert(strstr(F.con, "idle: heartbeat n=2\n"), "console:\n%s", F.con);
	b = guest_copy(a, HOST_B);
	guest_free(a);

	m = mark();
	attach_ok(&cb, b, "workload=idle");
	run_for(&cb, NS_PER_S);
	cr_expect_null(strstr(m, "workload:"), "idle state re-initialised; console:\n%s", m);
	cr_expect(strstr(m, "idle: heartbeat n=3\n"), "heartbeats restarted; console:\n%s", m);
}

/* ---- dirty ---------------------------------------------------------------------------- */

Test(workloads, dirty_writes_at_its_rate)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;
	const uint64_t per_s = (4 * MiB) / PAGE;
	uint64_t n;
	unsigned long long kibs = 0, pages = 0;
	const char *line;

	attach_ok(&c, g, "workload=dirty ws=8M rate=4M");
	run_for(&c, NS_PER_S);
	n = sum_gens(&c);
	cr_expect(n >= per_s * 9 / 10 && n <= per_s * 11 / 10,
		  "%" PRIu64 " page writes in 1 s at rate=4M (expected about %" PRIu64 ")", n,
		  per_s);

	run_for(&c, 2 * NS_PER_S);
	n = sum_gens(&c);
	cr_expect(n >= 3 * per_s * 9 / 10 && n <= 3 * per_s * 11 / 10,
		  "%" PRIu64 " page writes in 3 s at rate=4M", n);

	/* The once-a-second report says the same. */
	cr_expect_geq(count(F.con, "dirty: rate="), 2, "console:\n%s", F.con);
	line = last_line(F.con, "dirty: rate=");
	cr_assert(line, "console:\n%s", F.con);
	cr_assert_eq(sscanf(line, "dirty: rate=%llu KiB/s pages=%llu", &kibs, &pages), 2);
	cr_expect(kibs >= 4096 * 9 / 10 && kibs <= 4096 * 11 / 10, "reported %llu KiB/s", kibs);
	cr_expect_leq(pages, n);
	/* Dirty pages carry their generation. */
	for (uint64_t i = 0; i < wl_ws_pages(&c); i++)
		if (wl_page_gen(&c, i)) {
			cr_expect_eq(page_of(g, &c, i)[0], wl_page_gen(&c, i), "page %" PRIu64, i);
			break;
		}
}

struct rate_case {
	const char *cmdline;
	uint64_t per_10s; /* page writes expected in 10 s */
};

/* Low rates too: rate=64K is 16 pages/s, rate=4K one page a second. */
Test(workloads, low_rates_still_write)
{
	static const struct rate_case cases[] = {
		{ "workload=dirty ws=1M rate=64K", 160 },
		{ "workload=verify ws=1M rate=64K", 160 },
		{ "workload=dirty ws=1M rate=4K", 10 },
		{ "workload=dirty ws=1M rate=100K", 250 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct guest *g = guest_new(HOST_A, 16 * MiB);
		struct wl_ctx c;
		uint64_t n, want = cases[i].per_10s;

		attach_ok(&c, g, cases[i].cmdline);
		run_for(&c, 10 * NS_PER_S);
		n = sum_gens(&c);
		cr_expect(n >= want * 9 / 10 && n <= want * 11 / 10 + 1,
			  "'%s': %" PRIu64 " page writes in 10 s, expected about %" PRIu64,
			  cases[i].cmdline, n, want);
		guest_free(g);
	}
}

Test(workloads, dirty_rate_zero_writes_nothing)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;

	attach_ok(&c, g, "workload=dirty ws=1M rate=0");
	run_for(&c, 3 * NS_PER_S);
	cr_expect_eq(sum_gens(&c), 0);
	cr_expect_leq(F.blocks, 6, "%u blocks in 3 s of nothing", F.blocks);
}

Test(workloads, dirty_catches_up_only_briefly_after_a_pause)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;
	uint64_t before;

	attach_ok(&c, g, "workload=dirty ws=8M rate=4M");
	run_for(&c, NS_PER_S);
	before = sum_gens(&c);
	/* Paused (or migrating) for 10 s: no 10 s worth of burst after. */
	F.now += 10 * NS_PER_S;
	wl_run_slice(&c);
	cr_expect_leq(sum_gens(&c) - before, 128, "%" PRIu64 " pages in one slice after a pause",
		      sum_gens(&c) - before);
}

Test(workloads, pattern_seq_touches_pages_in_order)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct wl_ctx c;
	const uint64_t n = 256;
	uint64_t total = 0, slices = 0, end;

	attach_ok(&c, g, "workload=dirty ws=1M rate=4M pattern=seq");
	cr_assert_eq(wl_ws_pages(&c), n);
	end = F.now + 600 * NS_PER_MS; /* about 600 writes: two laps and a bit */
	while (F.now < end) {
		uint64_t cut = n, sum = 0;
		uint32_t hi;

		wl_run_slice(&c);
		slices++;
		hi = wl_page_gen(&c, 0);
		/* Generations read hi, ..., hi, hi - 1, ..., hi - 1: the pages
		 * before the cursor are one lap ahead of those after it. */
		for (uint64_t i = 0; i < n; i++) {
			uint32_t gi = wl_page_gen(&c, i);

			sum += gi;
			if (cut == n && gi != hi)
				cut = i;
			if (i < cut)
				cr_assert_eq(gi, hi, "page %" PRIu64 " gen %u after page 0 gen %u",
					     i, gi, hi);
			else
				cr_assert_eq(gi + 1, hi, "page %" PRIu64 " gen %u, page 0 gen %u",
					     i, gi, hi);
		}
		cr_assert_geq(sum, total, "writes went backwards");
		total = sum;
	}
	cr_expect(total >= 540 && total <= 660, "%" PRIu64 " writes in 0.6 s", total);
	cr_expect_geq(wl_page_gen(&c, n - 1), 2, "the cursor did not wrap");
	cr_expect_gt(slices, 100);
}

/* ---- shutdown requests ------------------------------------------------------------------ */

struct shutdown_case {
	const char *cmdline;
	uint32_t req;
	unsigned reason;
	const char *line;
};

Test(workloads, shutdown_requests)
{
	static const struct shutdown_case cases[] = {
		{ "workload=verify ws=1M", FERRY_CTL_REQ_POWEROFF, SHUTDOWN_poweroff,
		  "ferry: shutdown requested (poweroff)\n" },
		{ "workload=dirty ws=1M", FERRY_CTL_REQ_REBOOT, SHUTDOWN_reboot,
		  "ferry: shutdown requested (reboot)\n" },
		{ "workload=idle", FERRY_CTL_REQ_POWEROFF, SHUTDOWN_poweroff,
		  "ferry: shutdown requested (poweroff)\n" },
		{ "workload=idle", FERRY_CTL_REQ_REBOOT, SHUTDOWN_reboot,
		  "ferry: shutdown requested (reboot)\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct guest *g = guest_new(HOST_A, 16 * MiB);
		struct ferry_ctl *ctl = ctl_of(g);
		struct wl_ctx c;
		const char *m;

		F.shutdowns = 0;
		F.reason = 99;
		attach_ok(&c, g, cases[i].cmdline);
		run_for(&c, 1500 * NS_PER_MS);
		cr_expect_eq(F.shutdowns, 0);

		ctl->shutdown_req = cases[i].req;
		m = mark();
		wl_run_slice(&c);
		cr_expect_eq(F.shutdowns, 1, "'%s' req %u: %u shutdowns", cases[i].cmdline,
			     cases[i].req, F.shutdowns);
		cr_expect_eq(F.reason, cases[i].reason, "'%s' req %u: reason %u",
			     cases[i].cmdline, cases[i].req, F.reason);
		cr_expect_eq(ctl->shutdown_req, FERRY_CTL_REQ_NONE, "request not cleared");
		cr_expect(strstr(m, cases[i].line), "console:\n%s", m);
		/* Carried out once. */
		wl_run_slice(&c);
		cr_expect_eq(F.shutdowns, 1);
		guest_free(g);
	}
}

Test(workloads, unknown_shutdown_request_is_dropped)
{
	struct guest *g = guest_new(HOST_A, 16 * MiB);
	struct ferry_ctl *ctl = ctl_of(g);
	struct wl_ctx c;

	attach_ok(&c, g, "workload=dirty ws=1M");
	ctl->shutdown_req = 7;
	run_for(&c, 10 * NS_PER_MS);
	cr_expect_eq(F.shutdowns, 0);
	cr_expect_eq(ctl->shutdown_req, FERRY_CTL_REQ_NONE);

	/* No magic, no ferry_ctl: the page is not ours to read or clear. */
	ctl->magic = 0;
	ctl->shutdown_req = FERRY_CTL_REQ_POWEROFF;
	run_for(&c, 10 * NS_PER_MS);
	cr_expect_eq(F.shutdowns, 0);
	cr_expect_eq(ctl->shutdown_req, FERRY_CTL_REQ_POWEROFF);
}
