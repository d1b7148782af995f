// SPDX-License-Identifier: MIT
/*
 * One live snapshot (take.h): a migration session on the domain with the
 * repository as its page sink and a memory stream for the rest (the STATE
 * BLOB), pre-copy rounds while the guest runs, the END epoch paused. The
 * guest resumes as soon as the epoch is written: everything the snapshot
 * holds was read from guest memory by then, so hashing the last pages and
 * making it durable (the fsyncs of snap_commit) happen outside the pause.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/hugemap.h"
#include "hyp/gmem.h"
#include "internal.h"
#include "logdirty/logdirty.h"
#include "migrate/session.h"
#include "snapshot/take.h"
#include "stream/io.h"

struct snap_chain {
	struct ld *ld;	      /* harvested at the parent's pause; NULL: next is full */
	struct hyp_domain *d; /* ld's domain, referenced while ld is held */
	struct snap_repo *r;
	uint8_t uuid[16];
	char parent[SNAP_NAME_MAX + 1];
	int64_t parent_time;  /* tells the parent from a later one of its name */
	double state_cost_ms; /* measured by the first session: not again */
};

int snap_chain_new(struct snap_chain **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void snap_chain_reset(struct snap_chain *c)
{
	if (!c)
		return;
	ld_disable(c->ld);
	if (c->d)
		hyp_domain_put(c->d);
	c->ld = NULL;
	c->d = NULL;
	c->parent[0] = 0;
	c->state_cost_ms = 0;
}

void snap_chain_free(struct snap_chain *c)
{
	snap_chain_reset(c);
	free(c);
}

/*
 * The parent to store only changes against, or NULL (a full snapshot): the
 * chain must hold a consumer of this very domain and its last snapshot
 * must still be there, complete. A chain that cannot serve is reset.
 */
static const char *chain_parent(struct snap_chain *c, struct snap_repo *r, const uint8_t *uuid,
				struct hyp_domain *d, uint64_t npages)
{
	const struct snap_meta *m;

	if (!c || !c->ld)
		return NULL;
	m = snap_meta_find(r, uuid, c->parent);
	if (c->d != d || c->r != r || memcmp(c->uuid, uuid, 16) || !m || !m->complete ||
	    m->time != c->parent_time || m->memory_pages != npages || ld_npages(c->ld) != npages) {
		snap_chain_reset(c);
		return NULL;
	}
	return c->parent;
}

/* After a snapshot: the chain goes on from it with consumer ld (owned) and
 * the reference on d (handed over). */
static void chain_arm(struct snap_chain *c, struct ld *ld, struct hyp_domain *d,
		      struct snap_repo *r, const uint8_t *uuid, const char *name,
		      double state_cost_ms)
{
	const struct snap_meta *m = snap_meta_find(r, uuid, name);

	snap_chain_reset(c);
	c->ld = ld;
	c->d = d;
	c->r = r;
	memcpy(c->uuid, uuid, 16);
	snprintf(c->parent, sizeof(c->parent), "%s", name);
	c->parent_time = m ? m->time : 0;
	c->state_cost_ms = state_cost_ms;
}

/* xl save -p's ending: the toolstack's pause replaces the operation's. */
static int hand_pause_over(struct hyp *h, uint32_t domid)
{
	struct hyp_dom_info di;
	int rc = hyp_domain_info(h, domid, &di);

	if (!rc && !di.pause_count)
		rc = hyp_domain_pause(h, domid);
	hyp_domain_op_unpause(h, domid);
	return rc;
}

/*
 * The page sink: snap_sink_ops' work, except that the END epoch's pages
 * are only copied aside while the guest is paused and hashed, looked up
 * and written once it runs again (a copy costs well under a microsecond
 * a page, SHA-256 and the store several). The copies go into 1 MiB chunks,
 * the first STAGE_PREFAULT of them touched before pre-copy so the pause
 * takes no page faults for them; past STAGE_CHUNKS (a switch forced before
 * converging) the rest go straight in.
 */
#define STAGE_CHUNK_PAGES MIG_SINK_BATCH_MAX /* 1 MiB */
#define STAGE_PREFAULT	  8		     /* chunks: 2048 pages */
#define STAGE_CHUNKS	  64		     /* 64 MiB */

struct stage {
	struct snap_writer *w;
	bool on;    /* the END epoch runs */
	uint32_t n; /* pages staged */
	uint64_t pfns[STAGE_CHUNKS * STAGE_CHUNK_PAGES];
	uint8_t *pre; /* the first STAGE_PREFAULT chunks, resident */
	uint8_t *chunk[STAGE_CHUNKS];
};

#define STAGE_PRE_BYTES ((size_t)STAGE_PREFAULT * STAGE_CHUNK_PAGES * SNAP_PAGE_SIZE)

static uint8_t *stage_page(struct stage *st, uint32_t i)
{
	return st->chunk[i / STAGE_CHUNK_PAGES] + (size_t)(i % STAGE_CHUNK_PAGES) * SNAP_PAGE_SIZE;
}

/* Populated in one call, not by a memset after malloc: gcc turns that pair
 * into calloc, which skips the memset on fresh mmap memory, and the pause
 * then took a first-touch fault per page (10 us here: 10-19 ms for 1000
 * pages, the first snapshot of a domain only, as later ones got the heap's
 * warm memory back). */
static int stage_prefault(struct stage *st)
{
	st->pre = ferry_hugemap(STAGE_PRE_BYTES, true);
	if (!st->pre)
		return -ENOMEM;
	for (unsigned c = 0; c < STAGE_PREFAULT; c++)
		st->chunk[c] = st->pre + (size_t)c * STAGE_CHUNK_PAGES * SNAP_PAGE_SIZE;
	return 0;
}

static int stage_begin(void *sink, unsigned epoch)
{
	return 0;
}

static int stage_put(void *sink, const uint64_t *pfns, const void *const *pages, uint32_t count)
{
	struct stage *st = sink;
	uint32_t i;

	if (!st->on)
		return snap_put(st->w, pfns, pages, count);
	for (i = 0; i < count && st->n < STAGE_CHUNKS * STAGE_CHUNK_PAGES; i++) {
		uint8_t **c = &st->chunk[st->n / STAGE_CHUNK_PAGES];

		if (!*c && !(*c = malloc((size_t)STAGE_CHUNK_PAGES * SNAP_PAGE_SIZE)))
			break;
		st->pfns[st->n] = pfns[i];
		memcpy(stage_page(st, st->n++), pages[i], SNAP_PAGE_SIZE);
	}
	return i < count ? snap_put(st->w, pfns + i, pages + i, count - i) : 0;
}

static int stage_holes(void *sink, const uint64_t *pfns, uint32_t count)
{
	struct stage *st = sink;

	return snap_holes(st->w, pfns, count);
}

/* Writing waits for the pause to end too. */
static int stage_flush(void *sink)
{
	struct stage *st = sink;

	return st->on ? 0 : snap_flush(st->w);
}

static int stage_end(void *sink, unsigned epoch)
{
	return stage_flush(sink);
}

static const struct mig_page_sink_ops stage_sink_ops = {
	.begin = stage_begin,
	.put = stage_put,
	.holes = stage_holes,
	.flush = stage_flush,
	.end = stage_end,
};

/* The staged pages into the snapshot, after the pause. Read last, they
 * override what earlier rounds put for their pfns. */
static int stage_drain(struct stage *st)
{
	const void *pages[STAGE_CHUNK_PAGES];
	int rc = 0;

	st->on = false;
	for (uint32_t i = 0; i < st->n && !rc; i += STAGE_CHUNK_PAGES) {
		uint32_t k = st->n - i < STAGE_CHUNK_PAGES ? st->n - i : STAGE_CHUNK_PAGES;

		for (uint32_t j = 0; j < k; j++)
			pages[j] = stage_page(st, i + j);
		rc = snap_put(st->w, st->pfns + i, pages, k);
	}
	st->n = 0;
	return rc;
}

static void stage_free(struct stage *st)
{
	for (unsigned c = st->pre ? STAGE_PREFAULT : 0; c < STAGE_CHUNKS; c++)
		free(st->chunk[c]);
	ferry_hugeunmap(st->pre, STAGE_PRE_BYTES);
	free(st);
}

struct take {
	struct hyp *h;
	uint32_t domid;
	const struct snap_take_opts *o;
	struct snap_take_report *rep;
	struct snap_writer *w;
	struct stage *stage; /* the page sink */
	struct strm_io *io;
	struct mig_session *s;
	struct ld *ld;	      /* taken from the session for the chain */
	bool paused;	      /* the END epoch's pause is ours to release */
	double state_cost_ms; /* known from the chain (0: measure), then measured */
	double t_pause;
	char *err;
	size_t errlen;
};

/* The session's part: pre-copy, the END epoch; the guest resumes after it
 * unless leave_paused. */
static int take_session(struct take *t, struct ld *adopt)
{
	const struct snap_take_opts *o = t->o;
	struct mig_session_opts so = {
		.codec = STRM_CODEC_NONE,
		.config_json = o->config_json,
		.xenstore = o->xenstore,
		.cancel = o->cancel,
		.progress = o->progress,
		.opaque = o->opaque,
		.sink_ops = &stage_sink_ops,
		.logdirty = adopt,
	};
	struct mig_precopy_opts po = {
		.downtime_ms = o->downtime_ms ? o->downtime_ms : SNAP_TAKE_DOWNTIME_MS,
		.state_cost_ms = t->state_cost_ms,
	};
	struct mig_epoch_stats es;
	struct mig_report mr;
	int rc;

	t->stage = calloc(1, sizeof(*t->stage));
	if (!t->stage || stage_prefault(t->stage)) {
		ld_disable(adopt);
		return snap_fail(-ENOMEM, t->err, t->errlen, "no memory for the last pages");
	}
	t->stage->w = t->w;
	so.sink = t->stage;
	rc = mig_session_create(t->h, t->domid, t->io, &so, t->err, t->errlen, &t->s)
		     ?: mig_session_precopy(t->s, &po);
	if (rc)
		return rc;
	t->stage->on = true;
	t->t_pause = ferry_now_s();
	rc = mig_session_epoch(t->s, MIG_EPOCH_END, &es);
	if (rc)
		return rc; /* the epoch released its pause */
	t->paused = true;
	if (o->chain)
		t->ld = mig_session_take_logdirty(t->s);
	if (!o->leave_paused) {
		rc = hyp_domain_op_unpause(t->h, t->domid);
		t->rep->pause_s = ferry_now_s() - t->t_pause;
		if (rc)
			return snap_fail(rc, t->err, t->errlen,
					 "d%u: resuming after the snapshot: %s", t->domid,
					 ferry_strerror(rc));
		t->paused = false;
	}
	mig_session_report(t->s, &mr);
	t->rep->rounds = mr.rounds;
	t->state_cost_ms = mr.state_cost_ms;
	t->rep->final_pages = es.pages;
	return 0;
}

/* The STATE BLOB in, then durable. */
static int take_commit(struct take *t)
{
	struct snap_write_stats st;
	const void *blob;
	size_t len = 0;
	int rc;

	rc = stage_drain(t->stage);
	if (rc)
		return rc;
	blob = strm_io_mem_data(t->io, &len);
	rc = snap_set_state(t->w, blob, len);
	if (rc)
		return rc;
	rc = snap_commit(t->w, &st);
	t->w = NULL; /* freed either way */
	if (rc)
		return rc;
	t->rep->bytes = st.bytes; /* the state included */
	t->rep->pages = st.pages;
	t->rep->stored = st.stored;
	t->rep->deduped = st.deduped;
	t->rep->zero = st.zero;
	t->rep->holes = st.holes;
	t->rep->state_bytes = len;
	return 0;
}

int snap_take(struct hyp *h, uint32_t domid, struct snap_repo *r, const uint8_t uuid[16],
	      const struct snap_take_opts *o, struct snap_take_report *rep, char *err,
	      size_t errlen)
{
	struct take t = {.h = h, .domid = domid, .o = o, .rep = rep, .err = err, .errlen = errlen};
	double t0 = ferry_now_s();
	struct hyp_domain *d;
	struct hyp_gmem gm;
	const char *parent;
	struct ld *adopt = NULL;
	int rc;

	memset(rep, 0, sizeof(*rep));
	err[0] = 0;
	if (!o->name)
		return snap_fail(-EINVAL, err, errlen, "a snapshot needs a name");
	rc = hyp_domain_get(h, domid, &d);
	if (rc)
		return snap_fail(rc, err, errlen, "no domain %u", domid);
	hyp_domain_gmem(d, &gm);
	parent = chain_parent(o->chain, r, uuid, d, gm.npages);
	/* The name is checked before the chain's consumer is spent. */
	rc = snap_begin(r, uuid, o->name, parent, gm.npages, &t.w, err, errlen);
	if (rc)
		goto out;
	if (parent) {
		snprintf(rep->parent, sizeof(rep->parent), "%s", parent);
		rep->incremental = true;
		adopt = o->chain->ld;
		o->chain->ld = NULL; /* the session's now */
		t.state_cost_ms = o->chain->state_cost_ms;
	}
	/* From here on the chain's consumer is spent or gone: a failure
	 * leaves the chain empty. */
	snap_chain_reset(o->chain);
	rc = strm_io_mem_writer(&t.io);
	if (rc) {
		ld_disable(adopt);
		snap_fail(rc, err, errlen, "no memory for the snapshot's state");
		goto out;
	}
	rc = take_session(&t, adopt);
	mig_session_close(t.s);
	rc = rc ?: take_commit(&t);
	if (rc)
		goto out;
	if (t.paused) {
		/* leave_paused: complete and durable, the user's pause now */
		rc = hand_pause_over(h, domid);
		rep->pause_s = ferry_now_s() - t.t_pause;
		t.paused = false;
		if (rc) {
			snap_fail(rc, err, errlen,
				  "d%u: the snapshot is complete but the domain "
				  "could not stay paused: %s",
				  domid, ferry_strerror(rc));
			goto out;
		}
	}
	if (o->chain && t.ld) {
		chain_arm(o->chain, t.ld, d, r, uuid, o->name, t.state_cost_ms);
		t.ld = NULL;
		d = NULL;
	}
out:
	if (t.paused && hyp_domain_op_unpause(h, domid) && !rc)
		rc = -EIO;
	ld_disable(t.ld);
	snap_abort(t.w);
	if (t.stage)
		stage_free(t.stage);
	strm_io_close(t.io);
	if (d)
		hyp_domain_put(d);
	rep->seconds = ferry_now_s() - t0;
	return rc;
}
