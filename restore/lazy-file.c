// SPDX-License-Identifier: MIT
/*
 * An uncompressed save file as a lazy restore's page source
 * (restore/lazy.h): its record headers are read with pread, its pages are
 * not. That gives where each pfn's page lies, and the state stream: every
 * record as it is, but the PAGE_DATA records, whose holes (XTAB) are put
 * back, without data, where the last of them stood.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "formats/libxc-stream.h"
#include "formats/libxl-stream.h"
#include "formats/xl-header.h"
#include "restore/lazy.h"

#define PG	  4096
#define ALIGN8(x) (((x) + 7) & ~(uint64_t)7)
/* An entry's offset for a hole (XTAB); 0 is never a page's. */
#define OFF_XTAB UINT64_MAX

/* Where pfn's page lies (or OFF_XTAB); seq orders a pfn's entries. The
 * index costs what the file lists, whatever pfns a damaged file names. */
struct ent {
	uint64_t pfn, off, seq;
};

struct rst_file_source {
	int fd;
	uint64_t size; /* of the file when indexed */
	char path[PATH_MAX];
	struct ent *ents; /* by pfn, one per pfn (the last listed) once indexed */
	uint64_t nents, capents;
	uint8_t *state; /* the state stream */
	size_t len, cap;
	size_t splice; /* where the holes go: after the last PAGE_DATA */
	bool have_pages;
};

static int bad(const struct rst_file_source *s, int rc, char *err, size_t errlen, uint64_t at,
	       const char *what)
{
	snprintf(err, errlen, "%s: %s at offset %llu", s->path, what, (unsigned long long)at);
	return rc;
}

static int rd(const struct rst_file_source *s, uint64_t at, void *buf, size_t len, char *err,
	      size_t errlen)
{
	ssize_t n = pread(s->fd, buf, len, (off_t)at);

	if (n == (ssize_t)len)
		return 0;
	if (n < 0) {
		snprintf(err, errlen, "%s: reading at offset %llu: %s", s->path,
			 (unsigned long long)at, ferry_strerror(errno));
		return -errno;
	}
	return bad(s, -EPROTO, err, errlen, at, "the file ends inside a record");
}

static int room(struct rst_file_source *s, size_t more)
{
	size_t cap = s->cap ? s->cap : 65536;
	uint8_t *p;

	if (s->len + more <= s->cap)
		return 0;
	while (cap < s->len + more)
		cap *= 2;
	p = realloc(s->state, cap);
	if (!p)
		return -ENOMEM;
	s->state = p;
	s->cap = cap;
	return 0;
}

/* Copies len bytes of the file at `at` to the end of the state stream. */
static int keep(struct rst_file_source *s, uint64_t at, uint64_t len, char *err, size_t errlen)
{
	int rc;

	/* Checked before allocating: a damaged length is not a record. */
	if (len > REC_LENGTH_MAX + sizeof(struct xc_sr_rhdr) || at > s->size || len > s->size - at)
		return bad(s, -EPROTO, err, errlen, at, "a record runs past the end of the file");
	rc = room(s, len);
	if (rc) {
		snprintf(err, errlen, "%s: no memory for its state records", s->path);
		return rc;
	}
	rc = rd(s, at, s->state + s->len, len, err, errlen);
	if (!rc)
		s->len += len;
	return rc;
}

static int add_ent(struct rst_file_source *s, uint64_t pfn, uint64_t off, char *err, size_t errlen)
{
	if (s->nents == s->capents) {
		uint64_t cap = s->capents ? 2 * s->capents : 65536;
		struct ent *p = realloc(s->ents, cap * sizeof(*p));

		if (!p) {
			snprintf(err, errlen, "%s: no memory for its page index", s->path);
			return -ENOMEM;
		}
		s->ents = p;
		s->capents = cap;
	}
	s->ents[s->nents] = (struct ent){.pfn = pfn, .off = off, .seq = s->nents};
	s->nents++;
	return 0;
}

