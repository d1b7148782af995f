// SPDX-License-Identifier: MIT
/*
 * Replication pairs (ha/ha.h) in one process: a primary and a backup on
 * two soft hypervisors, joined by a "cable" (a relay thread between two
 * socketpairs, the network the test can cut or stall: the only thing
 * mocked). Every failover ends with the verify guest's resume check.
 */
#include "pair.h"

/* ---- tests ---------------------------------------------------------------- */

TestSuite(ha, .timeout = 120);

/* The primary's host goes away (its domain stops with it, the link goes
 * silent): the backup resumes the last committed epoch within the
 * timeout plus 50 ms of the last thing it heard. */
Test(ha, the_backup_takes_over_when_the_primary_goes_silent)
{
	struct pair pr;

	pair_start(&pr, 50, 400);
	wait_epochs(&pr, 5);
	cr_assert_eq(hyp_domain_pause(pr.ph, pr.pid), 0);
	atomic_store(&pr.c.cut, true);
	cr_assert(wait_flag(&pr.backed, 5), "no failover");
	cr_assert_eq(pr.res.outcome, HA_BACKUP_FAILED_OVER, "%s", pr.res.err);
	cr_assert_geq(pr.res.committed, 5);
	cr_assert_leq(pr.res.failover_ms, 400 + 50, "failover %.1f ms after the last message",
		      pr.res.failover_ms);
	cr_assert_geq(pr.res.failover_ms, 400);
	expect_copy_verifies(&pr);
	/* The cut primary runs on unprotected once its timeout passes too
	 * (no witness: the partition case the witness exists for). */
	cr_assert(wait_flag(&pr.ran, 5));
	cr_assert_eq(stats(&pr).state, HA_UNPROTECTED);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_end(&pr);
	pair_free(&pr);
}

/* The primary's daemon dies: its connection ends at once, and the backup
 * takes over without waiting for the timeout. */
Test(ha, the_backup_takes_over_when_the_primary_connection_ends)
{
	struct pair pr;

	pair_start(&pr, 50, 2000);
	wait_epochs(&pr, 3);
	cr_assert_eq(hyp_domain_pause(pr.ph, pr.pid), 0);
	shutdown(pr.c.p_relay, SHUT_RDWR);
	cr_assert(wait_flag(&pr.backed, 5), "no failover");
	cr_assert_eq(pr.res.outcome, HA_BACKUP_FAILED_OVER, "%s", pr.res.err);
	cr_assert_lt(pr.res.failover_ms, 1000, "%.1f ms", pr.res.failover_ms);
	expect_copy_verifies(&pr);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_end(&pr);
	pair_free(&pr);
}

/* The backup dies: the primary says so, releases what it held and runs on. */
Test(ha, the_primary_runs_on_unprotected_when_the_backup_dies)
{
	struct pair pr;
	size_t before;

	pair_start(&pr, 50, 400);
	wait_epochs(&pr, 3);
	/* Its daemon goes: the copy with it, then the connection. */
	strm_cancel_fire(pr.bcancel);
	cr_assert(wait_flag(&pr.backed, 5));
	cr_assert_eq(pr.res.outcome, HA_BACKUP_BROKEN, "the dead backup ran: %s", pr.res.err);
	shutdown(pr.c.b_end, SHUT_RDWR);
	cr_assert(wait_flag(&pr.ran, 5), "the primary did not notice");
	cr_assert_eq(pr.run_rc, 0, "%s", pr.perr);
	cr_assert_eq(stats(&pr).state, HA_UNPROTECTED);
	cr_assert_eq(atomic_load(&pr.events[HA_UNPROTECTED]), 1);
	/* Output flows unheld: the next sweeps show at once. */
	before = strlen(harness_console(pr.ph, pr.pid));
	cr_assert(harness_wait_console(pr.ph, pr.pid, "verify: sweep", 3, 10));
	cr_assert_gt(strlen(harness_console(pr.ph, pr.pid)), before);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_end(&pr);
	pair_free(&pr);
}

