// SPDX-License-Identifier: MIT
/*
 * The migration session (session.h): the stream from the xl header to its
 * last record, log-dirty and the bitmaps across epochs, pages through the
 * page sink. Pre-copy rounds live in precopy.c; an epoch is the pause,
 * what changed, the state records and CHECKPOINT or END (formats/SPEC.md
 * 9), in the order of Xen's xg_sr_save.c save() loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bitmap.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"
#include "logdirty/logdirty.h"

/* Longest sleep between two cancel checks while pacing. */
#define PACE_SLICE_S 0.05

uint64_t mig_session_wire(const struct mig_session *s)
{
	uint64_t side = s->sink_ops->wire ? s->sink_ops->wire(s->sink) : 0;

	return strm_io_offset(s->lower) - s->wire0 + side;
}

static bool cancelled(const struct mig_session *s)
{
	return !s->stop_copy && s->o.cancel && *s->o.cancel;
}

int mig_session_check_cancel(struct mig_session *s)
{
	if (cancelled(s))
		return mig_fail(&s->s, -ECANCELED, "cancelled");
	return 0;
}

static void sleep_s(double t)
{
	struct timespec ts = { .tv_sec = (time_t)t,
			       .tv_nsec = (long)((t - (double)(time_t)t) * 1e9) };

	nanosleep(&ts, NULL);
}

/* Token bucket: the bucket holds up to 100 ms of the rate (at least 1 MiB);
 * bytes written since the last call take tokens; a deficit is slept off. */
static int pace(struct mig_session *s)
{
	double rate = (double)s->o.bandwidth, burst, now;
	uint64_t w;

	if (!s->o.bandwidth)
		return 0;
	burst = rate / 10 > (double)(1 << 20) ? rate / 10 : (double)(1 << 20);
	w = mig_session_wire(s);
	now = ferry_now_s();
	s->tb_tokens += (now - s->tb_last) * rate;
	if (s->tb_tokens > burst)
		s->tb_tokens = burst;
	s->tb_tokens -= (double)(w - s->tb_wire);
	s->tb_wire = w;
	s->tb_last = now;
	while (s->tb_tokens < 0) {
		double need = -s->tb_tokens / rate;

		if (mig_session_check_cancel(s))
			return -ECANCELED;
		sleep_s(need < PACE_SLICE_S ? need : PACE_SLICE_S);
		now = ferry_now_s();
		s->tb_tokens += (now - s->tb_last) * rate;
		s->tb_last = now;
	}
	return 0;
}

static bool page_is_zero(const void *page)
{
	const uint64_t *w = page;

	for (unsigned i = 0; i < PAGE_SIZE / 8; i += 8) {
		uint64_t acc = w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] |
			       w[i + 6] | w[i + 7];

		if (acc)
			return false;
	}
	return true;
}

/* A sink's failure: it logged; the caller's message says where. */
static int sink_err(struct mig_session *s, int err, const char *op)
{
	if (err && !s->s.err[0])
		snprintf(s->s.err, s->s.errlen, "page sink %s: %s", op, ferry_strerror(err));
	return err;
}

static int put_batch(struct mig_session *s)
{
	struct mig_batch *b = s->b;
	int err;

	if (!b->count)
		return 0;
	err = s->sink_ops->put(s->sink, b->pfns, b->pages, b->count);
	b->count = 0;
	return sink_err(s, err, "put");
}

/*
 * Sends every page set in s->dirty and clears it (zero pages never sent
 * are elided when the options say so). Cancel and pacing are checked
 * after each put.
 */
