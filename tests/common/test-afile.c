// SPDX-License-Identifier: MIT
/* common/afile.h: crash-safe file replacement. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/afile.h"

static char dir[PATH_MAX];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test-afile.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(afile, .init = setup, .fini = teardown);

static void in_dir(char *out, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%.*s/%s", PATH_MAX / 2, dir, name);

	cr_assert(n > 0 && n < PATH_MAX);
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void expect(const char *path, const char *text)
{
	char buf[256] = {0};
	FILE *f = fopen(path, "r");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_geq(fread(buf, 1, sizeof(buf) - 1, f), 0);
	fclose(f);
	cr_assert_str_eq(buf, text, "%s", path);
}

/* Entries in dir besides the ones named (the stray temporaries). */
static int strays(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += strstr(e->d_name, ".tmp-") != NULL;
	closedir(d);
	return n;
}

static int write_and(const char *path, const char *text, bool commit)
{
	char err[512];
	struct afile *f;
	int rc = afile_open(path, &f, err, sizeof(err));

	cr_assert_eq(rc, 0, "%s", err);
	cr_assert_eq(write(afile_fd(f), text, strlen(text)), (ssize_t)strlen(text));
	if (!commit) {
		afile_abort(f);
		return 0;
	}
	return afile_commit(f, err, sizeof(err));
}

Test(afile, a_new_file_gets_0600_and_no_temporary_is_left)
{
	char p[PATH_MAX];
	struct stat st;

	in_dir(p, "new");
	cr_assert_eq(write_and(p, "hello", true), 0);
	expect(p, "hello");
	cr_assert_eq(stat(p, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0600);
	cr_expect_eq(strays(), 0);
}

Test(afile, an_abort_leaves_the_old_file_exactly)
{
	char p[PATH_MAX];
	struct stat a, b;

	in_dir(p, "old");
	put(p, "old contents");
	cr_assert_eq(stat(p, &a), 0);
	cr_assert_eq(write_and(p, "new", false), 0);
	expect(p, "old contents");
	cr_assert_eq(stat(p, &b), 0);
	cr_expect_eq(a.st_ino, b.st_ino);
	cr_expect_eq(strays(), 0);
}

Test(afile, a_replacement_keeps_owner_and_mode_in_a_new_inode)
{
	char p[PATH_MAX];
	struct stat a, b;

	in_dir(p, "kept");
	put(p, "old");
	cr_assert_eq(chmod(p, 0640), 0);
	if (geteuid() == 0)
		cr_assert_eq(chown(p, 1234, 5678), 0);
	cr_assert_eq(stat(p, &a), 0);
	cr_assert_eq(write_and(p, "new", true), 0);
	expect(p, "new");
	cr_assert_eq(stat(p, &b), 0);
	cr_expect_neq(a.st_ino, b.st_ino);
	cr_expect_eq(b.st_mode & 07777, 0640);
	cr_expect_eq(b.st_uid, a.st_uid);
	cr_expect_eq(b.st_gid, a.st_gid);
}

Test(afile, symlinks_are_followed_and_kept_dangling_ones_too)
{
	char p[PATH_MAX], link[PATH_MAX], target[PATH_MAX], dangling[PATH_MAX];
	char got[PATH_MAX] = {0};
	struct stat st;

	in_dir(p, "real");
	in_dir(link, "link");
	in_dir(target, "later");
	in_dir(dangling, "dangling");
	put(p, "old");
	cr_assert_eq(symlink("real", link), 0);
	cr_assert_eq(write_and(link, "through the link", true), 0);
	expect(p, "through the link");
	cr_assert_eq(lstat(link, &st), 0);
	cr_expect(S_ISLNK(st.st_mode));
	cr_assert_gt(readlink(link, got, sizeof(got) - 1), 0);
	cr_expect_str_eq(got, "real");

	cr_assert_eq(symlink(target, dangling), 0);
	cr_assert_eq(write_and(dangling, "created", true), 0);
	expect(target, "created");
	cr_assert_eq(lstat(dangling, &st), 0);
	cr_expect(S_ISLNK(st.st_mode));
}

Test(afile, a_link_loop_and_a_non_regular_file_are_refused)
{
	char a[PATH_MAX], b[PATH_MAX], err[512];
	struct afile *f;

	in_dir(a, "a");
	in_dir(b, "b");
	cr_assert_eq(symlink("b", a), 0);
	cr_assert_eq(symlink("a", b), 0);
	cr_expect_eq(afile_open(a, &f, err, sizeof(err)), -ELOOP);
	cr_expect_eq(afile_open(dir, &f, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, "not a regular file"), "%s", err);
	cr_expect_eq(afile_open("/dev/null", &f, err, sizeof(err)), -EINVAL);
	cr_expect_eq(strays(), 0);
}

Test(afile, nospace_says_old_and_new_need_room_side_by_side)
{
	char p[PATH_MAX], err[512] = "writing: No space left on device";
	struct afile *f;

	in_dir(p, "full");
	put(p, "old");
	cr_assert_eq(afile_open(p, &f, err + 100, sizeof(err) - 100), 0);
	afile_nospace_hint(f, -ENOSPC, 3 << 20, err, sizeof(err));
	cr_expect(strstr(err, "need room side by side"), "%s", err);
	cr_expect(strstr(err, "is unchanged"), "%s", err);
	afile_abort(f);
	expect(p, "old");
}
