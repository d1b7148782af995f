// SPDX-License-Identifier: MIT
/*
 * Writing a snapshot: pages are hashed (SHA-256), looked up in the dedup
 * table and, when new, appended to the snapshot's own pack in 1 MiB
 * writes. Commit makes pack, pack index, snapshot index and manifest
 * durable in that order (formats/SPEC.md 10.5).
 */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/afile.h"
#include "common/err.h"
#include "internal.h"

#define WBUF_PAGES 256 /* 1 MiB per write */

void (*snap_failpoint)(enum snap_commit_step step);

void snap_failpoint_at(enum snap_commit_step step)
{
	if (snap_failpoint)
		snap_failpoint(step);
}

struct snap_writer {
	struct snap_repo *r;
	struct snap_meta *m;
	struct snap_pack *p;
	int fd;
	uint64_t *refs; /* per pfn: (pack << 32 | slot) + 1, 0 unset */
	uint8_t *buf;
	uint32_t buf_pages, buf_slot; /* buffered pages from slot buf_slot */
	struct snap_write_stats st;
	char *err;
	size_t errlen;
};

static uint64_t enc(uint32_t pack, uint32_t slot)
{
	return ((uint64_t)pack << 32 | slot) + 1;
}

static bool all_zero(const void *page)
{
	const uint64_t *q = page;

	for (size_t i = 0; i < SNAP_PAGE_SIZE / sizeof(*q); i++)
		if (q[i])
			return false;
	return true;
}

/* Forgets and removes everything the writer made; frees w. */
static void writer_drop(struct snap_writer *w)
{
	struct snap_repo *r = w->r;
	char path[PATH_MAX], scratch[256];

	if (w->fd >= 0)
		close(w->fd);
	snap_meta_path(r, w->m, "manifest", path, sizeof(path));
	unlink(path);
	snap_meta_path(r, w->m, "index", path, sizeof(path));
	unlink(path);
	snap_meta_path(r, w->m, "state", path, sizeof(path));
	unlink(path);
	/* pack index first: a pack without one is partial at the next open */
	snap_pack_path(r, w->p->id, "idx", path, sizeof(path));
	unlink(path);
	snap_pack_path(r, w->p->id, "pack", path, sizeof(path));
	unlink(path);
	for (size_t i = 0; i < r->n_packs; i++)
		if (r->packs[i] == w->p)
			r->packs[i] = r->packs[--r->n_packs];
	snap_pack_free(w->p);
	snap_meta_drop(r, w->m);
	r->writer = NULL;
	/* rebuilds the dedup table without the dropped pack's pages */
	snap_sweep(r, scratch, sizeof(scratch));
	free(w->refs);
	free(w->buf);
	free(w);
}

static int begin_check(struct snap_repo *r, const uint8_t *uuid, const char *name,
		       const char *parent, uint64_t pages, char *err, size_t errlen)
{
	const struct snap_meta *pm = parent ? snap_meta_find(r, uuid, parent) : NULL;
	char u[37];
	int rc;

	snap_uuid_str(uuid, u);
	rc = snap_name_check(name, err, errlen);
	if (rc)
		return rc;
	if (r->writer)
		return snap_fail(-EBUSY, err, errlen, "snapshot %s/%s: another is being written",
				 u, name);
	if (snap_meta_find(r, uuid, name))
		return snap_fail(-EEXIST, err, errlen, "snapshot %s/%s exists", u, name);
	if (parent && (!pm || !pm->complete))
		return snap_fail(-ENOENT, err, errlen, "snapshot %s/%s: parent \"%s\" %s", u,
				 name, parent, pm ? "is not complete" : "does not exist");
	if (!pages || pages > (1ull << 36))
		return snap_fail(-EINVAL, err, errlen, "snapshot %s/%s: %" PRIu64 " pages", u,
				 name, pages);
	return 0;
}