int mig_session_send_dirty(struct mig_session *s, uint64_t *pages)
{
	uint64_t nwords = BITMAP_WORDS(s->gm.npages);
	struct mig_batch *b = s->b;
	int err;

	*pages = 0;
	for (uint64_t wi = 0; wi < nwords; wi++) {
		while (s->dirty[wi]) {
			unsigned bit = (unsigned)__builtin_ctzll(s->dirty[wi]);
			uint64_t pfn = wi * 64 + bit;
			const uint8_t *page = s->gm.hva + (pfn << PAGE_SHIFT);

			s->dirty[wi] &= s->dirty[wi] - 1;
			if (pfn >= s->gm.npages)
				break;
			if (s->o.elide_zero && !bitmap_test(s->sent, pfn) && page_is_zero(page)) {
				s->rep.zero_pages++;
				continue;
			}
			bitmap_set(s->sent, pfn);
			(*pages)++;
			b->pfns[b->count] = pfn;
			b->pages[b->count] = page;
			if (++b->count < MIG_BATCH_PAGES)
				continue;
			err = put_batch(s) ?: mig_session_check_cancel(s) ?: pace(s);
			if (err)
				return err;
		}
	}
	err = put_batch(s);
	return err ?: pace(s);
}

int mig_session_peek(struct mig_session *s, uint64_t *count)
{
	int err = ld_peek_clean(s->ld, s->dirty, s->gm.npages, count);

	if (err)
		return mig_fail_logged(&s->s, err, "reading the dirty log: %s",
				       ferry_strerror(err));
	return 0;
}

void mig_session_progress(struct mig_session *s, const char *phase, unsigned round,
			  const struct mig_policy *p, uint64_t left)
{
	struct mig_progress pr = {
		.round = round,
		.phase = phase,
		.pages_left = left,
		.dirty_rate = p->dirty_rate,
		.bandwidth = p->bandwidth,
		.predicted_downtime_ms = p->predicted_s * 1e3,
		.throttle_pct = p->throttle_pct,
		.bytes_sent = mig_session_wire(s),
	};

	if (s->o.progress)
		s->o.progress(s->o.opaque, &pr);
}

/* Log-dirty on; what is populated now is what the next send must carry. */
int mig_session_start_logdirty(struct mig_session *s)
{
	int err = ld_enable(s->d, &s->ld);

	if (err)
		return mig_fail(&s->s, err, "turning log-dirty on: %s", ferry_strerror(err));
	err = hyp_gmem_populated(s->d, s->dirty, NULL);
	if (err)
		return mig_fail(&s->s, err, "finding the populated pages: %s",
				ferry_strerror(err));
	s->have_dirty = true;
	return 0;
}

static int setup_stream(struct mig_session *s)
{
	const struct mig_session_opts *o = &s->o;
	int err = mig_open_stream(&s->s, o->config_json, o->codec, o->codec_auto,
				  (double)o->bandwidth, &s->framed);

	if (err || !s->framed)
		return err;
	s->rep.codec = strm_codec_name(o->codec_auto ? STRM_CODEC_LZ4 : o->codec);
	s->rep.codec_auto = o->codec_auto;
	return 0;
}

static void count_frames(struct mig_session *s, unsigned round, const struct strm_frame_stats *fs)
{
	if (round > MIG_MAX_ROUNDS_LIMIT)
		return;
	for (unsigned c = 0; c <= STRM_CODEC_ZSTD; c++)
		s->rep.frames_per_round[round][c] =
			(uint32_t)(fs->frames_by_codec[c] - s->fs_last.frames_by_codec[c]);
	s->fs_last = *fs;
}

/* The main stream's frame figures, and the page channels'. */
static int frame_stats(struct mig_session *s, struct strm_frame_stats *fs)
{
	int err = strm_io_frame_stats(s->framed, fs);

	if (!err && s->chans)
		mig_chans_frame_stats(s->chans, fs);
	return err;
}

void mig_session_count_frames(struct mig_session *s, unsigned round)
{
	struct strm_frame_stats fs;

	if (s->framed && !frame_stats(s, &fs))
		count_frames(s, round, &fs);
}

static int check_domain(struct mig_session *s)
{
	struct hyp_dom_info info;
	int err = hyp_domain_info(s->s.h, s->s.domid, &info);

	if (err)
		return mig_fail(&s->s, err, "no domain %u", s->s.domid);
	if (s->o.caller_paused && info.state != HYP_DOM_PAUSED)
		return mig_fail(&s->s, -EBUSY, "domain %u is not paused", s->s.domid);
	if (info.state != HYP_DOM_RUNNING && info.state != HYP_DOM_BLOCKED &&
	    info.state != HYP_DOM_PAUSED)
		return mig_fail(&s->s, -EINVAL, "domain %u is %s", s->s.domid,
				hyp_state_name(info.state));
	return 0;
}

