// SPDX-License-Identifier: MIT
/*
 * Scheduler figures: spinning domains (workload=spin) share one pCPU under
 * credit2. Each figure twice: from the CPU time ferryd's vCPU threads got
 * (what the scheduler charges) and from the guests' own counters (the
 * "spin: count=N rate=R/s" each prints once a second: the work it did).
 * Against the targets, over RUNS runs: the fairness error of
 * weights 256:512 (each domain's share of what the two got together
 * against weight / sum of weights; the largest relative deviation; target
 * 10 %), the error of a lone domain capped at 25 % of the pCPU (|share -
 * 25 %| / 25 %, the counter's share being its rate against the loop's full
 * speed measured uncapped just before and after; target 10 %), and pCPU
 * handovers (context switches) per second. Then one run of each mix in a
 * wider table, for the shape of it.
 * Usage: bench-sched [soft|kvm ...] [-t SECONDS] [-r RUNS]
 *        (default: soft, and kvm if /dev/kvm opens; windows of 3 reports
 *        (-t 3: about 3 s), 3 runs)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "common/clock.h"
#include "common/log.h"
#include "guests/soft.h"
#include "guests/spin-report.h"
#include "hyp/hyp.h"
#include "hyp/sched.h"

#define MAXD 3
#define MAX_RUNS BENCH_MAX_RUNS
#define TARGET_ERR 10.0 /* %, both targets */
#define MAX_REPORTS 512

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

/* By CPU time ([0]) and by the guests' counters ([1]). */
struct result {
	double share[2][MAXD]; /* % of what the domains got together (cap: of
				* a pCPU) */
	double want[MAXD];
	double err[2];	       /* % */
	double sw_s;	       /* context switches/s, in the (capped) window */
	double busy;	       /* CPU s/s the domains got, in it */
};

static int reports(struct hyp *h, uint32_t id, struct wl_spin_report *out)
{
	static char buf[65536 + 1];
	size_t got = 0;

	if (hyp_console_read(h, id, buf, sizeof(buf) - 1, &got))
		return 0;
	buf[got] = 0;
	return wl_spin_reports(buf, out, MAX_REPORTS);
}

static double cpu_s(struct hyp *h, uint32_t id)
{
	struct hyp_dom_info di;

	return hyp_domain_info(h, id, &di) ? 0 : di.cpu_time_s;
}

/* Waits (polling every 2 ms, 20 s at most) until report idx of the domain
 * or a later one appears, one already there when called not counting (its
 * CPU time would be read late); the newest one's index, its count and the
 * domain's CPU time right after it. -1 on timeout. */
static int at_report(struct hyp *h, uint32_t id, int idx, double *count, double *cpu)
{
	static struct wl_spin_report r[MAX_REPORTS];
	double end = ferry_now_s() + 20;
	int n = reports(h, id, r);

	if (n > idx)
		idx = n;
	while ((n = reports(h, id, r)) <= idx && ferry_now_s() < end)
		bench_sleep(0.002);
	*cpu = cpu_s(h, id);
	if (n <= idx)
		return -1;
	*count = r[n - 1].count;
	return n - 1;
}

/* The mean reported rate of reports [from, upto), waiting for them. */
static double mean_rate(struct hyp *h, uint32_t id, int from, int upto)
{
	static struct wl_spin_report r[MAX_REPORTS];
	double sum = 0, end = ferry_now_s() + 20 + (upto - from);
	int n;

	while ((n = reports(h, id, r)) < upto && ferry_now_s() < end)
		bench_sleep(0.002);
	if (n < upto)
		return -1;
	for (int i = from; i < upto; i++)
		sum += r[i].rate;
	return sum / (upto - from);
}

static int nreports(struct hyp *h, uint32_t id)
{
	static struct wl_spin_report r[MAX_REPORTS];

	return reports(h, id, r);
}

/* The loop's speed per CPU second over nrep reports from report i. */
static double full_speed(struct hyp *h, uint32_t id, int i, int nrep)
{
	double c0, t0, c1, t1;

	i = at_report(h, id, i, &c0, &t0);
	if (i < 0 || at_report(h, id, i + nrep, &c1, &t1) < 0 || t1 <= t0)
		return -1;
	return (c1 - c0) / (t1 - t0);
}

static void error_of(struct result *r, unsigned n)
{
	for (int k = 0; k < 2; k++)
		for (unsigned i = 0; i < n; i++) {
			double dev = 100 * fabs(r->share[k][i] - r->want[i]) / r->want[i];

			if (dev > r->err[k])
				r->err[k] = dev;
		}
}