/* Output commit: with acks withheld, nothing the guest prints reaches the
 * console; once the backup's acks come through, all of it does, in order
 * and once. */
Test(ha, output_waits_for_the_backups_ack)
{
	struct pair pr;
	char *held;
	size_t n0, n1;

	pair_start(&pr, 50, 5000);
	wait_epochs(&pr, 3);
	atomic_store(&pr.c.hold_b, true);
	usleep(100 * 1000); /* the ack in flight lands */
	held = strdup(harness_console(pr.ph, pr.pid));
	n0 = strlen(held);
	usleep(2500 * 1000); /* two sweeps' time */
	cr_assert_str_eq(harness_console(pr.ph, pr.pid), held,
			 "output reached the console "
			 "before its epoch was acknowledged");
	atomic_store(&pr.c.hold_b, false);
	cr_assert(harness_wait_console(pr.ph, pr.pid, "verify: sweep", 3, 10));
	n1 = strlen(harness_console(pr.ph, pr.pid));
	cr_assert_gt(n1, n0);
	cr_assert_eq(strncmp(harness_console(pr.ph, pr.pid), held, n0), 0,
		     "released output "
		     "rewrote what was out");
	free(held);
	ha_primary_request_stop(pr.p);
	pair_end(&pr);
	cr_assert_eq(pr.res.outcome, HA_BACKUP_STOPPED);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_free(&pr);
}

/* remus-stop: the backup drops its copy, the primary runs on. */
Test(ha, stop_ends_protection_and_drops_the_copy)
{
	struct pair pr;
	struct hyp_dom_info di;

	pair_start(&pr, 50, 1000);
	wait_epochs(&pr, 3);
	ha_primary_request_stop(pr.p);
	pair_end(&pr);
	cr_assert_eq(pr.run_rc, 0, "%s", pr.perr);
	cr_assert_eq(pr.res.outcome, HA_BACKUP_STOPPED, "%s", pr.res.err);
	cr_assert_eq(stats(&pr).state, HA_STOPPED);
	cr_assert_eq(hyp_domain_info(pr.bh, 1, &di), -ENOENT, "the copy is still there");
	cr_assert_eq(hyp_domain_info(pr.ph, pr.pid, &di), 0);
	cr_assert_eq(di.state == HYP_DOM_PAUSED, false);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_free(&pr);
}

/* A controlled failover: a last epoch with the domain paused, then the
 * backup runs it from exactly there. */
Test(ha, handover_moves_the_domain_to_the_backup)
{
	struct pair pr;
	struct hyp_dom_info di;

	pair_start(&pr, 50, 1000);
	wait_epochs(&pr, 3);
	ha_primary_request_handover(pr.p);
	pair_end(&pr);
	cr_assert_eq(pr.run_rc, 0, "%s", pr.perr);
	cr_assert_eq(stats(&pr).state, HA_HANDED_OVER);
	cr_assert_eq(pr.res.outcome, HA_BACKUP_HANDED_OVER, "%s", pr.res.err);
	cr_assert_eq(hyp_domain_info(pr.ph, pr.pid, &di), 0);
	cr_assert_eq(di.state, HYP_DOM_PAUSED, "both copies run");
	expect_copy_verifies(&pr);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_free(&pr);
}

/* Short epochs go on at their rate, one in flight at a time, with the
 * figures remus-status shows. */
Test(ha, epochs_at_10_ms)
{
	struct pair pr;
	struct ha_stats st;

	pair_start(&pr, 10, 1000);
	usleep(1000 * 1000);
	st = stats(&pr);
	cr_log_info("10 ms: %.0f epochs/s, pause p50 %.2f p99 %.2f ms, %.0f bytes/epoch, output "
		    "delay p50 %.1f p99 %.1f ms, late %llu merged %llu",
		    st.epochs_per_s, st.pause_p50_ms, st.pause_p99_ms, st.bytes_per_epoch,
		    st.output_delay_p50_ms, st.output_delay_p99_ms, (unsigned long long)st.late,
		    (unsigned long long)st.merged);
	/* Loose: the two cores are shared with the guest's vCPU and both
	 * daemons' threads here; bench/remus prints the figures. */
	cr_assert_gt(st.epochs_per_s, 20);
	cr_assert_leq(st.epochs_sent, st.epochs_acked + 1);
	cr_assert_gt(st.pause_p50_ms, 0);
	cr_assert_gt(st.bytes_per_epoch, 0);
	ha_primary_request_stop(pr.p);
	pair_end(&pr);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_free(&pr);
}

