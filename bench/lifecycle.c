// SPDX-License-Identifier: MIT
/*
 * Lifecycle figures for a 1 GiB domain of the built-in guest, per backend:
 * create to the first console line, destroy, and ferryd's own memory beyond
 * guest RAM per domain (anonymous RSS; guest RAM is the shared memfd).
 * Usage: bench-lifecycle [kvm|soft ...]   (default: every backend that runs)
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "guests/soft.h"
#include "hyp/hyp.h"
#include "bench.h"

#define RUNS 5
#define NDOMS 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static double first_line_at;

static void on_console(void *opaque, uint32_t domid, const char *buf, size_t len)
{
	pthread_mutex_lock(&lock);
	if (!first_line_at && memchr(buf, '\n', len)) {
		first_line_at = ferry_now_s();
		pthread_cond_broadcast(&cond);
	}
	pthread_mutex_unlock(&lock);
}

static long rss_anon_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static struct hyp_dom_config cfg(const char *name)
{
	struct hyp_dom_config c;

	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "%s", name);
	c.memory_mb = c.maxmem_mb = 1024;
	c.vcpus = 1;
	snprintf(c.cmdline, sizeof(c.cmdline), "workload=idle");
	return c;
}

static int bench(const char *backend)
{
	struct hyp_params p = {
		.backend = backend,
		.memory_bytes = 6ULL << 30,
		.guest_elf = FERRY_GUEST_ELF,
		.soft_guest = &wl_soft_guest_ops,
		.pv_backend = &dev_pv_backend_ops, .pv_backend_opaque = bench_pv(),
		.events = { .console = on_console },
	};
	double create[RUNS], destroy[RUNS];
	uint32_t ids[NDOMS];
	long before, after;
	struct hyp *h;

	if (hyp_create(&p, &h)) {
		printf("%s: backend not available here, skipped\n", backend);
		return 0;
	}
	for (int r = 0; r < RUNS; r++) {
		struct hyp_dom_config c = cfg("bench");
		struct timespec ts;
		uint32_t id;
		double t0, t1;

		first_line_at = 0;
		t0 = ferry_now_s();
		if (hyp_domain_create(h, &c, false, &id))
			return 1;
		pthread_mutex_lock(&lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;
		while (!first_line_at)
			if (pthread_cond_timedwait(&cond, &lock, &ts))
				break;
		t1 = first_line_at;
		pthread_mutex_unlock(&lock);
		if (!t1) {
			fprintf(stderr, "%s: no console line within 10 s\n", backend);
			return 1;
		}
		create[r] = (t1 - t0) * 1e3;
		t0 = ferry_now_s();
		hyp_domain_destroy(h, id);
		destroy[r] = (ferry_now_s() - t0) * 1e3;
	}
	qsort(create, RUNS, sizeof(double), cmp);
	qsort(destroy, RUNS, sizeof(double), cmp);

	before = rss_anon_kb();
	for (int i = 0; i < NDOMS; i++) {
		char name[16];
		struct hyp_dom_config c;

		snprintf(name, sizeof(name), "m%d", i);
		c = cfg(name);
		if (hyp_domain_create(h, &c, false, &ids[i]))
			return 1;
	}
	sleep(1);
	after = rss_anon_kb();
	for (int i = 0; i < NDOMS; i++)
		hyp_domain_destroy(h, ids[i]);
	hyp_destroy(h);

	printf("%-5s create -> first console line, 1 GiB: median %7.2f ms (min %.2f, max %.2f)"
	       "   target < 50 ms: %s\n",
	       backend, create[RUNS / 2], create[0], create[RUNS - 1],
	       create[RUNS / 2] < 50 ? "met" : "MISSED");
	printf("%-5s destroy, 1 GiB:                       median %7.2f ms (min %.2f, max %.2f)\n",
	       backend, destroy[RUNS / 2], destroy[0], destroy[RUNS - 1]);
	printf("%-5s ferryd memory beyond guest RAM:       %7.2f MiB per domain"
	       "   target < 16 MiB: %s\n",
	       backend, (double)(after - before) / 1024 / NDOMS,
	       (double)(after - before) / 1024 / NDOMS < 16 ? "met" : "MISSED");
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const all[] = { "kvm", "soft" };
	int err = 0;

	bench_help(argc, argv,
		   "bench-lifecycle [kvm|soft ...]   (default: every backend that runs)");
	log_set_level(LOG_WARN);
	if (argc > 1) {
		for (int i = 1; i < argc; i++)
			err |= bench(argv[i]);
	} else {
		for (unsigned i = 0; i < 2; i++)
			err |= bench(all[i]);
	}
	return err;
}
