/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the HA suite (header-only): a primary and a backup on two
 * soft hypervisors, joined by a "cable" (a relay thread between two
 * socketpairs, the network the test can cut or stall: the only thing
 * mocked), a verify guest, and the pair's threads.
 */
#ifndef TESTS_HA_PAIR_H
#define TESTS_HA_PAIR_H

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

/* The guest both sides run; a test may set it before pair_start. */
static const char *pair_cmdline = VERIFY;

/* ---- the cable --------------------------------------------------------- */

struct cable {
	int p_end, b_end; /* what the primary and the backup hold */
	int p_relay, b_relay;
	atomic_bool cut;     /* drop everything, both ways (a partition) */
	atomic_bool hold_b;  /* keep what the backup sends (acks withheld) */
	atomic_bool corrupt; /* flip a byte of the next chunk to the backup */
	atomic_uint kib_s;   /* 0, or the rate towards the backup (a slow link) */
	atomic_bool stop;
	pthread_t t[2];
	uint8_t held[1 << 16];
	size_t nheld;
};

struct cable_dir {
	struct cable *c;
	int dir; /* 0: primary to backup, 1: backup to primary */
};

/* One direction on a thread of its own, so that a side that stops reading
 * blocks only what goes to it, as on a real network. */
static inline void *relay(void *arg)
{
	struct cable_dir *cd = arg;
	struct cable *c = cd->c;
	int in = cd->dir ? c->b_relay : c->p_relay, out = cd->dir ? c->p_relay : c->b_relay;
	uint8_t buf[1 << 16];

	while (!atomic_load(&c->stop)) {
		struct pollfd pf = {in, POLLIN, 0};
		ssize_t n;

		if (cd->dir && !atomic_load(&c->hold_b) && c->nheld) {
			cr_assert_eq(write(out, c->held, c->nheld), (ssize_t)c->nheld);
			c->nheld = 0;
		}
		if (poll(&pf, 1, 10) <= 0)
			continue;
		n = read(in, buf, sizeof(buf));
		if (n <= 0) {
			/* One side hung up: so does the other's end. */
			shutdown(out, SHUT_RDWR);
			break;
		}
		if (atomic_load(&c->cut))
			continue;
		if (!cd->dir && n > 64 && atomic_exchange(&c->corrupt, false))
			buf[n / 2] ^= 0x5a;
		if (cd->dir && atomic_load(&c->hold_b)) {
			cr_assert_leq(c->nheld + (size_t)n, sizeof(c->held));
			memcpy(c->held + c->nheld, buf, (size_t)n);
			c->nheld += (size_t)n;
			continue;
		}
		if (!cd->dir && atomic_load(&c->kib_s))
			usleep((useconds_t)((uint64_t)n * 1000000 / 1024 / atomic_load(&c->kib_s)));
		for (ssize_t off = 0; off < n && !atomic_load(&c->stop);) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w <= 0)
				break;
			off += w;
		}
	}
	free(cd);
	return NULL;
}

static inline void cable_new(struct cable *c)
{
	int a[2], b[2];

	memset(c, 0, sizeof(*c));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	c->p_end = a[0];
	c->p_relay = a[1];
	c->b_end = b[0];
	c->b_relay = b[1];
	for (int d = 0; d < 2; d++) {
		struct cable_dir *cd = malloc(sizeof(*cd));

		cr_assert(cd);
		*cd = (struct cable_dir){c, d};
		cr_assert_eq(pthread_create(&c->t[d], NULL, relay, cd), 0);
	}
}

static inline void cable_free(struct cable *c)
{
	atomic_store(&c->stop, true);
	/* A direction blocked writing to a side that stopped reading. */
	shutdown(c->p_relay, SHUT_RDWR);
	shutdown(c->b_relay, SHUT_RDWR);
	pthread_join(c->t[0], NULL);
	pthread_join(c->t[1], NULL);
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
	atomic_int events[6];
	double fenced_at;      /* the first HA_FENCED event */
	struct ha_stats final; /* the primary's last figures, after pair_end */
};

static inline int backup_config(void *opaque, const char *json, struct hyp_dom_config *cfg,
				char *err, size_t errlen)
{
	(void)opaque;
	(void)json;
	(void)err;
	(void)errlen;
	*cfg = harness_cfg("vm--backup", MEM_MB, pair_cmdline);
	snprintf(cfg->backend, sizeof(cfg->backend), "soft");
	return 0;
}

static inline void on_event(void *opaque, enum ha_state st, const char *why)
{
	struct pair *pr = opaque;

	(void)why;
	if (st == HA_FENCED && !pr->fenced_at)
		pr->fenced_at = ferry_now_s();
	atomic_fetch_add(&pr->events[st], 1);
}

static inline void *primary_thread(void *arg)
{
	struct pair *pr = arg;

	pr->sync_rc = ha_primary_sync(pr->p);
	atomic_store(&pr->synced, true);
	if (!pr->sync_rc)
		pr->run_rc = ha_primary_run(pr->p);
	atomic_store(&pr->ran, true);
	return NULL;
}

static inline void *backup_thread(void *arg)
{
	struct pair *pr = arg;

	ha_backup_run(pr->bh, pr->blink, &pr->bo, &pr->res);
	atomic_store(&pr->backed, true);
	return NULL;
}

static inline bool wait_flag(atomic_bool *f, double s)
{
	double end = ferry_now_s() + s;

	while (!atomic_load(f) && ferry_now_s() < end)
		usleep(5000);
	return atomic_load(f);
}

