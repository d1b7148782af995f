/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benches: a sleep, median (min-max) of a few runs,
 * and the PV rings' backends a bench's hyp gets, as ferryd's does.
 * Header-only so bench/CMakeLists.txt keeps one executable per .c file.
 */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "devices/pv.h"
#include "hyp/hyp.h"

/* One for the process: it holds only the xenstore kick. NULL on failure
 * (hyp_create then refuses nothing, but domains get no PV rings). */
static inline struct dev_pv *bench_pv(void)
{
	static struct dev_pv *pv;

	if (!pv && dev_pv_new(&pv))
		pv = NULL;
	return pv;
}

static inline void bench_sleep(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts))
		;
}

/* Up to secs for needle in the domain's console. */
static inline bool bench_wait_console(struct hyp *h, uint32_t id, const char *needle, double secs)
{
	static char buf[65536];
	double end = ferry_now_s() + secs;

	while (ferry_now_s() < end) {
		size_t got = 0;

		if (!hyp_console_read(h, id, buf, sizeof(buf) - 1, &got)) {
			buf[got] = 0;
			if (strstr(buf, needle))
				return true;
		}
		bench_sleep(0.02);
	}
	return false;
}

struct bench_stat {
	double med, min, max;
};

static inline int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts v in place. n == 0 gives zeros. */
static inline struct bench_stat bench_stat(double *v, int n)
{
	struct bench_stat s = { 0, 0, 0 };

	if (n <= 0)
		return s;
	qsort(v, (size_t)n, sizeof(*v), bench_cmp);
	s.min = v[0];
	s.max = v[n - 1];
	s.med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return s;
}

static inline bool bench_kvm_opens(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

#define BENCH_MAX_RUNS 9
#define BENCH_MAX_BACKENDS 4

/* -h or --help anywhere: the usage line on stdout, and exit. */
static inline void bench_help(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: %s\n", usage);
			exit(0);
		}
	}
}

/*
 * The command line the in-process benches share: [-t SECONDS] [-r RUNS]
 * and backend names (or, with backends NULL, one other word into *other).
 * *secs and *runs hold the defaults on entry. Prints the usage and returns
 * -1 for a bad value or an unknown option; -h or --help exits with it.
 */
static inline int bench_args(int argc, char **argv, const char *usage, double *secs,
			     int *runs, const char **backends, unsigned *nb,
			     const char **other)
{
	bench_help(argc, argv, usage);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-t") && i + 1 < argc) {
			*secs = atof(argv[++i]);
		} else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
			*runs = atoi(argv[++i]);
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "unknown option %s\nusage: %s\n", argv[i], usage);
			return -1;
		} else if (backends && *nb < BENCH_MAX_BACKENDS) {
			backends[(*nb)++] = argv[i];
		} else if (other) {
			*other = argv[i];
		}
	}
	if (*runs < 1 || *runs > BENCH_MAX_RUNS || *secs <= 0) {
		fprintf(stderr, "usage: %s (RUNS 1-%d)\n", usage, BENCH_MAX_RUNS);
		return -1;
	}
	return 0;
}

#endif
