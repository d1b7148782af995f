// SPDX-License-Identifier: MIT
/*
 * A snapshot as a plain Xen v2 stream (formats/SPEC.md 10.8): the state's
 * bytes up to and after STATIC_DATA_END, with PAGE_DATA records made from
 * the view in between, one record at a time as the reader asks.
 */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "formats/libxc-stream.h"
#include "formats/xl-header.h"
#include "internal.h"
#include "snapshot/stream.h"
#include "stream/codec.h"

#define BATCH	   PAGE_DATA_BATCH_MAX /* pfns per record, as Xen's writer */
#define COPY_CHUNK (1u << 20)

enum phase { PH_HEAD, PH_DATA, PH_HOLES, PH_TAIL, PH_DONE };

struct snap_stream {
	struct snap_view *v;
	bool borrowed; /* v is the caller's (snap_stream_of_view) */
	struct strm_io *io; /* for the read callback's messages */
	const uint8_t *state;
	size_t state_len, splice; /* the state's bytes up to STATIC_DATA_END */
	unsigned flags;
	enum phase phase;
	uint64_t pfn; /* next pfn to look at in PH_DATA and PH_HOLES */
	struct strm_enc *enc;
	uint64_t pfns[BATCH];
	const void *ptrs[BATCH];
	uint8_t *pages; /* BATCH pages; PH_DATA only */
	/* The bytes of the record being handed out. */
	struct iovec iov[STRM_ENC_IOV_MAX + BATCH];
	int niov, cur;
	size_t cur_off;
	char msg[512];
};

/* Finds where the pages go: right after STATIC_DATA_END. */
struct scan {
	uint64_t splice;
	const char *bad;
};

static int scan_rec(void *opaque, const struct strm_rec *rec)
{
	struct scan *sc = opaque;

	if (rec->layer == STRM_XL && (rec->flags & XL_MANDATORY_FLAG_FERRY_FRAMES))
		sc->bad = "it is framed, not a plain stream";
	else if (rec->layer == STRM_LIBXC && rec->type == REC_TYPE_PAGE_DATA)
		sc->bad = "it holds PAGE_DATA";
	else if (rec->layer == STRM_LIBXC && rec->type == REC_TYPE_STATIC_DATA_END)
		sc->splice = rec->offset + 8; /* a record header, an empty body */
	return sc->bad ? -EINVAL : 0;
}

static int state_check(struct snap_stream *s, const char *label, char *err, size_t errlen)
{
	struct strm_dec_limits lim = {.max_pfn = snap_view_pages(s->v)};
	struct scan sc = {0};
	struct strm_dec *dec;
	int rc;

	rc = strm_dec_new(&lim, &dec);
	if (rc)
		return snap_fail(rc, err, errlen, "snapshot %s: out of memory", label);
	rc = strm_dec_feed(dec, s->state, s->state_len, scan_rec, &sc);
	if (!rc)
		rc = strm_dec_finish(dec);
	if (rc || sc.bad || !sc.splice || sc.splice > s->state_len)
		rc = snap_fail(-EINVAL, err, errlen, "snapshot %s: its state is not a stream: %s",
			       label,
			       sc.bad ? sc.bad
			       : rc   ? strm_dec_error(dec)
				      : "it has no STATIC_DATA_END");
	strm_dec_free(dec);
	s->splice = (size_t)sc.splice;
	return rc;
}

/* The next PAGE_DATA record's bytes into s->iov: up to BATCH pfns of kind
 * from s->pfn on, their pages read when they have data. 0 with niov 0 when
 * there are none left. */
static int next_batch(struct snap_stream *s, enum snap_page_kind kind)
{
	uint64_t npages = snap_view_pages(s->v);
	uint32_t n = 0;
	enum snap_page_kind got;
	int rc;

	s->niov = 0;
	for (; s->pfn < npages && n < BATCH; s->pfn++) {
		if (snap_view_kind(s->v, s->pfn) != kind)
			continue;
		if (kind == SNAP_PAGE_HOLE) {
			s->pfns[n++] = s->pfn | (uint64_t)PAGE_TYPE_XTAB << PAGE_DATA_TYPE_SHIFT;
			continue;
		}
		s->ptrs[n] = s->pages + (size_t)n * SNAP_PAGE_SIZE;
		rc = snap_view_read(s->v, s->pfn, s->pages + (size_t)n * SNAP_PAGE_SIZE, &got,
				    s->msg, sizeof(s->msg));
		if (rc)
			return strm_io_pull_fail(s->io, rc, "%s", s->msg);
		s->pfns[n++] = s->pfn; /* PAGE_TYPE_NOTAB */
	}
	if (!n)
		return 0;
	rc = strm_enc_page_data(s->enc, s->pfns, n, kind == SNAP_PAGE_DATA ? s->ptrs : NULL,
				s->iov);
	if (rc < 0)
		return strm_io_pull_fail(s->io, rc, "encoding PAGE_DATA: %s", ferry_strerror(-rc));
	s->niov = rc;
	return 0;
}

static void iov_one(struct snap_stream *s, const void *base, size_t len)
{
	s->iov[0].iov_base = (void *)base;
	s->iov[0].iov_len = len;
	s->niov = len ? 1 : 0;
}

