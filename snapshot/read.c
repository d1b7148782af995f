// SPDX-License-Identifier: MIT
/*
 * Reading snapshots: a view resolves a snapshot through its parents into
 * one page reference per pfn; every page read is checked against its
 * SHA-256 (formats/SPEC.md 10.6).
 */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/hugemap.h"
#include "internal.h"

struct snap_view {
	struct snap_repo *r;
	char label[SNAP_NAME_MAX + 40]; /* UUID/NAME for messages */
	uint64_t pages;
	uint64_t *refs; /* per pfn: (pack << 32 | slot) + 1, 0 zero */
	uint8_t *state; /* checked at open; NULL: none stored */
	uint64_t state_len;
};

/* Applies m's ancestors, oldest first, then m's own entries. */
static int view_apply(struct snap_view *v, struct snap_repo *r, const struct snap_meta *m,
		      size_t depth)
{
	if (m->parent[0]) {
		const struct snap_meta *pm = snap_meta_find(r, m->uuid, m->parent);
		int rc;

		if (!pm || depth > r->n_snaps)
			return -EINVAL; /* a cycle or a lost parent: checked at open */
		rc = view_apply(v, r, pm, depth + 1);
		if (rc)
			return rc;
	}
	for (uint64_t i = 0; i < m->n_ents; i++)
		if (m->ents[i].pfn < v->pages)
			v->refs[m->ents[i].pfn] =
				((uint64_t)m->ents[i].pack << 32 | m->ents[i].slot) + 1;
	return 0;
}

/*
 * Reads m's state file and checks it against the manifest's digest: -EIO
 * naming the file when it is missing, short or damaged. The blob is a few
 * records, so every view reads it: a view never hands out unchecked state.
 */
