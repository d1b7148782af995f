/* SPDX-License-Identifier: MIT */
/*
 * For hosts (tests, benches), not the guest: workload=spin prints
 * "spin: count=N rate=R/s" about once a second of guest time, N the loop
 * iterations since boot, R those since its previous line per second of
 * guest time in between: the guest's own count of the CPU it got.
 * Header-only, with libc.
 */
#ifndef GUESTS_SPIN_REPORT_H
#define GUESTS_SPIN_REPORT_H

#include <stdio.h>
#include <string.h>

struct wl_spin_report {
	double count, rate;
};

/* The reports in text (a console's output), oldest first: how many were
 * stored, at most max. */
static inline int wl_spin_reports(const char *text, struct wl_spin_report *out, int max)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, "spin: count=")) && n < max; p++) {
		unsigned long long c, r;

		if (sscanf(p, "spin: count=%llu rate=%llu/s", &c, &r) == 2)
			out[n++] = (struct wl_spin_report){ (double)c, (double)r };
	}
	return n;
}

#endif
