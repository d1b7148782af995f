// SPDX-License-Identifier: MIT
/*
 * bench-logdirty: what log-dirty costs, per backend.
 *   - peek-and-clean of a 1 GiB domain with nothing dirty and with 10 %
 *     dirty (kvm: the guest writes a 10 % working set once over; wp: every
 *     10th page written through the guest mapping), per GiB;
 *   - the guest's dirtying throughput with logging off and on (peeks every
 *     100 ms), from the workload's own per-page generations, and the cost
 *     of one first write with logging on that follows;
 *   - a minimal KVM probe (CPL3 store loop over a 1 GiB slot) for this
 *     KVM's raw write-protect fault cost.
 * Prints figures with their targets; not a test.
 * Usage: bench-logdirty [kvm-bitmap|kvm-ring|wp|raw]...   (default: all)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "abi/guest.h"
#include "common/bitmap.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "guests/soft.h"
#include "guests/workload.h"
#include "hyp/gmem.h"
#include "hyp/hyp.h"
#include "logdirty/logdirty.h"
#include "bench.h"

#define MEM_MB 1024ull
#define WS_MB (MEM_MB / 10)
#define REPS 9

/* The raw write-protect fault cost bench_raw() measured, in us (0: none). */
static double raw_fault_us;

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_dbl);
	return v[n / 2];
}

static uint64_t fake_now(void *o) { (void)o; return 0; }
static void fake_console(void *o, const char *s, size_t l) { (void)o; (void)s; (void)l; }
static void fake_block(void *o, uint64_t t) { (void)o; (void)t; }
static void fake_shutdown(void *o, unsigned r) { (void)o; (void)r; }
static const struct wl_platform plat = { fake_now, fake_console, fake_block, fake_shutdown, NULL,
					 NULL };

static uint64_t gen_sum(const struct wl_ctx *wl)
{
	uint64_t s = 0;

	for (uint64_t i = 0; i < wl_ws_pages(wl); i++)
		s += wl_page_gen(wl, i);
	return s;
}

/* Guest pages written per second over secs of running, from generations. */
static double run_rate(struct hyp *h, uint32_t id, const struct wl_ctx *wl, double secs,
		       struct ld *ld, uint64_t *bm, uint64_t npages, uint64_t *reported,
		       double *elapsed)
{
	uint64_t g0 = gen_sum(wl), g1, c;
	double t0, t1;

	*reported = 0;
	t0 = ferry_now_s();
	hyp_domain_unpause(h, id);
	while (ferry_now_s() - t0 < secs) {
		usleep(100000);
		if (ld) {
			ld_peek_clean(ld, bm, npages, &c);
			*reported += c;
		}
	}
	hyp_domain_pause(h, id);
	t1 = ferry_now_s();
	if (ld) {
		ld_peek_clean(ld, bm, npages, &c);
		*reported += c;
	}
	g1 = gen_sum(wl);
	*elapsed = t1 - t0;
	return (double)(g1 - g0) / (t1 - t0);
}

/* One backend's whole measurement in the order it prints (domain, idle and
 * loaded rates, peek cost, teardown): long, kept as one sequence so that the
 * timed sections read top to bottom with nothing between them. */
