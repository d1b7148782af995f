/* SPDX-License-Identifier: MIT */
/*
 * Logging: one line per message, to stderr (or a file) and to an in-memory
 * ring that `xl dmesg` reads. Log once, where an error is found, naming the
 * domain, pfn or record involved.
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stddef.h>

#include "common/compiler.h"

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_msg(enum log_level lvl, const char *fmt, ...) PRINTF_FMT(2, 3);
/* Messages above lvl are dropped (default LOG_INFO). */
void log_set_level(enum log_level lvl);
/* Also append to fd (e.g. ferryd's log file); -1 stops. stderr stays on
 * unless log_set_stderr(0). */
void log_set_fd(int fd);
void log_set_stderr(int on);
/* Copies up to len-1 bytes of the newest ring contents, NUL-terminated;
 * returns the length copied. */
size_t log_ring_read(char *buf, size_t len);

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
