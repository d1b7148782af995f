// SPDX-License-Identifier: MIT
/*
 * Live pre-copy on a session (session.h): log-dirty on, round 0 sends
 * every populated page with the guest running, each next round what the
 * guest dirtied meanwhile, until the policy (policy.c) says the rest fits
 * the downtime target. Each round ends with a flush so the receiver
 * applies it while the next is sent. mig_live_send (precopy.h) is a
 * session with one pre-copy and one END epoch: the stop-and-copy.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "hyp/context.h"
#include "internal.h"
#include "logdirty/logdirty.h"

/* Margin on the measured state cost: encoding, the final flush. */
#define STATE_MARGIN_S 0.0005

/*
 * The fixed part of the downtime, measured once before log-dirty starts:
 * pausing (every vCPU parked) and collecting the vCPU and platform state,
 * as the stop-and-copy will. The guest pauses for that long (~ms) once.
 */
static int measure_state_cost(struct mig_session *s, bool running, double *cost)
{
	struct hyp_tsc_info tsc;
	double t0 = ferry_now_s();
	int err, uerr;

	if (running) {
		err = hyp_domain_op_pause(s->s.h, s->s.domid);
		if (err)
			return mig_fail(&s->s, err, "pausing to measure the state: %s",
					ferry_strerror(err));
	}
	err = hyp_domain_tsc_info(s->s.h, s->s.domid, &tsc);
	if (err)
		mig_fail(&s->s, err, "reading the TSC information: %s", ferry_strerror(err));
	else
		err = mig_build_context(&s->s, tsc.khz);
	*cost = ferry_now_s() - t0 + STATE_MARGIN_S;
	if (running) {
		uerr = hyp_domain_op_unpause(s->s.h, s->s.domid);
		if (uerr && !err)
			err = mig_fail(&s->s, uerr, "resuming after the measurement: %s",
				       ferry_strerror(uerr));
	}
	return err;
}

static int flush(struct mig_session *s)
{
	int err = s->sink_ops->flush(s->sink);

	if (err && !s->s.err[0])
		snprintf(s->s.err, s->s.errlen, "page sink flush: %s", ferry_strerror(err));
	return err;
}

/* What the policy said after a round; 1: another round, 0: switch. */
static int decide(struct mig_session *s, struct mig_policy *p, enum mig_decision dec,
		  unsigned round, uint64_t dirty)
{
	int err;

	switch (dec) {
	case MIG_CONTINUE:
		return 1;
	case MIG_THROTTLE:
		err = hyp_domain_set_cap(s->s.h, s->s.domid, p->throttle_pct);
		if (err)
			return mig_fail(&s->s, err, "throttling to %u%%: %s", p->throttle_pct,
					ferry_strerror(err));
		s->throttle_pct = p->throttle_pct;
		if (p->throttle_pct < s->rep.throttle_pct)
			s->rep.throttle_pct = p->throttle_pct;
		mig_session_progress(s, "throttle", round, p, dirty);
		return 1;
	case MIG_SWITCH:
		return 0;
	case MIG_ABORT:
		break;
	}
	return mig_fail(&s->s, -ETIMEDOUT,
			"not converging after %u rounds (%llu pages dirty, "
			"predicted downtime %.0f ms > %.0f ms): %s",
			round + 1, (unsigned long long)dirty, p->predicted_s * 1e3,
			p->downtime_s * 1e3, p->why);
}

/* The live rounds; returns 0 when the policy says switch. */
static int live_rounds(struct mig_session *s, struct mig_policy *p)
{
	struct mig_report *rep = &s->rep;
	double t_peek = ferry_now_s();
	int err;

	for (unsigned round = 0;; round++) {
		struct mig_round r = { 0 };
		uint64_t w0 = mig_session_wire(s);
		double t0 = ferry_now_s(), t1;
		enum mig_decision dec;

		err = s->sink_ops->begin(s->sink, s->epochs) ?:
		      mig_session_send_dirty(s, &r.pages) ?: flush(s);
		if (err)
			return err;
		t1 = ferry_now_s();
		err = mig_session_peek(s, &r.dirty);
		if (err)
			return err;
		r.bytes = mig_session_wire(s) - w0;
		/* A sink off the stream (a snapshot) moves its pages elsewhere:
		 * without them the policy would measure no bandwidth at all. */
		if (s->sink_ops != &mig_stream_sink_ops && !s->sink_ops->wire)
			r.bytes += r.pages * PAGE_SIZE;
		r.seconds = t1 - t0;
		r.interval = ferry_now_s() - t_peek;
		t_peek += r.interval;
		rep->pages_per_round[round] = r.pages;
		mig_session_count_frames(s, round);
		rep->rounds = round + 1;
		dec = mig_policy_round(p, &r);
		rep->predicted_downtime_ms = p->predicted_s * 1e3;
		rep->decision = p->why;
		log_info("d%u: round %u: %llu pages, %.1f MB in %.3f s (%.0f MB/s), %llu dirty "
			 "(%.0f pages/s), predicted downtime %.1f ms: %s",
			 s->s.domid, round, (unsigned long long)r.pages, (double)r.bytes / 1e6,
			 r.seconds, p->bandwidth / 1e6, (unsigned long long)r.dirty, p->dirty_rate,
			 p->predicted_s * 1e3, p->why);
		mig_session_progress(s, "round", round, p, r.dirty);
		if (mig_session_check_cancel(s))
			return -ECANCELED;
		err = decide(s, p, dec, round, r.dirty);
		if (err <= 0)
			return err;
		if (round + 1 >= p->max_rounds)
			return 0; /* not reached: the policy decides at max */
	}
}