/* A damaged epoch on the link: the backup refuses it and drops its copy
 * (the primary runs on, so that copy could only ever be older than what
 * the world sees); the primary says unprotected and its guest is clean. */
Test(ha, a_damaged_epoch_ends_the_pair_not_the_guest)
{
	struct pair pr;

	pair_start(&pr, 50, 1000);
	wait_epochs(&pr, 3);
	atomic_store(&pr.c.corrupt, true);
	cr_assert(wait_flag(&pr.backed, 10), "the backup took the damage");
	cr_assert_eq(pr.res.outcome, HA_BACKUP_BROKEN, "%s", pr.res.err);
	cr_assert(pr.res.err[0], "no reason given");
	cr_log_info("the backup: %s", pr.res.err);
	cr_assert(wait_flag(&pr.ran, 10));
	cr_assert_eq(stats(&pr).state, HA_UNPROTECTED);
	cr_assert(harness_wait_console(pr.ph, pr.pid, "verify: sweep", 3, 10));
	cr_assert_null(strstr(harness_console(pr.ph, pr.pid), "verify: mismatch"));
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_end(&pr);
	pair_free(&pr);
}

/* A backup without room for the copy: the sync fails with the backup's
 * reason and the guest runs on, its output released. */
Test(ha, a_backup_out_of_memory_refuses_and_the_guest_runs_on)
{
	struct pair pr;
	struct hyp_dom_info di;

	cr_assert_neq(pair_launch(&pr, 50, 1000, NULL, NULL, 32), 0, "a 64 MiB copy in 32 MiB");
	cr_log_info("the primary: %s; the backup: %s", pr.perr, pr.res.err);
	cr_assert(strstr(pr.perr, "the backup gave up") && strstr(pr.perr, "needs 64 MiB"),
		  "the primary does not say the backup's reason: %s", pr.perr);
	cr_assert(wait_flag(&pr.backed, 10));
	cr_assert_eq(pr.res.outcome, HA_BACKUP_BROKEN);
	cr_assert_eq(stats(&pr).state, HA_UNPROTECTED);
	cr_assert_eq(hyp_domain_info(pr.ph, pr.pid, &di), 0);
	cr_assert_neq(di.state, HYP_DOM_PAUSED);
	cr_assert(harness_wait_console(pr.ph, pr.pid, "verify: sweep", 3, 10));
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_end(&pr);
	pair_free(&pr);
}

static bool uncapped(const struct ha_stats *st)
{
	return st->throttle_pct == 100;
}

static bool capped(const struct ha_stats *st)
{
	return st->throttle_pct < 100;
}

static bool protected(const struct ha_stats *st)
{
	return st->state == HA_PROTECTED;
}

/* A guest that dirties more than the link carries: its epochs come late
 * and merge, and its CPU is capped until they fit (auto-converge), then
 * given back once the link is fast again. */
Test(ha, a_guest_that_outruns_the_link_is_throttled)
{
	struct pair pr;
	struct ha_stats st;

	pair_start(&pr, 50, 3000);
	wait_epochs(&pr, 3);
	atomic_store(&pr.c.kib_s, 512); /* the guest writes 2 MiB/s */
	st = stats_while(&pr, uncapped, 20);
	cr_assert_lt(st.throttle_pct, 100, "never throttled (late %llu, merged %llu)",
		     (unsigned long long)st.late, (unsigned long long)st.merged);
	cr_assert_gt(st.late, 0);
	cr_assert_eq(st.state, HA_PROTECTED);
	atomic_store(&pr.c.kib_s, 0);
	st = stats_while(&pr, capped, 30);
	cr_assert_eq(st.throttle_pct, 100, "the cap stayed at %u %%", st.throttle_pct);
	ha_primary_request_stop(pr.p);
	pair_end(&pr);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_free(&pr);
}

