// SPDX-License-Identifier: MIT
/*
 * Run by test-disk.c under strace: commits a small chain and deletes a
 * snapshot, so that the trace shows every write, fsync, rename and unlink
 * the repository makes. Usage: snap-trace-helper DIR (a fresh directory).
 *
 *   base   64 pages
 *   c1     parent base, pages 0-15 changed
 *   c2     parent c1, pages 0-15 changed again, and a state
 *   same   parent c2, every page as in c2 (all deduplicated: no page data)
 *   delete c1: c2 takes over its entries (new index, new manifest), and
 *          c1's pack, which nothing references then, is removed
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/repo.h"

#define NPAGES 64

static const uint8_t uuid[16] = {0x7e, 0x57};
static uint8_t mem[NPAGES][SNAP_PAGE_SIZE];
static char err[1024];

static void fill(uint64_t first, uint64_t n, uint64_t seed)
{
	for (uint64_t p = first; p < first + n; p++)
		for (size_t i = 0; i < SNAP_PAGE_SIZE; i += 8) {
			uint64_t v = ((p << 20) + i + seed * 0x9e3779b97f4a7c15ull) | 1;

			memcpy(&mem[p][i], &v, 8);
		}
}

/* Puts pages 0 to n - 1. */
static int take(struct snap_repo *r, const char *name, const char *parent, uint32_t n)
{
	const void *pages[NPAGES];
	uint64_t pfns[NPAGES];
	struct snap_writer *w;

	for (uint64_t i = 0; i < NPAGES; i++) {
		pfns[i] = i;
		pages[i] = mem[i];
	}
	if (snap_begin(r, uuid, name, parent, NPAGES, &w, err, sizeof(err)))
		return -1;
	/* a state (the non-page records) for c2, which c1's delete rewrites */
	if (snap_put(w, pfns, pages, n) ||
	    (!strcmp(name, "c2") && snap_set_state(w, "state records", 13))) {
		snap_abort(w);
		return -1;
	}
	return snap_commit(w, NULL) ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct snap_repo_opts o = {.create = true};
	struct snap_repo *r;

	if (argc != 2) {
		fprintf(stderr, "usage: snap-trace-helper DIR\n");
		return 2;
	}
	if (snap_repo_open(argv[1], &o, &r, err, sizeof(err)))
		goto fail;
	fill(0, NPAGES, 1);
	if (take(r, "base", NULL, NPAGES))
		goto fail;
	fill(0, 16, 2);
	if (take(r, "c1", "base", 16))
		goto fail;
	fill(0, 16, 3);
	if (take(r, "c2", "c1", 16) || take(r, "same", "c2", NPAGES))
		goto fail;
	if (snap_delete(r, uuid, "c1", err, sizeof(err)))
		goto fail;
	snap_repo_close(r);
	return 0;
fail:
	fprintf(stderr, "snap-trace-helper: %s\n", err);
	return 1;
}
