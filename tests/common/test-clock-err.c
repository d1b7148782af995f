// SPDX-License-Identifier: MIT
/* common/clock.h (the one monotonic clock) and common/err.h (one strerror
 * for errno values and Ferry's own codes). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"

Test(clock, monotonic_and_in_step_with_sleep)
{
	struct timespec nap = { 0, 20 * 1000000L };
	uint64_t a = ferry_now_ns(), b;
	double s0 = ferry_now_s(), s1;

	cr_assert_eq(nanosleep(&nap, NULL), 0);
	b = ferry_now_ns();
	s1 = ferry_now_s();
	cr_assert_geq(b - a, 20 * 1000000ull, "slept 20 ms, clock moved %llu ns",
		      (unsigned long long)(b - a));
	cr_assert_lt(b - a, 5 * 1000000000ull, "a 20 ms sleep took over 5 s");
	cr_assert_geq(s1 - s0, 0.02);
	/* Both read the same clock. */
	cr_assert_lt(s0 - (double)a / 1e9, 0.5);
	cr_assert_geq(s0 * 1e9, (double)a);
}

Test(err, ferry_codes_either_sign)
{
	cr_assert_str_eq(ferry_strerror(-FERRY_EPROTO), "control protocol error");
	cr_assert_str_eq(ferry_strerror(FERRY_EPROTO), "control protocol error");
	cr_assert_str_eq(ferry_strerror(-FERRY_EBADCFG), "bad domain configuration");
	for (int e = FERRY_EBASE + 1; e < FERRY_EMAX; e++) {
		cr_assert_not_null(ferry_strerror(-e));
		cr_assert_null(strstr(ferry_strerror(-e), "Unknown error"), "code %d", e);
	}
}

Test(err, errno_values_fall_back_to_strerror)
{
	cr_assert_str_eq(ferry_strerror(-ENOENT), strerror(ENOENT));
	cr_assert_str_eq(ferry_strerror(EPIPE), strerror(EPIPE));
	cr_assert_str_eq(ferry_strerror(0), strerror(0));
}
