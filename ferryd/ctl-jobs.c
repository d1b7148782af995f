// SPDX-License-Identifier: MIT
/*
 * Long jobs on their own threads (saves, restores, migrations, incoming
 * migrations), so a job blocked in I/O never starves the others the way
 * four of them starved libuv's 4-thread pool.
 *
 * A job has a thread (joinable, joined on the loop when it ends), a cancel
 * token (stream/io.h) its blocking I/O waits on, the client that asked for
 * it (kept busy, so it is not freed, until the job is done), and a done
 * callback run on the loop. Threads reach the loop through one FIFO of
 * calls and one uv_async_t (ctl__loop_call): a job's progress lines and
 * its completion travel the same queue, so they arrive in order.
 *
 * Cancel: ctl__job_cancel fires a job's token unless the job has passed
 * its point of no return (ctl__job_no_return, e.g. a migration's go);
 * a client that goes away cancels its jobs; ctl_jobs_stop, from the
 * SIGTERM path, fires every token (jobs past the point of no return stop
 * waiting) and gives them CTL_STOP_JOBS_MS to end before the loop is
 * stopped without them.
 *
 * jobs->lock guards the job list, the call queue and the flags.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "internal.h"

struct ctl_jobs {
	struct ctl_server *srv;
	pthread_mutex_t lock;
	uv_async_t async;
	uv_timer_t timer;
	bool async_open, timer_open;
	struct ctl_call *head, *tail;
	struct ctl_job *list; /* started, not yet done on the loop */
	unsigned n;
	bool stopping;	/* ctl_jobs_stop was called */
	bool abandoned; /* the loop was stopped with jobs still running */
};

/* ---- the loop's call queue ------------------------------------------------ */

static void run_calls(struct ctl_jobs *js)
{
	struct ctl_call *c, *next;

	pthread_mutex_lock(&js->lock);
	c = js->head;
	js->head = js->tail = NULL;
	pthread_mutex_unlock(&js->lock);
	for (; c; c = next) {
		next = c->next;
		c->next = NULL;
		c->fn(c);
	}
}

static void close_async_if_idle(struct ctl_jobs *js)
{
	bool close_it;

	pthread_mutex_lock(&js->lock);
	close_it = js->stopping && !js->n && js->async_open;
	if (close_it)
		js->async_open = false;
	pthread_mutex_unlock(&js->lock);
	if (close_it) {
		/* Anything queued in between runs now; later posts are refused. */
		run_calls(js);
		uv_close((uv_handle_t *)&js->async, NULL);
	}
}

static void async_cb(uv_async_t *a)
{
	struct ctl_jobs *js = a->data;

	run_calls(js);
	close_async_if_idle(js);
}

int ctl__loop_call(struct ctl_server *srv, struct ctl_call *c)
{
	struct ctl_jobs *js = srv->jobs;

	c->next = NULL;
	if (!js)
		return -ESHUTDOWN; /* not started yet, or finished */
	pthread_mutex_lock(&js->lock);
	if (!js->async_open) {
		pthread_mutex_unlock(&js->lock);
		return -ESHUTDOWN;
	}
	if (js->tail)
		js->tail->next = c;
	else
		js->head = c;
	js->tail = c;
	uv_async_send(&js->async);
	pthread_mutex_unlock(&js->lock);
	return 0;
}

/* ---- jobs ---------------------------------------------------------------- */