static int begin_files(struct snap_writer *w, char *err, size_t errlen)
{
	struct snap_repo *r = w->r;
	char path[PATH_MAX];
	int rc;

	snap_meta_path(r, w->m, "dir", path, sizeof(path));
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return snap_fail(-errno, err, errlen, "cannot create %s: %s", path,
				 ferry_strerror(errno));
	snprintf(path, sizeof(path), "%s/snaps", r->dir);
	rc = snap_fsync_dir(path, err, errlen);
	if (rc)
		return rc;
	/* a state file a crashed delete of the same name left behind */
	snap_meta_path(r, w->m, "state", path, sizeof(path));
	unlink(path);
	snap_pack_path(r, w->p->id, "pack", path, sizeof(path));
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0)
		return snap_fail(-errno, err, errlen, "cannot create %s: %s", path,
				 ferry_strerror(errno));
	/* listed as being written from now on; removed at open if never done */
	return snap_meta_write(r, w->m, err, errlen);
}

int snap_begin(struct snap_repo *r, const uint8_t uuid[16], const char *name,
	       const char *parent, uint64_t memory_pages, struct snap_writer **out, char *err,
	       size_t errlen)
{
	struct snap_writer *w;
	int rc;

	rc = begin_check(r, uuid, name, parent, memory_pages, err, errlen);
	if (rc)
		return rc;
	w = calloc(1, sizeof(*w));
	if (!w || !(w->m = calloc(1, sizeof(*w->m))) || !(w->p = calloc(1, sizeof(*w->p))) ||
	    !(w->refs = calloc(memory_pages, sizeof(*w->refs))) ||
	    !(w->buf = malloc(WBUF_PAGES * SNAP_PAGE_SIZE)) || snap_pack_add(r, w->p)) {
		if (w) {
			free(w->m);
			free(w->p);
			free(w->refs);
			free(w->buf);
		}
		free(w);
		return snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", name);
	}
	w->r = r;
	w->fd = -1;
	w->err = err;
	w->errlen = errlen;
	w->p->fd = -1;
	w->p->writing = true;
	w->p->id = r->next_pack++;
	memcpy(w->p->uuid, uuid, 16);
	strcpy(w->m->name, name);
	strcpy(w->m->parent, parent ? parent : "");
	memcpy(w->m->uuid, uuid, 16);
	w->m->time = time(NULL);
	w->m->memory_pages = memory_pages;
	w->m->gen = 1;
	w->m->pack = w->p->id;
	r->writer = w;
	rc = snap_meta_add(r, w->m) ? snap_fail(-ENOMEM, err, errlen, "out of memory")
				    : begin_files(w, err, errlen);
	if (rc) {
		writer_drop(w);
		return rc;
	}
	*out = w;
	return 0;
}

int snap_flush(struct snap_writer *w)
{
	size_t len = (size_t)w->buf_pages * SNAP_PAGE_SIZE, done = 0;
	off_t off = (off_t)w->buf_slot * SNAP_PAGE_SIZE;
	char path[PATH_MAX];

	while (done < len) {
		ssize_t n = pwrite(w->fd, w->buf + done, len - done, off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = -errno;

			snap_pack_path(w->r, w->p->id, "pack", path, sizeof(path));
			return snap_fail(rc, w->err, w->errlen, "snapshot %s: writing %s: %s",
					 w->m->name, path, ferry_strerror(-rc));
		}
		done += (size_t)n;
	}
	w->st.bytes += len;
	w->buf_slot += w->buf_pages;
	w->buf_pages = 0;
	return 0;
}

/* A page not in the store: appended to the writer's pack. */
static int store(struct snap_writer *w, const void *page, const uint8_t *hash, uint32_t *slot)
{
	struct snap_pack *p = w->p;
	int rc;

	if (w->buf_pages == WBUF_PAGES && (rc = snap_flush(w)))
		return rc;
	if (p->count == p->cap && snap_pack_grow(p))
		return snap_fail(-ENOMEM, w->err, w->errlen, "snapshot %s: out of memory",
				 w->m->name);
	*slot = p->count++;
	memcpy(p->hash[*slot], hash, SNAP_HASH_LEN);
	memcpy(w->buf + (size_t)w->buf_pages++ * SNAP_PAGE_SIZE, page, SNAP_PAGE_SIZE);
	w->st.stored++;
	if (snap_dedup_add(w->r, p->id, *slot))
		return snap_fail(-ENOMEM, w->err, w->errlen, "snapshot %s: out of memory",
				 w->m->name);
	return 0;
}

