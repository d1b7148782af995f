// SPDX-License-Identifier: MIT
/*
 * The records of one epoch of a checkpointed stream, held by the decoder
 * until the epoch's CHECKPOINT_END (stream/codec.h): a vector of reports
 * and one arena for their bodies, reused from epoch to epoch.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/grow.h"
#include "internal-codec.h"

struct strm_held_rec {
	struct strm_rec rec;
	size_t body_at;		 /* in the arena */
	size_t pfns_at, data_at; /* PAGE_DATA's, within the body */
};

uint64_t strm_held_bytes(const struct strm_held *hd)
{
	return hd->used + hd->n * (uint64_t)sizeof(struct strm_held_rec);
}

int strm_held_add(struct strm_held *hd, const struct strm_rec *rec, uint64_t max_bytes)
{
	size_t body = (size_t)STRM_ROUNDUP8(rec->len);
	struct strm_held_rec *h;

	if (strm_held_bytes(hd) + body + sizeof(*h) > max_bytes)
		return -E2BIG;
	if (ferry_grow((void **)&hd->v, &hd->cap, hd->n + 1, sizeof(*h)) ||
	    ferry_grow((void **)&hd->arena, &hd->arena_cap, hd->used + body, 1))
		return -ENOMEM;
	h = &hd->v[hd->n++];
	h->rec = *rec;
	h->body_at = hd->used;
	if (rec->page_pfns) {
		h->pfns_at = (size_t)((const uint8_t *)rec->page_pfns - rec->body);
		h->data_at = (size_t)(rec->page_data - rec->body);
	}
	if (rec->len)
		memcpy(hd->arena + hd->used, rec->body, rec->len);
	hd->used += body;
	return 0;
}

int strm_held_each(struct strm_held *hd, int (*fn)(void *opaque, struct strm_rec *rec),
		   void *opaque)
{
	for (size_t i = 0; i < hd->n; i++) {
		struct strm_rec rec = hd->v[i].rec;
		const uint8_t *body = hd->arena ? hd->arena + hd->v[i].body_at : NULL;
		int rc;

		/* Pointers into the body move with it (bodies start at
		 * multiples of 8 of a malloc'd arena: the pfns stay aligned). */
		if (rec.page_pfns) {
			rec.page_pfns = (const uint64_t *)(const void *)(body + hd->v[i].pfns_at);
			rec.page_data = body + hd->v[i].data_at;
		}
		rec.body = body ? body : (const uint8_t *)"";
		rc = fn(opaque, &rec);
		if (rc)
			return rc;
	}
	return 0;
}

void strm_held_clear(struct strm_held *hd)
{
	hd->n = 0;
	hd->used = 0;
}

void strm_held_free(struct strm_held *hd)
{
	free(hd->v);
	free(hd->arena);
	memset(hd, 0, sizeof(*hd));
}