/* On the loop: the job's thread has returned. */
static void job_finished(struct ctl_call *c)
{
	struct ctl_job *j = container_of(c, struct ctl_job, call);
	struct ctl_jobs *js = j->srv->jobs;
	struct ctl_client *cl = j->cl;
	struct strm_cancel *cancel = j->cancel;
	struct ctl_job **pp;

	pthread_join(j->thread, NULL);
	pthread_mutex_lock(&js->lock);
	for (pp = &js->list; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	js->n--;
	j->cancel = NULL; /* a late ctl__job_cancel finds nothing to fire */
	pthread_mutex_unlock(&js->lock);
	if (cl)
		cl->busy--;
	j->done(j); /* frees j */
	strm_cancel_free(cancel);
	if (cl)
		ctl__client_release(cl);
}

static void *job_main(void *arg)
{
	struct ctl_job *j = arg;

	j->run(j);
	j->call.fn = job_finished;
	/* The async stays open while a job runs (close_async_if_idle). */
	if (ctl__loop_call(j->srv, &j->call))
		log_err("job '%s': the loop is gone; its end is lost", j->what);
	return NULL;
}

int ctl__job_start(struct ctl_server *srv, struct ctl_job *j)
{
	struct ctl_jobs *js = srv->jobs;
	int rc;

	j->srv = srv;
	j->no_return = false;
	j->cancelled = 0;
	rc = strm_cancel_new(&j->cancel);
	if (rc)
		return rc;
	pthread_mutex_lock(&js->lock);
	if (js->stopping) {
		pthread_mutex_unlock(&js->lock);
		strm_cancel_free(j->cancel);
		j->cancel = NULL;
		return -ESHUTDOWN;
	}
	/* Under the lock: job_main's completion cannot overtake the list. */
	rc = -pthread_create(&j->thread, NULL, job_main, j);
	if (!rc) {
		j->next = js->list;
		js->list = j;
		js->n++;
		if (j->cl)
			j->cl->busy++;
	}
	pthread_mutex_unlock(&js->lock);
	if (rc) {
		log_err("job '%s': cannot start a thread: %s", j->what, ferry_strerror(rc));
		strm_cancel_free(j->cancel);
		j->cancel = NULL;
	}
	return rc;
}

void ctl__job_reply(struct ctl_job *j, const struct ctl_job_reply *r)
{
	struct ctl_client *cl = j->cl;
	yajl_gen g;
	char *buf;
	size_t len;

	if (r->claim != HYP_OP_NONE) /* -ENOENT: the domain went (migrated) */
		hyp_domain_release(j->srv->hyp, r->domid, r->claim);
	if (!cl || cl->closing || cl->dead)
		return;
	if (r->rc) {
		ctl__reply_error(cl, r->id, r->has_id, r->rc, "%s", r->err);
		return;
	}
	g = xlm_reply_begin(r->id, r->has_id);
	if (!g)
		return;
	if (!r->gen(g, r->arg) && !xlm_gen_finish(g, &buf, &len))
		ctl__send(cl, buf, len);
	else
		yajl_gen_free(g);
}

/* Under js->lock. */
static void fire_locked(struct ctl_job *j)
{
	if (!j->cancel)
		return; /* done already */
	__atomic_store_n(&j->cancelled, 1, __ATOMIC_SEQ_CST);
	strm_cancel_fire(j->cancel);
}

int ctl__job_cancel(struct ctl_job *j)
{
	struct ctl_jobs *js = j->srv->jobs;
	int rc = 0;

	pthread_mutex_lock(&js->lock);
	if (j->no_return)
		rc = -EBUSY;
	else
		fire_locked(j);
	pthread_mutex_unlock(&js->lock);
	return rc;
}

int ctl__job_no_return(struct ctl_job *j)
{
	struct ctl_jobs *js = j->srv->jobs;
	int rc = 0;

	pthread_mutex_lock(&js->lock);
	if (strm_cancel_fired(j->cancel))
		rc = -ECANCELED;
	else
		j->no_return = true;
	pthread_mutex_unlock(&js->lock);
	return rc;
}

bool ctl__job_cancelled(const struct ctl_job *j)
{
	return __atomic_load_n(&j->cancelled, __ATOMIC_SEQ_CST);
}

void ctl__jobs_client_gone(struct ctl_client *cl)
{
	struct ctl_jobs *js = cl->srv->jobs;

	if (!js || !cl->busy)
		return;
	pthread_mutex_lock(&js->lock);
	for (struct ctl_job *j = js->list; j; j = j->next) {
		if (j->cl != cl || j->no_return || strm_cancel_fired(j->cancel))
			continue;
		log_info("job '%s': its client went away; cancelling it", j->what);
		fire_locked(j);
	}
	pthread_mutex_unlock(&js->lock);
}

/* ---- start and stop -------------------------------------------------------- */

int ctl_jobs_start(struct ctl_server *srv)
{
	struct ctl_jobs *js = calloc(1, sizeof(*js));
	int rc;

	if (!js)
		return -ENOMEM;
	js->srv = srv;
	pthread_mutex_init(&js->lock, NULL);
	rc = uv_async_init(srv->loop, &js->async, async_cb);
	if (rc) {
		log_err("jobs: cannot set up the loop's queue: %s", uv_strerror(rc));
		pthread_mutex_destroy(&js->lock);
		free(js);
		return rc;
	}
	js->async.data = js;
	js->async_open = true;
	srv->jobs = js;
	return 0;
}

static void on_stop_timer(uv_timer_t *t)
{
	struct ctl_jobs *js = t->data;

	pthread_mutex_lock(&js->lock);
	for (struct ctl_job *j = js->list; j; j = j->next)
		log_err("job '%s' has not ended %d s after it was cancelled; exiting without it",
			j->what, CTL_STOP_JOBS_MS / 1000);
	if (!js->n)
		log_err("ferryd still has work running %d s after SIGTERM (a thread-pool "
			"operation blocked in I/O?); exiting without it",
			CTL_STOP_JOBS_MS / 1000);
	js->abandoned = true;
	pthread_mutex_unlock(&js->lock);
	uv_stop(js->srv->loop);
}

/* Under js->lock: fires every token, past the point of no return too
 * (those jobs only stop waiting: a migration past go stays fenced). */
static unsigned cancel_all_locked(struct ctl_jobs *js)
{
	unsigned n = 0;

	for (struct ctl_job *j = js->list; j; j = j->next)
		if (j->cancel && !strm_cancel_fired(j->cancel)) {
			fire_locked(j);
			n++;
		}
	return n;
}

void ctl_jobs_cancel_all(struct ctl_server *srv)
{
	struct ctl_jobs *js = srv->jobs;
	unsigned n;

	if (!js)
		return;
	pthread_mutex_lock(&js->lock);
	n = cancel_all_locked(js);
	pthread_mutex_unlock(&js->lock);
	if (n)
		log_info("cancelled %u job%s", n, n == 1 ? "" : "s");
}

void ctl_jobs_stop(struct ctl_server *srv)
{
	struct ctl_jobs *js = srv->jobs;
	unsigned n;

	if (!js)
		return;
	pthread_mutex_lock(&js->lock);
	if (js->stopping) {
		pthread_mutex_unlock(&js->lock);
		return;
	}
	js->stopping = true;
	cancel_all_locked(js);
	n = js->n;
	pthread_mutex_unlock(&js->lock);
	if (n)
		log_info("cancelled %u job%s; waiting up to %d s for %s", n, n == 1 ? "" : "s",
			 CTL_STOP_JOBS_MS / 1000, n == 1 ? "it" : "them");
	/* Unreferenced: it does not keep the loop alive, but fires if
	 * something else (a job, thread-pool work) still does. */
	if (!uv_timer_init(srv->loop, &js->timer)) {
		js->timer.data = js;
		js->timer_open = true;
		uv_timer_start(&js->timer, on_stop_timer, CTL_STOP_JOBS_MS, 0);
		uv_unref((uv_handle_t *)&js->timer);
	}
	close_async_if_idle(js);
}

bool ctl_jobs_abandoned(const struct ctl_server *srv)
{
	return srv->jobs && srv->jobs->abandoned;
}

void ctl_jobs_fini(struct ctl_server *srv)
{
	struct ctl_jobs *js = srv->jobs;

	if (!js)
		return;
	if (js->timer_open)
		uv_close((uv_handle_t *)&js->timer, NULL);
	if (js->async_open) {
		js->async_open = false;
		uv_close((uv_handle_t *)&js->async, NULL);
	}
	uv_run(srv->loop, UV_RUN_NOWAIT);
	if (js->abandoned)
		return; /* its threads may still use it */
	pthread_mutex_destroy(&js->lock);
	free(js);
	srv->jobs = NULL;
}
