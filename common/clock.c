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
