// SPDX-License-Identifier: MIT
/*
 * Live migration in one process: hyp A runs a verify guest, mig_live_send
 * streams it over a socketpair to a thread restoring it into hyp B (as
 * NAME-copy, paused). The copy resumes with every page intact; a cancel
 * or a policy abort leaves the source running and nothing on B; the
 * throttle steps show in the progress reports.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/compiler.h"
#include "harness.h"
#include "hyp/gmem.h"
#include "migrate/precopy.h"
#include "restore/restore.h"

struct mig_case {
	const char *backend;
	bool codec_auto;
};

static const struct mig_case cases[] = {
	{ "soft", false },
	{ "soft", true },
	{ "kvm", false },
	{ "kvm", true },
};
static int case_ids[] = { 0, 1, 2, 3 };

struct rx {
	struct hyp *h;
	int fd;
	struct hyp_dom_config cfg; /* the source's */
	uint32_t domid;
	int err;
	char msg[512];
	struct rst_stats st;
	double done_at;
	pthread_t thread;
};

struct env {
	struct hyp *a, *b;
	uint32_t src;
	int sv[2];
	struct rx rx;
	/* progress */
	pthread_mutex_t lock;
	unsigned nprog, nthrottle;
	unsigned steps[16];
	unsigned last_round;
	double send_returned; /* when mig_live_send came back */
};

static int rx_config(void *opaque, const char *json, struct hyp_dom_config *cfg, char *err,
		     size_t errlen)
{
	struct rx *r = opaque;

	(void)json;
	(void)err;
	(void)errlen;
	*cfg = r->cfg;
	snprintf(cfg->name, sizeof(cfg->name), "%.50s-copy", r->cfg.name);
	return 0;
}

static void *rx_thread(void *arg)
{
	struct rx *r = arg;
	struct rst_opts o = { .paused = true, .config = rx_config, .opaque = r };
	struct strm_io *io;

	r->err = strm_io_fd(r->fd, false, &io);
	if (!r->err) {
		r->err = rst_restore_domain(r->h, io, &o, &r->domid, &r->st, r->msg,
					    sizeof(r->msg));
		strm_io_close(io);
	}
	r->done_at = ferry_now_s();
	return NULL;
}

static void on_progress(void *opaque, const struct mig_progress *p)
{
	struct env *e = opaque;

	pthread_mutex_lock(&e->lock);
	e->nprog++;
	e->last_round = p->round;
	if (!strcmp(p->phase, "throttle") && e->nthrottle < ARRAY_SIZE(e->steps))
		e->steps[e->nthrottle++] = p->throttle_pct;
	pthread_mutex_unlock(&e->lock);
	fprintf(stderr,
		"  progress %-13s round %2u: left %6llu, dirty %8.0f p/s, link %7.1f MB/s, "
		"predicted %8.2f ms, cap %u%%\n",
		p->phase, p->round, (unsigned long long)p->pages_left, p->dirty_rate,
		p->bandwidth / 1e6, p->predicted_downtime_ms, p->throttle_pct);
}

static void env_start(struct env *e, const struct mig_case *c, const char *cmdline)
{
	struct hyp_dom_config cfg = harness_cfg("mig", 128, cmdline);

	memset(e, 0, sizeof(*e));
	pthread_mutex_init(&e->lock, NULL);
	harness_need_backend(c->backend);
	e->a = harness_hyp(c->backend, 512);
	e->b = harness_hyp(c->backend, 512);
	snprintf(cfg.backend, sizeof(cfg.backend), "%s", c->backend);
	cr_assert_eq(hyp_domain_create(e->a, &cfg, false, &e->src), 0);
	cr_assert(harness_wait_console(e->a, e->src, "workload:", 1, 20),
		  "workload did not start; console:\n%s", harness_console(e->a, e->src));
	/* The first sweep: every working-set page has been written. */
	cr_assert(harness_wait_console(e->a, e->src, "verify: sweep", 1, 20),
		  "no sweep; console:\n%s", harness_console(e->a, e->src));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e->sv), 0);
	e->rx.h = e->b;
	e->rx.fd = e->sv[1];
	e->rx.cfg = cfg;
	cr_assert_eq(pthread_create(&e->rx.thread, NULL, rx_thread, &e->rx), 0);
}

/* Runs mig_live_send to completion, then ends the stream and waits for
 * the receiver. */
