/* SPDX-License-Identifier: MIT */
/*
 * Zeroed anonymous memory for the large per-domain and per-operation
 * tables (a P2M, the M2P, a snapshot view's page references), backed by
 * transparent huge pages where the kernel allows them (THP "madvise" or
 * "always"). On these machines, guests of a hypervisor that backs their
 * memory on demand, the first touch of a 4 KiB page costs 15-20 us and of
 * a 2 MiB huge page 0.16 ms: 2 MiB of a table touched page by page cost
 * 7.9 ms, 50 times more (docs/ARCHITECTURE.md, "Large tables"). Maps
 * given back are kept, up to 48 MiB, and cleared for the next of their
 * length: a huge page the kernel hands out fresh still costs about 4 ms.
 */
#ifndef COMMON_HUGEMAP_H
#define COMMON_HUGEMAP_H

#include <stdbool.h>
#include <stddef.h>

/*
 * At least bytes of zeroed memory, or NULL with errno set. From
 * FERRY_HUGEMAP_MIN up it is 2 MiB aligned and its length rounded up to
 * 2 MiB, so that huge pages can back all of it; below, a plain map (a
 * huge page would cost more than the faults it saves). populate makes it
 * resident now, in one call (its pages then read as zeros without a
 * fault); otherwise it costs nothing until touched.
 */
void *ferry_hugemap(size_t bytes, bool populate);
/* Unmaps what ferry_hugemap(bytes, ...) returned; NULL is ignored. */
void ferry_hugeunmap(void *p, size_t bytes);

#define FERRY_HUGEMAP_MIN ((size_t)1 << 20)

#endif
