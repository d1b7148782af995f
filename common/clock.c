// SPDX-License-Identifier: MIT
#include <time.h>

#include "common/clock.h"

uint64_t ferry_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double ferry_now_s(void)
{
	return (double)ferry_now_ns() / 1e9;
}

void ferry_deadline_in(struct timespec *t, double s)
{
	clock_gettime(CLOCK_REALTIME, t);
	t->tv_sec += (time_t)s;
	t->tv_nsec += (long)((s - (double)(time_t)s) * 1e9);
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}