int mig_session_precopy(struct mig_session *s, const struct mig_precopy_opts *o)
{
	unsigned max_rounds = o->max_rounds ? o->max_rounds : MIG_DEFAULT_MAX_ROUNDS;
	struct hyp_dom_info info;
	int err;

	if (s->ended)
		return mig_fail(&s->s, -EINVAL, "the stream has ended");
	if (s->o.caller_paused)
		return mig_fail(&s->s, -EINVAL, "pre-copy of a domain held paused");
	if (max_rounds > MIG_MAX_ROUNDS_LIMIT)
		max_rounds = MIG_MAX_ROUNDS_LIMIT;
	if (!s->state_measured && o->state_cost_ms > 0) {
		s->state_s = o->state_cost_ms / 1e3;
		s->state_measured = true;
		s->rep.state_cost_ms = o->state_cost_ms;
	}
	if (!s->state_measured) {
		err = hyp_domain_info(s->s.h, s->s.domid, &info);
		if (err)
			return mig_fail(&s->s, err, "domain %u went away", s->s.domid);
		err = measure_state_cost(s, info.state != HYP_DOM_PAUSED, &s->state_s);
		if (err)
			return err;
		s->state_measured = true;
		s->rep.state_cost_ms = s->state_s * 1e3;
	}
	mig_policy_init(&s->pol, o->downtime_ms ? o->downtime_ms : MIG_DEFAULT_DOWNTIME_MS,
			s->state_s, max_rounds, o->no_converge);
	if (!s->ld) {
		err = mig_session_start_logdirty(s);
		if (err)
			return err;
	} else if (!s->have_dirty) {
		/* An adopted log: round 0 sends what changed since its harvest. */
		err = mig_session_peek(s, NULL);
		if (err)
			return err;
		s->have_dirty = true;
	}
	s->stop_copy = false;
	return live_rounds(s, &s->pol);
}

static void live_log(uint32_t domid, const struct mig_report *rep)
{
	log_info("d%u: live migration sent: %u rounds + %llu pages paused, %.1f MB "
		 "in %.2f s, predicted downtime %.1f ms (state %.1f ms)",
		 domid, rep->rounds, (unsigned long long)rep->final_pages,
		 (double)rep->bytes_sent / 1e6, rep->total_s, rep->predicted_downtime_ms,
		 rep->state_cost_ms);
}

int mig_live_send(struct hyp *h, uint32_t domid, struct strm_io *io,
		  const struct mig_live_opts *o, struct mig_report *rep, char *errbuf,
		  size_t errlen)
{
	struct mig_session_opts so = {
		.codec = o->codec,
		.codec_auto = o->codec_auto,
		.config_json = o->config_json,
		.xenstore = o->xenstore,
		.elide_zero = true,
		.bandwidth = o->bandwidth,
		.cancel = o->cancel,
		.progress = o->progress,
		.opaque = o->opaque,
		.channels = o->channels,
		.nchannels = o->nchannels,
	};
	struct mig_precopy_opts po = { .downtime_ms = o->downtime_ms,
				       .no_converge = o->no_converge,
				       .max_rounds = o->max_rounds };
	struct mig_session *s;
	double t0 = ferry_now_s();
	uint64_t wire0 = strm_io_offset(io), side = 0;
	int err;

	memset(rep, 0, sizeof(*rep));
	rep->throttle_pct = 100;
	rep->decision = "";
	err = mig_session_create(h, domid, io, &so, errbuf, errlen, &s);
	if (!err) {
		err = mig_session_precopy(s, &po) ?:
		      mig_session_epoch(s, MIG_EPOCH_END, NULL);
		if (!err && o->keep_logdirty)
			*o->keep_logdirty = mig_session_take_logdirty(s);
		mig_session_report(s, rep);
		/* What went over the page channels, which close takes away. */
		side = rep->bytes_sent - (strm_io_offset(io) - wire0);
		mig_session_close(s);
	}
	/* As before the session: turning log-dirty off is in the total. */
	rep->bytes_sent = strm_io_offset(io) - wire0 + side;
	rep->total_s = ferry_now_s() - t0;
	if (!err)
		live_log(domid, rep);
	return err;
}