/* A slow link is not a dead peer: while an epoch takes seconds to cross it,
 * the backup's heartbeats wait in the primary's socket, and the backup hears
 * the epoch's bytes arrive. Neither side may call the other silent then
 * (the primary once judged the time it spent sending as silence). */
Test(ha, a_slow_link_is_not_a_dead_peer)
{
	struct pair pr;
	struct ha_stats st;

	pair_start(&pr, 50, 500);
	wait_epochs(&pr, 3);
	atomic_store(&pr.c.kib_s, 256); /* the guest writes 2 MiB/s: epochs of seconds */
	st = stats_while(&pr, protected, 6);
	cr_assert_eq(st.state, HA_PROTECTED, "the pair broke on a slow link: %s", pr.perr);
	cr_assert_gt(st.late, 0, "no epoch was late: the link was not slow");
	cr_assert(!atomic_load(&pr.backed), "the backup took over: %s", pr.res.err);
	atomic_store(&pr.c.kib_s, 0);
	wait_epochs(&pr, st.epochs_acked + 3);
	ha_primary_request_stop(pr.p);
	pair_end(&pr);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_free(&pr);
}

/* Heartbeat numbers in a console, in order; how many. */
static int heartbeats(const char *con, long *n, int max)
{
	int k = 0;

	for (const char *p = strstr(con, "idle: heartbeat n="); p && k < max;
	     p = strstr(p + 1, "idle: heartbeat n="))
		n[k++] = atol(p + strlen("idle: heartbeat n="));
	return k;
}

/* Output commit across a failover: everything the world saw before the
 * primary died is exactly the start of what the backup's copy shows (none
 * lost, none repeated), and its numbered lines go on without a gap. */
Test(ha, released_output_is_neither_lost_nor_repeated_by_a_failover)
{
	struct pair pr;
	char *seen, want[64];
	const char *con;
	long seen_n[64], n[64];
	int ks, k;

	pair_cmdline = "workload=idle";
	pair_start(&pr, 50, 400);
	cr_assert(harness_wait_console(pr.ph, pr.pid, "idle: heartbeat n=3", 1, 10));
	cr_assert_eq(hyp_domain_pause(pr.ph, pr.pid), 0);
	seen = strdup(harness_console(pr.ph, pr.pid));
	atomic_store(&pr.c.cut, true);
	cr_assert(wait_flag(&pr.backed, 5), "no failover");
	cr_assert_eq(pr.res.outcome, HA_BACKUP_FAILED_OVER, "%s", pr.res.err);
	ks = heartbeats(seen, seen_n, 64);
	cr_assert_geq(ks, 3);
	snprintf(want, sizeof(want), "idle: heartbeat n=%ld\n", seen_n[ks - 1] + 2);
	cr_assert(harness_wait_console(pr.bh, pr.res.domid, want, 1, 10), "console:\n%s",
		  harness_console(pr.bh, pr.res.domid));
	con = harness_console(pr.bh, pr.res.domid);
	cr_assert_eq(
		strncmp(con, seen, strlen(seen)), 0,
		"released output is not where the copy's console starts:\nseen:\n%s\ncopy:\n%s",
		seen, con);
	k = heartbeats(con, n, 64);
	for (int i = 0; i < k; i++)
		cr_assert_eq(n[i], i + 1, "heartbeat %d is n=%ld: a gap or a repeat:\n%s", i + 1,
			     n[i], con);
	free(seen);
	cr_assert_eq(hyp_domain_destroy(pr.ph, pr.pid), 0);
	pair_end(&pr);
	pair_free(&pr);
}
