// SPDX-License-Identifier: MIT
/* snapshot/repo.h: a snapshot's state (snap_set_state, snap_view_state). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapshot/repo.h"
#include "tmpdir.h"

#define PG	 SNAP_PAGE_SIZE
#define NPAGES	 64
#define UUID_STR "5a000000-0000-0000-0000-000000000001"

static char err[1024];
static const uint8_t uuid[16] = {0x5a, [15] = 1};

TestSuite(snapshot_state, .init = setup, .fini = teardown);

static struct snap_repo *open_repo(void)
{
	struct snap_repo_opts o = {.create = true};
	struct snap_repo *r;
	int rc = snap_repo_open(dir, &o, &r, err, sizeof(err));

	cr_assert_eq(rc, 0, "open: %d %s", rc, err);
	return r;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
}

static void path_of(char *out, size_t len, const char *file)
{
	snprintf(out, len, "%s/snaps/" UUID_STR "/%s", dir, file);
}

static bool exists(const char *file)
{
	char path[PATH_MAX];

	path_of(path, sizeof(path), file);
	return access(path, F_OK) == 0;
}

/* A snapshot of NPAGES with a page of data and, when len, a state. */
static struct snap_writer *begin_one(struct snap_repo *r, const char *name, const void *state,
				     size_t len)
{
	static uint8_t page[PG];
	const void *pages[1] = {page};
	uint64_t pfn = 3;
	struct snap_writer *w;

	fill(page, PG, 7);
	cr_assert_eq(snap_begin(r, uuid, name, NULL, NPAGES, &w, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_put(w, &pfn, pages, 1), 0, "%s", err);
	if (len)
		cr_assert_eq(snap_set_state(w, state, len), 0, "%s", err);
	return w;
}

static void take(struct snap_repo *r, const char *name, const void *state, size_t len)
{
	cr_assert_eq(snap_commit(begin_one(r, name, state, len), NULL), 0, "%s", err);
}

static void expect_state(struct snap_repo *r, const char *name, const void *state, size_t len)
{
	struct snap_view *v;
	const void *buf;
	size_t n;

	cr_assert_eq(snap_view_open(r, uuid, name, &v, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_view_state(v, &buf, &n), 0);
	cr_assert_eq(n, len);
	cr_assert_eq(memcmp(buf, state, len), 0);
	snap_view_close(v);
}

Test(snapshot_state, the_state_reads_back_exactly_after_a_reopen_and_none_is_enoent)
{
	size_t len = 300001;
	uint8_t *state = malloc(len), *other = malloc(len);
	struct snap_verify_report rep;
	struct snap_repo *r = open_repo();
	struct snap_writer *w;
	struct snap_view *v;
	const void *buf;
	size_t n;

	fill(state, len, 1);
	fill(other, len, 2);
	/* the last call wins */
	w = begin_one(r, "s1", other, 1000);
	cr_assert_eq(snap_set_state(w, state, len), 0, "%s", err);
	cr_assert_eq(snap_commit(w, NULL), 0, "%s", err);
	/* len 0 drops what an earlier call stored */
	w = begin_one(r, "bare", state, len);
	cr_assert_eq(snap_set_state(w, NULL, 0), 0, "%s", err);
	cr_assert_eq(snap_commit(w, NULL), 0, "%s", err);
	take(r, "s2", other, 17);
	expect_state(r, "s1", state, len);
	snap_repo_close(r);

	r = open_repo();
	expect_state(r, "s1", state, len);
	expect_state(r, "s2", other, 17);
	cr_assert_eq(snap_view_open(r, uuid, "bare", &v, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_view_state(v, &buf, &n), -ENOENT);
	snap_view_close(v);
	cr_assert(exists("s1.state") && exists("s2.state") && !exists("bare.state"));
	cr_assert_eq(snap_verify(r, uuid, NULL, &rep, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(rep.states, 2);
	cr_assert_eq(rep.bad_states, 0);
	snap_repo_close(r);
	free(state);
	free(other);
}

Test(snapshot_state, a_damaged_or_missing_state_is_eio_naming_the_file)
{
	uint8_t state[5000];
	struct snap_verify_report rep;
	char path[PATH_MAX];
	struct snap_repo *r = open_repo();
	struct snap_view *v;

	fill(state, sizeof(state), 3);
	take(r, "s1", state, sizeof(state));
	take(r, "s2", state, sizeof(state));
	snap_repo_close(r);

	path_of(path, sizeof(path), "s1.state");
	flip_byte(path, 4321, 0x10);

	r = open_repo();
	cr_assert_eq(snap_view_open(r, uuid, "s1", &v, err, sizeof(err)), -EIO);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_not_null(strstr(err, "damaged"), "%s", err);
	cr_assert_eq(snap_verify(r, uuid, NULL, &rep, err, sizeof(err)), -EIO);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_eq(rep.states, 2);
	cr_assert_eq(rep.bad_states, 1);
	cr_assert_eq(rep.bad, 0, "the pages are fine");
	cr_assert_eq(rep.pages, 2);
	expect_state(r, "s2", state, sizeof(state));

	/* truncated, then gone */
	path_of(path, sizeof(path), "s2.state");
	cr_assert_eq(truncate(path, 100), 0);
	cr_assert_eq(snap_view_open(r, uuid, "s2", &v, err, sizeof(err)), -EIO);
	cr_assert_not_null(strstr(err, path), "%s", err);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(snap_view_open(r, uuid, "s2", &v, err, sizeof(err)), -EIO);
	cr_assert_not_null(strstr(err, path), "%s", err);
	snap_repo_close(r);
}

Test(snapshot_state, delete_abort_and_an_interrupted_writer_leave_no_state_file)
{
	uint8_t state[3000];
	struct snap_writer *w;
	struct snap_repo *r = open_repo();
	char path[PATH_MAX];
	int status;
	pid_t pid;

	fill(state, sizeof(state), 4);
	take(r, "keep", state, sizeof(state));
	take(r, "del", state, sizeof(state));
	cr_assert(exists("del.state"));
	cr_assert_eq(snap_delete(r, uuid, "del", err, sizeof(err)), 0, "%s", err);
	cr_assert(!exists("del.state"));
	w = begin_one(r, "aborted", state, sizeof(state));
	cr_assert(exists("aborted.state"));
	snap_abort(w);
	cr_assert(!exists("aborted.state"));
	snap_repo_close(r);

	/* a writer that dies after storing its state, and a stray state file
	 * (a delete interrupted after its manifest went) */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		r = open_repo();
		w = begin_one(r, "partial", state, sizeof(state));
		_exit(exists("partial.state") ? 0 : 3);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && !WEXITSTATUS(status), "child: %d", status);
	path_of(path, sizeof(path), "stray.state");
	cr_assert_eq(close(open(path, O_CREAT | O_WRONLY, 0600)), 0);

	r = open_repo();
	cr_assert(!exists("partial.state"));
	cr_assert(!exists("stray.state"));
	expect_state(r, "keep", state, sizeof(state));
	/* the name of a deleted snapshot is free, without a state this time */
	take(r, "del", NULL, 0);
	snap_repo_close(r);
}

Test(snapshot_state, the_manifest_carries_the_state_s_size_and_sha256)
{
	/* SHA-256("abc") */
	static const char want[] =
		"domain-state-bytes 3\n"
		"domain-state-sha256 "
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n";
	struct snap_repo *r = open_repo();
	char path[PATH_MAX], text[2048];
	FILE *f;
	size_t n;

	take(r, "abc", "abc", 3);
	snap_repo_close(r);
	path_of(path, sizeof(path), "abc.manifest");
	f = fopen(path, "r");
	cr_assert_not_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = 0;
	cr_assert_not_null(strstr(text, want), "%s", text);
}
