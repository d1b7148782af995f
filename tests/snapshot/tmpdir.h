/* SPDX-License-Identifier: MIT */
/* A fresh repository directory per test (header-only). */
#ifndef TESTS_SNAPSHOT_TMPDIR_H
#define TESTS_SNAPSHOT_TMPDIR_H

#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static char dir[PATH_MAX / 2];

/* /var/tmp: a real file system (fsync, st_blocks, hole punching), not tmpfs. */
static void setup(void)
{
	snprintf(dir, sizeof(dir), "/var/tmp/test-snapshot.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[PATH_MAX];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

#endif