static int env_send(struct env *e, struct mig_live_opts *o, struct mig_report *rep,
		    char *err, size_t errlen)
{
	struct strm_io *io;
	int r;

	o->config_json = "{\"c_info\":{\"name\":\"mig\"}}";
	o->progress = on_progress;
	o->opaque = e;
	cr_assert_eq(strm_io_fd(e->sv[0], false, &io), 0);
	r = mig_live_send(e->a, e->src, io, o, rep, err, errlen);
	e->send_returned = ferry_now_s();
	strm_io_close(io);
	shutdown(e->sv[0], SHUT_WR);
	pthread_join(e->rx.thread, NULL);
	return r;
}

static void env_stop(struct env *e)
{
	close(e->sv[0]);
	close(e->sv[1]);
	hyp_destroy(e->a);
	hyp_destroy(e->b);
	pthread_mutex_destroy(&e->lock);
}

static bool running(struct hyp *h, uint32_t id)
{
	struct hyp_dom_info info;

	return !hyp_domain_info(h, id, &info) &&
	       (info.state == HYP_DOM_RUNNING || info.state == HYP_DOM_BLOCKED);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* The source keeps running and verifying: two more clean sweeps. */
static void expect_source_alive(struct env *e)
{
	int before = count(harness_console(e->a, e->src), "mismatches=0");

	cr_assert(running(e->a, e->src), "the source is not running");
	cr_assert(harness_wait_console(e->a, e->src, "mismatches=0", before + 2, 15),
		  "the source stopped sweeping; console:\n%s", harness_console(e->a, e->src));
	cr_assert_null(strstr(harness_console(e->a, e->src), "verify: mismatch "),
		       "%s", harness_console(e->a, e->src));
	cr_assert_eq(hyp_domain_list(e->b, (uint32_t[4]){ 0 }, 4), 0,
		     "the receiver left a domain behind");
}

/* Destroys the source, unpauses the copy and checks its memory. */
static void expect_copy_good(struct env *e, const struct mig_report *rep)
{
	double t_run;

	cr_assert_eq(e->rx.err, 0, "restore: %s", e->rx.msg);
	cr_assert_eq(hyp_domain_destroy(e->a, e->src), 0);
	cr_assert_eq(hyp_domain_unpause(e->b, e->rx.domid), 0);
	t_run = ferry_now_s();
	fprintf(stderr,
		"  rounds %u (+%llu pages paused), pages/round:", rep->rounds,
		(unsigned long long)rep->final_pages);
	for (unsigned i = 0; i < rep->rounds && i < 12; i++)
		fprintf(stderr, " %llu", (unsigned long long)rep->pages_per_round[i]);
	fprintf(stderr,
		"\n  %.1f MB in %.2f s, zero pages %llu, state %.2f ms, frames %llu (raw %llu)\n"
		"  downtime predicted %.2f ms, actual (pause to copy unpaused) %.2f ms "
		"(stream end at %.2f ms), min cap %u%%: %s\n",
		(double)rep->bytes_sent / 1e6, rep->total_s, (unsigned long long)rep->zero_pages,
		rep->state_cost_ms, (unsigned long long)rep->frames,
		(unsigned long long)rep->frames_raw, rep->predicted_downtime_ms,
		(t_run - rep->pause_at) * 1e3, (e->rx.done_at - rep->pause_at) * 1e3,
		rep->throttle_pct, rep->decision);
	if (!harness_wait_console(e->b, e->rx.domid, "verify: resume pages=8192 mismatches=0", 1,
				  20)) {
		struct hyp_dom_info info = { 0 };

		hyp_domain_info(e->b, e->rx.domid, &info);
		cr_assert_fail("%s: the copy did not resume (state %d, cpu %.2f s, cap %u); "
			       "copy console:\n%s",
			       info.backend, info.state, info.cpu_time_s, info.cap,
			       harness_console(e->b, e->rx.domid));
	}
	cr_assert_null(strstr(harness_console(e->b, e->rx.domid), "verify: mismatch "));
}

ParameterizedTestParameters(migrate, live)
{
	return cr_make_param_array(int, case_ids, ARRAY_SIZE(case_ids));
}

ParameterizedTest(int *ci, migrate, live, .timeout = 120)
{
	const struct mig_case *c = &cases[*ci];
	struct mig_live_opts o = { .codec_auto = c->codec_auto };
	struct mig_report rep;
	char err[256];
	struct env e;

	fprintf(stderr, "live %s%s:\n", c->backend, c->codec_auto ? " (auto codec)" : "");
	env_start(&e, c, "workload=verify ws=32M rate=20M");
	cr_assert_eq(env_send(&e, &o, &rep, err, sizeof(err)), 0, "%s", err);
	cr_assert_geq(rep.rounds, 2);
	cr_assert_gt(rep.pause_at, 0);
	cr_assert_eq(rep.throttle_pct, 100);
	/* Round 0 carries the working set (8192 pages), less the few the
	 * writer may not have reached yet: never written, they are zero and
	 * elided. The copy's contents are checked below. */
	cr_assert_geq(rep.pages_per_round[0], 8192 * 9 / 10, "round 0 sent %llu pages",
		      (unsigned long long)rep.pages_per_round[0]);
	cr_assert_geq(rep.bytes_sent, rep.pages_per_round[0] * 4096);
	expect_copy_good(&e, &rep);
	env_stop(&e);
}

#define JUNK 0xa5a5a5a5a5a5a5a5ull

/* A domain that filled most of h's pool with JUNK, then went away: its
 * frames are the ones the next restore gets (kept warm, see hyp/mem.c). */
static void leave_junk(struct hyp *h, uint64_t mb)
{
	struct hyp_dom_config cfg = harness_cfg("junk", mb, "workload=idle");
	static uint64_t page[512];
	struct hyp_domain *d;
	uint32_t id;

	for (unsigned i = 0; i < 512; i++)
		page[i] = JUNK;
	cr_assert_eq(hyp_domain_create(h, &cfg, true, &id), 0);
	cr_assert_eq(hyp_domain_get(h, id, &d), 0);
	for (uint64_t gpa = 0; gpa < mb << 20; gpa += sizeof(page))
		cr_assert_eq(hyp_gmem_write(d, gpa, page, sizeof(page)), 0);
	hyp_domain_put(d);
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
}

/* Pages of domain id on h that still hold JUNK. */
static uint64_t junk_pages(struct hyp *h, uint32_t id)
{
	struct hyp_domain *d;
	struct hyp_gmem gm;
	uint64_t n = 0, w;

	cr_assert_eq(hyp_domain_get(h, id, &d), 0);
	hyp_domain_gmem(d, &gm);
	for (uint64_t pfn = 0; pfn < gm.npages; pfn++) {
		cr_assert_eq(hyp_gmem_read(d, pfn << 12, &w, sizeof(w)), 0);
		n += w == JUNK;
	}
	hyp_domain_put(d);
	return n;
}

ParameterizedTestParameters(migrate, stale_frames)
{
	static int ids[] = { 0, 2 }; /* soft and kvm, no codec */

	return cr_make_param_array(int, ids, ARRAY_SIZE(ids));
}

/* A restore into frames another domain left must show none of its data:
 * the pages the stream does not carry (zeros at the source: 96 of the 128
 * MiB here) read as zeros. So must a domain created afterwards. */
ParameterizedTest(int *ci, migrate, stale_frames, .timeout = 120)
{
	const struct mig_case *c = &cases[*ci];
	struct hyp_dom_config cfg;
	struct mig_live_opts o = { 0 };
	struct mig_report rep;
	char err[256];
	struct env e;
	uint32_t id;

	env_start(&e, c, "workload=verify ws=32M rate=20M");
	leave_junk(e.b, 448);
	cr_assert_eq(env_send(&e, &o, &rep, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(e.rx.err, 0, "restore: %s", e.rx.msg);
	cr_expect_eq(junk_pages(e.b, e.rx.domid), 0, "the restored domain shows old frames");
	expect_copy_good(&e, &rep);

	cr_assert_eq(hyp_domain_destroy(e.b, e.rx.domid), 0);
	leave_junk(e.b, 448);
	cfg = harness_cfg("fresh", 448, "workload=idle");
	snprintf(cfg.backend, sizeof(cfg.backend), "%s", c->backend);
	cr_assert_eq(hyp_domain_create(e.b, &cfg, true, &id), 0);
	cr_expect_eq(junk_pages(e.b, id), 0, "a new domain shows old frames");
	cr_assert_eq(hyp_domain_destroy(e.b, id), 0);
	env_stop(&e);
}

struct canceller {
	volatile int flag;
	double after_s;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;

	usleep((useconds_t)(c->after_s * 1e6));
	__atomic_store_n(&c->flag, 1, __ATOMIC_RELEASE);
	return NULL;
}

ParameterizedTestParameters(migrate, cancel)
{
	return cr_make_param_array(int, case_ids, ARRAY_SIZE(case_ids));
}

/* Paced at 10 MB/s, round 0 takes over 3 s: cancel inside it, and expect
 * the return well before the round would have ended (with room for a
 * loaded sanitizer build). */
ParameterizedTest(int *ci, migrate, cancel, .timeout = 120)
{
	const struct mig_case *c = &cases[*ci];
	struct canceller cn = { .after_s = 0.3 };
	struct mig_live_opts o = { .codec_auto = c->codec_auto, .bandwidth = 10000000,
				   .cancel = &cn.flag };
	struct mig_report rep;
	char err[256];
	struct env e;
	pthread_t t;
	double t0;

	env_start(&e, c, "workload=verify ws=32M rate=20M");
	cr_assert_eq(pthread_create(&t, NULL, cancel_later, &cn), 0);
	t0 = ferry_now_s();
	cr_assert_eq(env_send(&e, &o, &rep, err, sizeof(err)), -ECANCELED, "%s", err);
	pthread_join(t, NULL);
	fprintf(stderr, "cancel %s: returned after %.2f s, %.1f MB sent; receiver: %s\n",
		c->backend, e.send_returned - t0, (double)rep.bytes_sent / 1e6, e.rx.msg);
	cr_assert_lt(e.send_returned - t0, 1.5, "the cancel took too long");
	cr_assert_neq(e.rx.err, 0, "the receiver restored a cancelled stream");
	expect_source_alive(&e);
	env_stop(&e);
}

ParameterizedTestParameters(migrate, throttle)
{
	return cr_make_param_array(int, case_ids, ARRAY_SIZE(case_ids));
}

/* A guest dirtying 200 MB/s over a link paced to 100 MB/s, against a 1 ms
 * target: stepwise caps until it converges or the switch is forced; the
 * copy is intact and the source's cap is gone. */
ParameterizedTest(int *ci, migrate, throttle, .timeout = 180)
{
	const struct mig_case *c = &cases[*ci];
	struct mig_live_opts o = { .codec_auto = c->codec_auto, .downtime_ms = 1,
				   .no_converge = MIG_NC_THROTTLE, .bandwidth = 100000000 };
	struct hyp_dom_info info;
	struct mig_report rep;
	char err[256];
	struct env e;

	fprintf(stderr, "throttle %s%s:\n", c->backend, c->codec_auto ? " (auto codec)" : "");
	env_start(&e, c, "workload=verify ws=32M rate=200M");
	cr_assert_eq(env_send(&e, &o, &rep, err, sizeof(err)), 0, "%s", err);
	cr_assert_geq(e.nthrottle, 1, "no throttle step reported");
	cr_assert_eq(e.steps[0], 80);
	for (unsigned i = 1; i < e.nthrottle; i++)
		cr_assert_lt(e.steps[i], e.steps[i - 1]);
	cr_assert_eq(rep.throttle_pct, e.steps[e.nthrottle - 1]);
	cr_assert_eq(hyp_domain_info(e.a, e.src, &info), 0);
	cr_assert_eq(info.cap, 0, "the cap stayed on the source");
	expect_copy_good(&e, &rep);
	env_stop(&e);
}

ParameterizedTestParameters(migrate, throttle_abort)
{
	return cr_make_param_array(int, case_ids, ARRAY_SIZE(case_ids));
}

/* The link (40 MB/s) is far slower than the guest's dirtying even when a
 * sanitizer build under load slows the guest: each round finds nearly every
 * page dirty again, so the policy aborts. */
ParameterizedTest(int *ci, migrate, throttle_abort, .timeout = 120)
{
	const struct mig_case *c = &cases[*ci];
	struct mig_live_opts o = { .codec_auto = c->codec_auto, .downtime_ms = 1,
				   .no_converge = MIG_NC_ABORT, .bandwidth = 40000000 };
	struct mig_report rep;
	char err[256];
	struct env e;

	env_start(&e, c, "workload=verify ws=32M rate=200M");
	cr_assert_eq(env_send(&e, &o, &rep, err, sizeof(err)), -ETIMEDOUT, "%s", err);
	fprintf(stderr, "abort %s: %s after %u rounds\n", c->backend, err, rep.rounds);
	cr_assert_eq(e.nthrottle, 0);
	cr_assert_eq(rep.pause_at, 0);
	cr_assert_neq(e.rx.err, 0);
	expect_source_alive(&e);
	env_stop(&e);
}