static int bench_backend(const char *ldname)
{
	const char *exec = strcmp(ldname, "wp") ? "kvm" : "soft";
	struct hyp_params p = { .backend = exec, .memory_bytes = (MEM_MB + 128) << 20,
				.guest_elf = FERRY_GUEST_ELF, .soft_guest = &wl_soft_guest_ops,
				.pv_backend = &dev_pv_backend_ops, .pv_backend_opaque = bench_pv() };
	struct hyp_dom_config cfg;
	struct hyp *h = NULL;
	struct hyp_domain *d = NULL;
	struct hyp_gmem gm;
	struct wl_ctx wl;
	struct ld *ld = NULL;
	struct ld_stats st;
	uint64_t *bm, c, rep_off, rep_on, ws_pfn;
	double v[REPS], gib, off, on, el_off, el_on, idle_ms, dirty_ms;
	uint32_t id;
	int ret;

	if (!strcmp(exec, "kvm") && access("/dev/kvm", R_OK | W_OK)) {
		printf("%-10s skipped: /dev/kvm is not available\n", ldname);
		return 0;
	}
	ret = hyp_create(&p, &h);
	if (ret) {
		printf("%-10s hyp_create: %s\n", ldname, ferry_strerror(-ret));
		return ret;
	}
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "bench");
	cfg.memory_mb = cfg.maxmem_mb = MEM_MB;
	cfg.vcpus = 1;
	snprintf(cfg.backend, sizeof(cfg.backend), "%s", exec);
	snprintf(cfg.logdirty, sizeof(cfg.logdirty), "%s",
		 !strcmp(ldname, "kvm-ring") ? "ring" : "bitmap");
	/* A rate the guest cannot reach: it writes flat out. */
	snprintf(cfg.cmdline, sizeof(cfg.cmdline),
		 "workload=dirty ws=%lluM rate=64G pattern=seq", WS_MB);
	cfg.on_poweroff = cfg.on_reboot = cfg.on_crash = HYP_ON_DESTROY;
	ret = hyp_domain_create(h, &cfg, false, &id);
	if (ret || !bench_wait_console(h, id, "workload:", 30)) {
		printf("%-10s domain did not start (%d)\n", ldname, ret);
		hyp_destroy(h);
		return ret ? ret : -ETIMEDOUT;
	}
	hyp_domain_pause(h, id);
	hyp_domain_get(h, id, &d);
	hyp_domain_gmem(d, &gm);
	gib = (double)gm.size / (double)(1ull << 30);
	bm = calloc(BITMAP_WORDS(gm.npages), 8);
	wl_attach(&wl, &plat, (uintptr_t)gm.hva, gm.size, "");
	ws_pfn = wl_ws_gpa(&wl) >> 12;

	/* Throughput with logging off. */
	off = run_rate(h, id, &wl, 2.0, NULL, NULL, 0, &rep_off, &el_off);

	ret = ld_enable_backend(d, ldname, &ld);
	if (ret) {
		printf("%-10s ld_enable: %s\n", ldname, ferry_strerror(-ret));
		goto out;
	}
	ld_stats(ld, &st);
	printf("%-10s enable (1 GiB): %.3f ms\n", ldname, st.enable_time_s * 1e3);

	/* Nothing dirty (domain paused). */
	ld_peek_clean(ld, bm, gm.npages, &c);
	for (int i = 0; i < REPS; i++) {
		double t0 = ferry_now_s();

		ld_peek_clean(ld, bm, gm.npages, &c);
		v[i] = (ferry_now_s() - t0) * 1e3;
	}
	idle_ms = median(v, REPS) / gib;
	printf("%-10s peek-clean, nothing dirty: %8.3f ms/GiB   (target < 1 ms/GiB for "
	       "kvm-*; KVM GET+CLEAR alone ~0.02 ms; PAGEMAP_SCAN idle ~0.7 ms)\n",
	       ldname, idle_ms);

	/* 10 % dirty. */
	for (int i = 0; i < REPS; i++) {
		uint64_t n = gm.npages / 10, got;
		double t0;

		if (!strcmp(exec, "soft")) {
			for (uint64_t k = 0; k < n; k++)
				gm.hva[(k * 10) << 12] ^= 1;
		} else {
			/* Run the guest until every working-set page was
			 * rewritten since the last peek. */
			uint32_t *g0 = malloc(wl_ws_pages(&wl) * 4);
			double end = ferry_now_s() + 10;
			uint64_t left;

			for (uint64_t k = 0; k < wl_ws_pages(&wl); k++)
				g0[k] = wl_page_gen(&wl, k);
			hyp_domain_unpause(h, id);
			do {
				usleep(20000);
				left = 0;
				for (uint64_t k = 0; k < wl_ws_pages(&wl); k++)
					left += wl_page_gen(&wl, k) == g0[k];
			} while (left && ferry_now_s() < end);
			hyp_domain_pause(h, id);
			free(g0);
			n = wl_ws_pages(&wl);
		}
		memset(bm, 0, BITMAP_BYTES(gm.npages));
		t0 = ferry_now_s();
		ld_peek_clean(ld, bm, gm.npages, &got);
		v[i] = (ferry_now_s() - t0) * 1e3;
		if (got < n)
			printf("%-10s   round %d: only %llu of %llu pages reported!\n", ldname, i,
			       (unsigned long long)got, (unsigned long long)n);
		(void)ws_pfn;
	}
	dirty_ms = median(v, REPS) / gib;
	printf("%-10s peek-clean, 10%% dirty:     %8.3f ms/GiB   (KVM GET+CLEAR alone ~0.56 ms; "
	       "PAGEMAP_SCAN ~1.4 ms)\n", ldname, dirty_ms);

	/* Throughput with logging on, peeking every 100 ms. */
	on = run_rate(h, id, &wl, 2.0, ld, bm, gm.npages, &rep_on, &el_on);
	printf("%-10s guest dirtying, logging off: %10.0f pages/s\n", ldname, off);
	printf("%-10s guest dirtying, logging on:  %10.0f pages/s (%llu first-writes logged "
	       "in %.2f s)\n", ldname, on, (unsigned long long)rep_on, el_on);
	if (rep_on) {
		/* Time the guest lost to logging, per page it logged. */
		double us = (el_on - on * el_on / off) / (double)rep_on * 1e6;

		if (!strcmp(exec, "soft"))
			printf("%-10s soft vCPU first-write cost, logging on: %.2f us   "
			       "(uffd async WP fault: ~1.2 us; <= 0 means lost in noise)\n",
			       ldname, us);
		else if (raw_fault_us > 0)
			printf("%-10s guest first-write cost, logging on: %.2f us = %.2fx the "
			       "raw fault (%.2f us)   (target <= 1.2x)\n", ldname, us,
			       us / raw_fault_us, raw_fault_us);
		else
			printf("%-10s guest first-write cost, logging on: %.2f us   (target "
			       "within 1.2x of the raw fault, ~10 us)\n", ldname, us);
	}
	ld_stats(ld, &st);
	printf("%-10s stats: %llu pages in %llu peeks, %.0f pages/s since enable, "
	       "%.3f ms in peeks, %llu ring-full harvests\n", ldname,
	       (unsigned long long)st.total_pages, (unsigned long long)st.peeks,
	       st.avg_rate_pps, st.peek_time_s * 1e3,
	       (unsigned long long)st.ring_full_events);
	ld_disable(ld);