static int cmp_ent(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	if (x->pfn != y->pfn)
		return x->pfn < y->pfn ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Sorted by pfn, each pfn's last entry kept: what the stream leaves. */
static void finish_index(struct rst_file_source *s)
{
	uint64_t n = 0;

	if (!s->nents)
		return;
	qsort(s->ents, s->nents, sizeof(*s->ents), cmp_ent);
	for (uint64_t i = 0; i < s->nents; i++) {
		if (n && s->ents[n - 1].pfn == s->ents[i].pfn)
			n--;
		s->ents[n++] = s->ents[i];
	}
	s->nents = n;
}

/* One PAGE_DATA record at `at` (its header read): indexed, not kept. */
static int index_pages(struct rst_file_source *s, uint64_t at, uint32_t length, char *err,
		       size_t errlen)
{
	struct xc_sr_rec_page_data_header ph;
	uint64_t body = at + sizeof(struct xc_sr_rhdr), data, *pfns;
	int rc;

	if (length < sizeof(ph) || length > REC_LENGTH_MAX)
		return bad(s, -EPROTO, err, errlen, at, "a PAGE_DATA record of impossible length");
	rc = rd(s, body, &ph, sizeof(ph), err, errlen);
	if (rc)
		return rc;
	if ((uint64_t)ph.count * 8 > length - sizeof(ph))
		return bad(s, -EPROTO, err, errlen, at, "PAGE_DATA lists more pfns than it holds");
	pfns = malloc(ph.count ? ph.count * 8 : 8);
	if (!pfns) {
		snprintf(err, errlen, "%s: no memory for a PAGE_DATA record", s->path);
		return -ENOMEM;
	}
	rc = rd(s, body + sizeof(ph), pfns, ph.count * 8, err, errlen);
	data = body + sizeof(ph) + (uint64_t)ph.count * 8;
	for (uint32_t i = 0; !rc && i < ph.count; i++) {
		uint64_t pfn = pfns[i] & PAGE_DATA_PFN_MASK;
		unsigned type = (unsigned)(pfns[i] >> PAGE_DATA_TYPE_SHIFT);

		if (type == PAGE_TYPE_XTAB) {
			rc = add_ent(s, pfn, OFF_XTAB, err, errlen);
		} else if (type != PAGE_TYPE_BROKEN && type != PAGE_TYPE_XALLOC) {
			rc = add_ent(s, pfn, data, err, errlen);
			data += PG;
		}
	}
	free(pfns);
	if (!rc && data != body + length)
		rc = bad(s, -EPROTO, err, errlen, at, "PAGE_DATA's length does not match its pfns");
	return rc;
}

/* The libxc stream at *at: headers and records up to its END. */
static int scan_libxc(struct rst_file_source *s, uint64_t *at, char *err, size_t errlen)
{
	int rc = keep(s, *at, sizeof(struct xc_sr_ihdr) + sizeof(struct xc_sr_dhdr), err, errlen);

	*at += sizeof(struct xc_sr_ihdr) + sizeof(struct xc_sr_dhdr);
	while (!rc) {
		struct xc_sr_rhdr rh;

		rc = rd(s, *at, &rh, sizeof(rh), err, errlen);
		if (rc)
			break;
		if (rh.type == REC_TYPE_PAGE_DATA) {
			rc = index_pages(s, *at, rh.length, err, errlen);
			s->splice = s->len;
			s->have_pages = true;
		} else {
			rc = keep(s, *at, sizeof(rh) + ALIGN8(rh.length), err, errlen);
		}
		*at += sizeof(rh) + ALIGN8(rh.length);
		if (rh.type == REC_TYPE_END)
			break;
	}
	return rc;
}

static int scan(struct rst_file_source *s, char *err, size_t errlen)
{
	struct xl_save_header xh;
	uint64_t at;
	int rc = rd(s, 0, &xh, sizeof(xh), err, errlen);

	if (rc)
		return rc;
	if (memcmp(xh.magic, XL_SAVE_MAGIC, XL_SAVE_MAGIC_LEN) || xh.byteorder != XL_SAVE_BYTEORDER)
		return bad(s, -EPROTO, err, errlen, 0, "not an xl save file (no xl header)");
	if (xh.mandatory_flags & XL_MANDATORY_FLAG_FERRY_FRAMES) {
		snprintf(err, errlen,
			 "%s is a compressed save: a lazy restore reads each page where it lies, "
			 "and a compressed file has no index of where that is; restore it "
			 "without --lazy, or save it again uncompressed",
			 s->path);
		return -ENOTSUP;
	}
	if (!(xh.mandatory_flags & XL_MANDATORY_FLAG_STREAMV2))
		return bad(s, -EPROTO, err, errlen, 0, "not a migration stream v2");
	if (xh.optional_data_len > XL_CONFIG_MAX)
		return bad(s, -EPROTO, err, errlen, 0, "an xl header with an oversized config");
	at = sizeof(xh) + xh.optional_data_len + sizeof(struct libxl_sr_hdr);
	rc = keep(s, 0, at, err, errlen);
	while (!rc) {
		struct libxl_sr_rec_hdr lh;

		rc = rd(s, at, &lh, sizeof(lh), err, errlen);
		if (rc)
			break;
		rc = keep(s, at, sizeof(lh) + ALIGN8(lh.length), err, errlen);
		at += sizeof(lh) + ALIGN8(lh.length);
		if (!rc && lh.type == LIBXL_REC_LIBXC_CONTEXT)
			rc = scan_libxc(s, &at, err, errlen);
		if (lh.type == LIBXL_REC_END)
			break;
	}
	return rc;
}

/* The holes, as PAGE_DATA records of XTAB entries without data, spliced
 * in where the last PAGE_DATA stood. */
static int put_holes(struct rst_file_source *s, char *err, size_t errlen)
{
	uint64_t i = 0;

	if (!s->have_pages)
		return 0;
	while (i < s->nents) {
		struct xc_sr_rhdr rh = {.type = REC_TYPE_PAGE_DATA};
		struct xc_sr_rec_page_data_header ph = {0};
		uint64_t pfns[PAGE_DATA_BATCH_MAX];
		size_t rec;

		for (; i < s->nents && ph.count < PAGE_DATA_BATCH_MAX; i++)
			if (s->ents[i].off == OFF_XTAB)
				pfns[ph.count++] = s->ents[i].pfn | (uint64_t)PAGE_TYPE_XTAB
									    << PAGE_DATA_TYPE_SHIFT;
		if (!ph.count)
			break;
		rh.length = (uint32_t)(sizeof(ph) + ph.count * 8);
		rec = sizeof(rh) + rh.length;
		if (room(s, rec)) {
			snprintf(err, errlen, "%s: no memory for its state records", s->path);
			return -ENOMEM;
		}
		memmove(s->state + s->splice + rec, s->state + s->splice, s->len - s->splice);
		memcpy(s->state + s->splice, &rh, sizeof(rh));
		memcpy(s->state + s->splice + sizeof(rh), &ph, sizeof(ph));
		memcpy(s->state + s->splice + sizeof(rh) + sizeof(ph), pfns, ph.count * 8);
		s->splice += rec;
		s->len += rec;
	}
	return 0;
}

static void file_close(void *src)
{
	struct rst_file_source *s = src;

	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->ents);
	free(s->state);
	free(s);
}

