// SPDX-License-Identifier: MIT
/*
 * Scheduler figures: spinning domains (workload=spin) share one pCPU under
 * credit2. Against the targets, over RUNS runs: the fairness error
 * of weights 256:512 (each domain's share of the CPU time they got
 * together against weight / sum of weights; the largest relative
 * deviation; target 10 %), the error of a lone domain capped at 25 % of
 * the pCPU (|share - 25 %| / 25 %; target 10 %), and pCPU handovers
 * (context switches) per second. Then one run of each mix in a wider
 * table, for the shape of it.
 * Usage: bench-sched [soft|kvm ...] [-t SECONDS] [-r RUNS]
 *        (default: soft, and kvm if /dev/kvm opens; 1 s windows, 3 runs)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "common/log.h"
#include "hyp/hyp.h"
#include "hyp/sched.h"

#define MAXD 3
#define MAX_RUNS BENCH_MAX_RUNS
#define TARGET_ERR 10.0 /* %, both targets */

struct mix {
	unsigned n;
	unsigned w[MAXD];
	unsigned cap; /* n == 1 only: % of the pCPU, the target share */
};

static const struct mix weights_1_2 = { 2, { 256, 512 }, 0 };
static const struct mix cap_25 = { 1, { 256 }, 25 };

static const struct mix mixes[] = {
	{ 2, { 256, 256 }, 0 },	     { 2, { 256, 512 }, 0 },	   { 2, { 256, 1024 }, 0 },
	{ 2, { 100, 900 }, 0 },	     { 3, { 256, 256, 256 }, 0 }, { 3, { 256, 512, 768 }, 0 },
	{ 3, { 128, 256, 1024 }, 0 }, { 1, { 256 }, 25 },	   { 1, { 256 }, 50 },
};

struct result {
	double share[MAXD]; /* % of the CPU the domains got together (cap: of
			     * wall time) */
	double want[MAXD];
	double err;	    /* % */
	double sw_s;	    /* context switches/s */
	double busy;	    /* CPU s/s the domains got */
};

static double cpu_s(struct hyp *h, uint32_t id)
{
	struct hyp_dom_info di;

	return hyp_domain_info(h, id, &di) ? 0 : di.cpu_time_s;
}

static int run_mix(const char *backend, const struct mix *m, double secs, struct result *r)
{
	struct hyp_params p = {
		.backend = backend,
		.pcpus = 1,
		.memory_bytes = 256ULL << 20,
		.guest_elf = FERRY_GUEST_ELF,
	};
	struct hyp *h;
	uint32_t id[MAXD];
	double c0[MAXD], c1[MAXD], t0, t1, total = 0;
	struct sched_stats s0, s1;
	unsigned wsum = 0;

	memset(r, 0, sizeof(*r));
	if (hyp_create(&p, &h))
		return -1;
	for (unsigned i = 0; i < m->n; i++) {
		struct hyp_dom_config c;

		memset(&c, 0, sizeof(c));
		snprintf(c.name, sizeof(c.name), "spin%u", i);
		c.memory_mb = c.maxmem_mb = 32;
		c.vcpus = 1;
		snprintf(c.cmdline, sizeof(c.cmdline), "workload=spin");
		c.on_poweroff = c.on_reboot = c.on_crash = HYP_ON_DESTROY;
		if (hyp_domain_create(h, &c, true, &id[i]) ||
		    sched_credit2_set(h, id[i], (int)m->w[i], (int)m->cap)) {
			hyp_destroy(h);
			return -1;
		}
		wsum += m->w[i];
	}
	for (unsigned i = 0; i < m->n; i++)
		hyp_domain_unpause(h, id[i]);
	bench_sleep(0.5); /* boot */
	t0 = bench_now();
	sched_get_stats(h, &s0);
	for (unsigned i = 0; i < m->n; i++)
		c0[i] = cpu_s(h, id[i]);
	bench_sleep(secs);
	for (unsigned i = 0; i < m->n; i++)
		c1[i] = cpu_s(h, id[i]);
	sched_get_stats(h, &s1);
	t1 = bench_now();
	for (unsigned i = 0; i < m->n; i++)
		total += c1[i] - c0[i];
	/* A lone capped domain's share is of wall time; weights share what
	 * the domains got together. */
	if (m->n == 1 && m->cap)
		total = t1 - t0;
	for (unsigned i = 0; i < m->n; i++) {
		double dev;

		r->share[i] = total > 0 ? 100 * (c1[i] - c0[i]) / total : 0;
		r->want[i] = m->n == 1 && m->cap ? m->cap : 100.0 * m->w[i] / wsum;
		dev = 100 * fabs(r->share[i] - r->want[i]) / r->want[i];
		if (dev > r->err)
			r->err = dev;
	}
	r->sw_s = (double)(s1.switches - s0.switches) / (t1 - t0);
	for (unsigned i = 0; i < m->n; i++)
		r->busy += (c1[i] - c0[i]) / (t1 - t0);
	hyp_destroy(h);
	return 0;
}