static int check_pfn(struct snap_writer *w, uint64_t pfn)
{
	if (pfn < w->m->memory_pages)
		return 0;
	return snap_fail(-ERANGE, w->err, w->errlen,
			 "snapshot %s: pfn %#" PRIx64 " is past its %" PRIu64 " pages", w->m->name,
			 pfn, w->m->memory_pages);
}

int snap_put(struct snap_writer *w, const uint64_t *pfns, const void *const *pages,
	     uint32_t count)
{
	uint8_t hash[SNAP_HASH_LEN];

	for (uint32_t i = 0; i < count; i++) {
		int64_t found;
		uint32_t slot = 0;
		int rc;

		rc = check_pfn(w, pfns[i]);
		if (rc)
			return rc;
		w->st.pages++;
		if (all_zero(pages[i])) {
			w->refs[pfns[i]] = enc(SNAP_PACK_ZERO, 0);
			w->st.zero++;
			continue;
		}
		snap_sha256(pages[i], SNAP_PAGE_SIZE, hash);
		found = snap_dedup_find(w->r, w->m->uuid, hash);
		if (found >= 0) {
			w->refs[pfns[i]] = (uint64_t)found + 1;
			w->st.deduped++;
			continue;
		}
		rc = store(w, pages[i], hash, &slot);
		if (rc)
			return rc;
		w->refs[pfns[i]] = enc(w->p->id, slot);
	}
	return 0;
}

int snap_holes(struct snap_writer *w, const uint64_t *pfns, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		int rc = check_pfn(w, pfns[i]);

		if (rc)
			return rc;
		w->refs[pfns[i]] = enc(SNAP_PACK_HOLE, 0);
		w->st.holes++;
	}
	return 0;
}

int snap_set_state(struct snap_writer *w, const void *buf, size_t len)
{
	struct snap_meta *m = w->m;
	char path[PATH_MAX];
	struct afile *f;
	int rc;

	snap_meta_path(w->r, m, "state", path, sizeof(path));
	if (!len) {
		m->has_state = false;
		m->state_len = 0;
		return unlink(path) < 0 && errno != ENOENT
			       ? snap_fail(-errno, w->err, w->errlen, "cannot remove %s: %s", path,
					   ferry_strerror(errno))
			       : 0;
	}
	if (len > SNAP_STATE_MAX)
		return snap_fail(-EFBIG, w->err, w->errlen,
				 "snapshot %s: a state of %zu bytes is past the %llu allowed",
				 m->name, len, SNAP_STATE_MAX);
	/* durable (synced, renamed, directory synced) before the manifest
	 * that names its digest can say complete */
	rc = afile_open(path, &f, w->err, w->errlen);
	if (rc)
		return rc;
	rc = snap_write_all(afile_fd(f), buf, len);
	if (rc) {
		snap_fail(rc, w->err, w->errlen, "snapshot %s: writing %s: %s", m->name,
			  afile_tmp_path(f), ferry_strerror(-rc));
		afile_nospace_hint(f, rc, len, w->err, w->errlen);
		afile_abort(f);
		return rc;
	}
	rc = afile_commit(f, w->err, w->errlen);
	if (rc) {
		m->has_state = false;
		return rc;
	}
	snap_sha256(buf, len, m->state_hash);
	m->has_state = true;
	m->state_len = len;
	w->st.bytes += len;
	return 0;
}

