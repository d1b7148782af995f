// SPDX-License-Identifier: MIT
/*
 * Live migration's save side (precopy.h): log-dirty on, round 0 sends every
 * populated page with the guest running, each next round what the guest
 * dirtied meanwhile, until the policy (policy.c) says the rest fits the
 * downtime target; then pause, the last dirty pages and the state records.
 * The stream is save.c's, with many rounds of PAGE_DATA; each round ends
 * with a flush so the receiver applies it while the next is sent.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bitmap.h"
#include "common/err.h"
#include "common/log.h"
#include "hyp/context.h"
#include "hyp/gmem.h"
#include "internal.h"
#include "logdirty/logdirty.h"

#define DEFAULT_DOWNTIME_MS 300
#define DEFAULT_MAX_ROUNDS 30
/* Margin on the measured state cost: encoding, the final flush. */
#define STATE_MARGIN_S 0.0005
/* Longest sleep between two cancel checks while pacing. */
#define PACE_SLICE_S 0.05

struct live {
	struct mig_out s;
	const struct mig_live_opts *o;
	struct mig_report *rep;
	struct hyp_domain *d;
	struct hyp_gmem gm;
	struct ld *ld;
	uint64_t *dirty; /* pages to send next (the peeks OR into it) */
	uint64_t *sent;	 /* pages sent at least once */
	struct mig_batch *b;
	struct strm_io *lower;	/* the caller's io, borrowed */
	struct strm_io *framed; /* ours, on lower; NULL for a plain stream */
	uint64_t wire0;		/* lower's offset when we began */
	bool stop_copy;		/* past the pause: cancel no longer applies */
	/* token bucket over lower's bytes (o->bandwidth) */
	double tb_tokens, tb_last;
	uint64_t tb_wire;
};

static uint64_t wire(const struct live *l)
{
	return strm_io_offset(l->lower) - l->wire0;
}

static bool cancelled(const struct live *l)
{
	return !l->stop_copy && l->o->cancel && *l->o->cancel;
}

static int check_cancel(struct live *l)
{
	if (cancelled(l))
		return mig_fail(&l->s, -ECANCELED, "cancelled");
	return 0;
}

static void sleep_s(double s)
{
	struct timespec ts = { .tv_sec = (time_t)s,
			       .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };

	nanosleep(&ts, NULL);
}

/* Token bucket: the bucket holds up to 100 ms of the rate (at least 1 MiB);
 * bytes written since the last call take tokens; a deficit is slept off. */
