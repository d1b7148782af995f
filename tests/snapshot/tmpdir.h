/* SPDX-License-Identifier: MIT */
/* A fresh repository directory per test (header-only). */
#ifndef TESTS_SNAPSHOT_TMPDIR_H
#define TESTS_SNAPSHOT_TMPDIR_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

/* Flips the bits of mask in the byte at off of path (damage for tests). */
static inline void flip_byte(const char *path, off_t off, uint8_t mask)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(pread(fd, &b, 1, off), 1);
	b ^= mask;
	cr_assert_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

#endif