static int state_load(struct snap_repo *r, const struct snap_meta *m, const char *label,
		      uint8_t **out, char *err, size_t errlen)
{
	uint8_t hash[SNAP_HASH_LEN], *data;
	char path[PATH_MAX];
	struct stat st;
	ssize_t n = 0;
	size_t done = 0;
	int fd, e;

	snap_meta_path(r, m, "state", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		e = errno;
		if (fd >= 0)
			close(fd);
		return snap_fail(-EIO, err, errlen, "snapshot %s: cannot open its state %s: %s",
				 label, path, ferry_strerror(e));
	}
	if ((uint64_t)st.st_size != m->state_len) {
		close(fd);
		return snap_fail(-EIO, err, errlen,
				 "snapshot %s: its state %s is damaged (%lld bytes, the manifest "
				 "says %" PRIu64 ")",
				 label, path, (long long)st.st_size, m->state_len);
	}
	data = malloc(m->state_len);
	if (!data) {
		close(fd);
		return snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", label);
	}
	while (done < m->state_len) {
		n = pread(fd, data + done, m->state_len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	e = errno;
	close(fd);
	if (done == m->state_len)
		snap_sha256(data, done, hash);
	if (done != m->state_len || memcmp(hash, m->state_hash, SNAP_HASH_LEN)) {
		free(data);
		return snap_fail(-EIO, err, errlen, "snapshot %s: its state %s is damaged (%s)",
				 label, path,
				 done == m->state_len ? "its SHA-256 does not match the manifest's"
				 : n < 0	      ? ferry_strerror(e)
						      : "short read");
	}
	*out = data;
	return 0;
}

int snap_view_state(struct snap_view *v, const void **buf, size_t *len)
{
	if (!v->state)
		return -ENOENT;
	*buf = v->state;
	*len = v->state_len;
	return 0;
}

/* The view of m; with_state false skips the state (verify checks it apart). */
static int view_open(struct snap_repo *r, const struct snap_meta *m, bool with_state,
		     struct snap_view **out, char *err, size_t errlen)
{
	struct snap_view *v;
	char u[37];
	int rc;

	snap_uuid_str(m->uuid, u);
	v = calloc(1, sizeof(*v));
	/* 2 MiB per GiB, written whole by view_apply: on huge pages that is
	 * one fault per 2 MiB, not 512 (common/hugemap.h). */
	if (!v || !(v->refs = ferry_hugemap(m->memory_pages * sizeof(*v->refs), false))) {
		free(v);
		return snap_fail(-ENOMEM, err, errlen, "snapshot %s/%s: out of memory", u, m->name);
	}
	v->r = r;
	v->pages = m->memory_pages;
	snprintf(v->label, sizeof(v->label), "%s/%s", u, m->name);
	rc = view_apply(v, r, m, 0);
	if (rc) {
		snap_view_close(v);
		return snap_fail(rc, err, errlen, "snapshot %s/%s: broken parent chain", u,
				 m->name);
	}
	if (with_state && m->has_state) {
		rc = state_load(r, m, v->label, &v->state, err, errlen);
		if (rc) {
			snap_view_close(v);
			return rc;
		}
		v->state_len = m->state_len;
	}
	*out = v;
	return 0;
}

int snap_view_open(struct snap_repo *r, const uint8_t uuid[16], const char *name,
		   struct snap_view **out, char *err, size_t errlen)
{
	const struct snap_meta *m = snap_meta_find(r, uuid, name);
	char u[37];

	snap_uuid_str(uuid, u);
	if (!m || !m->complete)
		return snap_fail(m ? -EBUSY : -ENOENT, err, errlen, "snapshot %s/%s: %s", u, name,
				 m ? "being written" : "no such snapshot");
	return view_open(r, m, true, out, err, errlen);
}

uint64_t snap_view_pages(const struct snap_view *v)
{
	return v->pages;
}

enum snap_page_kind snap_view_kind(const struct snap_view *v, uint64_t pfn)
{
	uint32_t pack = (uint32_t)((v->refs[pfn] - 1) >> 32);

	if (!v->refs[pfn] || pack == SNAP_PACK_ZERO)
		return SNAP_PAGE_ZERO;
	return pack == SNAP_PACK_HOLE ? SNAP_PAGE_HOLE : SNAP_PAGE_DATA;
}

enum snap_page_kind snap_view_where(const struct snap_view *v, uint64_t pfn, uint32_t *pack,
				    uint32_t *slot)
{
	enum snap_page_kind kind = snap_view_kind(v, pfn);

	*pack = (uint32_t)((v->refs[pfn] - 1) >> 32);
	*slot = (uint32_t)(v->refs[pfn] - 1);
	return kind;
}

void snap_view_close(struct snap_view *v)
{
	if (!v)
		return;
	ferry_hugeunmap(v->refs, v->pages * sizeof(*v->refs));
	free(v->state);
	free(v);
}

static int pack_fd(struct snap_repo *r, struct snap_pack *p, const char *path)
{
	if (p->fd < 0)
		p->fd = open(path, O_RDONLY | O_CLOEXEC);
	return p->fd < 0 ? -errno : 0;
}

int snap_view_read(struct snap_view *v, uint64_t pfn, void *buf, enum snap_page_kind *kind,
		   char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct snap_pack *p;
	uint32_t pack, slot;
	int rc;

	if (pfn >= v->pages)
		return snap_fail(-ERANGE, err, errlen,
				 "snapshot %s: pfn %#" PRIx64 " is past its %" PRIu64 " pages",
				 v->label, pfn, v->pages);
	pack = (uint32_t)((v->refs[pfn] - 1) >> 32);
	slot = (uint32_t)(v->refs[pfn] - 1);
	if (!v->refs[pfn] || pack >= SNAP_PACK_HOLE) {
		memset(buf, 0, SNAP_PAGE_SIZE);
		*kind = v->refs[pfn] && pack == SNAP_PACK_HOLE ? SNAP_PAGE_HOLE : SNAP_PAGE_ZERO;
		return 0;
	}
	*kind = SNAP_PAGE_DATA;
	p = snap_pack_find(v->r, pack);
	if (!p)
		return snap_fail(-EIO, err, errlen,
				 "snapshot %s: pfn %#" PRIx64 ": pack %08x is gone", v->label, pfn,
				 pack);
	snap_pack_path(v->r, pack, "pack", path, sizeof(path));
	rc = pack_fd(v->r, p, path);
	if (rc)
		return snap_fail(rc, err, errlen, "snapshot %s: pfn %#" PRIx64 ": cannot open %s: %s",
				 v->label, pfn, path, ferry_strerror(-rc));
	return snap_slot_read(p->fd, path, slot, p->hash[slot], v->label, pfn, buf, err, errlen);
}

int snap_slot_read(int fd, const char *path, uint32_t slot, const uint8_t *want,
		   const char *label, uint64_t pfn, void *buf, char *err, size_t errlen)
{
	uint8_t hash[SNAP_HASH_LEN];
	ssize_t n = pread(fd, buf, SNAP_PAGE_SIZE, (off_t)slot * SNAP_PAGE_SIZE);

	if (n != SNAP_PAGE_SIZE)
		return snap_fail(n < 0 ? -errno : -EIO, err, errlen,
				 "snapshot %s: pfn %#" PRIx64 ": reading %s at %#" PRIx64 ": %s",
				 label, pfn, path, (uint64_t)slot * SNAP_PAGE_SIZE,
				 n < 0 ? ferry_strerror(errno) : "short read");
	snap_sha256(buf, SNAP_PAGE_SIZE, hash);
	if (memcmp(hash, want, SNAP_HASH_LEN))
		return snap_fail(-EIO, err, errlen,
				 "snapshot %s: pfn %#" PRIx64 ": the page in %s at %#" PRIx64
				 " is damaged (its SHA-256 does not match)", label, pfn, path,
				 (uint64_t)slot * SNAP_PAGE_SIZE);
	return 0;
}

int snap_read_page(struct snap_repo *r, const uint8_t uuid[16], const char *name, uint64_t pfn,
		   void *buf, enum snap_page_kind *kind, char *err, size_t errlen)
{
	struct snap_view *v = NULL;
	int rc = snap_view_open(r, uuid, name, &v, err, errlen);

	if (rc)
		return rc;
	rc = snap_view_read(v, pfn, buf, kind, err, errlen);
	snap_view_close(v);
	return rc;
}

/* Every stored page of one snapshot; the first damage's message kept. */
static int verify_one(struct snap_repo *r, const struct snap_meta *m,
		      struct snap_verify_report *rep, int rc, char *err, size_t errlen)
{
	char msg[512];
	enum snap_page_kind kind;
	struct snap_view *v = NULL;
	uint8_t *buf = malloc(SNAP_PAGE_SIZE);
	int one;

	if (!buf)
		return snap_fail(-ENOMEM, err, errlen, "verify: out of memory");
	one = view_open(r, m, false, &v, msg, sizeof(msg));
	for (uint64_t pfn = 0; !one && pfn < v->pages; pfn++) {
		int e;

		if (!v->refs[pfn] || (uint32_t)((v->refs[pfn] - 1) >> 32) >= SNAP_PACK_HOLE)
			continue;
		rep->pages++;
		e = snap_view_read(v, pfn, buf, &kind, msg, sizeof(msg));
		if (e) {
			rep->bad++;
			if (!rc)
				rc = snap_fail(e, err, errlen, "%s", msg);
		}
	}
	if (!one)
		snap_view_close(v);
	else if (!rc)
		rc = snap_fail(one, err, errlen, "%s", msg);
	if (m->has_state) {
		char label[SNAP_NAME_MAX + 40];
		uint8_t *st = NULL;
		int e;

		snap_uuid_str(m->uuid, label);
		snprintf(label + 36, sizeof(label) - 36, "/%s", m->name);
		e = state_load(r, m, label, &st, msg, sizeof(msg));

		rep->states++;
		free(st);
		if (e) {
			rep->bad_states++;
			if (!rc)
				rc = snap_fail(e, err, errlen, "%s", msg);
		}
	}
	rep->snapshots++;
	free(buf);
	return rc;
}

int snap_verify(struct snap_repo *r, const uint8_t *uuid, const char *name,
		struct snap_verify_report *rep, char *err, size_t errlen)
{
	int rc = 0;

	memset(rep, 0, sizeof(*rep));
	if (name && (!uuid || !snap_meta_find(r, uuid, name)))
		return snap_fail(-ENOENT, err, errlen, "snapshot %s: no such snapshot", name);
	for (size_t i = 0; i < r->n_snaps; i++) {
		const struct snap_meta *m = r->snaps[i];

		if (!m->complete || (uuid && memcmp(uuid, m->uuid, 16)) ||
		    (name && strcmp(name, m->name)))
			continue;
		rc = verify_one(r, m, rep, rc, err, errlen);
	}
	return rc;
}
