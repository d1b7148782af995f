// SPDX-License-Identifier: MIT
/*
 * ferryd's job framework (ferryd/ctl-jobs.c) on a real libuv loop:
 * jobs on their own threads (more blocked jobs than libuv's pool has
 * threads starve nothing), cancel of a blocked wait, the point of no
 * return, a client going away, the loop queue's order, and SIGTERM's
 * bounded stop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* uv.h's sys/param.h has its own (Criterion's include path makes it warn). */
#undef MIN
#undef MAX
#include "internal.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

/* ctl-server.c's, which the framework calls when a job's client is done. */
static int released;
void ctl__client_release(struct ctl_client *cl)
{
	released++;
}

/* ctl-ops.c's and ctl-server.c's, for ctl__job_reply (which ferryd's
 * integration scripts test). */
void ctl__reply_error(struct ctl_client *cl, long long id, bool has_id, int err,
		      const char *fmt, ...)
{
}

void ctl__send(struct ctl_client *cl, char *buf, size_t len)
{
	free(buf);
}

struct tjob {
	struct ctl_job job;
	int wait_rc; /* what the blocked wait returned */
	bool ignore; /* block without looking at the token */
	bool no_return;
	int nr_rc;
	int *done_count;
	int order; /* the done order */
};

static int done_seq;

static void blocked_run(struct ctl_job *job)
{
	struct tjob *t = container_of(job, struct tjob, job);

	if (t->no_return)
		t->nr_rc = ctl__job_no_return(job);
	if (t->ignore) {
		sleep(30); /* blocked in something no token reaches */
		return;
	}
	/* As a stream read blocked on a silent peer waits. */
	t->wait_rc = strm_wait_fd(-1, POLLIN, job->cancel, 20000);
}

static void quick_run(struct ctl_job *job)
{
	struct tjob *t = container_of(job, struct tjob, job);

	t->wait_rc = 0;
}

static void tdone(struct ctl_job *job)
{
	struct tjob *t = container_of(job, struct tjob, job);

	t->order = ++done_seq;
	(*t->done_count)++;
}

static struct ctl_server srv;
static uv_loop_t loop;

static void setup(void)
{
	memset(&srv, 0, sizeof(srv));
	cr_assert_eq(uv_loop_init(&loop), 0);
	srv.loop = &loop;
	cr_assert_eq(ctl_jobs_start(&srv), 0);
	done_seq = 0;
	released = 0;
}

static void teardown(void)
{
	if (!ctl_jobs_abandoned(&srv))
		ctl_jobs_fini(&srv);
}

static void start(struct tjob *t, struct ctl_client *cl, void (*run)(struct ctl_job *),
		  int *done_count)
{
	t->job.cl = cl;
	t->job.what = "test job";
	t->job.run = run;
	t->job.done = tdone;
	t->done_count = done_count;
	cr_assert_eq(ctl__job_start(&srv, &t->job), 0);
}

/* Runs the loop until *count reaches n or ms pass; the time taken. */
static double run_until(int *count, int n, int ms)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (*count >= n ||
		    (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 > ms)
			break;
		uv_run(&loop, UV_RUN_NOWAIT);
		usleep(2000);
	}
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

TestSuite(ctl_jobs, .init = setup, .fini = teardown, .timeout = 60);

Test(ctl_jobs, blocked_jobs_starve_nothing_and_cancel_ends_a_blocked_wait)
{
	struct tjob blocked[6] = {0}, quick = {0};
	int nblocked = 0, nquick = 0;

	/* More blocked jobs than libuv's pool has threads (4). */
	for (int i = 0; i < 6; i++)
		start(&blocked[i], NULL, blocked_run, &nblocked);
	start(&quick, NULL, quick_run, &nquick);
	run_until(&nquick, 1, 3000);
	cr_assert_eq(nquick, 1, "a quick job waits behind blocked ones");
	cr_assert_eq(nblocked, 0);
	cr_assert_eq(ctl__job_cancel(&blocked[2].job), 0);
	cr_assert_lt(run_until(&nblocked, 1, 3000), 1.0, "cancel did not end the wait at once");
	cr_assert_eq(nblocked, 1);
	cr_assert_eq(blocked[2].wait_rc, -ECANCELED);
	for (int i = 0; i < 6; i++)
		ctl__job_cancel(&blocked[i].job);
	run_until(&nblocked, 6, 3000);
	cr_assert_eq(nblocked, 6);
}

