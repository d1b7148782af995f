// SPDX-License-Identifier: MIT
/*
 * Replication pairs (ha/ha.h) in one process: a primary and a backup on
 * two soft hypervisors, joined by a "cable" (a relay thread between two
 * socketpairs, the network the test can cut or stall: the only thing
 * mocked). Every failover ends with the verify guest's resume check.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "ha/ha.h"
#include "harness.h"

#define MEM_MB	     64
#define VERIFY	     "workload=verify ws=4M rate=2M"
#define VERIFY_PAGES "pages=1024"

/* ---- the cable --------------------------------------------------------- */

struct cable {
	int p_end, b_end; /* what the primary and the backup hold */
	int p_relay, b_relay;
	atomic_bool cut;    /* drop everything, both ways (a partition) */
	atomic_bool hold_b; /* keep what the backup sends (acks withheld) */
	atomic_bool stop;
	pthread_t t;
	uint8_t held[1 << 16];
	size_t nheld;
};

static void *relay(void *arg)
{
	struct cable *c = arg;
	uint8_t buf[1 << 16];

	while (!atomic_load(&c->stop)) {
		struct pollfd pf[2] = {{c->p_relay, POLLIN, 0}, {c->b_relay, POLLIN, 0}};

		if (!atomic_load(&c->hold_b) && c->nheld) {
			cr_assert_eq(write(c->p_relay, c->held, c->nheld), (ssize_t)c->nheld);
			c->nheld = 0;
		}
		if (poll(pf, 2, 10) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pf[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				/* One side hung up: so does the other's end. */
				shutdown(i ? c->p_relay : c->b_relay, SHUT_RDWR);
				atomic_store(&c->stop, true);
				break;
			}
			if (atomic_load(&c->cut))
				continue;
			if (i == 1 && atomic_load(&c->hold_b)) {
				cr_assert_leq(c->nheld + (size_t)n, sizeof(c->held));
				memcpy(c->held + c->nheld, buf, (size_t)n);
				c->nheld += (size_t)n;
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(i ? c->p_relay : c->b_relay, buf + off,
						  (size_t)(n - off));

				if (w <= 0)
					break;
				off += w;
			}
		}
	}
	return NULL;
}

static void cable_new(struct cable *c)
{
	int a[2], b[2];

	memset(c, 0, sizeof(*c));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	c->p_end = a[0];
	c->p_relay = a[1];
	c->b_end = b[0];
	c->b_relay = b[1];
	cr_assert_eq(pthread_create(&c->t, NULL, relay, c), 0);
}

static void cable_free(struct cable *c)
{
	atomic_store(&c->stop, true);
	pthread_join(c->t, NULL);
	close(c->p_relay);
	close(c->b_relay);
}

/* ---- the pair ----------------------------------------------------------- */

struct pair {
	struct hyp *ph, *bh;
	uint32_t pid; /* the protected domain on ph */
	struct cable c;
	struct strm_io *plink, *blink;
	struct ha_primary *p;
	struct ha_primary_opts po;
	char perr[512];
	int sync_rc, run_rc;
	atomic_bool synced, ran;
	pthread_t pt, bt;
	struct ha_backup_opts bo;
	struct ha_backup_result res;
	atomic_bool backed;
	struct strm_cancel *bcancel;
	atomic_int events[5];
};

static int backup_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
			 size_t errlen)
{
	(void)opaque;
	(void)json;
	(void)err;
	(void)errlen;
	*cfg = harness_cfg("vm--backup", MEM_MB, VERIFY);
	snprintf(cfg->backend, sizeof(cfg->backend), "soft");
	return 0;
}

static void on_event(void *opaque, enum ha_state st, const char *why)
{
	struct pair *pr = opaque;

	(void)why;
	atomic_fetch_add(&pr->events[st], 1);
}

static void *primary_thread(void *arg)
{
	struct pair *pr = arg;

	pr->sync_rc = ha_primary_sync(pr->p);
	atomic_store(&pr->synced, true);
	if (!pr->sync_rc)
		pr->run_rc = ha_primary_run(pr->p);
	atomic_store(&pr->ran, true);
	return NULL;
}