static int pace(struct live *l)
{
	double rate = (double)l->o->bandwidth, burst, now;
	uint64_t w;

	if (!l->o->bandwidth)
		return 0;
	burst = rate / 10 > (double)(1 << 20) ? rate / 10 : (double)(1 << 20);
	w = wire(l);
	now = mig_now_s();
	l->tb_tokens += (now - l->tb_last) * rate;
	if (l->tb_tokens > burst)
		l->tb_tokens = burst;
	l->tb_tokens -= (double)(w - l->tb_wire);
	l->tb_wire = w;
	l->tb_last = now;
	while (l->tb_tokens < 0) {
		double need = -l->tb_tokens / rate;

		if (check_cancel(l))
			return -ECANCELED;
		sleep_s(need < PACE_SLICE_S ? need : PACE_SLICE_S);
		now = mig_now_s();
		l->tb_tokens += (now - l->tb_last) * rate;
		l->tb_last = now;
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

/*
 * Sends every page set in l->dirty and clears it. A page that is all zero
 * and was never sent is elided (the target's fresh memory is zero); once
 * sent, a page is always sent again, zero or not. Cancel and pacing are
 * checked after each PAGE_DATA record.
 */
static int send_dirty(struct live *l, uint64_t *pages)
{
	uint64_t nwords = BITMAP_WORDS(l->gm.npages);
	int err;

	*pages = 0;
	for (uint64_t wi = 0; wi < nwords; wi++) {
		while (l->dirty[wi]) {
			unsigned bit = (unsigned)__builtin_ctzll(l->dirty[wi]);
			uint64_t pfn = wi * 64 + bit;
			const uint8_t *page = l->gm.hva + (pfn << PAGE_SHIFT);

			l->dirty[wi] &= l->dirty[wi] - 1;
			if (pfn >= l->gm.npages)
				break;
			if (!bitmap_test(l->sent, pfn) && page_is_zero(page)) {
				l->rep->zero_pages++;
				continue;
			}
			bitmap_set(l->sent, pfn);
			(*pages)++;
			err = mig_batch_add(&l->s, l->b, pfn, page);
			if (err)
				return err;
			if (!l->b->count) {
				/* A record went out. */
				err = check_cancel(l) ?: pace(l);
				if (err)
					return err;
			}
		}
	}
	err = mig_batch_flush(&l->s, l->b);
	return err ?: pace(l);
}

static int flush(struct live *l)
{
	int err = strm_io_flush(l->s.io);

	if (err)
		return mig_fail(&l->s, err, "flushing the stream: %s%s%s", ferry_strerror(err),
				*strm_io_error(l->s.io) ? ": " : "", strm_io_error(l->s.io));
	return 0;
}

static int peek(struct live *l, uint64_t *count)
{
	int err = ld_peek_clean(l->ld, l->dirty, l->gm.npages, count);

	if (err)
		return mig_fail(&l->s, err, "reading the dirty log: %s", ferry_strerror(err));
	return 0;
}

static void progress(struct live *l, const char *phase, unsigned round,
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
		.bytes_sent = wire(l),
	};

	if (l->o->progress)
		l->o->progress(l->o->opaque, &pr);
}

/*
 * The fixed part of the downtime, measured once before log-dirty starts:
 * pausing (every vCPU parked) and collecting the vCPU and platform state,
 * as the stop-and-copy will. The guest pauses for that long (~ms) once.
 */
static int measure_state_cost(struct live *l, bool running, double *cost)
{
	struct hyp_tsc_info tsc;
	double t0 = mig_now_s();
	int err, uerr;

	if (running) {
		err = hyp_domain_op_pause(l->s.h, l->s.domid);
		if (err)
			return mig_fail(&l->s, err, "pausing to measure the state: %s",
					ferry_strerror(err));
	}
	err = hyp_domain_tsc_info(l->s.h, l->s.domid, &tsc);
	if (err)
		mig_fail(&l->s, err, "reading the TSC information: %s", ferry_strerror(err));
	else
		err = mig_build_context(&l->s, tsc.khz);
	*cost = mig_now_s() - t0 + STATE_MARGIN_S;
	if (running) {
		uerr = hyp_domain_op_unpause(l->s.h, l->s.domid);
		if (uerr && !err)
			err = mig_fail(&l->s, uerr, "resuming after the measurement: %s",
				       ferry_strerror(uerr));
	}
	return err;
}

static int setup_stream(struct live *l)
{
	const struct mig_live_opts *o = l->o;
	bool frames = o->codec != STRM_CODEC_NONE || o->codec_auto;
	uint32_t flags = XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMV2;
	enum strm_codec codec = o->codec_auto ? STRM_CODEC_LZ4 : o->codec;
	int err;

	err = strm_enc_new(&l->s.enc);
	if (err)
		return mig_fail(&l->s, err, "no memory for the encoder");
	if (frames)
		flags |= XL_MANDATORY_FLAG_FERRY_FRAMES;
	err = mig_put(&l->s, strm_enc_xl_header(l->s.enc, o->config_json, flags, l->s.iov),
		      "the xl header");
	if (err || !frames)
		return err;
	err = strm_io_frame_writer_borrow(l->lower, codec, 0, &l->framed);
	if (!err && o->codec_auto)
		err = strm_io_frame_writer_auto(l->framed, 0);
	if (err)
		return mig_fail(&l->s, err, "setting up %s frames: %s",
				o->codec_auto ? "auto" : strm_codec_name(codec),
				ferry_strerror(err));
	l->s.io = l->framed;
	return 0;
}

/* The live rounds; returns 0 when the policy says switch. */
static int live_rounds(struct live *l, struct mig_policy *p)
{
	struct mig_report *rep = l->rep;
	unsigned max = p->max_rounds;
	double t_peek = mig_now_s();
	int err;

	err = hyp_gmem_populated(l->d, l->dirty, NULL);
	if (err)
		return mig_fail(&l->s, err, "finding the populated pages: %s",
				ferry_strerror(err));
	for (unsigned round = 0;; round++) {
		struct mig_round r = { 0 };
		uint64_t w0 = wire(l);
		double t0 = mig_now_s(), t1;
		enum mig_decision dec;

		err = send_dirty(l, &r.pages) ?: flush(l);
		if (err)
			return err;
		t1 = mig_now_s();
		err = peek(l, &r.dirty);
		if (err)
			return err;
		r.bytes = wire(l) - w0;
		r.seconds = t1 - t0;
		r.interval = mig_now_s() - t_peek;
		t_peek += r.interval;
		rep->pages_per_round[round] = r.pages;
		rep->rounds = round + 1;
		dec = mig_policy_round(p, &r);
		rep->predicted_downtime_ms = p->predicted_s * 1e3;
		rep->decision = p->why;
		log_info("d%u: round %u: %llu pages, %.1f MB in %.3f s (%.0f MB/s), %llu dirty "
			 "(%.0f pages/s), predicted downtime %.1f ms: %s",
			 l->s.domid, round, (unsigned long long)r.pages, (double)r.bytes / 1e6,
			 r.seconds, p->bandwidth / 1e6, (unsigned long long)r.dirty,
			 p->dirty_rate, p->predicted_s * 1e3, p->why);
		if (l->framed && l->o->codec_auto)
			strm_io_frame_writer_auto(l->framed, p->bandwidth);
		progress(l, "round", round, p, r.dirty);
		if (check_cancel(l))
			return -ECANCELED;
		switch (dec) {
		case MIG_CONTINUE:
			break;
		case MIG_THROTTLE:
			err = hyp_domain_set_cap(l->s.h, l->s.domid, p->throttle_pct);
			if (err)
				return mig_fail(&l->s, err, "throttling to %u%%: %s",
						p->throttle_pct, ferry_strerror(err));
			if (p->throttle_pct < rep->throttle_pct)
				rep->throttle_pct = p->throttle_pct;
			progress(l, "throttle", round, p, r.dirty);
			break;
		case MIG_SWITCH:
			return 0;
		case MIG_ABORT:
			return mig_fail(&l->s, -ETIMEDOUT,
					"not converging after %u rounds (%llu pages dirty, "
					"predicted downtime %.0f ms > %u ms): %s",
					round + 1, (unsigned long long)r.dirty,
					p->predicted_s * 1e3, l->o->downtime_ms, p->why);
		}
		if (round + 1 >= max)
			return 0; /* not reached: the policy decides at max */
	}
}

static int stop_and_copy(struct live *l, struct mig_policy *p)
{
	struct mig_report *rep = l->rep;
	uint64_t count = 0, pages = 0, *holes;
	int err;

	l->stop_copy = true;
	rep->pause_at = mig_now_s();
	err = peek(l, &count);
	if (err)
		return err;
	/* Paused, the holes are final: what the balloon gave back is listed
	 * as XTAB, not sent. */
	holes = malloc(BITMAP_BYTES(l->gm.npages));
	if (!holes)
		return mig_fail(&l->s, -ENOMEM, "no memory for the hole bitmap");
	hyp_gmem_holes(l->d, holes, NULL);
	for (uint64_t i = 0; i < BITMAP_WORDS(l->gm.npages); i++)
		l->dirty[i] &= ~holes[i];
	progress(l, "stop-and-copy", rep->rounds, p, bitmap_weight(l->dirty, l->gm.npages));
	err = send_dirty(l, &pages);
	rep->pages_per_round[rep->rounds] = pages;
	rep->final_pages = pages;
	if (!err)
		err = mig_put_holes(&l->s, l->d, holes);
	free(holes);
	if (err)
		return err;
	err = mig_put_tail(&l->s, l->d);
	if (err)
		return err;
	if (l->framed) {
		struct strm_frame_stats fs;

		if (!strm_io_frame_stats(l->framed, &fs)) {
			rep->frames = fs.frames;
			rep->frames_raw = fs.frames_stored_raw;
		}
		/* The end frame, and a flush of lower, which stays open. */
		err = strm_io_close(l->framed);
		l->framed = NULL;
		l->s.io = l->lower;
		if (err)
			return mig_fail(&l->s, err, "finishing the stream: %s%s%s",
					ferry_strerror(err), *strm_io_error(l->lower) ? ": " : "",
					strm_io_error(l->lower));
		return 0;
	}
	return flush(l);
}

int mig_live_send(struct hyp *h, uint32_t domid, struct strm_io *io,
		  const struct mig_live_opts *o, struct mig_report *rep, char *errbuf,
		  size_t errlen)
{
	struct live l = { .s = { .h = h, .domid = domid, .io = io, .err = errbuf,
				 .errlen = errlen, .xs = o->xenstore },
			  .o = o, .rep = rep, .lower = io };
	struct mig_policy p = { .throttle_pct = 100 };
	struct hyp_dom_info info;
	double t0 = mig_now_s(), state_s = 0;
	bool running, paused = false;
	unsigned max_rounds = o->max_rounds ? o->max_rounds : DEFAULT_MAX_ROUNDS;
	int err;

	errbuf[0] = 0;
	memset(rep, 0, sizeof(*rep));
	rep->throttle_pct = 100;
	rep->decision = "";
	if (max_rounds > MIG_MAX_ROUNDS_LIMIT)
		max_rounds = MIG_MAX_ROUNDS_LIMIT;
	l.wire0 = strm_io_offset(io);
	l.tb_last = mig_now_s();
	err = hyp_domain_info(h, domid, &info);
	if (err)
		return mig_fail(&l.s, err, "no domain %u", domid);
	if (info.state != HYP_DOM_RUNNING && info.state != HYP_DOM_BLOCKED &&
	    info.state != HYP_DOM_PAUSED)
		return mig_fail(&l.s, -EINVAL, "domain %u is %s", domid,
				hyp_state_name(info.state));
	running = info.state != HYP_DOM_PAUSED;
	err = hyp_domain_get(h, domid, &l.d);
	if (err)
		return mig_fail(&l.s, err, "domain %u went away", domid);
	hyp_domain_gmem(l.d, &l.gm);
	l.dirty = calloc(BITMAP_WORDS(l.gm.npages), 8);
	l.sent = calloc(BITMAP_WORDS(l.gm.npages), 8);
	l.b = calloc(1, sizeof(*l.b));
	if (!l.dirty || !l.sent || !l.b) {
		err = mig_fail(&l.s, -ENOMEM, "no memory for the page bitmaps");
		goto out;
	}
	err = setup_stream(&l) ?: mig_put_headers(&l.s) ?:
	      measure_state_cost(&l, running, &state_s);
	if (err)
		goto out;
	rep->state_cost_ms = state_s * 1e3;
	mig_policy_init(&p, o->downtime_ms ? o->downtime_ms : DEFAULT_DOWNTIME_MS, state_s,
			max_rounds, o->no_converge);
	err = ld_enable(l.d, &l.ld);
	if (err) {
		mig_fail(&l.s, err, "turning log-dirty on: %s", ferry_strerror(err));
		goto out;
	}
	err = live_rounds(&l, &p);
	if (err)
		goto out;
	/* Always: the caller is handed a domain this operation holds paused,
	 * whatever the toolstack's count. */
	err = hyp_domain_op_pause(h, domid);
	if (err) {
		mig_fail(&l.s, err, "pausing for the stop-and-copy: %s", ferry_strerror(err));
		goto out;
	}
	paused = true;
	err = stop_and_copy(&l, &p);
out:
	if (!err && o->keep_logdirty)
		*o->keep_logdirty = l.ld;
	else
		ld_disable(l.ld);
	/* The cap is the source's business, not part of the guest's state. */
	if (p.throttle_pct < 100)
		hyp_domain_set_cap(h, domid, 0);
	if (l.framed) {
		/* Error path: the receiver sees a stream without its END. */
		strm_io_close(l.framed);
		l.framed = NULL;
	}
	if (err && paused && hyp_domain_op_unpause(h, domid))
		log_err("d%u: cannot resume the source after a failed migration", domid);
	rep->bytes_sent = strm_io_offset(io) - l.wire0;
	rep->total_s = mig_now_s() - t0;
	if (!err)
		log_info("d%u: live migration sent: %u rounds + %llu pages paused, %.1f MB "
			 "in %.2f s, predicted downtime %.1f ms (state %.1f ms)",
			 domid, rep->rounds, (unsigned long long)rep->final_pages,
			 (double)rep->bytes_sent / 1e6, rep->total_s, rep->predicted_downtime_ms,
			 rep->state_cost_ms);
	if (l.d)
		hyp_domain_put(l.d);
	free(l.dirty);
	free(l.sent);
	free(l.b);
	mig_out_fini(&l.s);
	return err;
}
