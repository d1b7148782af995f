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

/* Runs op(arg) in a child process that the failpoint ends at crash_at. */
static void run_crashing(void (*op)(const char *, const char *, uint8_t *), const char *a,
			 const char *b, uint8_t *mem)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (!pid) {
		snap_failpoint = crash;
		op(a, b, mem);
		_exit(1); /* the failpoint did not fire */
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && !WEXITSTATUS(status), "step %d: %d", crash_at, status);
}

static void op_take(const char *name, const char *parent, uint8_t *mem)
{
	take(open_repo(), name, parent, mem);
}

static void op_delete(const char *name, const char *unused, uint8_t *mem)
{
	char err[512];

	snap_delete(open_repo(), uuid, name, err, sizeof(err));
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

		snprintf(name, sizeof(name), "c%d", (int)crash_at);
		run_crashing(op_take, name, "base", next);
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

/* Files in the domain's directory ending in ext. */
static int count(const char *ext)
{
	char cmd[PATH_MAX];
	int n = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ls '%s'/snaps/*/ | grep -c '%s$'", dir, ext);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%d", &n), 1);
	pclose(f);
	return n;
}

static void change(uint8_t *mem, uint64_t from, uint64_t n, uint64_t seed)
{
	for (uint64_t p = from; p < from + n; p++)
		memset(mem + p * SNAP_PAGE_SIZE + 100, (int)(seed + p), 64);
}

Test(snapshot_crash, a_crash_at_each_delete_step_keeps_every_other_snapshot_whole)
{
	size_t sz = NPAGES * SNAP_PAGE_SIZE;
	uint8_t *base = malloc(sz), *mid = malloc(sz), *top = malloc(sz);
	struct snap_repo *r = open_repo();

	fill_all(base, 3);
	take(r, "base", NULL, base);
	snap_repo_close(r);
	for (crash_at = SNAP_STEP_ADOPT_INDEX; crash_at < SNAP_STEP_DELETE_END; crash_at++) {
		char m[16], t[16], err[512];

		snprintf(m, sizeof(m), "mid%d", (int)crash_at);
		snprintf(t, sizeof(t), "top%d", (int)crash_at);
		memcpy(mid, base, sz);
		change(mid, 0, 64, crash_at);
		memcpy(top, mid, sz);
		change(top, 32, 64, 50 + crash_at);
		r = open_repo();
		take(r, m, "base", mid);
		take(r, t, m, top);
		snap_repo_close(r);

		run_crashing(op_delete, m, NULL, NULL);
		r = open_repo();
		expect(r, "base", base);
		expect(r, t, top);
		if (crash_at == SNAP_STEP_UNLISTED)
			cr_assert_eq(snap_read_page(r, uuid, m, 0, mid, &(enum snap_page_kind){ 0 },
						    err, sizeof(err)), -ENOENT);
		else
			expect(r, m, mid);
		/* no index file is left that no manifest names */
		cr_assert_eq(count(".idx"), count(".manifest"), "step %d", crash_at);
		snap_repo_close(r);
	}
	free(base);
	free(mid);
	free(top);
}
