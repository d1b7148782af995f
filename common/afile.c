// SPDX-License-Identifier: MIT
/*
 * Crash-safe file replacement: write beside, fsync, rename, fsync the
 * directory (see common/afile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/err.h"

#define AFILE_MAX_LINKS 40

struct afile {
	int fd;
	bool had_old;	   /* the target existed */
	uint64_t old_size; /* its size then */
	char path[PATH_MAX];
	char dir[PATH_MAX];
	/* Room for any dir and base, so the compiler sees no truncation;
	 * a name past PATH_MAX is refused below. */
	char tmp[2 * PATH_MAX + 16];
};

static int fail(int rc, char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "%s %s: %s", what, path, ferry_strerror(-rc));
	return rc;
}

/* The directory part of path ("." for a bare name). */
static int dir_of(const char *path, char *out, size_t outlen)
{
	const char *slash = strrchr(path, '/');
	int n;

	if (!slash)
		n = snprintf(out, outlen, ".");
	else if (slash == path)
		n = snprintf(out, outlen, "/");
	else
		n = snprintf(out, outlen, "%.*s", (int)(slash - path), path);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int afile_resolve(const char *path, char *out, size_t outlen, struct stat *st, char *err,
		  size_t errlen)
{
	char cur[PATH_MAX], link[PATH_MAX], dir[PATH_MAX];
	int n;

	n = snprintf(cur, sizeof(cur), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(cur))
		return fail(-ENAMETOOLONG, err, errlen, "resolving", path);
	for (int hops = 0;; hops++) {
		ssize_t len;

		if (lstat(cur, st) < 0) {
			if (errno != ENOENT)
				return fail(-errno, err, errlen, "cannot stat", cur);
			memset(st, 0, sizeof(*st));
			break;
		}
		if (!S_ISLNK(st->st_mode))
			break;
		if (hops == AFILE_MAX_LINKS)
			return fail(-ELOOP, err, errlen, "resolving", path);
		len = readlink(cur, link, sizeof(link) - 1);
		if (len < 0)
			return fail(-errno, err, errlen, "cannot read the link", cur);
		link[len] = 0;
		if (link[0] == '/') {
			n = snprintf(cur, sizeof(cur), "%s", link);
		} else {
			if (dir_of(cur, dir, sizeof(dir)))
				return fail(-ENAMETOOLONG, err, errlen, "resolving", path);
			n = snprintf(cur, sizeof(cur), "%s/%s", dir, link);
		}
		if (n < 0 || (size_t)n >= sizeof(cur))
			return fail(-ENAMETOOLONG, err, errlen, "resolving", path);
	}
	n = snprintf(out, outlen, "%s", cur);
	if (n < 0 || (size_t)n >= outlen)
		return fail(-ENAMETOOLONG, err, errlen, "resolving", path);
	return 0;
}

int afile_open(const char *path, struct afile **out, char *err, size_t errlen)
{
	struct afile *f = calloc(1, sizeof(*f));
	const char *base;
	struct stat st;
	int rc, n;

	if (!f)
		return fail(-ENOMEM, err, errlen, "replacing", path);
	f->fd = -1;
	rc = afile_resolve(path, f->path, sizeof(f->path), &st, err, errlen);
	if (rc)
		goto err;
	if (st.st_mode && !S_ISREG(st.st_mode)) {
		rc = fail(-EINVAL, err, errlen, "not a regular file:", f->path);
		goto err;
	}
	f->had_old = st.st_mode != 0;
	f->old_size = (uint64_t)st.st_size;
	base = strrchr(f->path, '/');
	base = base ? base + 1 : f->path;
	rc = dir_of(f->path, f->dir, sizeof(f->dir));
	n = snprintf(f->tmp, sizeof(f->tmp), "%s/.%s.tmp-XXXXXX", f->dir, base);
	if (rc || n < 0 || n >= PATH_MAX) {
		f->tmp[0] = 0;
		rc = fail(-ENAMETOOLONG, err, errlen, "replacing", f->path);
		goto err;
	}
	f->fd = mkostemp(f->tmp, O_CLOEXEC);
	if (f->fd < 0) {
		f->tmp[0] = 0; /* only the template: nothing to remove */
		rc = fail(-errno, err, errlen, "cannot create a file beside", f->path);
		goto err;
	}
	/* chown first: it may clear set-id bits that the chmod then sets. */
	if (f->had_old && (st.st_uid != geteuid() || st.st_gid != getegid()) &&
	    fchown(f->fd, st.st_uid, st.st_gid) < 0) {
		rc = fail(-errno, err, errlen, "cannot keep the owner of", f->path);
		goto err;
	}
	if (fchmod(f->fd, f->had_old ? st.st_mode & 07777 : 0600) < 0) {
		rc = fail(-errno, err, errlen, "cannot keep the mode of", f->path);
		goto err;
	}
	*out = f;
	return 0;
err:
	afile_abort(f);
	return rc;
}

int afile_fd(const struct afile *f)
{
	return f->fd;
}

const char *afile_path(const struct afile *f)
{
	return f->path;
}

const char *afile_tmp_path(const struct afile *f)
{
	return f->tmp;
}

static bool nospace(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT;
}

void afile_nospace_hint(const struct afile *f, int rc, uint64_t written, char *err, size_t errlen)
{
	size_t len = strnlen(err, errlen);

	if (!nospace(rc) || len + 1 >= errlen)
		return;
	if (f->had_old)
		snprintf(err + len, errlen - len,
			 "; the old and the new copy of %s need room side by side until the "
			 "new one replaces the old (the old is %.1f MiB, the new one had "
			 "reached %.1f MiB); %s is unchanged",
			 f->path, (double)f->old_size / (1 << 20), (double)written / (1 << 20),
			 f->path);
	else
		snprintf(err + len, errlen - len, " (after %.1f MiB); %s was not created",
			 (double)written / (1 << 20), f->path);
}

int afile_commit(struct afile *f, char *err, size_t errlen)
{
	struct stat st;
	int rc, dfd;

	if (fsync(f->fd) < 0) {
		rc = fail(-errno, err, errlen, "syncing", f->tmp);
		afile_nospace_hint(f, rc, fstat(f->fd, &st) ? 0 : (uint64_t)st.st_size, err,
				   errlen);
		goto err;
	}
	rc = close(f->fd);
	f->fd = -1;
	if (rc < 0) {
		rc = fail(-errno, err, errlen, "closing", f->tmp);
		goto err;
	}
	if (rename(f->tmp, f->path) < 0) {
		rc = fail(-errno, err, errlen, "cannot rename the new copy over", f->path);
		goto err;
	}
	f->tmp[0] = 0; /* gone: nothing for abort to remove */
	dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = fail(-errno, err, errlen, "cannot open the directory", f->dir);
		goto err;
	}
	/* Some file systems cannot sync a directory (EINVAL): nothing to do. */
	rc = fsync(dfd) < 0 && errno != EINVAL ? -errno : 0;
	close(dfd);
	if (rc) {
		snprintf(err, errlen, "%s was replaced, but syncing its directory failed: %s",
			 f->path, ferry_strerror(-rc));
		goto err;
	}
	afile_abort(f);
	return 0;
err:
	afile_abort(f);
	return rc;
}

void afile_abort(struct afile *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp[0])
		unlink(f->tmp);
	free(f);
}
