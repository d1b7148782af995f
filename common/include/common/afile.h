/* SPDX-License-Identifier: MIT */
/*
 * Crash-safe replacement of a regular file ("atomic file"): the new
 * contents go to a temporary file beside the target, which is fsynced,
 * renamed over the target and made durable with an fsync of the directory.
 * Until afile_commit returns 0 the target is exactly what it was; a crash
 * at any point leaves the old file or the new one, never a mix, plus at
 * worst a stray temporary named ".NAME.tmp-XXXXXX" in the same directory.
 *
 * A symlink at the target is followed (dangling or not): the file it points
 * to is replaced and the link kept. An existing file's owner and mode are
 * kept; a new one gets mode 0600.
 *
 * Messages go to err (errlen bytes) and name the path; nothing is logged.
 */
#ifndef COMMON_AFILE_H
#define COMMON_AFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct afile;

/*
 * Follows path's last component through symlinks (at most 40) into out
 * (outlen bytes; a relative link is taken relative to its directory) and
 * stats the result into *st; st->st_mode is 0 when nothing is there yet.
 * -ELOOP, -ENAMETOOLONG or another -errno with err set.
 */
int afile_resolve(const char *path, char *out, size_t outlen, struct stat *st, char *err,
		  size_t errlen);

/*
 * Starts replacing path (resolved as above), which must be a regular file
 * or not exist (-EINVAL otherwise). *out (freed by afile_commit or
 * afile_abort) holds the temporary file open for writing.
 */
int afile_open(const char *path, struct afile **out, char *err, size_t errlen);
/* The temporary file's fd, open for writing (the afile owns it). */
int afile_fd(const struct afile *f);
/* The resolved target, and the temporary file's path. */
const char *afile_path(const struct afile *f);
const char *afile_tmp_path(const struct afile *f);
/*
 * fsyncs and closes the temporary file, renames it over the target and
 * fsyncs the directory; frees f either way. On failure before the rename
 * the temporary is removed and the target untouched; a failure of the
 * final directory fsync (the target already replaced) is reported too.
 * ENOSPC and EDQUOT messages say that the old and the new copy need room
 * side by side.
 */
int afile_commit(struct afile *f, char *err, size_t errlen);
/* Removes the temporary file and frees f; the target is untouched.
 * NULL-safe. */
void afile_abort(struct afile *f);
/*
 * For a write to afile_fd that failed with ENOSPC or EDQUOT (rc): appends
 * to the message already in err that the old copy (its size) and the new
 * one (written bytes so far) need room side by side, and that the target is
 * unchanged. No-op for other errors.
 */
void afile_nospace_hint(const struct afile *f, int rc, uint64_t written, char *err, size_t errlen);

#endif
