// SPDX-License-Identifier: MIT
/*
 * Where saves go and restores come from. A save to a regular file (or to
 * a path with nothing there yet) is crash-safe: it goes through
 * common/afile.h (a new file beside the target, fsynced, renamed over it,
 * the directory fsynced), so a failure or a crash leaves the previous file
 * exactly as it was. Any other path (a character or block device, a FIFO,
 * a unix socket) is written as a stream: opened without O_TRUNC or
 * O_CREAT, never unlinked or truncated. Opening a FIFO or a socket waits
 * for its peer while watching the job's cancel token, so no worker thread
 * sits in open(2) for good; the token then rides on the io, so a reader
 * that stalls cannot hold it either.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "migrate/save.h"
#include "toolstack/config.h"

/* How often a FIFO without its peer is tried again. */
#define PEER_RETRY_MS 50

/* Sleeps ms or until cancel fires (-ECANCELED); sleeps only without one. */
static int wait_cancel(struct strm_cancel *cancel, int ms)
{
	if (!cancel) {
		poll(NULL, 0, ms);
		return 0;
	}
	return strm_wait_fd(strm_cancel_fd(cancel), POLLIN, NULL, ms) == -ETIMEDOUT ? 0
										    : -ECANCELED;
}

/* A unix socket: connect, retrying while its backlog is full. */
static int open_socket(const char *path, struct strm_cancel *cancel)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = errno == EAGAIN ? wait_cancel(cancel, PEER_RETRY_MS) : -errno;
		if (rc) {
			close(fd);
			return rc;
		}
	}
	return fd;
}

/*
 * Opens a path that is not a regular file for a stream in direction flags
 * (O_RDONLY or O_WRONLY); a FIFO without its peer is waited for. Returns
 * the fd (non-blocking) or -errno (-ECANCELED when cancel fired).
 */
static int open_stream(const char *path, const struct stat *st, int flags,
		       struct strm_cancel *cancel)
{
	bool told = false;
	int fd, rc;

	if (S_ISSOCK(st->st_mode))
		return open_socket(path, cancel);
	if (S_ISDIR(st->st_mode))
		return -EISDIR;
	for (;;) {
		if (strm_cancel_fired(cancel))
			return -ECANCELED;
		fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0)
			break;
		/* ENXIO: a FIFO opened for writing has no reader yet. */
		if (errno != ENXIO || !S_ISFIFO(st->st_mode))
			return -errno;
		if (!told)
			log_info("%s: waiting for a reader", path);
		told = true;
		rc = wait_cancel(cancel, PEER_RETRY_MS);
		if (rc)
			return rc;
	}
	/*
	 * A FIFO opened for reading without a writer reads as empty at
	 * once: wait until a writer has sent something (or came and went).
	 */
	if (flags == O_RDONLY && S_ISFIFO(st->st_mode)) {
		rc = strm_wait_fd(fd, POLLIN, cancel, 0);
		if (rc) {
			close(fd);
			return rc;
		}
	}
	return fd;
}

int ctl__open_restore(const char *path, struct strm_cancel *cancel, int *fd, char *err,
		      size_t errlen)
{
	struct stat st;
	int rc = 0;

	if (stat(path, &st) < 0)
		rc = -errno;
	else if (S_ISREG(st.st_mode) && (*fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode) && (*fd = open_stream(path, &st, O_RDONLY, cancel)) < 0)
		rc = *fd;
	if (rc == -ECANCELED)
		snprintf(err, errlen, "restore from %s cancelled", path);
	else if (rc)
		snprintf(err, errlen, "cannot open %s: %s", path, ferry_strerror(-rc));
	return rc;
}

/* Where a save goes: exactly one of file (crash-safe) and fd (a stream). */
struct target {
	struct afile *file;
	int fd;
	bool sync; /* a block device: fsync the stream at the end */
	char path[PATH_MAX];
};

