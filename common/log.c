// SPDX-License-Identifier: MIT
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define RING_SIZE (64 * 1024)

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level log_level = LOG_INFO;
static int log_fd = -1;
static int log_stderr = 1;
static char ring[RING_SIZE];
static size_t ring_head; /* total bytes ever written */

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_set_level(enum log_level lvl) { log_level = lvl; }
void log_set_fd(int fd) { log_fd = fd; }
void log_set_stderr(int on) { log_stderr = on; }

static void ring_put(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ring[(ring_head + i) % RING_SIZE] = s[i];
	ring_head += n;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m;

	if (lvl > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03ld %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	line[n] = 0;

	pthread_mutex_lock(&log_lock);
	ring_put(line, (size_t)n);
	if (log_stderr && write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	if (log_fd >= 0 && write(log_fd, line, (size_t)n) < 0) {
		/* ditto */
	}
	pthread_mutex_unlock(&log_lock);
}

size_t log_ring_read(char *buf, size_t len)
{
	size_t n, start;

	if (!len)
		return 0;
	pthread_mutex_lock(&log_lock);
	n = ring_head < RING_SIZE ? ring_head : RING_SIZE;
	if (n > len - 1)
		n = len - 1;
	start = ring_head - n;
	for (size_t i = 0; i < n; i++)
		buf[i] = ring[(start + i) % RING_SIZE];
	buf[n] = 0;
	pthread_mutex_unlock(&log_lock);
	return n;
}
