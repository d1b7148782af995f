// SPDX-License-Identifier: MIT
/*
 * A snapshot as a lazy restore's page source (snapshot/source.h): what the
 * reads need is copied out of the repository at open, so that reads never
 * touch it.
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

struct src_pack {
	uint32_t id;
	int fd;
	char path[PATH_MAX];
};

struct snap_source {
	char label[SNAP_NAME_MAX + 40]; /* UUID/NAME for messages */
	uint64_t pages;
	uint64_t *where;		/* per pfn: (pack index << 32 | slot) + 1; 0: zeros */
	uint8_t (*hash)[SNAP_HASH_LEN]; /* per pfn with data */
	struct src_pack *packs;
	size_t npacks;
};

static void source_close(void *p)
{
	struct snap_source *s = p;

	if (!s)
		return;
	for (size_t i = 0; i < s->npacks; i++)
		if (s->packs[i].fd >= 0)
			close(s->packs[i].fd);
	free(s->packs);
	free(s->where);
	free(s->hash);
	free(s);
}

/* The index of pack id among s's, opened on first use. */
static int64_t pack_index(struct snap_source *s, struct snap_repo *r, uint32_t id, char *err,
			  size_t errlen)
{
	struct src_pack *p;

	for (size_t i = s->npacks; i-- > 0;)
		if (s->packs[i].id == id)
			return (int64_t)i;
	p = realloc(s->packs, (s->npacks + 1) * sizeof(*p));
	if (!p)
		return snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", s->label);
	s->packs = p;
	p += s->npacks;
	p->id = id;
	snap_pack_path(r, id, "pack", p->path, sizeof(p->path));
	p->fd = open(p->path, O_RDONLY | O_CLOEXEC);
	if (p->fd < 0)
		return snap_fail(-EIO, err, errlen, "snapshot %s: cannot open %s: %s", s->label,
				 p->path, ferry_strerror(errno));
	return (int64_t)s->npacks++;
}

/* pfn's place and checksum, copied from the view. */
static int resolve(struct snap_source *s, struct snap_repo *r, struct snap_view *v, uint64_t pfn,
		   char *err, size_t errlen)
{
	const struct snap_pack *p;
	uint32_t pack, slot;
	int64_t i;

	if (snap_view_where(v, pfn, &pack, &slot) != SNAP_PAGE_DATA)
		return 0;
	p = snap_pack_find(r, pack);
	if (!p || slot >= p->count)
		return snap_fail(-EIO, err, errlen,
				 "snapshot %s: pfn %#" PRIx64 ": pack %08x slot %u is gone",
				 s->label, pfn, pack, slot);
	i = pack_index(s, r, pack, err, errlen);
	if (i < 0)
		return (int)i;
	memcpy(s->hash[pfn], p->hash[slot], SNAP_HASH_LEN);
	s->where[pfn] = ((uint64_t)i << 32 | slot) + 1;
	return 0;
}

int snap_source_open(struct snap_repo *r, const uint8_t uuid[16], const char *name,
		     struct snap_source **out, char *err, size_t errlen)
{
	struct snap_source *s = calloc(1, sizeof(*s));
	struct snap_view *v = NULL;
	char u[37];
	int rc;

	if (!s)
		return snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", name);
	snap_uuid_str(uuid, u);
	snprintf(s->label, sizeof(s->label), "%s/%s", u, name);
	rc = snap_view_open(r, uuid, name, &v, err, errlen);
	if (rc)
		goto err;
	s->pages = snap_view_pages(v);
	s->where = calloc(s->pages ? s->pages : 1, sizeof(*s->where));
	s->hash = malloc((s->pages ? s->pages : 1) * SNAP_HASH_LEN);
	if (!s->where || !s->hash) {
		rc = snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", s->label);
		goto err;
	}
	for (uint64_t pfn = 0; !rc && pfn < s->pages; pfn++)
		rc = resolve(s, r, v, pfn, err, errlen);
	if (rc)
		goto err;
	snap_view_close(v);
	*out = s;
	return 0;

err:
	snap_view_close(v);
	source_close(s);
	return rc;
}

static int source_fetch(void *p, uint64_t pfn, void *buf, char *err, size_t errlen)
{
	struct snap_source *s = p;
	const struct src_pack *pk;

	if (pfn >= s->pages)
		return snap_fail(-ERANGE, err, errlen,
				 "snapshot %s: pfn %#" PRIx64 " is past its %" PRIu64 " pages",
				 s->label, pfn, s->pages);
	if (!s->where[pfn]) {
		memset(buf, 0, SNAP_PAGE_SIZE); /* a zero page, or a hole */
		return 0;
	}
	pk = &s->packs[(s->where[pfn] - 1) >> 32];
	return snap_slot_read(pk->fd, pk->path, (uint32_t)(s->where[pfn] - 1), s->hash[pfn],
			      s->label, pfn, buf, err, errlen);
}

const struct rst_page_source_ops snap_page_source_ops = {
	.fetch = source_fetch,
	.close = source_close,
};
