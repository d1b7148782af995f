// SPDX-License-Identifier: MIT
/*
 * The switchover policy: a pure function of what each live round
 * measured, so it is unit-tested without a guest.
 *
 * After each round (its send time and wire bytes, and the pages the
 * following log-dirty peek reported):
 *   bandwidth    = wire bytes / send time of the round (rounds under
 *                  256 KiB keep the previous estimate: too small to time)
 *   page_bytes   = wire bytes per page sent (frames, compression and the
 *                  zero-page elision included; 4096 until measured)
 *   dirty_rate   = dirty pages / time since the previous peek
 *   send_rate    = bandwidth / page_bytes (pages/s)
 *   predicted    = dirty * page_bytes / bandwidth + state cost
 * Switch when predicted <= the downtime target, but not after round 0:
 * its dirty count spans the whole bulk copy, and one dirty round is cheap
 * and measures the guest's real rate; also when nothing is dirty (only
 * the state cost is left, more rounds cannot help). A fit is not the end
 * while rounds still shrink: if the round at least halved what it had to
 * send, the guest dirties under half the send rate (so the next round is
 * expected to halve it again) and the pages still cost at least 1 ms of
 * pause, one more round is sent, up to 8 such rounds. The target is a
 * ceiling, not the goal: a guest the link outruns gets a pause of a few
 * ms, not the target's worth (QEMU, too, iterates while rounds shrink).
 * Each extra round is at most half the one before, so together they add
 * at most twice the predicted pause to the total time; a hot set the
 * guest rewrites as fast as it is sent stops shrinking and switches at
 * once. A round does not converge
 * when the dirty count did not shrink by at least 10 % against what the
 * round had to send, or the guest dirties at least as fast as the link
 * sends. After 2 such rounds in a row no_converge applies: abort, force
 * (switch now), or throttle: the next cap of 80, 60, 40, 30, 20, 10 %,
 * then one more step for every further round that still does not
 * converge; with the last step taken, 2 more such rounds force the
 * switch. At max_rounds live rounds the decision is forced: abort aborts,
 * throttle and force switch.
 */
#include "internal.h"

const unsigned mig_throttle_steps[MIG_THROTTLE_STEPS] = { 80, 60, 40, 30, 20, 10 };

#define MIN_TIMED_BYTES (256u << 10)
#define SHRINK 0.9
#define STALL_ROUNDS 2
#define MIN_ROUNDS 2
#define KEEP_SHRINK	0.5   /* an extra round must at least halve the dirty set */
#define MIN_GAIN_S	0.001 /* pause left in pages worth another round */
#define MAX_EXTRA	8     /* extra rounds after the prediction fits */

void mig_policy_init(struct mig_policy *p, uint32_t downtime_ms, double state_s,
		     unsigned max_rounds, enum mig_no_converge nc)
{
	*p = (struct mig_policy){
		.downtime_s = (double)downtime_ms / 1e3,
		.state_s = state_s,
		.max_rounds = max_rounds ? max_rounds : 1,
		.no_converge = nc,
		.page_bytes = 4096,
		.throttle_pct = 100,
		.why = "",
	};
}

static enum mig_decision no_converge(struct mig_policy *p)
{
	switch (p->no_converge) {
	case MIG_NC_ABORT:
		p->why = "not converging: abort";
		return MIG_ABORT;
	case MIG_NC_FORCE:
		p->why = "not converging: forced switch";
		return MIG_SWITCH;
	case MIG_NC_THROTTLE:
		break;
	}
	if (p->step == MIG_THROTTLE_STEPS) {
		p->why = "not converging at the last throttle step: forced switch";
		return MIG_SWITCH;
	}
	p->throttle_pct = mig_throttle_steps[p->step++];
	/* The next step comes after one more round that does not converge. */
	p->stalls = p->step == MIG_THROTTLE_STEPS ? 0 : STALL_ROUNDS - 1;
	p->why = "not converging: throttle";
	return MIG_THROTTLE;
}

/* After a fit: NULL if one more round is expected to pay for itself,
 * else why not. */
static const char *fit_why(const struct mig_policy *p, const struct mig_round *r, uint64_t had)
{
	if (p->predicted_s - p->state_s < MIN_GAIN_S)
		return p->extra ? "fits the target, the pages left cost under 1 ms"
				: "predicted downtime fits the target";
	if ((double)r->dirty > KEEP_SHRINK * (double)had ||
	    p->dirty_rate >= KEEP_SHRINK * p->send_rate)
		return p->extra ? "fits the target, rounds stopped shrinking"
				: "predicted downtime fits the target";
	if (p->extra >= MAX_EXTRA || p->rounds >= p->max_rounds)
		return "fits the target, no more extra rounds";
	return NULL;
}

enum mig_decision mig_policy_round(struct mig_policy *p, const struct mig_round *r)
{
	uint64_t had = p->rounds ? p->last_dirty : r->pages;
	bool stalled;

	p->rounds++;
	if (r->pages && r->bytes)
		p->page_bytes = (double)r->bytes / (double)r->pages;
	if (r->seconds > 0 && r->bytes && (r->bytes >= MIN_TIMED_BYTES || !p->bandwidth))
		p->bandwidth = (double)r->bytes / r->seconds;
	p->dirty_rate = r->interval > 0 ? (double)r->dirty / r->interval : 0;
	p->send_rate = p->bandwidth > 0 ? p->bandwidth / p->page_bytes : 0;
	p->predicted_s = p->state_s;
	if (r->dirty)
		p->predicted_s += p->bandwidth > 0 ? (double)r->dirty * p->page_bytes / p->bandwidth
						   : 1e9;
	p->last_dirty = r->dirty;

	if (p->predicted_s <= p->downtime_s && p->rounds >= MIN_ROUNDS) {
		p->why = fit_why(p, r, had);
		if (p->why)
			return MIG_SWITCH;
		p->extra++;
		p->why = "fits the target, rounds still shrink: another round";
		return MIG_CONTINUE;
	}
	if (!r->dirty && p->rounds >= MIN_ROUNDS) {
		/* Only the state is left: more rounds cannot shorten it. */
		p->why = "nothing dirty";
		return MIG_SWITCH;
	}
	stalled = (double)r->dirty > SHRINK * (double)had ||
		  (p->send_rate > 0 && p->dirty_rate >= p->send_rate);
	p->stalls = stalled ? p->stalls + 1 : 0;
	if (p->rounds >= p->max_rounds) {
		if (p->no_converge == MIG_NC_ABORT) {
			p->why = "round limit: abort";
			return MIG_ABORT;
		}
		p->why = "round limit: forced switch";
		return MIG_SWITCH;
	}
	if (p->stalls >= STALL_ROUNDS)
		return no_converge(p);
	p->why = "converging";
	return MIG_CONTINUE;
}