int mig_session_create(struct hyp *h, uint32_t domid, struct strm_io *io,
		       const struct mig_session_opts *o, char *errbuf, size_t errlen,
		       struct mig_session **out)
{
	struct mig_session *s = calloc(1, sizeof(*s));
	int err;

	*out = NULL;
	errbuf[0] = 0;
	if (!s) {
		ld_disable(o->logdirty);
		snprintf(errbuf, errlen, "no memory for the session");
		return -ENOMEM;
	}
	s->s = (struct mig_out){ .h = h, .domid = domid, .io = io, .err = errbuf,
				 .errlen = errlen, .xs = o->xenstore };
	s->o = *o;
	/* Adopted: close disables it from here on, whatever fails. */
	s->ld = o->logdirty;
	s->o.logdirty = NULL;
	s->lower = io;
	s->sink_ops = o->sink_ops ? o->sink_ops : &mig_stream_sink_ops;
	s->sink = o->sink_ops ? o->sink : &s->s;
	s->t0 = ferry_now_s();
	s->wire0 = strm_io_offset(io);
	s->tb_last = s->t0;
	s->throttle_pct = 100;
	s->pol.throttle_pct = 100;
	s->rep.throttle_pct = 100;
	s->rep.decision = "";
	s->rep.codec = "none";
	err = check_domain(s);
	if (err)
		goto fail;
	err = hyp_domain_get(h, domid, &s->d);
	if (err) {
		mig_fail(&s->s, err, "domain %u went away", domid);
		goto fail;
	}
	hyp_domain_gmem(s->d, &s->gm);
	if (s->ld && ld_npages(s->ld) != s->gm.npages) {
		err = mig_fail(&s->s, -EINVAL, "the log-dirty handle covers %llu pages, d%u has %llu",
			       (unsigned long long)ld_npages(s->ld), domid,
			       (unsigned long long)s->gm.npages);
		goto fail;
	}
	s->dirty = calloc(BITMAP_WORDS(s->gm.npages), 8);
	s->sent = calloc(BITMAP_WORDS(s->gm.npages), 8);
	s->holes = calloc(BITMAP_WORDS(s->gm.npages), 8);
	s->scratch = calloc(BITMAP_WORDS(s->gm.npages), 8);
	s->b = calloc(1, sizeof(*s->b));
	if (!s->dirty || !s->sent || !s->holes || !s->scratch || !s->b) {
		err = mig_fail(&s->s, -ENOMEM, "no memory for the page bitmaps");
		goto fail;
	}
	err = setup_stream(s) ?: mig_put_headers(&s->s);
	if (err)
		goto fail;
	if (o->nchannels) {
		if (o->sink_ops || o->checkpointed) {
			err = mig_fail(&s->s, -EINVAL, "page channels carry a live migration's "
				       "pages only");
			goto fail;
		}
		err = mig_chans_new(&s->s, o, &s->chans);
		if (err)
			goto fail;
		s->sink_ops = &mig_chans_sink_ops;
		s->sink = s->chans;
	}
	*out = s;
	return 0;
fail:
	mig_session_close(s);
	return err;
}

/*
 * The holes to list in this epoch, into s->scratch: all of them in the
 * first, then those that appeared since. A gfn populated again since is
 * sent with the dirty pages, zero or not (the receiver has it as a hole).
 * Holes are cleared out of s->dirty.
 */