/* The snapshot's own entries, in pfn order, from the per-pfn refs. */
static int build_index(struct snap_writer *w)
{
	struct snap_meta *m = w->m;
	uint64_t n = 0;

	for (uint64_t pfn = 0; pfn < m->memory_pages; pfn++)
		n += w->refs[pfn] != 0;
	m->ents = malloc((n ? n : 1) * sizeof(*m->ents));
	if (!m->ents)
		return snap_fail(-ENOMEM, w->err, w->errlen, "snapshot %s: out of memory",
				 m->name);
	for (uint64_t pfn = 0; pfn < m->memory_pages; pfn++) {
		uint64_t v = w->refs[pfn] - 1;

		if (!w->refs[pfn])
			continue;
		m->ents[m->n_ents++] = (struct snap_entry){
			.pfn = pfn, .pack = (uint32_t)(v >> 32), .slot = (uint32_t)v };
	}
	w->st.bytes += n * sizeof(*m->ents);
	return 0;
}

/* Pages synced, then the pack's index, the snapshot's index and last the
 * manifest saying complete, each through a rename and a directory sync. */
static int commit_files(struct snap_writer *w)
{
	struct snap_pack *p = w->p;
	char path[PATH_MAX];
	int rc;

	rc = snap_flush(w);
	if (rc)
		return rc;
	snap_pack_path(w->r, p->id, "pack", path, sizeof(path));
	if (fsync(w->fd) < 0)
		return snap_fail(-errno, w->err, w->errlen, "snapshot %s: syncing %s: %s",
				 w->m->name, path, ferry_strerror(errno));
	snap_failpoint_at(SNAP_STEP_PAGES);
	snap_pack_path(w->r, p->id, "idx", path, sizeof(path));
	rc = snap_file_write(path, "FRSNPAK1", p->uuid, p->count, p->hash,
			     (size_t)p->count * SNAP_HASH_LEN, w->err, w->errlen);
	if (rc)
		return rc;
	snap_failpoint_at(SNAP_STEP_PACK_INDEX);
	rc = build_index(w);
	if (!rc)
		rc = snap_index_write(w->r, w->m, w->err, w->errlen);
	if (rc)
		return rc;
	snap_failpoint_at(SNAP_STEP_INDEX);
	w->m->complete = true;
	rc = snap_meta_write(w->r, w->m, w->err, w->errlen);
	if (rc)
		w->m->complete = false;
	else
		snap_failpoint_at(SNAP_STEP_MANIFEST);
	return rc;
}

/*
 * After a commit only the new pack can hold pages nothing references (a
 * pfn put twice, or a pack that stored nothing): the whole sweep (every
 * snapshot's entries marked, the dedup table rebuilt: tens of ms for a
 * 1 GiB chain) runs only then; otherwise its slots are all live.
 */
static int commit_sweep(struct snap_writer *w)
{
	struct snap_pack *p = w->p;
	uint32_t live = 0;

	if (!p->count)
		return snap_sweep(w->r, w->err, w->errlen);
	memset(p->state, SLOT_DEAD, p->count);
	for (uint64_t pfn = 0; pfn < w->m->memory_pages; pfn++) {
		uint64_t v = w->refs[pfn] - 1;

		if (w->refs[pfn] && (uint32_t)(v >> 32) == p->id &&
		    p->state[(uint32_t)v] == SLOT_DEAD) {
			p->state[(uint32_t)v] = SLOT_LIVE;
			live++;
		}
	}
	if (live != p->count)
		return snap_sweep(w->r, w->err, w->errlen);
	return 0;
}

int snap_commit(struct snap_writer *w, struct snap_write_stats *st)
{
	struct snap_repo *r = w->r;
	int rc = commit_files(w);

	if (st)
		*st = w->st;
	if (rc) {
		writer_drop(w);
		return rc;
	}
	close(w->fd);
	w->p->writing = false;
	r->writer = NULL;
	rc = commit_sweep(w);
	free(w->refs);
	free(w->buf);
	free(w);
	return rc;
}

void snap_abort(struct snap_writer *w)
{
	if (w)
		writer_drop(w);
}