/* Weights: shares of what the domains got together, over nrep reports. */
static int measure_weights(struct hyp *h, const struct mix *m, const uint32_t *id, int nrep,
			   struct result *r)
{
	double c0[MAXD], rate[MAXD], total = 0, rtotal = 0, t0 = ferry_now_s();
	struct sched_stats s0, s1;
	int from[MAXD];
	unsigned wsum = 0;

	sched_get_stats(h, &s0);
	for (unsigned i = 0; i < m->n; i++) {
		from[i] = nreports(h, id[i]);
		c0[i] = cpu_s(h, id[i]);
		wsum += m->w[i];
	}
	for (unsigned i = 0; i < m->n; i++)
		if ((rate[i] = mean_rate(h, id[i], from[i], from[i] + nrep)) < 0)
			return -1;
	for (unsigned i = 0; i < m->n; i++) {
		c0[i] = cpu_s(h, id[i]) - c0[i];
		total += c0[i];
		rtotal += rate[i];
	}
	sched_get_stats(h, &s1);
	r->sw_s = (double)(s1.switches - s0.switches) / (ferry_now_s() - t0);
	r->busy = total / (ferry_now_s() - t0);
	for (unsigned i = 0; i < m->n; i++) {
		r->want[i] = 100.0 * m->w[i] / wsum;
		r->share[0][i] = total > 0 ? 100 * c0[i] / total : 0;
		r->share[1][i] = rtotal > 0 ? 100 * rate[i] / rtotal : 0;
	}
	return 0;
}

/* A lone capped domain, created uncapped: full speed, then capped for
 * nrep reports (the one straddling the change skipped), then full speed
 * again. */
static int measure_cap(struct hyp *h, const struct mix *m, uint32_t id, int nrep,
		       struct result *r)
{
	double before, after, capped, count, cpu0, t0, cpu;
	struct sched_stats s0, s1;
	int n;

	before = full_speed(h, id, 1, nrep);
	if (before <= 0 || sched_credit2_set(h, id, -1, (int)m->cap))
		return -1;
	n = at_report(h, id, nreports(h, id) + 1, &count, &cpu0);
	if (n < 0)
		return -1;
	t0 = ferry_now_s();
	sched_get_stats(h, &s0);
	capped = mean_rate(h, id, n + 1, n + 1 + nrep);
	cpu = (cpu_s(h, id) - cpu0) / (ferry_now_s() - t0);
	sched_get_stats(h, &s1);
	r->sw_s = (double)(s1.switches - s0.switches) / (ferry_now_s() - t0);
	r->busy = cpu;
	if (capped < 0 || sched_credit2_set(h, id, -1, 0))
		return -1;
	after = full_speed(h, id, nreports(h, id) + 1, nrep);
	if (after <= 0)
		return -1;
	r->want[0] = m->cap;
	r->share[0][0] = 100 * cpu;
	r->share[1][0] = 100 * capped / ((before + after) / 2);
	return 0;
}

static int run_mix(const char *backend, const struct mix *m, int nrep, struct result *r)
{
	struct hyp_params p = {
		.backend = backend,
		.pcpus = 1,
		.memory_bytes = 256ULL << 20,
		.guest_elf = FERRY_GUEST_ELF,
		.soft_guest = &wl_soft_guest_ops,
		.pv_backend = &dev_pv_backend_ops, .pv_backend_opaque = bench_pv(),
	};
	struct hyp *h;
	uint32_t id[MAXD];
	int err;

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
		    sched_credit2_set(h, id[i], (int)m->w[i], -1)) {
			hyp_destroy(h);
			return -1;
		}
	}
	for (unsigned i = 0; i < m->n; i++)
		hyp_domain_unpause(h, id[i]);
	/* Report 0 covers the boot. */
	for (unsigned i = 0; i < m->n; i++)
		if (mean_rate(h, id[i], 0, 1) < 0) {
			hyp_destroy(h);
			return -1;
		}
	if (m->n == 1 && m->cap)
		err = measure_cap(h, m, id[0], nrep, r);
	else
		err = measure_weights(h, m, id, nrep, r);
	if (!err)
		error_of(r, m->n);
	hyp_destroy(h);
	return err;
}

static void label(const struct mix *m, char *buf, size_t len)
{
	int n = 0;

	for (unsigned i = 0; i < m->n; i++)
		n += snprintf(buf + n, len - (size_t)n, "%s%u", i ? ":" : "", m->w[i]);
	if (m->cap)
		snprintf(buf + n, len - (size_t)n, " cap %u", m->cap);
}

