// SPDX-License-Identifier: MIT
/* common/hugemap.h: zeroed, whole, aligned for huge pages, and backed by
 * them where the kernel's THP setting allows (the point of it: a 2 MiB
 * table in one fault rather than 512). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/hugemap.h"

/* True when the kernel gives huge pages to memory advised for them. */
static bool thp_advised(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	return strstr(buf, "[always]") || strstr(buf, "[madvise]");
}

/* AnonHugePages (KiB) of the mapping holding p, from /proc/self/smaps. */
static long huge_kib(const void *p)
{
	char line[256];
	FILE *f = fopen("/proc/self/smaps", "r");
	bool in = false;
	long kib = -1;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &kib) == 1)
			break;
	}
	fclose(f);
	return kib;
}

Test(hugemap, large_tables_are_zeroed_aligned_and_on_huge_pages)
{
	size_t bytes = (3 << 20) + 123; /* rounded up to 4 MiB */
	uint8_t *p = ferry_hugemap(bytes, false);

	cr_assert_not_null(p);
	cr_assert_eq((uintptr_t)p % (2 << 20), 0, "not 2 MiB aligned: %p", (void *)p);
	for (size_t i = 0; i < bytes; i += 4096)
		cr_assert_eq(p[i], 0);
	memset(p, 0xa5, bytes);
	if (thp_advised())
		cr_expect_geq(huge_kib(p), 2048, "the THP setting allows huge pages, none back it");
	ferry_hugeunmap(p, bytes);
}

Test(hugemap, populate_makes_it_resident_and_small_ones_are_plain)
{
	size_t bytes = 1 << 20, pages = bytes / 4096;
	unsigned char vec[256];
	uint8_t *p = ferry_hugemap(bytes, true), *s;

	cr_assert_not_null(p);
	cr_assert_eq(mincore(p, bytes, vec), 0);
	for (size_t i = 0; i < pages; i++)
		cr_assert(vec[i] & 1, "page %zu of a populated map is not resident", i);
	cr_assert_eq(p[bytes - 1], 0);
	ferry_hugeunmap(p, bytes);

	s = ferry_hugemap(4096, false);
	cr_assert_not_null(s);
	s[4095] = 1;
	ferry_hugeunmap(s, 4096);
	cr_assert_null(ferry_hugemap(0, false));
}

Test(hugemap, a_map_given_back_comes_back_zeroed)
{
	size_t bytes = 2 << 20;
	uint8_t *p = ferry_hugemap(bytes, true), *q;

	cr_assert_not_null(p);
	memset(p, 0x5a, bytes);
	ferry_hugeunmap(p, bytes);
	q = ferry_hugemap(bytes, false); /* kept: the same memory, cleared */
	cr_assert_not_null(q);
	for (size_t i = 0; i < bytes; i += 512)
		cr_assert_eq(q[i], 0, "byte %zu of a reused map is %#x", i, q[i]);
	cr_assert_eq(q[bytes - 1], 0);
	ferry_hugeunmap(q, bytes);
}
