/* SPDX-License-Identifier: MIT */
/*
 * The one monotonic clock (CLOCK_MONOTONIC): durations, deadlines and
 * rates. Not wall-clock time: it does not jump when the date is set.
 */
#ifndef COMMON_CLOCK_H
#define COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds since an arbitrary start (boot). */
uint64_t ferry_now_ns(void);
/* The same in seconds. */
double ferry_now_s(void);
/* CLOCK_REALTIME s seconds from now, for pthread_cond_timedwait (whose
 * default clock it is); the one use of wall-clock time. */
void ferry_deadline_in(struct timespec *t, double s);

#endif
