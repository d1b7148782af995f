// SPDX-License-Identifier: MIT
/*
 * The switchover policy as a pure function of per-round measurements:
 * converging rounds switch when the predicted downtime fits and rounds no
 * longer shrink (or the pages left cost under 1 ms), rounds that
 * do not converge throttle step by step (then force), abort or force per
 * no_converge, and max_rounds forces the decision.
 */
#include <criterion/criterion.h>

#include "../../migrate/internal.h"

/* 1 GB/s link, 4096 wire bytes per page: a page costs 4.096 us. */
static struct mig_round rnd(uint64_t pages, uint64_t dirty, double interval)
{
	return (struct mig_round){ .pages = pages, .bytes = pages * 4096,
				   .seconds = (double)pages * 4096 / 1e9, .dirty = dirty,
				   .interval = interval };
}

static enum mig_decision go(struct mig_policy *p, uint64_t pages, uint64_t dirty,
			    double interval)
{
	struct mig_round r = rnd(pages, dirty, interval);

	return mig_policy_round(p, &r);
}

Test(policy, converging_rounds_switch_when_predicted_fits)
{
	struct mig_policy p;

	mig_policy_init(&p, 300, 0.002, 30, MIG_NC_THROTTLE);
	/* Round 0: 262144 pages (1 GiB) in 1.07 s; 100k dirty: 410 ms. */
	cr_assert_eq(go(&p, 262144, 100000, 1.07), MIG_CONTINUE);
	cr_assert_float_eq(p.bandwidth, 1e9, 1e3);
	cr_assert_float_eq(p.predicted_s, 0.002 + 100000 * 4096 / 1e9, 1e-6);
	/* Round 1: 100k pages sent, 20k dirty: 84 ms < 300 ms, but only 2 of
	 * the 10 k sent dirtied again: shrinking, one more round. */
	cr_assert_eq(go(&p, 100000, 20000, 0.41), MIG_CONTINUE);
	cr_assert_float_eq(p.predicted_s, 0.002 + 20000 * 4096 / 1e9, 1e-6);
	cr_assert_str_eq(p.why, "fits the target, rounds still shrink: another round");
	/* A hot set: 15k of the 20k sent dirty again, no longer halved. */
	cr_assert_eq(go(&p, 20000, 15000, 0.082), MIG_SWITCH);
	cr_assert_str_eq(p.why, "fits the target, rounds stopped shrinking");
	cr_assert_eq(p.throttle_pct, 100);
}

/* 256 MiB rewritten at 200 MiB/s over a 1 GB/s link: each round a fifth of
 * the one before, so rounds go on until the pages cost under 1 ms. */
Test(policy, shrinking_rounds_go_on_until_the_pause_is_the_state)
{
	const double rate = 200.0 * 256; /* pages/s */
	struct mig_policy p;
	uint64_t sent = 262144, dirty = 65536;
	enum mig_decision d = MIG_CONTINUE;
	unsigned n = 0;

	mig_policy_init(&p, 300, 0.002, 30, MIG_NC_THROTTLE);
	while (d == MIG_CONTINUE && n < 30) {
		double t = (double)sent * 4096 / 1e9;

		d = go(&p, sent, dirty, t);
		sent = dirty;
		dirty = (uint64_t)(rate * (double)sent * 4096 / 1e9);
		n++;
	}
	cr_assert_eq(d, MIG_SWITCH);
	/* 65536 pages (268 ms) fit after round 1; rounds 2-4 took it below 1 ms. */
	cr_assert_lt(p.predicted_s - p.state_s, 0.001, "pages left cost %.3f ms",
		     (p.predicted_s - p.state_s) * 1e3);
	cr_assert_eq(n, 5);
	cr_assert_str_eq(p.why, "fits the target, the pages left cost under 1 ms");
}

Test(policy, extra_rounds_are_bounded)
{
	struct mig_policy p;
	uint64_t sent = 1u << 20;
	unsigned n = 0;

	/* Every round halves-and-a-bit but the pages never get under 1 ms:
	 * 8 extra rounds after the fit, then the switch. */
	mig_policy_init(&p, 100000, 0.001, 100, MIG_NC_THROTTLE);
	cr_assert_eq(go(&p, sent, sent, 10), MIG_CONTINUE);
	n++;
	for (; n < 50; n++) {
		enum mig_decision d = go(&p, sent, sent * 49 / 100, (double)sent * 4096 / 1e9 * 10);

		if (d != MIG_CONTINUE)
			break;
		sent = sent * 49 / 100;
	}
	/* round 0, the round that fit, 8 extra */
	cr_assert_eq(p.rounds, 1 + 1 + 8, "%u rounds", p.rounds);
	cr_assert_str_eq(p.why, "fits the target, no more extra rounds");
}

Test(policy, round0_alone_never_switches)
{
	struct mig_policy p;

	mig_policy_init(&p, 300, 0.001, 30, MIG_NC_THROTTLE);
	cr_assert_eq(go(&p, 1000, 3, 0.01), MIG_CONTINUE);
	cr_assert_eq(go(&p, 3, 2, 0.001), MIG_SWITCH);
}

Test(policy, state_cost_alone_can_exceed_the_target)
{
	struct mig_policy p;

	mig_policy_init(&p, 1, 0.005, 3, MIG_NC_FORCE);
	cr_assert_eq(go(&p, 1000, 0, 0.01), MIG_CONTINUE);
	cr_assert_float_eq(p.predicted_s, 0.005, 1e-9);
	/* Nothing dirty: only the state is left, switch. */
	cr_assert_eq(go(&p, 0, 0, 0.01), MIG_SWITCH);
	cr_assert_str_eq(p.why, "nothing dirty");
}