static int file_fetch(void *src, uint64_t pfn, void *buf, char *err, size_t errlen)
{
	struct rst_file_source *s = src;
	uint64_t lo = 0, hi = s->nents, at = 0;
	ssize_t n;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (s->ents[mid].pfn < pfn) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	if (lo < s->nents && s->ents[lo].pfn == pfn)
		at = s->ents[lo].off;
	if (!at || at == OFF_XTAB) {
		memset(buf, 0, PG); /* not in the file: never written */
		return 0;
	}
	n = pread(s->fd, buf, PG, (off_t)at);
	if (n == PG)
		return 0;
	snprintf(err, errlen, "%s: pfn %#llx: reading its page at offset %llu: %s", s->path,
		 (unsigned long long)pfn, (unsigned long long)at,
		 n < 0 ? ferry_strerror(errno) : "the file ends before it (truncated?)");
	return n < 0 ? -errno : -EIO;
}

const struct rst_page_source_ops rst_file_source_ops = {
	.fetch = file_fetch,
	.close = file_close,
};

int rst_file_source_open(const char *path, struct rst_file_source **src, struct strm_io **state_io,
			 char *err, size_t errlen)
{
	struct rst_file_source *s = calloc(1, sizeof(*s));
	struct stat st;
	int rc;

	if (!s) {
		snprintf(err, errlen, "%s: no memory for a page source", path);
		return -ENOMEM;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0 || fstat(s->fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, ferry_strerror(errno));
		goto err;
	}
	s->size = (uint64_t)st.st_size;
	rc = scan(s, err, errlen);
	if (!rc) {
		finish_index(s);
		rc = put_holes(s, err, errlen);
	}
	if (!rc && strm_io_mem_reader(s->state, s->len, state_io)) {
		snprintf(err, errlen, "%s: no memory for its state stream", path);
		rc = -ENOMEM;
	}
	if (rc)
		goto err;
	*src = s;
	return 0;

err:
	file_close(s);
	return rc;
}