static void new_holes(struct mig_session *s)
{
	uint64_t gen = hyp_gmem_holes_gen(s->d);

	/* The same holes as last time: none new, none filled (the scan of
	 * the type table is a fifth of a paused epoch of an idle 1 GiB guest). */
	if (s->holes_known && gen == s->holes_gen) {
		memset(s->scratch, 0, BITMAP_BYTES(s->gm.npages));
		return;
	}
	s->holes_gen = gen;
	s->holes_known = true;
	hyp_gmem_holes(s->d, s->scratch, NULL);
	for (uint64_t i = 0; i < BITMAP_WORDS(s->gm.npages); i++) {
		uint64_t now = s->scratch[i], before = s->holes[i];
		uint64_t filled = before & ~now;

		s->dirty[i] = (s->dirty[i] | filled) & ~now;
		s->sent[i] |= filled;
		s->holes[i] = now;
		s->scratch[i] = now & ~before;
	}
}

/* The holes in s->scratch to the sink, MIG_SINK_HOLES_MAX a call. */
static int put_holes(struct mig_session *s, uint64_t *count)
{
	uint64_t *pfns = malloc(MIG_SINK_HOLES_MAX * sizeof(*pfns));
	uint32_t n = 0;
	int err = 0;

	*count = 0;
	if (!pfns)
		return mig_fail(&s->s, -ENOMEM, "no memory for the hole list");
	for (uint64_t pfn = 0; pfn < s->gm.npages && !err; pfn++) {
		if (!(pfn % 64) && !s->scratch[pfn / 64]) {
			pfn += 63;
			continue;
		}
		if (!bitmap_test(s->scratch, pfn))
			continue;
		pfns[n++] = pfn;
		(*count)++;
		if (n == MIG_SINK_HOLES_MAX) {
			err = sink_err(s, s->sink_ops->holes(s->sink, pfns, n), "holes");
			n = 0;
		}
	}
	if (!err && n)
		err = sink_err(s, s->sink_ops->holes(s->sink, pfns, n), "holes");
	free(pfns);
	return err;
}

/* After END: the frame layer's end frame (lower stays open), or a flush. */
static int finish_stream(struct mig_session *s)
{
	struct strm_frame_stats fs;
	int err;

	if (!s->framed)
		return mig_stream_sink_ops.flush(&s->s);
	if (!frame_stats(s, &fs)) {
		s->rep.frames = fs.frames;
		s->rep.frames_raw = fs.frames_stored_raw;
		count_frames(s, s->rep.rounds, &fs);
	}
	s->framed_bytes = strm_io_offset(s->framed);
	err = strm_io_close(s->framed);
	s->framed = NULL;
	s->s.io = s->lower;
	if (err)
		return mig_fail(&s->s, err, "finishing the stream: %s%s%s", ferry_strerror(err),
				*strm_io_error(s->lower) ? ": " : "", strm_io_error(s->lower));
	return 0;
}

/*
 * A checkpointed stream's last epoch closes as a checkpoint too, and END
 * follows with nothing between: Xen's restore processes buffered records
 * only at a CHECKPOINT (it would drop them at END) and restore/'s decoder
 * refuses them, so state written there would never arrive (SPEC.md 9).
 */
static int epoch_close(struct mig_session *s, bool end)
{
	if (!end || s->o.checkpointed) {
		int err = mig_put_epoch_close(&s->s, true);

		if (err || !end)
			return err;
	}
	return mig_put_epoch_close(&s->s, false);
}

/* The paused part of an epoch: pages, holes, state records, the close. */
static int epoch_paused(struct mig_session *s, bool end, struct mig_epoch_stats *st)
{
	uint64_t count = 0;
	int err;

	if (s->ld)
		err = mig_session_peek(s, &count);
	else if (!end)
		err = mig_session_start_logdirty(s);
	else if (!s->have_dirty)
		err = hyp_gmem_populated(s->d, s->dirty, NULL);
	else
		err = 0;
	if (err)
		return s->s.err[0] ? err :
				     mig_fail(&s->s, err, "finding the populated pages: %s",
					      ferry_strerror(err));
	s->have_dirty = true;
	/* Paused, the holes are final: what the balloon gave back is listed
	 * as XTAB, not sent. */
	new_holes(s);
	mig_session_progress(s, end ? "stop-and-copy" : "checkpoint", s->rep.rounds, &s->pol,
			     bitmap_weight(s->dirty, s->gm.npages));
	err = sink_err(s, s->sink_ops->begin(s->sink, s->epochs), "begin") ?:
	      mig_session_send_dirty(s, &st->pages);
	s->rep.pages_per_round[s->rep.rounds] = st->pages;
	s->rep.final_pages = st->pages;
	err = err ?: put_holes(s, &st->holes) ?:
	      sink_err(s, s->sink_ops->end(s->sink, s->epochs), "end") ?:
	      mig_put_state(&s->s, s->d) ?: epoch_close(s, end);
	if (err)
		return err;
	return end ? finish_stream(s) : mig_stream_sink_ops.flush(&s->s);
}