static void label(const struct mix *m, char *buf, size_t len)
{
	int n = 0;

	for (unsigned i = 0; i < m->n; i++)
		n += snprintf(buf + n, len - (size_t)n, "%s%u", i ? ":" : "", m->w[i]);
	if (m->cap)
		snprintf(buf + n, len - (size_t)n, " cap %u", m->cap);
}

/* The target rows: error and switches/s, median (min-max) of runs. */
static void target_row(const char *backend, const char *what, const struct mix *m, int runs,
		       double secs)
{
	double err[MAX_RUNS], sw[MAX_RUNS], share[MAX_RUNS];
	struct bench_stat e, s, sh;
	int n = 0;

	for (int i = 0; i < runs; i++) {
		struct result r;

		if (run_mix(backend, m, secs, &r))
			continue;
		err[n] = r.err;
		sw[n] = r.sw_s;
		/* The first domain's share: the one the target is about. */
		share[n++] = r.share[0];
	}
	if (!n) {
		printf("%-5s %-26s cannot run\n", backend, what);
		return;
	}
	e = bench_stat(err, n);
	s = bench_stat(sw, n);
	sh = bench_stat(share, n);
	printf("%-5s %-26s %5.1f%% (%4.1f-%4.1f)  %5.2f%% (%5.2f-%6.2f)  %4.0f%%  %5.2f %-6s"
	       "  %5.0f (%4.0f-%4.0f)\n",
	       backend, what, sh.med, sh.min, sh.max, e.med, e.min, e.max, TARGET_ERR,
	       e.med / TARGET_ERR, e.med <= TARGET_ERR ? "met" : "MISSED", s.med, s.min, s.max);
}

int main(int argc, char **argv)
{
	const char *backends[BENCH_MAX_BACKENDS];
	unsigned nb = 0;
	double secs = 1;
	int runs = 3;

	log_set_level(LOG_WARN);
	if (bench_args(argc, argv, "bench-sched [soft|kvm ...] [-t SECONDS] [-r RUNS]",
		       &secs, &runs, backends, &nb, NULL))
		return 2;
	if (!nb) {
		backends[nb++] = "soft";
		if (bench_kvm_opens())
			backends[nb++] = "kvm";
	}

	printf("credit2 on 1 pCPU, %.1f s windows, %d runs: median (min-max)\n", secs, runs);
	printf("%-5s %-26s %-18s %-21s %5s  %-12s  %s\n", "back", "target", "share (want)",
	       "error", "goal", "ratio", "context switches/s");
	for (unsigned b = 0; b < nb; b++) {
		target_row(backends[b], "weights 256:512 (33.3%)", &weights_1_2, runs, secs);
		target_row(backends[b], "cap 25, alone (25.0%)", &cap_25, runs, secs);
	}
	printf("share: the first domain's; error: the largest relative deviation from the "
	       "wanted share; ratio: error / goal\n\n");

	printf("every mix, one run of %.1f s: share of the CPU the domains got (wanted), "
	       "error, context switches/s, pCPU busy (CPU s/s)\n", secs);
	printf("%-5s %-16s %-44s  %7s  %7s  %5s\n", "back", "mix", "shares", "error", "sw/s",
	       "busy");
	for (unsigned b = 0; b < nb; b++) {
		for (size_t i = 0; i < sizeof(mixes) / sizeof(mixes[0]); i++) {
			struct result r;
			char l[64];

			label(&mixes[i], l, sizeof(l));
			if (run_mix(backends[b], &mixes[i], secs, &r)) {
				printf("%-5s %-16s cannot run this mix\n", backends[b], l);
				continue;
			}
			printf("%-5s %-16s", backends[b], l);
			for (unsigned d = 0; d < MAXD; d++) {
				if (d < mixes[i].n)
					printf(" %6.1f%%(%4.1f)", r.share[d], r.want[d]);
				else
					printf(" %14s", "");
			}
			printf("  %6.2f%%  %7.0f  %5.2f\n", r.err, r.sw_s, r.busy);
		}
	}
	return 0;
}
