// SPDX-License-Identifier: MIT
/*
 * A snapshot as a lazy restore's page source (snapshot/source.h): reads
 * never touch the repository. At open the view is kept (its per-pfn pack
 * and slot, not copied) and every pack it names is opened, its data file and
 * its index (the slots' SHA-256s): an index is only ever replaced by a
 * rename, so the fd keeps the slots that existed at open, and a page's
 * checksum is read from it when the page is. Copying the checksums out at
 * open cost 5-25 ms for 1 GiB (mostly the first touch of the copy's
 * memory on these machines), more than the whole time a lazy restore
 * has before its guest runs.
 */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "internal.h"
#include "snapshot/source.h"
#include "snapshot/stream.h"

struct src_pack {
	uint32_t id;
	uint32_t count; /* slots at open */
	int fd, idx_fd;
	char path[PATH_MAX], idx_path[PATH_MAX];
};

struct snap_source {
	char label[SNAP_NAME_MAX + 40]; /* UUID/NAME for messages */
	uint64_t pages;
	struct snap_view *v; /* only its pfns' pack and slot are read */
	struct src_pack *packs;
	size_t npacks;
	size_t last; /* the pack last looked up */
};

static void source_close(void *p)
{
	struct snap_source *s = p;

	if (!s)
		return;
	for (size_t i = 0; i < s->npacks; i++) {
		if (s->packs[i].fd >= 0)
			close(s->packs[i].fd);
		if (s->packs[i].idx_fd >= 0)
			close(s->packs[i].idx_fd);
	}
	free(s->packs);
	snap_view_close(s->v);
	free(s);
}

/* The index of pack id among s's, or -1. Read-only: the fault thread
 * and the fetcher read pages at once (restore/lazy.h). */
static int64_t pack_index(const struct snap_source *s, uint32_t id)
{
	for (size_t i = 0; i < s->npacks; i++)
		if (s->packs[i].id == id)
			return (int64_t)i;
	return -1;
}

/* pack_index, remembering the last found: for the open's pass alone. */
static int64_t pack_find(struct snap_source *s, uint32_t id)
{
	int64_t i;

	if (s->last < s->npacks && s->packs[s->last].id == id)
		return (int64_t)s->last;
	i = pack_index(s, id);
	if (i >= 0)
		s->last = (size_t)i;
	return i;
}

/* The index of pack id among s's, added and its files opened unless
 * there already; or -errno. */
static int64_t pack_add(struct snap_source *s, struct snap_repo *r, uint32_t id, char *err,
			size_t errlen)
{
	const struct snap_pack *rp;
	struct src_pack *p;
	int64_t i = pack_find(s, id);

	if (i >= 0)
		return i;
	rp = snap_pack_find(r, id);
	if (!rp)
		return snap_fail(-EIO, err, errlen, "snapshot %s: pack %08x is gone", s->label, id);
	p = realloc(s->packs, (s->npacks + 1) * sizeof(*p));
	if (!p)
		return snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", s->label);
	s->packs = p;
	p += s->npacks++;
	p->id = id;
	p->count = rp->count;
	snap_pack_path(r, id, "pack", p->path, sizeof(p->path));
	snap_pack_path(r, id, "idx", p->idx_path, sizeof(p->idx_path));
	p->fd = open(p->path, O_RDONLY | O_CLOEXEC);
	p->idx_fd = p->fd < 0 ? -1 : open(p->idx_path, O_RDONLY | O_CLOEXEC);
	if (p->fd < 0 || p->idx_fd < 0)
		return snap_fail(-EIO, err, errlen, "snapshot %s: cannot open %s: %s", s->label,
				 p->fd < 0 ? p->path : p->idx_path, ferry_strerror(errno));
	return (int64_t)s->npacks - 1;
}

int snap_source_open(struct snap_repo *r, const uint8_t uuid[16], const char *name,
		     struct snap_source **out, char *err, size_t errlen)
{
	struct snap_source *s = calloc(1, sizeof(*s));
	char u[37];
	int rc;

	if (!s)
		return snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", name);
	snap_uuid_str(uuid, u);
	snprintf(s->label, sizeof(s->label), "%s/%s", u, name);
	rc = snap_view_open(r, uuid, name, &s->v, err, errlen);
	if (rc)
		goto err;
	s->pages = snap_view_pages(s->v);
	for (uint64_t pfn = 0; !rc && pfn < s->pages; pfn++) {
		uint32_t pack, slot;
		int64_t i;

		if (snap_view_where(s->v, pfn, &pack, &slot) != SNAP_PAGE_DATA)
			continue;
		i = pack_add(s, r, pack, err, errlen);
		if (i < 0)
			rc = (int)i;
		else if (slot >= s->packs[i].count)
			rc = snap_fail(-EIO, err, errlen,
				       "snapshot %s: pfn %#" PRIx64 ": pack %08x slot %u is gone",
				       s->label, pfn, pack, slot);
	}
	if (rc)
		goto err;
	*out = s;
	return 0;

err:
	source_close(s);
	return rc;
}

int snap_source_open_with_state(struct snap_repo *r, const uint8_t uuid[16], const char *name,
				struct snap_source **out, struct strm_io **state, char *err,
				size_t errlen)
{
	int rc = snap_source_open(r, uuid, name, out, err, errlen);

	if (rc)
		return rc;
	/* The stream reads only the view's holes and its state, both fixed
	 * at open: the fault thread's reads of the same view do not race. */
	rc = snap_stream_of_view((*out)->v, (*out)->label, SNAP_STREAM_NO_DATA, state, err,
				 errlen);
	if (rc) {
		source_close(*out);
		*out = NULL;
	}
	return rc;
}

static int source_fetch(void *p, uint64_t pfn, void *buf, char *err, size_t errlen)
{
	struct snap_source *s = p;
	uint8_t hash[SNAP_HASH_LEN];
	const struct src_pack *pk;
	uint32_t pack, slot;
	ssize_t n;

	if (pfn >= s->pages)
		return snap_fail(-ERANGE, err, errlen,
				 "snapshot %s: pfn %#" PRIx64 " is past its %" PRIu64 " pages",
				 s->label, pfn, s->pages);
	if (snap_view_where(s->v, pfn, &pack, &slot) != SNAP_PAGE_DATA) {
		memset(buf, 0, SNAP_PAGE_SIZE); /* a zero page, or a hole */
		return 0;
	}
	pk = &s->packs[pack_index(s, pack)]; /* every one was added at open */
	n = pread(pk->idx_fd, hash, SNAP_HASH_LEN,
		  (off_t)(sizeof(struct snap_fhdr) + (uint64_t)slot * SNAP_HASH_LEN));
	if (n != SNAP_HASH_LEN)
		return snap_fail(n < 0 ? -errno : -EIO, err, errlen,
				 "snapshot %s: pfn %#" PRIx64 ": reading slot %u's checksum in %s: %s",
				 s->label, pfn, slot, pk->idx_path,
				 n < 0 ? ferry_strerror(errno) : "short read");
	return snap_slot_read(pk->fd, pk->path, slot, hash, s->label, pfn, buf, err, errlen);
}

const struct rst_page_source_ops snap_page_source_ops = {
	.fetch = source_fetch,
	.close = source_close,
};