static void release_pause(struct mig_session *s)
{
	if (!s->o.caller_paused && hyp_domain_op_unpause(s->s.h, s->s.domid))
		log_err("d%u: cannot resume the source after the epoch", s->s.domid);
}

int mig_session_epoch(struct mig_session *s, unsigned flags, struct mig_epoch_stats *st)
{
	struct mig_epoch_stats local;
	bool end = flags & MIG_EPOCH_END, cp = flags & MIG_EPOCH_CHECKPOINT;
	uint64_t w0 = mig_session_wire(s), z0 = s->rep.zero_pages;
	double t0;
	int err;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	st->epoch = s->epochs;
	if (s->ended)
		return mig_fail(&s->s, -EINVAL, "the stream has ended");
	if (end == cp || (cp && !s->o.checkpointed))
		return mig_fail(&s->s, -EINVAL, "epoch flags 0x%x on a %s session", flags,
				s->o.checkpointed ? "checkpointed" : "plain");
	if (!s->o.caller_paused) {
		err = hyp_domain_op_pause(s->s.h, s->s.domid);
		if (err)
			return mig_fail(&s->s, err, "pausing for the %s: %s",
					end ? "stop-and-copy" : "checkpoint", ferry_strerror(err));
	}
	t0 = ferry_now_s();
	s->stop_copy = true;
	s->rep.pause_at = t0;
	err = epoch_paused(s, end, st);
	st->paused_s = ferry_now_s() - t0;
	st->bytes = mig_session_wire(s) - w0;
	st->zero_pages = s->rep.zero_pages - z0;
	if (err) {
		/* A half-written epoch: nothing more may follow it. */
		s->ended = true;
		release_pause(s);
		return err;
	}
	s->epochs++;
	if (end) {
		s->ended = true;
		return 0;
	}
	/* The guest runs on between checkpoints, at full speed. */
	s->stop_copy = false;
	if (s->throttle_pct < 100 && !hyp_domain_set_cap(s->s.h, s->s.domid, 0))
		s->throttle_pct = 100;
	if (!(flags & MIG_EPOCH_HOLD))
		release_pause(s);
	return 0;
}

void mig_session_report(const struct mig_session *s, struct mig_report *rep)
{
	*rep = s->rep;
	rep->bytes_sent = mig_session_wire(s);
	rep->total_s = ferry_now_s() - s->t0;
}

struct ld *mig_session_logdirty(const struct mig_session *s)
{
	return s->ld;
}

struct ld *mig_session_take_logdirty(struct mig_session *s)
{
	struct ld *ld = s->ld;

	s->ld = NULL;
	return ld;
}

void mig_session_close(struct mig_session *s)
{
	if (!s)
		return;
	if (s->ld)
		ld_disable(s->ld);
	/* The cap is the source's business, not part of the guest's state. */
	if (s->throttle_pct < 100)
		hyp_domain_set_cap(s->s.h, s->s.domid, 0);
	/* Their threads read guest memory: stopped before the domain may go. */
	mig_chans_free(s->chans);
	/* Without END the receiver sees a stream cut short. */
	if (s->framed)
		strm_io_close(s->framed);
	if (s->d)
		hyp_domain_put(s->d);
	free(s->dirty);
	free(s->sent);
	free(s->holes);
	free(s->scratch);
	free(s->b);
	mig_out_fini(&s->s);
	free(s);
}
