/* SPDX-License-Identifier: MIT */
#ifndef COMMON_SIZE_H
#define COMMON_SIZE_H

#include <stdint.h>

/*
 * Parses "1024", "64K", "256M", "4G", "1T" (binary units, optional trailing
 * "B" or "iB"); a bare number is multiplied by default_unit. Returns 0 or
 * -EINVAL / -ERANGE.
 */
int size_parse(const char *s, uint64_t default_unit, uint64_t *out);

#endif