/* Every round: all 8192 working-set pages dirty again, far beyond 1 ms. */
static enum mig_decision stuck(struct mig_policy *p)
{
	return go(p, 8192, 8192, 0.05);
}

Test(policy, not_converging_throttles_step_by_step_then_forces)
{
	static const unsigned want[] = { 80, 60, 40, 30, 20, 10 };
	struct mig_policy p;

	mig_policy_init(&p, 1, 0.001, 100, MIG_NC_THROTTLE);
	cr_assert_eq(go(&p, 30000, 8192, 0.1), MIG_CONTINUE);
	cr_assert_eq(stuck(&p), MIG_CONTINUE); /* first stalled round */
	for (unsigned i = 0; i < 6; i++) {
		cr_assert_eq(stuck(&p), MIG_THROTTLE, "step %u", i);
		cr_assert_eq(p.throttle_pct, want[i]);
	}
	/* The last step gets 2 rounds, then the switch is forced. */
	cr_assert_eq(stuck(&p), MIG_CONTINUE);
	cr_assert_eq(stuck(&p), MIG_SWITCH);
	cr_assert_eq(p.throttle_pct, 10);
	cr_assert_eq(p.rounds, 10);
}

Test(policy, a_converging_round_resets_the_stall_count)
{
	struct mig_policy p;

	mig_policy_init(&p, 1, 0.001, 100, MIG_NC_ABORT);
	cr_assert_eq(go(&p, 30000, 8192, 0.1), MIG_CONTINUE);
	cr_assert_eq(stuck(&p), MIG_CONTINUE);
	/* Halved: converging. */
	cr_assert_eq(go(&p, 8192, 4000, 0.03), MIG_CONTINUE);
	cr_assert_eq(p.stalls, 0);
	cr_assert_eq(go(&p, 4000, 3900, 0.02), MIG_CONTINUE);
	cr_assert_eq(go(&p, 3900, 3900, 0.02), MIG_ABORT);
}

Test(policy, dirty_rate_above_send_rate_is_not_converging)
{
	struct mig_policy p;

	mig_policy_init(&p, 1, 0.001, 100, MIG_NC_FORCE);
	/* Shrinking by half each round, but 1 MB/s link against 100k pages/s. */
	struct mig_round r = { .pages = 1000, .bytes = 4096000, .seconds = 4.096,
			       .dirty = 400, .interval = 0.004 };

	cr_assert_eq(mig_policy_round(&p, &r), MIG_CONTINUE);
	r.pages = 400;
	r.dirty = 150;
	cr_assert_eq(mig_policy_round(&p, &r), MIG_SWITCH);
	cr_assert_str_eq(p.why, "not converging: forced switch");
}

Test(policy, abort_and_force_on_no_convergence)
{
	struct mig_policy p;

	mig_policy_init(&p, 1, 0.001, 100, MIG_NC_ABORT);
	cr_assert_eq(go(&p, 30000, 8192, 0.1), MIG_CONTINUE);
	cr_assert_eq(stuck(&p), MIG_CONTINUE);
	cr_assert_eq(stuck(&p), MIG_ABORT);
	cr_assert_eq(p.throttle_pct, 100);

	mig_policy_init(&p, 1, 0.001, 100, MIG_NC_FORCE);
	cr_assert_eq(go(&p, 30000, 8192, 0.1), MIG_CONTINUE);
	cr_assert_eq(stuck(&p), MIG_CONTINUE);
	cr_assert_eq(stuck(&p), MIG_SWITCH);
}

Test(policy, max_rounds_forces_the_decision)
{
	struct mig_policy p;

	/* Converging slowly (10 % less each round) but never enough. */
	for (int nc = MIG_NC_THROTTLE; nc <= MIG_NC_FORCE; nc++) {
		uint64_t dirty = 200000;
		enum mig_decision d = MIG_CONTINUE;
		unsigned n = 0;

		mig_policy_init(&p, 1, 0.001, 4, (enum mig_no_converge)nc);
		while (d == MIG_CONTINUE && n < 10) {
			d = go(&p, dirty, dirty * 8 / 10, 2.0);
			dirty = dirty * 8 / 10;
			n++;
		}
		cr_assert_eq(n, 4, "nc %d: decided after %u rounds", nc, n);
		cr_assert_eq(d, nc == MIG_NC_ABORT ? MIG_ABORT : MIG_SWITCH, "nc %d", nc);
		cr_assert_eq(p.throttle_pct, 100);
	}
}

Test(policy, small_rounds_keep_the_bandwidth_estimate)
{
	struct mig_policy p;

	mig_policy_init(&p, 300, 0.001, 30, MIG_NC_THROTTLE);
	go(&p, 262144, 1000, 1.07);
	/* 10 pages in 1 ms looks like 41 MB/s: too small to time. */
	{
		struct mig_round r = { .pages = 10, .bytes = 40960, .seconds = 0.001,
				       .dirty = 5, .interval = 0.01 };

		mig_policy_round(&p, &r);
	}
	cr_assert_float_eq(p.bandwidth, 1e9, 1e3);
	cr_assert_float_eq(p.page_bytes, 4096, 1e-9);
}
