/* SPDX-License-Identifier: MIT */
/*
 * The workloads: idle, dirty and verify (data=mix contents: mix.c). Compiled into the guest kernel
 * (mem_base == 0, identity mapped) and into ferryd's soft backend
 * (mem_base == the host mapping of guest-physical 0), so every reference
 * to guest memory goes through gpa_ptr() and everything that must survive
 * save/restore/migration sits in struct wl_state in guest memory.
 * pingpong lives in pingpong.c and the PV client (console ring, xenstore,
 * event channels, grant table) in pv.c; every slice first polls the
 * latter (interrupts stay off).
 */
#include <abi/guest.h>

#include "internal.h"
#include "pv.h"

#define SLICE_NS (10ull * 1000 * 1000)
#define CATCHUP_NS (50ull * 1000 * 1000)
#define REPORT_NS WL_NSEC_PER_SEC
#define SWEEP_EVERY_NS (2ull * WL_NSEC_PER_SEC)
/* Pages a slice handles between clock reads: keeps now_ns off the hot
 * path without overshooting the slice by much. */
#define CLOCK_BATCH 64
/* A sweep in progress checks at least this many pages per slice, so that a
 * writer that never gets ahead of its rate cannot starve it. */
#define SWEEP_MIN_PAGES 256
/* Shortest sleep when ahead of the rate: pages then go out in small
 * bursts, and the guest exits twice per millisecond at most instead of
 * twice per page. */
#define BLOCK_MIN_NS (1000ull * 1000)
#define MISMATCH_LINES 16
#define WORDS_PER_PAGE (WL_PAGE_SIZE / 8)

static void *gpa_ptr(const struct wl_ctx *ctx, uint64_t gpa)
{
	return (void *)(ctx->mem_base + (uintptr_t)gpa);
}

static uint32_t *gen_table(const struct wl_ctx *ctx)
{
	return gpa_ptr(ctx, ctx->st->gen_gpa);
}

static uint64_t *page_ptr(const struct wl_ctx *ctx, uint64_t idx)
{
	return gpa_ptr(ctx, ctx->st->ws_gpa + (idx << WL_PAGE_SHIFT));
}

static volatile struct ferry_ctl *ctl(const struct wl_ctx *ctx)
{
	return gpa_ptr(ctx, FERRY_CTL_GPA);
}

static uint64_t now_ns(const struct wl_ctx *ctx)
{
	return ctx->plat->now_ns(ctx->plat->opaque);
}


/* ferry_ctl exists only under Ferry; elsewhere (QEMU) that page is not
 * ours, hence the magic check. */