static void *backup_thread(void *arg)
{
	struct pair *pr = arg;

	ha_backup_run(pr->bh, pr->blink, &pr->bo, &pr->res);
	atomic_store(&pr->backed, true);
	return NULL;
}

static bool wait_flag(atomic_bool *f, double s)
{
	double end = ferry_now_s() + s;

	while (!atomic_load(f) && ferry_now_s() < end)
		usleep(5000);
	return atomic_load(f);
}

static struct ha_stats stats(struct pair *pr)
{
	struct ha_stats st;

	ha_primary_stats(pr->p, &st);
	return st;
}

/* Protects a running verify guest; returns once epoch 1 is acknowledged. */
static void pair_start(struct pair *pr, unsigned interval_ms, unsigned timeout_ms)
{
	struct hyp_dom_config cfg = harness_cfg("vm", MEM_MB, VERIFY);

	signal(SIGPIPE, SIG_IGN);
	memset(pr, 0, sizeof(*pr));
	pr->ph = harness_hyp("soft", 128);
	pr->bh = harness_hyp("soft", 128);
	cr_assert_eq(hyp_domain_create(pr->ph, &cfg, false, &pr->pid), 0);
	cr_assert(harness_wait_console(pr->ph, pr->pid, "verify: sweep", 1, 20));
	cable_new(&pr->c);
	cr_assert_eq(strm_cancel_new(&pr->bcancel), 0);
	cr_assert_eq(strm_io_fd(pr->c.p_end, true, &pr->plink), 0);
	cr_assert_eq(strm_io_fd(pr->c.b_end, true, &pr->blink), 0);
	pr->po = (struct ha_primary_opts){.interval_ms = interval_ms,
					  .timeout_ms = timeout_ms,
					  .codec = STRM_CODEC_LZ4,
					  .config_json = "{}",
					  .event = on_event,
					  .opaque = pr};
	pr->bo = (struct ha_backup_opts){
		.timeout_ms = timeout_ms, .config = backup_config, .cancel = pr->bcancel};
	cr_assert_eq(ha_primary_new(pr->ph, pr->pid, pr->plink, &pr->po, pr->perr, sizeof(pr->perr),
				    &pr->p),
		     0, "%s", pr->perr);
	cr_assert_eq(pthread_create(&pr->bt, NULL, backup_thread, pr), 0);
	cr_assert_eq(pthread_create(&pr->pt, NULL, primary_thread, pr), 0);
	cr_assert(wait_flag(&pr->synced, 30), "the initial sync did not end");
	cr_assert_eq(pr->sync_rc, 0, "%s", pr->perr);
	cr_assert_eq(stats(pr).state, HA_PROTECTED);
}

static void wait_epochs(struct pair *pr, uint64_t n)
{
	double end = ferry_now_s() + 20;

	while (stats(pr).epochs_acked < n && ferry_now_s() < end)
		usleep(10000);
	cr_assert_geq(stats(pr).epochs_acked, n, "%s", pr->perr);
}

static void pair_end(struct pair *pr)
{
	cr_assert(wait_flag(&pr->ran, 20), "the primary did not stop");
	cr_assert(wait_flag(&pr->backed, 20), "the backup did not stop");
	pthread_join(pr->pt, NULL);
	pthread_join(pr->bt, NULL);
	ha_primary_free(pr->p);
	strm_io_close(pr->plink);
	strm_io_close(pr->blink);
	cable_free(&pr->c);
	strm_cancel_free(pr->bcancel);
}

static void pair_free(struct pair *pr)
{
	hyp_destroy(pr->ph);
	hyp_destroy(pr->bh);
}

/* The backup's copy runs and the guest finds every page it wrote. */
static void expect_copy_verifies(struct pair *pr)
{
	const char *con;

	cr_assert(harness_wait_console(pr->bh, pr->res.domid, "verify: resume", 1, 20),
		  "console:\n%s", harness_console(pr->bh, pr->res.domid));
	con = harness_console(pr->bh, pr->res.domid);
	cr_assert(strstr(con, "verify: resume " VERIFY_PAGES " mismatches=0\n"), "console:\n%s",
		  con);
	cr_assert_null(strstr(con, "verify: mismatch"), "console:\n%s", con);
}

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
