// SPDX-License-Identifier: MIT
/*
 * Scheduler figures: 2 and 3 spinning domains (workload=spin) share one
 * pCPU under credit2 at various weights. For each mix: every domain's
 * share of the CPU time they got together against weight / sum of
 * weights (fairness error: the largest relative deviation), and pCPU
 * handovers (context switches) per second.
 * Usage: bench-sched [soft|kvm ...] [-t SECONDS]   (default: soft, 3 s)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "hyp/hyp.h"
#include "hyp/sched.h"

#define MAXD 3

struct mix {
	unsigned n;
	unsigned w[MAXD];
};

static const struct mix mixes[] = {
	{ 2, { 256, 256 } },	  { 2, { 256, 512 } },	   { 2, { 256, 1024 } },
	{ 2, { 100, 900 } },	  { 3, { 256, 256, 256 } }, { 3, { 256, 512, 768 } },
	{ 3, { 128, 256, 1024 } },
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	nanosleep(&ts, NULL);
}

static double cpu_s(struct hyp *h, uint32_t id)
{
	struct hyp_dom_info di;

	return hyp_domain_info(h, id, &di) ? 0 : di.cpu_time_s;
}

static int run_mix(const char *backend, const struct mix *m, double secs)
{
	struct hyp_params p = {
		.backend = backend,
		.pcpus = 1,
		.memory_bytes = 256ULL << 20,
		.guest_elf = FERRY_GUEST_ELF,
	};
	struct hyp *h;
	uint32_t id[MAXD];
	double c0[MAXD], c1[MAXD], t0, t1, total = 0, err = 0;
	struct sched_stats s0, s1;
	unsigned wsum = 0;
	char label[64];
	int n = 0;

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
		wsum += m->w[i];
	}
	for (unsigned i = 0; i < m->n; i++)
		hyp_domain_unpause(h, id[i]);
	sleep_s(0.5); /* boot */
	t0 = now();
	sched_get_stats(h, &s0);
	for (unsigned i = 0; i < m->n; i++)
		c0[i] = cpu_s(h, id[i]);
	sleep_s(secs);
	for (unsigned i = 0; i < m->n; i++)
		c1[i] = cpu_s(h, id[i]);
	sched_get_stats(h, &s1);
	t1 = now();
	for (unsigned i = 0; i < m->n; i++)
		total += c1[i] - c0[i];
	for (unsigned i = 0; i < m->n; i++) {
		double want = (double)m->w[i] / wsum, got = (c1[i] - c0[i]) / total;

		if (fabs(got - want) / want > err)
			err = fabs(got - want) / want;
	}
	for (unsigned i = 0; i < m->n; i++)
		n += snprintf(label + n, sizeof(label) - (size_t)n, "%s%u", i ? ":" : "", m->w[i]);
	printf("%-5s %-14s", backend, label);
	for (unsigned i = 0; i < MAXD; i++) {
		if (i < m->n)
			printf(" %6.1f%%(%4.1f)", 100 * (c1[i] - c0[i]) / total,
			       100.0 * m->w[i] / wsum);
		else
			printf(" %14s", "");
	}
	printf("  %6.2f%%  %7.0f  %5.2f\n", 100 * err,
	       (double)(s1.switches - s0.switches) / (t1 - t0), total / (t1 - t0));
	hyp_destroy(h);
	return 0;
}

int main(int argc, char **argv)
{
	const char *backends[4];
	unsigned nb = 0;
	double secs = 3;

	log_set_level(LOG_WARN);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-t") && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (nb < 4)
			backends[nb++] = argv[i];
	}
	if (!nb)
		backends[nb++] = "soft";
	printf("credit2 on 1 pCPU, %.0f s per mix; share of the CPU the domains got "
	       "(weight's share), fairness error (max relative deviation), "
	       "context switches/s, pCPU busy (CPU s/s)\n", secs);
	printf("%-5s %-14s %-44s  %7s  %7s  %5s\n", "back", "weights", "shares", "error",
	       "sw/s", "busy");
	for (unsigned b = 0; b < nb; b++)
		for (size_t i = 0; i < sizeof(mixes) / sizeof(mixes[0]); i++)
			if (run_mix(backends[b], &mixes[i], secs))
				printf("%-5s: cannot run this mix\n", backends[b]);
	return 0;
}