Test(ctl_jobs, no_return_refuses_cancel_and_client_gone_cancels_the_rest)
{
	struct ctl_client cl = {.srv = &srv};
	struct tjob a = {.no_return = true}, b = {0}, other = {0};
	int n = 0;

	start(&a, &cl, blocked_run, &n);
	start(&b, &cl, blocked_run, &n);
	start(&other, NULL, blocked_run, &n);
	cr_assert_eq(cl.busy, 2);
	run_until(&n, 99, 200); /* a reaches its point of no return */
	cr_assert_eq(a.nr_rc, 0);
	cr_assert_eq(ctl__job_cancel(&a.job), -EBUSY);
	ctl__jobs_client_gone(&cl);
	run_until(&n, 1, 3000);
	cr_assert_eq(n, 1, "only the client's cancellable job ends");
	cr_assert_eq(b.wait_rc, -ECANCELED);
	cr_assert_eq(released, 1, "the client is released after each of its jobs");
	cr_assert(!ctl__job_cancelled(&a.job));
	/* Cancel-all: everything stops waiting, past no return too. */
	ctl_jobs_cancel_all(&srv);
	cr_assert_lt(run_until(&n, 3, 5000), 1.0);
	cr_assert_eq(n, 3);
	cr_assert_eq(a.wait_rc, -ECANCELED);
	ctl_jobs_stop(&srv);
	cr_assert_eq(cl.busy, 0);
	cr_assert(!ctl_jobs_abandoned(&srv));
	/* Stopped: the loop has nothing left and new jobs are refused. */
	cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	other.job.run = quick_run;
	cr_assert_eq(ctl__job_start(&srv, &other.job), -ESHUTDOWN);
}

struct line {
	struct ctl_call call;
	int *log, *nlog, v;
};

static void line_fn(struct ctl_call *c)
{
	struct line *l = container_of(c, struct line, call);

	l->log[(*l->nlog)++] = l->v;
}

static int order_log[8], norder;
static struct line lines[3];

static void posting_run(struct ctl_job *job)
{
	for (int i = 0; i < 3; i++) {
		lines[i] = (struct line){
			.call.fn = line_fn, .log = order_log, .nlog = &norder, .v = i + 1};
		cr_assert_eq(ctl__loop_call(job->srv, &lines[i].call), 0);
	}
}

static void posting_done(struct ctl_job *job)
{
	struct tjob *t = container_of(job, struct tjob, job);

	order_log[norder++] = 100;
	(*t->done_count)++;
}

Test(ctl_jobs, a_jobs_calls_reach_the_loop_before_its_done)
{
	struct tjob t = {0};
	int n = 0;

	norder = 0;
	t.job.what = "poster";
	t.job.run = posting_run;
	t.job.done = posting_done;
	t.done_count = &n;
	cr_assert_eq(ctl__job_start(&srv, &t.job), 0);
	run_until(&n, 1, 3000);
	cr_assert_eq(norder, 4);
	cr_assert_eq(order_log[0], 1);
	cr_assert_eq(order_log[1], 2);
	cr_assert_eq(order_log[2], 3);
	cr_assert_eq(order_log[3], 100);
}

Test(ctl_jobs, stop_is_bounded_with_a_job_no_token_reaches)
{
	struct tjob stuck = {.ignore = true};
	struct timespec a, b;
	int n = 0;

	start(&stuck, NULL, blocked_run, &n);
	ctl_jobs_stop(&srv);
	clock_gettime(CLOCK_MONOTONIC, &a);
	uv_run(&loop, UV_RUN_DEFAULT); /* ends by the stop timer */
	clock_gettime(CLOCK_MONOTONIC, &b);
	cr_assert(ctl_jobs_abandoned(&srv));
#ifdef __SANITIZE_ADDRESS__
	/* Abandoned by design, as ferryd leaves such a job at exit (_exit,
	 * no leak check there): its token is not a leak to report. */
	__lsan_ignore_object(stuck.job.cancel);
#endif
	cr_assert_eq(n, 0);
	cr_assert_leq(b.tv_sec - a.tv_sec, CTL_STOP_JOBS_MS / 1000 + 2);
	cr_assert_geq(b.tv_sec - a.tv_sec, CTL_STOP_JOBS_MS / 1000 - 1);
	/* Its thread still sleeps; the test process ends under it, as
	 * ferryd does (teardown frees nothing it uses). */
}
