// SPDX-License-Identifier: MIT
/*
 * One live snapshot (take.h): a migration session on the domain with the
 * repository as its page sink and a memory stream for the rest (the STATE
 * BLOB), pre-copy rounds while the guest runs, the END epoch paused. The
 * guest resumes as soon as the epoch is written: everything the snapshot
 * holds was read from guest memory by then, so making it durable (the
 * fsyncs of snap_commit) happens outside the pause.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
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
	int64_t parent_time; /* tells the parent from a later one of its name */
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
		      struct snap_repo *r, const uint8_t *uuid, const char *name)
{
	const struct snap_meta *m = snap_meta_find(r, uuid, name);

	snap_chain_reset(c);
	c->ld = ld;
	c->d = d;
	c->r = r;
	memcpy(c->uuid, uuid, 16);
	snprintf(c->parent, sizeof(c->parent), "%s", name);
	c->parent_time = m ? m->time : 0;
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

struct take {
	struct hyp *h;
	uint32_t domid;
	const struct snap_take_opts *o;
	struct snap_take_report *rep;
	struct snap_writer *w;
	struct strm_io *io;
	struct mig_session *s;
	struct ld *ld; /* taken from the session for the chain */
	bool paused;   /* the END epoch's pause is ours to release */
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
		.sink_ops = &snap_sink_ops,
		.sink = t->w,
		.logdirty = adopt,
	};
	struct mig_precopy_opts po = {
		.downtime_ms = o->downtime_ms ? o->downtime_ms : SNAP_TAKE_DOWNTIME_MS,
	};
	struct mig_epoch_stats es;
	struct mig_report mr;
	int rc;

	rc = mig_session_create(t->h, t->domid, t->io, &so, t->err, t->errlen, &t->s)
		     ?: mig_session_precopy(t->s, &po);
	if (rc)
		return rc;
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
		chain_arm(o->chain, t.ld, d, r, uuid, o->name);
		t.ld = NULL;
		d = NULL;
	}
out:
	if (t.paused && hyp_domain_op_unpause(h, domid) && !rc)
		rc = -EIO;
	ld_disable(t.ld);
	snap_abort(t.w);
	strm_io_close(t.io);
	if (d)
		hyp_domain_put(d);
	rep->seconds = ferry_now_s() - t0;
	return rc;
}