static int target_open(const char *path, struct strm_cancel *cancel, struct target *t, char *err,
		       size_t errlen)
{
	struct stat st;
	int rc;

	t->file = NULL;
	t->fd = -1;
	rc = afile_resolve(path, t->path, sizeof(t->path), &st, err, errlen);
	if (rc)
		return rc;
	if (!st.st_mode || S_ISREG(st.st_mode)) {
		rc = afile_open(t->path, &t->file, err, errlen);
		if (!rc)
			t->fd = afile_fd(t->file);
		return rc;
	}
	t->sync = S_ISBLK(st.st_mode);
	rc = open_stream(t->path, &st, O_WRONLY, cancel);
	if (rc == -ECANCELED) {
		snprintf(err, errlen, "save to %s cancelled", path);
		return rc;
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot open %s: %s", t->path, ferry_strerror(-rc));
		return rc;
	}
	t->fd = rc;
	return 0;
}

/* The save failed (rc, message in err): the target is left as it was. */
static void target_abort(struct target *t)
{
	if (t->file)
		afile_abort(t->file);
	else if (t->fd >= 0)
		close(t->fd);
}

/* The stream is complete: make it the target, durably. */
static int target_commit(struct target *t, char *err, size_t errlen)
{
	int rc = 0;

	if (t->file)
		return afile_commit(t->file, err, errlen);
	/* Devices other than block devices have nothing to sync (EINVAL). */
	if (t->sync && fsync(t->fd) < 0 && errno != EINVAL) {
		rc = -errno;
		snprintf(err, errlen, "syncing %s: %s", t->path, strerror(errno));
	}
	close(t->fd);
	return rc;
}

int ctl__save_file(struct ctl_server *srv, uint32_t domid, const char *path, enum strm_codec codec,
		   struct strm_cancel *cancel, struct mig_save_stats *st, char *err, size_t errlen)
{
	struct mig_save_opts o = {.codec = codec, .xenstore = {ctl__xs_stream_read, srv}};
	struct mig_save_stats dummy;
	struct hyp_dom_config cfg;
	struct strm_io *io = NULL;
	struct target t;
	struct stat sb;
	char *json = NULL;
	int rc;

	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	err[0] = 0;
	rc = hyp_domain_config(srv->hyp, domid, &cfg);
	if (!rc)
		rc = xlm_cfg_to_json(&cfg, &json);
	if (rc) {
		snprintf(err, errlen, "domain %u: cannot encode its config", domid);
		return rc;
	}
	o.config_json = json;
	rc = target_open(path, cancel, &t, err, errlen);
	if (rc)
		goto out;
	/* The save's own pause: the toolstack's count is left as it was. */
	rc = hyp_domain_op_pause(srv->hyp, domid);
	if (rc) {
		snprintf(err, errlen, "cannot pause domain %u: %s", domid, ferry_strerror(rc));
		target_abort(&t);
		goto out;
	}
	/* The io borrows the fd: the target commits or aborts it after. */
	rc = strm_io_fd(t.fd, false, &io);
	if (!rc)
		rc = strm_io_set_cancel(io, cancel, 0);
	if (rc) {
		strm_io_close(io);
		snprintf(err, errlen, "saving domain %u: %s", domid, ferry_strerror(rc));
	} else {
		rc = mig_save_domain(srv->hyp, domid, io, &o, st, err, errlen);
	}
	if (rc && t.file)
		afile_nospace_hint(t.file, rc, st->bytes, err, errlen);
	/* A file's size is what the save takes on disk (compressed). */
	if (!rc && t.file && !fstat(t.fd, &sb))
		st->bytes = (uint64_t)sb.st_size;
	if (!rc)
		rc = target_commit(&t, err, errlen);
	else
		target_abort(&t);
	if (rc) {
		/* As Xen's xl: a failed save leaves the domain as it was. */
		hyp_domain_op_unpause(srv->hyp, domid);
		if (rc == -ECANCELED)
			snprintf(err, errlen, "save of domain %u to %s cancelled", domid, path);
		else if (!err[0])
			snprintf(err, errlen, "save failed: %s", ferry_strerror(rc));
		goto out;
	}
	log_info("d%u: saved to %s: %" PRIu64 " pages, %" PRIu64 " bytes in %.3f s (%s)", domid,
		 t.path, st->pages, st->bytes, st->seconds, strm_codec_name(codec));
out:
	free(json);
	return rc;
}
