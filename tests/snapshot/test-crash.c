// SPDX-License-Identifier: MIT
/*
 * A process dying at each step of a snapshot's commit (the failpoint in
 * snapshot/internal.h ends it with _exit right after the step is durable):
 * at the next open the snapshot is whole if its manifest said complete,
 * else gone with its pages reclaimed, and its parent reads as before.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "snapshot/repo.h"
#include "tmpdir.h"

#define NPAGES 256
static const uint8_t uuid[16] = { 0xc7, 0xa5 };
static enum snap_commit_step crash_at;

TestSuite(snapshot_crash, .init = setup, .fini = teardown);

static void crash(enum snap_commit_step step)
{
	if (step == crash_at)
		_exit(0);
}

static void fill_all(uint8_t *mem, uint64_t seed)
{
	for (uint64_t i = 0; i < NPAGES * SNAP_PAGE_SIZE / 8; i++) {
		uint64_t v = (i + seed * 7919) * 0x9e3779b97f4a7c15ull | 1;

		memcpy(mem + i * 8, &v, 8);
	}
}

static void take(struct snap_repo *r, const char *name, const char *parent, uint8_t *mem)
{
	const void *pages[NPAGES];
	uint64_t pfns[NPAGES];
	struct snap_writer *w;
	char err[512];

	for (uint64_t i = 0; i < NPAGES; i++) {
		pfns[i] = i;
		pages[i] = mem + i * SNAP_PAGE_SIZE;
	}
	cr_assert_eq(snap_begin(r, uuid, name, parent, NPAGES, &w, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(snap_put(w, pfns, pages, NPAGES), 0, "%s", err);
	cr_assert_eq(snap_commit(w, NULL), 0, "%s", err);
}

static void expect(struct snap_repo *r, const char *name, const uint8_t *mem)
{
	uint8_t buf[SNAP_PAGE_SIZE];
	enum snap_page_kind kind;
	char err[512];

	for (uint64_t pfn = 0; pfn < NPAGES; pfn++) {
		cr_assert_eq(snap_read_page(r, uuid, name, pfn, buf, &kind, err, sizeof(err)), 0,
			     "%s", err);
		cr_assert_eq(memcmp(buf, mem + pfn * SNAP_PAGE_SIZE, SNAP_PAGE_SIZE), 0,
			     "%s: pfn %lu", name, (unsigned long)pfn);
	}
}

static struct snap_repo *open_repo(void)
{
	struct snap_repo_opts o = { .create = true };
	struct snap_repo *r;
	char err[512];

	cr_assert_eq(snap_repo_open(dir, &o, &r, err, sizeof(err)), 0, "%s", err);
	return r;
}

Test(snapshot_crash, a_crash_at_each_commit_step_leaves_the_snapshot_whole_or_gone)
{
	uint8_t *base = malloc(NPAGES * SNAP_PAGE_SIZE), *next = malloc(NPAGES * SNAP_PAGE_SIZE);
	struct snap_repo_stats before, after;
	struct snap_repo *r = open_repo();

	fill_all(base, 1);
	fill_all(next, 2);
	take(r, "base", NULL, base);
	cr_assert_eq(snap_repo_stats(r, &before), 0);
	snap_repo_close(r);

	for (crash_at = 0; crash_at < SNAP_STEP_COUNT; crash_at++) {
		char name[16];
		int status;
		pid_t pid;

		snprintf(name, sizeof(name), "c%d", (int)crash_at);
		pid = fork();
		cr_assert_geq(pid, 0);
		if (!pid) {
			snap_failpoint = crash;
			take(open_repo(), name, "base", next);
			_exit(1); /* the failpoint did not fire */
		}
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status) && !WEXITSTATUS(status), "step %d: %d", crash_at,
			  status);
		r = open_repo();
		expect(r, "base", base);
		cr_assert_eq(snap_repo_stats(r, &after), 0);
		if (crash_at == SNAP_STEP_MANIFEST) {
			expect(r, name, next);
			cr_assert_eq(after.live_pages, 2 * NPAGES);
		} else {
			uint8_t buf[SNAP_PAGE_SIZE];
			enum snap_page_kind kind;
			char err[256];

			cr_assert_eq(snap_read_page(r, uuid, name, 0, buf, &kind, err, sizeof(err)),
				     -ENOENT, "step %d: the snapshot survived", crash_at);
			cr_assert_eq(after.live_pages, before.live_pages);
			cr_assert_eq(after.packs, before.packs, "step %d", crash_at);
			cr_assert_eq(after.disk_bytes, before.disk_bytes, "step %d", crash_at);
		}
		snap_repo_close(r);
	}
	free(base);
	free(next);
}