out:
	free(bm);
	hyp_domain_put(d);
	hyp_domain_destroy(h, id);
	hyp_destroy(h);
	return ret;
}

/*
 * Minimal KVM probe: a CPL3 store loop (1 byte per page over a 1 GiB slot,
 * then an MMIO write to return) under guest 2 MiB identity pages. Pass 1
 * populates, pass 2 runs with KVM_MEM_LOG_DIRTY_PAGES freshly set (every
 * store is a write-protect fault), pass 3 with nothing protected. Long: the
 * ioctl sequence is kept in the order KVM needs it.
 */
static int bench_raw(void)
{
	const uint64_t size = 1ull << 30, data_gpa = 4ull << 30;
	static const uint8_t code[] = {
		0x88, 0x07,	      /* 1: mov %al,(%rdi) */
		0x48, 0x01, 0xd7,     /* add %rdx,%rdi */
		0x48, 0x39, 0xf7,     /* cmp %rsi,%rdi */
		0x72, 0xf6,	      /* jb 1b */
		0x88, 0x03,	      /* mov %al,(%rbx): MMIO exit */
		0xeb, 0xf2,	      /* jmp 1b */
	};
	struct kvm_userspace_memory_region r0 = { .slot = 0, .memory_size = 2 << 20 };
	struct kvm_userspace_memory_region r1 = { .slot = 1, .guest_phys_addr = data_gpa,
						  .memory_size = size };
	struct kvm_segment cs = { .limit = 0xffffffff, .selector = 0x33, .type = 11,
				  .present = 1, .dpl = 3, .s = 1, .l = 1, .g = 1 };
	struct kvm_segment ds = { .limit = 0xffffffff, .selector = 0x2b, .type = 3,
				  .present = 1, .dpl = 3, .db = 1, .s = 1, .g = 1 };
	struct kvm_sregs s;
	struct kvm_regs g = { 0 };
	struct kvm_run *run;
	uint64_t *pt, np = size >> 12;
	uint8_t *low, *data;
	double t[3];
	int kvm, vm, vc, ret = -1;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("raw        skipped: /dev/kvm is not available\n");
		return 0;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	low = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	data = mmap(NULL, size, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm < 0 || low == MAP_FAILED || data == MAP_FAILED)
		goto out;
	r0.userspace_addr = (uintptr_t)low;
	r1.userspace_addr = (uintptr_t)data;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r0) ||
	    ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r1))
		goto out;
	/* PML4 0x1000 -> PDPT 0x2000; PD 0x3000 maps 0-4 MiB (only 0-2 MiB has a
	 * memslot, 2-4 MiB is MMIO), PD 0x4000 maps the 1 GiB at 4 GiB. */
	pt = (uint64_t *)(low + 0x1000);
	pt[0] = 0x2000 | 7;
	pt = (uint64_t *)(low + 0x2000);
	pt[0] = 0x3000 | 7;
	pt[4] = 0x4000 | 7;
	pt = (uint64_t *)(low + 0x3000);
	pt[0] = 0x87;
	pt[1] = 0x200000 | 0x87;
	pt = (uint64_t *)(low + 0x4000);
	for (int i = 0; i < 512; i++)
		pt[i] = (data_gpa + ((uint64_t)i << 21)) | 0x87;
	memcpy(low + 0x10000, code, sizeof(code));

	vc = ioctl(vm, KVM_CREATE_VCPU, 0);
	run = mmap(NULL, (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0),
		   PROT_READ | PROT_WRITE, MAP_SHARED, vc, 0);
	if (vc < 0 || run == MAP_FAILED || ioctl(vc, KVM_GET_SREGS, &s))
		goto out;
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.cr0 = 0x80050033;
	s.cr3 = 0x1000;
	s.cr4 = 0x20 | 0x200 | 0x400;
	s.efer = 0x501;
	s.tr.limit = 0x67;
	s.tr.type = 11;
	s.tr.present = 1;
	s.tr.selector = 0x18;
	if (ioctl(vc, KVM_SET_SREGS, &s))
		goto out;
	g.rip = 0x10000;
	g.rflags = 0x3002;
	g.rsi = data_gpa + size;
	g.rdx = 4096;
	g.rbx = 0x200000;
	for (int pass = 0; pass < 3; pass++) {
		double t0;

		if (pass == 1) {
			r1.flags = KVM_MEM_LOG_DIRTY_PAGES;
			if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r1))
				goto out;
		}
		g.rip = 0x10000;
		g.rdi = data_gpa;
		ioctl(vc, KVM_SET_REGS, &g);
		t0 = ferry_now_s();
		if (ioctl(vc, KVM_RUN, 0) || run->exit_reason != KVM_EXIT_MMIO) {
			printf("raw        probe failed: exit %u\n", run->exit_reason);
			goto out;
		}
		t[pass] = ferry_now_s() - t0;
	}
	raw_fault_us = (t[1] - t[2]) / (double)np * 1e6;
	printf("raw        KVM write-protect fault (CPL3 store, logging on): %.2f us   "
	       "(limits.md: 9-10 us)\n", raw_fault_us);
	printf("raw        store, page mapped writable: %.1f ns; first touch: %.2f us\n",
	       t[2] / (double)np * 1e9, t[0] / (double)np * 1e6);
	ret = 0;
out:
	if (ret)
		printf("raw        probe could not run on this KVM\n");
	close(kvm);
	if (vm >= 0)
		close(vm);
	if (low != MAP_FAILED)
		munmap(low, 2 << 20);
	if (data != MAP_FAILED)
		munmap(data, size);
	return ret;
}

int main(int argc, char **argv)
{
	static const char *const all[] = { "raw", "kvm-bitmap", "kvm-ring", "wp" };
	int n = argc > 1 ? argc - 1 : 4;

	bench_help(argc, argv, "bench-logdirty [kvm-bitmap|kvm-ring|wp|raw]...   (default: all)");
	log_set_level(LOG_WARN);
	for (int i = 0; i < n; i++) {
		const char *b = argc > 1 ? argv[i + 1] : all[i];

		if (!strcmp(b, "raw"))
			bench_raw();
		else
			bench_backend(b);
		fflush(stdout);
	}
	return 0;
}