/* The target rows: share, error and switches/s by CPU time and by the
 * guests' counters, median (min-max) of runs. */
static void target_row(const char *backend, const char *what, const struct mix *m, int runs,
		       int nrep)
{
	double err[2][MAX_RUNS], share[2][MAX_RUNS], sw[MAX_RUNS];
	struct bench_stat s;
	int n = 0;

	for (int i = 0; i < runs; i++) {
		struct result r;

		if (run_mix(backend, m, nrep, &r))
			continue;
		for (int k = 0; k < 2; k++) {
			err[k][n] = r.err[k];
			/* The first domain's share: the one the target is about. */
			share[k][n] = r.share[k][0];
		}
		sw[n++] = r.sw_s;
	}
	if (!n) {
		printf("%-5s %-24s cannot run\n", backend, what);
		return;
	}
	for (int k = 0; k < 2; k++) {
		struct bench_stat e = bench_stat(err[k], n);

		s = bench_stat(share[k], n);
		printf("%-5s %-24s %-8s %5.1f%% (%4.1f-%4.1f)  %5.2f%% (%5.2f-%6.2f)  %4.0f%%  "
		       "%5.2f %-6s",
		       k ? "" : backend, k ? "" : what, k ? "counters" : "CPU time", s.med, s.min,
		       s.max, e.med, e.min, e.max, TARGET_ERR, e.med / TARGET_ERR,
		       e.med <= TARGET_ERR ? "met" : "MISSED");
		if (!k) {
			s = bench_stat(sw, n);
			printf("  %5.0f (%4.0f-%4.0f)", s.med, s.min, s.max);
		}
		printf("\n");
	}
}

int main(int argc, char **argv)
{
	const char *backends[BENCH_MAX_BACKENDS];
	unsigned nb = 0;
	double secs = 3;
	int runs = 3, nrep;

	log_set_level(LOG_WARN);
	if (bench_args(argc, argv, "bench-sched [soft|kvm ...] [-t SECONDS] [-r RUNS]",
		       &secs, &runs, backends, &nb, NULL))
		return 2;
	if (!nb) {
		backends[nb++] = "soft";
		if (bench_kvm_opens())
			backends[nb++] = "kvm";
	}
	/* The guests report once a second. */
	nrep = secs < 1 ? 1 : (int)lround(secs);

	printf("credit2 on 1 pCPU, windows of %d guest reports (~%d s), %d runs: median "
	       "(min-max)\n",
	       nrep, nrep, runs);
	printf("%-5s %-24s %-8s %-18s %-21s %5s  %-12s  %s\n", "back", "target", "by",
	       "share (want)", "error", "goal", "ratio", "context switches/s");
	for (unsigned b = 0; b < nb; b++) {
		target_row(backends[b], "weights 256:512 (33.3%)", &weights_1_2, runs, nrep);
		target_row(backends[b], "cap 25, alone (25.0%)", &cap_25, runs, nrep);
	}
	printf("share: the first domain's, by the CPU time its vCPU thread got and by its "
	       "own counter; error: the largest relative deviation from the wanted share; "
	       "ratio: error / goal\n\n");

	printf("every mix, one run: share by CPU time / by the guests' counters (wanted), "
	       "errors, context switches/s, pCPU busy (CPU s/s)\n");
	printf("%-5s %-16s %-50s  %14s  %6s  %5s\n", "back", "mix", "shares", "errors",
	       "sw/s", "busy");
	for (unsigned b = 0; b < nb; b++) {
		for (size_t i = 0; i < sizeof(mixes) / sizeof(mixes[0]); i++) {
			struct result r;
			char l[64];

			label(&mixes[i], l, sizeof(l));
			if (run_mix(backends[b], &mixes[i], nrep, &r)) {
				printf("%-5s %-16s cannot run this mix\n", backends[b], l);
				continue;
			}
			printf("%-5s %-16s", backends[b], l);
			for (unsigned d = 0; d < MAXD; d++) {
				if (d < mixes[i].n)
					printf(" %4.1f/%4.1f%%(%4.1f)", r.share[0][d], r.share[1][d],
					       r.want[d]);
				else
					printf(" %16s", "");
			}
			printf("  %6.2f/%6.2f%%  %6.0f  %5.2f\n", r.err[0], r.err[1], r.sw_s,
			       r.busy);
		}
	}
	return 0;
}