static inline struct ha_stats stats(struct pair *pr)
{
	struct ha_stats st;

	if (!pr->p)
		return pr->final;
	ha_primary_stats(pr->p, &st);
	return st;
}

/* Samples the primary's figures every 100 ms while still(st) holds, for at
 * most s seconds; the last sample. */
static inline struct ha_stats stats_while(struct pair *pr, bool (*still)(const struct ha_stats *),
					  double s)
{
	double end = ferry_now_s() + s;
	struct ha_stats st;

	do {
		usleep(100 * 1000);
		st = stats(pr);
	} while (still(&st) && ferry_now_s() < end);
	return st;
}

/* Starts protecting a running verify guest (the backup's pool backup_mb);
 * returns the initial sync's result. */
static inline int pair_launch(struct pair *pr, unsigned interval_ms, unsigned timeout_ms,
			      const char *p_witness, const char *b_witness, uint64_t backup_mb)
{
	struct hyp_dom_config cfg = harness_cfg("vm", MEM_MB, pair_cmdline);

	signal(SIGPIPE, SIG_IGN);
	memset(pr, 0, sizeof(*pr));
	pr->ph = harness_hyp("soft", 128);
	pr->bh = harness_hyp("soft", backup_mb);
	cr_assert_eq(hyp_domain_create(pr->ph, &cfg, false, &pr->pid), 0);
	cr_assert(harness_wait_console(
		pr->ph, pr->pid, strstr(pair_cmdline, "verify") ? "verify: sweep" : "workload:", 1,
		20));
	cable_new(&pr->c);
	cr_assert_eq(strm_cancel_new(&pr->bcancel), 0);
	cr_assert_eq(strm_io_fd(pr->c.p_end, true, &pr->plink), 0);
	cr_assert_eq(strm_io_fd(pr->c.b_end, true, &pr->blink), 0);
	pr->po = (struct ha_primary_opts){.interval_ms = interval_ms,
					  .timeout_ms = timeout_ms,
					  .codec = STRM_CODEC_LZ4,
					  .config_json = "{}",
					  .event = on_event,
					  .opaque = pr,
					  .witness_url = p_witness,
					  .witness_pair = "test-pair",
					  .witness_me = "primary"};
	pr->bo = (struct ha_backup_opts){.timeout_ms = timeout_ms,
					 .config = backup_config,
					 .cancel = pr->bcancel,
					 .witness_url = b_witness,
					 .witness_pair = "test-pair",
					 .witness_me = "backup"};
	cr_assert_eq(ha_primary_new(pr->ph, pr->pid, pr->plink, &pr->po, pr->perr, sizeof(pr->perr),
				    &pr->p),
		     0, "%s", pr->perr);
	cr_assert_eq(pthread_create(&pr->bt, NULL, backup_thread, pr), 0);
	cr_assert_eq(pthread_create(&pr->pt, NULL, primary_thread, pr), 0);
	cr_assert(wait_flag(&pr->synced, 30), "the initial sync did not end");
	return pr->sync_rc;
}

/* The same with a witness on each side (NULL: none); asserts protection. */
static inline void pair_start_witness(struct pair *pr, unsigned interval_ms, unsigned timeout_ms,
				      const char *p_witness, const char *b_witness)
{
	cr_assert_eq(pair_launch(pr, interval_ms, timeout_ms, p_witness, b_witness, 128), 0, "%s",
		     pr->perr);
	cr_assert_eq(stats(pr).state, HA_PROTECTED);
}

static inline void pair_start(struct pair *pr, unsigned interval_ms, unsigned timeout_ms)
{
	pair_start_witness(pr, interval_ms, timeout_ms, NULL, NULL);
}

static inline void wait_epochs(struct pair *pr, uint64_t n)
{
	double end = ferry_now_s() + 20;

	while (stats(pr).epochs_acked < n && ferry_now_s() < end)
		usleep(10000);
	cr_assert_geq(stats(pr).epochs_acked, n, "%s", pr->perr);
}

static inline void pair_end(struct pair *pr)
{
	cr_assert(wait_flag(&pr->ran, 20), "the primary did not stop");
	cr_assert(wait_flag(&pr->backed, 20), "the backup did not stop");
	pthread_join(pr->pt, NULL);
	pthread_join(pr->bt, NULL);
	ha_primary_stats(pr->p, &pr->final);
	ha_primary_free(pr->p);
	pr->p = NULL;
	strm_io_close(pr->plink);
	strm_io_close(pr->blink);
	cable_free(&pr->c);
	strm_cancel_free(pr->bcancel);
}

static inline void pair_free(struct pair *pr)
{
	hyp_destroy(pr->ph);
	hyp_destroy(pr->bh);
}

/* The backup's copy runs and the guest finds every page it wrote. */
static inline void expect_copy_verifies(struct pair *pr)
{
	const char *con;

	cr_assert(harness_wait_console(pr->bh, pr->res.domid, "verify: resume", 1, 20),
		  "console:\n%s", harness_console(pr->bh, pr->res.domid));
	con = harness_console(pr->bh, pr->res.domid);
	cr_assert(strstr(con, "verify: resume " VERIFY_PAGES " mismatches=0\n"), "console:\n%s",
		  con);
	cr_assert_null(strstr(con, "verify: mismatch"), "console:\n%s", con);
}

#endif