/* Loads the next piece of the stream into s->iov, moving through the phases. */
static int next_piece(struct snap_stream *s)
{
	int rc;

	s->cur = 0;
	s->cur_off = 0;
	s->niov = 0;
	while (!s->niov && s->phase != PH_DONE) {
		switch (s->phase) {
		case PH_HEAD:
			iov_one(s, s->state, s->splice);
			s->phase = s->flags & SNAP_STREAM_NO_DATA ? PH_HOLES : PH_DATA;
			break;
		case PH_DATA:
		case PH_HOLES:
			rc = next_batch(s, s->phase == PH_DATA ? SNAP_PAGE_DATA : SNAP_PAGE_HOLE);
			if (rc)
				return rc;
			if (s->niov)
				break;
			s->pfn = 0;
			s->phase = s->phase == PH_DATA ? PH_HOLES : PH_TAIL;
			break;
		case PH_TAIL:
			iov_one(s, s->state + s->splice, s->state_len - s->splice);
			s->phase = PH_DONE;
			break;
		case PH_DONE: break;
		}
	}
	return 0;
}

static ssize_t stream_read(void *opaque, void *buf, size_t len)
{
	struct snap_stream *s = opaque;
	size_t done = 0;

	while (done < len) {
		const struct iovec *iov;
		size_t n;

		if (s->cur == s->niov) {
			int rc = next_piece(s);

			/* the bytes before a damaged page go out first: the
			 * reader's offset then points at its record */
			if (rc)
				return done ? (ssize_t)done : rc;
			if (!s->niov)
				break; /* the end */
		}
		iov = &s->iov[s->cur];
		n = iov->iov_len - s->cur_off;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)buf + done, (const uint8_t *)iov->iov_base + s->cur_off, n);
		done += n;
		s->cur_off += n;
		if (s->cur_off == iov->iov_len) {
			s->cur++;
			s->cur_off = 0;
		}
	}
	return (ssize_t)done;
}

static void stream_free(void *opaque)
{
	struct snap_stream *s = opaque;

	if (!s->borrowed)
		snap_view_close(s->v);
	strm_enc_free(s->enc);
	free(s->pages);
	free(s);
}

/* The stream of view v (s->v, owned unless s->borrowed). */
static int stream_of(struct snap_stream *s, const char *label, unsigned flags,
		     struct strm_io **out, char *err, size_t errlen)
{
	const void *state;
	int rc;

	s->flags = flags;
	rc = snap_view_state(s->v, &state, &s->state_len);
	if (rc) {
		snap_fail(rc, err, errlen, "snapshot %s: no state was stored with it", label);
		goto fail;
	}
	s->state = state;
	rc = state_check(s, label, err, errlen);
	if (rc)
		goto fail;
	if (strm_enc_new(&s->enc) ||
	    (!(flags & SNAP_STREAM_NO_DATA) && !(s->pages = malloc(BATCH * SNAP_PAGE_SIZE)))) {
		rc = snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", label);
		goto fail;
	}
	rc = strm_io_pull(stream_read, stream_free, s, &s->io);
	if (rc) {
		snap_fail(rc, err, errlen, "snapshot %s: out of memory", label);
		goto fail;
	}
	*out = s->io;
	return 0;
fail:
	stream_free(s);
	return rc;
}

int snap_stream_open(struct snap_repo *r, const uint8_t uuid[16], const char *name, unsigned flags,
		     struct strm_io **out, char *err, size_t errlen)
{
	struct snap_stream *s = calloc(1, sizeof(*s));
	char label[SNAP_NAME_MAX + 40];
	int rc;

	snap_uuid_str(uuid, label);
	snprintf(label + 36, sizeof(label) - 36, "/%s", name);
	if (!s)
		return snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", label);
	rc = snap_view_open(r, uuid, name, &s->v, err, errlen);
	if (rc) {
		free(s);
		return rc;
	}
	return stream_of(s, label, flags, out, err, errlen);
}

int snap_stream_of_view(struct snap_view *v, const char *label, unsigned flags,
			struct strm_io **out, char *err, size_t errlen)
{
	struct snap_stream *s = calloc(1, sizeof(*s));

	if (!s)
		return snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", label);
	s->v = v;
	s->borrowed = true;
	return stream_of(s, label, flags, out, err, errlen);
}

int snap_export(struct snap_repo *r, const uint8_t uuid[16], const char *name, int fd,
		uint64_t *bytes, char *err, size_t errlen)
{
	uint8_t *buf = malloc(COPY_CHUNK);
	struct strm_io *io = NULL;
	uint64_t total = 0;
	struct stat st;
	int rc;

	if (!buf)
		return snap_fail(-ENOMEM, err, errlen, "snapshot %s: out of memory", name);
	rc = snap_stream_open(r, uuid, name, 0, &io, err, errlen);
	while (!rc) {
		ssize_t n = strm_io_read(io, buf, COPY_CHUNK);

		if (n <= 0) {
			if (n < 0)
				rc = snap_fail((int)n, err, errlen, "%s", strm_io_error(io));
			break;
		}
		rc = snap_write_all(fd, buf, (size_t)n);
		if (rc)
			snap_fail(rc, err, errlen,
				  "snapshot %s: writing its stream at byte %" PRIu64 ": %s", name,
				  total, ferry_strerror(-rc));
		total += (uint64_t)n;
	}
	if (!rc && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fsync(fd) < 0)
		rc = snap_fail(-errno, err, errlen, "snapshot %s: syncing its stream: %s", name,
			       ferry_strerror(errno));
	strm_io_close(io);
	free(buf);
	if (bytes)
		*bytes = rc ? 0 : total;
	return rc;
}
