/* SPDX-License-Identifier: MIT */
/* Growing an array by doubling (header-only). */
#ifndef COMMON_GROW_H
#define COMMON_GROW_H

#include <errno.h>
#include <stdlib.h>

/*
 * Makes *p (an array of *cap elements of unit bytes, or NULL) hold at least
 * need elements, doubling from 16. 0, or -ENOMEM with *p unchanged.
 */
static inline int ferry_grow(void **p, size_t *cap, size_t need, size_t unit)
{
	size_t ncap = *cap ? *cap : 16;
	void *np;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	np = realloc(*p, ncap * unit);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

#endif