static uint32_t resume_count(const struct wl_ctx *ctx)
{
	volatile struct ferry_ctl *c = ctl(ctx);

	return c->magic == FERRY_CTL_MAGIC ? c->resume_count : 0;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Guest-physical layout of the arena for a working set of ws_pages:
 * returns the end gpa, gen and ws start through the pointers. */
static uint64_t layout(uint64_t ws_pages, uint64_t *gen_gpa, uint64_t *ws_gpa)
{
	*gen_gpa = FERRY_ARENA_GPA +
		   round_up(sizeof(struct wl_state), WL_PAGE_SIZE);
	*ws_gpa = round_up(*gen_gpa + ws_pages * sizeof(uint32_t),
			   WL_PAGE_SIZE);
	return *ws_gpa + (ws_pages << WL_PAGE_SHIFT);
}

static uint64_t max_ws_pages(uint64_t mem_size)
{
	uint64_t g, w, pages;

	pages = (mem_size - FERRY_ARENA_GPA) / (WL_PAGE_SIZE + 4);
	while (pages && layout(pages, &g, &w) > mem_size)
		pages--;
	return pages;
}

/* Is a state found in memory (resume) consistent with this guest? */
static bool state_ok(const struct wl_ctx *ctx, const struct wl_state *st)
{
	uint64_t g, w;

	if (st->magic != WL_STATE_MAGIC || st->version != WL_STATE_VERSION)
		return false;
	if (st->kind < WL_IDLE || st->kind > WL_PINGPONG)
		return false;
	/* idle and spin have no working set; the others at least a page */
	if ((!st->ws_pages && st->kind != WL_IDLE && st->kind != WL_SPIN &&
	     st->kind != WL_PINGPONG) ||
	    st->ws_pages > (ctx->mem_size >> WL_PAGE_SHIFT))
		return false;
	if (layout(st->ws_pages, &g, &w) > ctx->mem_size)
		return false;
	return g == st->gen_gpa && w == st->ws_gpa;
}

/* Does guest RAM of mem_size bytes leave room for the arena's state? */
static bool arena_fits(uint64_t mem_size)
{
	return mem_size >= FERRY_ARENA_GPA + 2 * WL_PAGE_SIZE + 4;
}

/*
 * Settles what p's kind ignores (idle's working set is fill=; spin and
 * pingpong have none) and checks that the rest fits a guest of mem_size
 * bytes and is complete: 0, or -22 with the reason in err.
 */
static int params_settle(struct wl_params *p, uint64_t mem_size, char *err, size_t errlen)
{
	char ws[24];
	uint64_t pages, end, g;

	if (!arena_fits(mem_size)) {
		wl_snprintf(err, errlen, "%llu KiB of RAM leave no arena",
			    (unsigned long long)(mem_size >> 10));
		return -22;
	}
	/* idle writes only what fill= asks for, once (an idle guest whose
	 * memory holds data); spin touches no working set. */
	if (p->kind == WL_IDLE)
		p->ws_bytes = p->fill_bytes;
	if (p->kind == WL_SPIN || p->kind == WL_PINGPONG) {
		p->ws_bytes = 0; /* pingpong's shared page sits below the arena */
		p->rate = 0;
	}
	pages = p->ws_bytes >> WL_PAGE_SHIFT;
	end = pages > (mem_size >> WL_PAGE_SHIFT) ? UINT64_MAX : layout(pages, &g, &g);
	if (end > mem_size) {
		wl_format_size(ws, sizeof(ws), p->ws_bytes);
		wl_snprintf(err, errlen,
			    "%s=%s does not fit in the arena (max %llu KiB with %llu MiB of RAM)",
			    p->kind == WL_IDLE ? "fill" : "ws", ws,
			    (unsigned long long)(max_ws_pages(mem_size) << 2),
			    (unsigned long long)(mem_size >> 20));
		return -22;
	}
	if (p->kind == WL_PINGPONG && (!p->pp_role || !p->pp_peer)) {
		wl_snprintf(err, errlen, "pingpong: needs role=ping|pong and peer=DOMID");
		return -22;
	}
	if (p->kind == WL_PINGPONG && p->pp_role == WL_PP_PING &&
	    (p->pp_port != 0) != (p->pp_gref != UINT32_MAX)) {
		wl_snprintf(err, errlen, "pingpong: give both port= and gref=, or neither");
		return -22;
	}
	return 0;
}

int wl_check_cmdline(const char *cmdline, uint64_t mem_size, char *err, size_t errlen)
{
	struct wl_params p;

	return wl_parse_cmdline(cmdline, &p, err, errlen)
		       ?: params_settle(&p, mem_size, err, errlen);
}

int wl_attach(struct wl_ctx *ctx, const struct wl_platform *plat,
	      uintptr_t mem_base, uint64_t mem_size, const char *cmdline)
{
	return wl_attach_xen(ctx, plat, NULL, mem_base, mem_size, cmdline);
}

/* A fresh state for parameters p at time now; magic stays 0 (not valid
 * yet) until the caller has set everything up. */
static void state_init(struct wl_state *st, const struct wl_params *p, uint64_t pages,
		       uint64_t now)
{
	st->magic = 0;	/* half-initialised state must not look valid */
	st->version = WL_STATE_VERSION;
	st->kind = p->kind;
	st->pattern = p->pattern;
	st->data = p->data;
	st->ws_bytes = p->ws_bytes;
	st->rate = p->rate;
	st->ws_pages = pages;
	layout(pages, &st->gen_gpa, &st->ws_gpa);
	st->rng = 0x9e3779b97f4a7c15ull;
	st->cursor = 0;
	st->writes = 0;
	st->ns_per_page = 0;
	if (p->rate) {
		st->ns_per_page = WL_PAGE_SIZE * WL_NSEC_PER_SEC / p->rate;
		if (!st->ns_per_page)
			st->ns_per_page = 1;
	}
	st->pace_ns = now;
	st->report_ns = now;
	st->report_writes = 0;
	st->heartbeats = 0;
	st->sweep_next_ns = now + SWEEP_EVERY_NS;
	st->sweep_pos = pages;
	st->sweep_mismatches = 0;
	st->sweeps = 0;
	st->resume_checks = 0;
	st->spins = 0;
	st->report_spins = 0;
	st->pp_role = p->pp_role;
	st->pp_peer = p->pp_peer;
	st->pp_phase = 0;
	st->pp_port = 0;
	st->pp_rport = p->pp_port;
	st->pp_gref = p->pp_gref;
	st->pp_seq = 0;
	st->pp_sent_ns = 0;
	st->pp_rounds = 0;
	st->pp_report_rounds = 0;
	st->pp_wait_ns = 0;
	st->pp_waiting_said = 0;
}

int wl_attach_xen(struct wl_ctx *ctx, const struct wl_platform *plat,
		  wl_hypercall_fn hypercall, uintptr_t mem_base,
		  uint64_t mem_size, const char *cmdline)
{
	struct wl_params p;
	struct wl_state *st;
	char err[128], ws[24], rate[24];
	uint32_t *gen;
	uint64_t i, now, pages;

	ctx->plat = plat;
	ctx->hypercall = hypercall;
	ctx->mem_base = mem_base;
	ctx->mem_size = mem_size;
	ctx->st = NULL;

	if (!arena_fits(mem_size)) {
		wl_printf(ctx, "workload: %llu KiB of RAM leave no arena\n",
			 (unsigned long long)(mem_size >> 10));
		return -22;
	}
	st = gpa_ptr(ctx, FERRY_ARENA_GPA);
	if (state_ok(ctx, st)) {
		/* Resumed: keep everything, including resume_seen, so the
		 * next slice notices a bumped resume_count. */
		ctx->st = st;
		return 0;
	}

	if (wl_parse_cmdline(cmdline, &p, err, sizeof(err)) ||
	    params_settle(&p, mem_size, err, sizeof(err))) {
		wl_printf(ctx, "workload: %s\n", err);
		return -22;
	}
	pages = p.ws_bytes >> WL_PAGE_SHIFT;

	now = plat->now_ns(plat->opaque);
	state_init(st, &p, pages, now);
	ctx->st = st;
	st->resume_seen = resume_count(ctx);

	/* The working set itself is not cleared: fresh guest RAM is zero,
	 * and touching it all would populate every page for nothing. */
	gen = gen_table(ctx);
	for (i = 0; i < pages; i++)
		gen[i] = 0;
	/* The PV services (console ring, xenstore) before the first line,
	 * which then goes out through the ring if there is one. */
	pv_init(ctx);
	if (p.kind == WL_PINGPONG && wl_pp_start(ctx)) {
		ctx->st = NULL;
		return -22;
	}
	st->magic = WL_STATE_MAGIC;

	wl_format_size(ws, sizeof(ws), p.ws_bytes);
	wl_format_size(rate, sizeof(rate), p.rate);
	wl_printf(ctx, "workload: %s ws=%s rate=%s pattern=%s%s\n",
		 wl_kind_name(p.kind), ws, rate, wl_pattern_name(p.pattern),
		 p.data == WL_DATA_MIX ? " data=mix" : "");
	return 0;
}

/* ---- page contents ----------------------------------------------------- */

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Word i of a verify page: a per-(pfn, gen) seed plus an odd stride, so a
 * stale generation, another page's data or zeroes all differ in every
 * word, and the inner loop stays a cheap add. */
static uint64_t page_seed(uint64_t pfn, uint32_t gen)
{
	return splitmix((pfn << 32) ^ gen ^ 0x5a5a000000000000ull);
}

#define WORD_STRIDE 0xd6e8feb86659fd93ull

static uint64_t next_page(struct wl_state *st)
{
	uint64_t x;

	if (st->pattern == WL_RANDOM) {
		x = st->rng;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		st->rng = x;
		return x % st->ws_pages;
	}
	x = st->cursor;
	st->cursor = x + 1 >= st->ws_pages ? 0 : x + 1;
	return x;
}

static void write_page(const struct wl_ctx *ctx)
{
	struct wl_state *st = ctx->st;
	uint64_t idx = next_page(st);
	uint64_t *p = page_ptr(ctx, idx);
	uint32_t *gen = gen_table(ctx);
	uint32_t g = gen[idx] + 1;

	if (!g)
		g = 1;	/* 0 means never written */
	if (st->data == WL_DATA_MIX) {
		wl_mix_page(p, (st->ws_gpa >> WL_PAGE_SHIFT) + idx, g);
	} else if (st->kind == WL_VERIFY) {
		uint64_t w = page_seed((st->ws_gpa >> WL_PAGE_SHIFT) + idx, g);
		unsigned i;

		for (i = 0; i < WORDS_PER_PAGE; i++, w += WORD_STRIDE)
			p[i] = w;
	} else {
		p[0] = g;
		p[WORDS_PER_PAGE - 1] = g;
	}
	/* Content first, then the record: a check only ever runs between
	 * two whole writes, so the order matters only for readability. */
	gen[idx] = g;
	st->writes++;
}

static bool page_matches(const struct wl_ctx *ctx, uint64_t idx, uint32_t g)
{
	const uint64_t *p = page_ptr(ctx, idx);
	uint64_t w;
	unsigned i;

	if (!g) {
		for (i = 0; i < WORDS_PER_PAGE; i++)
			if (p[i])
				return false;
		return true;
	}
	if (ctx->st->data == WL_DATA_MIX)
		return wl_mix_matches(p, (ctx->st->ws_gpa >> WL_PAGE_SHIFT) + idx, g);
	w = page_seed((ctx->st->ws_gpa >> WL_PAGE_SHIFT) + idx, g);
	for (i = 0; i < WORDS_PER_PAGE; i++, w += WORD_STRIDE)
		if (p[i] != w)
			return false;
	return true;
}

/* Checks page idx; *mismatches counts across one check (sweep or resume)
 * so the number of lines printed per check stays capped. */
static void check_page(const struct wl_ctx *ctx, uint64_t idx,
		       uint64_t *mismatches)
{
	uint32_t g = gen_table(ctx)[idx];

	if (page_matches(ctx, idx, g))
		return;
	if (++*mismatches <= MISMATCH_LINES)
		wl_printf(ctx, "verify: mismatch pfn=0x%llx gen=%u\n",
			 (unsigned long long)((ctx->st->ws_gpa >>
					       WL_PAGE_SHIFT) + idx), g);
}

static void print_unprinted(const struct wl_ctx *ctx, uint64_t mismatches)
{
	if (mismatches > MISMATCH_LINES)
		wl_printf(ctx, "verify: %llu more mismatches not printed\n",
			 (unsigned long long)(mismatches - MISMATCH_LINES));
}

static void resume_check(const struct wl_ctx *ctx)
{
	struct wl_state *st = ctx->st;
	uint64_t i, bad = 0;

	for (i = 0; i < st->ws_pages; i++)
		check_page(ctx, i, &bad);
	print_unprinted(ctx, bad);
	st->resume_checks++;
	wl_printf(ctx, "verify: resume pages=%llu mismatches=%llu\n",
		 (unsigned long long)st->ws_pages, (unsigned long long)bad);
}

/* ---- the slice --------------------------------------------------------- */

static bool poll_shutdown(const struct wl_ctx *ctx)
{
	volatile struct ferry_ctl *c = ctl(ctx);
	uint32_t req;

	if (c->magic != FERRY_CTL_MAGIC || !c->shutdown_req)
		return false;
	req = __atomic_exchange_n(&c->shutdown_req, FERRY_CTL_REQ_NONE,
				  __ATOMIC_SEQ_CST);
	if (req != FERRY_CTL_REQ_POWEROFF && req != FERRY_CTL_REQ_REBOOT)
		return false;
	wl_printf(ctx, "ferry: shutdown requested (%s)\n",
		 req == FERRY_CTL_REQ_REBOOT ? "reboot" : "poweroff");
	ctx->plat->shutdown(ctx->plat->opaque,
			    req == FERRY_CTL_REQ_REBOOT ? SHUTDOWN_reboot :
							  SHUTDOWN_poweroff);
	return true;
}

/* Guest time may restart lower after a restore into a new process or
 * host; deadlines far in the future would then stall the workload. */
static void clock_fixup(struct wl_state *st, uint64_t now)
{
	uint64_t lim = now + SWEEP_EVERY_NS;

	if (st->pace_ns > lim)
		st->pace_ns = now;
	if (st->report_ns > lim)
		st->report_ns = now;
	if (st->sweep_next_ns > lim)
		st->sweep_next_ns = now + SWEEP_EVERY_NS;
}

/* idle fill=: the working set written once, a slice at a time. */
static bool fill_slice(const struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;
	uint64_t end = now + SLICE_NS;
	unsigned n = 0;

	if (st->cursor >= st->ws_pages)
		return false;
	while (st->cursor < st->ws_pages) {
		uint64_t *w = gpa_ptr(ctx, st->ws_gpa + st->cursor * WL_PAGE_SIZE);

		if (st->data == WL_DATA_MIX)
			wl_mix_page(w, (st->ws_gpa >> WL_PAGE_SHIFT) + st->cursor, 1);
		else
			for (unsigned i = 0; i < WL_PAGE_SIZE / 8; i++)
				w[i] = (st->cursor * 0x9e3779b97f4a7c15ull) ^
				       (i * 0xbf58476d1ce4e5b9ull);
		/* Never leave after the last page: the next slice would find
		 * the fill done and never say so. */
		if (++st->cursor < st->ws_pages && ++n % WL_PREEMPT_BATCH == 0 &&
		    (wl_preempted(ctx) || (n % CLOCK_BATCH == 0 && now_ns(ctx) >= end)))
			return true;
	}
	wl_printf(ctx, "idle: filled pages=%llu\n", (unsigned long long)st->ws_pages);
	return true;
}

static void idle_slice(const struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;

	if (fill_slice(ctx, now))
		return;
	if (now < st->report_ns + REPORT_NS) {
		ctx->plat->block_until(ctx->plat->opaque,
				       st->report_ns + REPORT_NS);
		return;
	}
	st->report_ns += REPORT_NS;
	if (now - st->report_ns >= REPORT_NS)
		st->report_ns = now;	/* missed beats are not replayed */
	st->heartbeats++;
	wl_printf(ctx, "idle: heartbeat n=%llu\n",
		 (unsigned long long)st->heartbeats);
}

static void report(const struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;
	uint64_t dt = now - st->report_ns;
	uint64_t kib = (st->writes - st->report_writes) * (WL_PAGE_SIZE / 1024);

	wl_printf(ctx, "dirty: rate=%llu KiB/s pages=%llu\n",
		 (unsigned long long)(dt ? kib * WL_NSEC_PER_SEC / dt : 0),
		 (unsigned long long)st->writes);
	st->report_ns = now;
	st->report_writes = st->writes;
}

/* Runs the verify sweep until slice_end (but at least SWEEP_MIN_PAGES) or
 * a preemption (at once: the position and the count are in guest memory). */
static uint64_t sweep(const struct wl_ctx *ctx, uint64_t now,
		      uint64_t slice_end)
{
	struct wl_state *st = ctx->st;
	unsigned n = 0;

	if (st->sweep_pos >= st->ws_pages) {
		if (now < st->sweep_next_ns)
			return now;
		st->sweep_pos = 0;
		st->sweep_mismatches = 0;
		st->sweep_next_ns = now + SWEEP_EVERY_NS;
	}
	while (st->sweep_pos < st->ws_pages) {
		check_page(ctx, st->sweep_pos++, &st->sweep_mismatches);
		/* As in fill_slice: the last page's slice reports the sweep,
		 * or the next one would start another and lose it. */
		if (st->sweep_pos == st->ws_pages)
			break;
		if (++n % WL_PREEMPT_BATCH == 0 && wl_preempted(ctx))
			return now_ns(ctx);
		if (n % CLOCK_BATCH == 0 && n >= SWEEP_MIN_PAGES) {
			now = now_ns(ctx);
			if (now >= slice_end)
				return now;
		}
	}
	print_unprinted(ctx, st->sweep_mismatches);
	st->sweeps++;
	wl_printf(ctx, "verify: sweep pages=%llu mismatches=%llu\n",
		 (unsigned long long)st->ws_pages,
		 (unsigned long long)st->sweep_mismatches);
	return now;
}

static void writer_slice(const struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;
	uint64_t slice_end = now + SLICE_NS, next = UINT64_MAX;
	bool worked = false;
	unsigned n = 0;

	if (st->kind == WL_DIRTY && now - st->report_ns >= REPORT_NS)
		report(ctx, now);

	if (st->ns_per_page) {
		/* Cap catch-up: after a pause (or migration downtime) the
		 * workload must not burst for seconds to make up. */
		uint64_t catchup = st->ns_per_page > CATCHUP_NS ? st->ns_per_page
								: CATCHUP_NS;

		/* At rates below a page per CATCHUP_NS the cap is one page,
		 * or nothing would ever be due. */
		if (now > st->pace_ns + catchup)
			st->pace_ns = now - catchup;
		while (st->pace_ns + st->ns_per_page <= now) {
			write_page(ctx);
			st->pace_ns += st->ns_per_page;
			worked = true;
			if (++n % WL_PREEMPT_BATCH == 0 && wl_preempted(ctx))
				return; /* the pace and the cursor are whole */
			if (n % CLOCK_BATCH == 0) {
				now = now_ns(ctx);
				if (now >= slice_end)
					break;
			}
		}
		next = st->pace_ns + st->ns_per_page;
	}

	if (st->kind == WL_VERIFY) {
		uint64_t before = st->sweep_pos;

		now = sweep(ctx, now, slice_end);
		if (wl_preempted(ctx))
			return;
		if (st->sweep_pos != before)
			worked = true;
		if (st->sweep_pos < st->ws_pages)
			next = now;	/* sweep still in progress */
		else if (st->sweep_next_ns < next)
			next = st->sweep_next_ns;
	} else if (st->report_ns + REPORT_NS < next) {
		next = st->report_ns + REPORT_NS;
	}

	if (!worked && next > now) {
		if (next < now + BLOCK_MIN_NS)
			next = now + BLOCK_MIN_NS;
		ctx->plat->block_until(ctx->plat->opaque, next);
	}
}

/* CPU-bound: counts loop iterations for a slice, reports once a second
 * (the rate is per second of guest time, so it shows the share of a pCPU
 * the vCPU got). */
static void spin_slice(const struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;
	uint64_t slice_end = now + SLICE_NS, n = 0;
	volatile uint64_t sink = st->rng;

	if (now - st->report_ns >= REPORT_NS) {
		uint64_t dt = now - st->report_ns, k = st->spins - st->report_spins;

		wl_printf(ctx, "spin: count=%llu rate=%llu/s\n",
			 (unsigned long long)st->spins,
			 (unsigned long long)(dt ? k * WL_NSEC_PER_SEC / dt : 0));
		st->report_ns = now;
		st->report_spins = st->spins;
	}
	for (;;) {
		sink = sink * 6364136223846793005ull + 1442695040888963407ull;
		if (++n % 1024 == 0) {
			st->spins += 1024;
			if (wl_preempted(ctx) || now_ns(ctx) >= slice_end)
				break;
		}
	}
	st->rng = sink | 1;
}

void wl_run_slice(struct wl_ctx *ctx)
{
	struct wl_state *st = ctx->st;
	uint32_t rc;
	uint64_t now;

	if (!st)
		return;
	if (poll_shutdown(ctx))
		return;

	rc = resume_count(ctx);
	if (rc != st->resume_seen) {
		st->resume_seen = rc;
		/* A new domain: new xenstore connection, maybe new ports. */
		pv_resume(ctx);
		if (st->kind == WL_VERIFY)
			resume_check(ctx);
	}

	/* Events (interrupts stay off): console input, xenstore watches. */
	if (pv_poll(ctx))
		return;

	now = now_ns(ctx);
	clock_fixup(st, now);
	if (st->kind == WL_IDLE)
		idle_slice(ctx, now);
	else if (st->kind == WL_SPIN)
		spin_slice(ctx, now);
	else if (st->kind == WL_PINGPONG)
		wl_pp_slice(ctx, now);
	else
		writer_slice(ctx, now);
}

uint64_t wl_ws_gpa(const struct wl_ctx *ctx)
{
	return ctx->st ? ctx->st->ws_gpa : 0;
}

uint64_t wl_ws_pages(const struct wl_ctx *ctx)
{
	return ctx->st ? ctx->st->ws_pages : 0;
}

uint32_t wl_page_gen(const struct wl_ctx *ctx, uint64_t page_index)
{
	if (!ctx->st || page_index >= ctx->st->ws_pages)
		return 0;
	return gen_table(ctx)[page_index];
}
