// SPDX-License-Identifier: MIT
/*
 * The vCPU thread: the same loop for every backend. It parks while the
 * domain is paused, takes a pCPU from the scheduler (cpupool.c), runs the
 * backend until something needs ferryd or the slice ends, gives the pCPU
 * back and services hypercalls.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "internal.h"

static void park_until_runnable(struct hyp_vcpu *v)
{
	struct hyp_domain *d = v->d;
	bool quiesced = false;

	pthread_mutex_lock(&d->lock);
	while (d->paused && !d->stopping) {
		if (!v->parked) {
			if (!quiesced) {
				/* Before anyone may read this vCPU's state: finish
				 * the exit it last took (the hypercall result is
				 * already written: vcpu_hcall_done ran before the
				 * loop came back here). Not under the lock: it
				 * enters the backend. */
				pthread_mutex_unlock(&d->lock);
				d->ops->vcpu_quiesce(v);
				quiesced = true;
				pthread_mutex_lock(&d->lock);
				continue;
			}
			v->parked = true;
			pthread_cond_broadcast(&d->cond);
		}
		pthread_cond_wait(&d->cond, &d->lock);
	}
	v->parked = false;
	v->kicked = false;
	pthread_mutex_unlock(&d->lock);
}

void hyp__vcpu_block(struct hyp_vcpu *v)
{
	struct hyp_domain *d = v->d;

	/* A blocked vCPU gives its pCPU back (soft vCPUs block inside
	 * vcpu_run). */
	sched_block(v);
	pthread_mutex_lock(&d->lock);
	v->blocked = true;
	while (!v->kicked && !d->paused && !d->stopping) {
		uint64_t now = d->ops->now_ns(d), wait_ns;
		struct timespec ts;

		if (v->timer_ns && now >= v->timer_ns)
			break;
		/* No timer: sleep in slices so a lost wakeup costs at most 1 s. */
		wait_ns = v->timer_ns ? v->timer_ns - now : 1000000000ULL;
		if (wait_ns > 1000000000ULL)
			wait_ns = 1000000000ULL;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)(wait_ns % 1000000000ULL);
		ts.tv_sec += (time_t)(wait_ns / 1000000000ULL) + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&d->cond, &d->lock, &ts);
	}
	v->kicked = false;
	v->blocked = false;
	pthread_mutex_unlock(&d->lock);
}

static void *vcpu_thread(void *arg)
{
	struct hyp_vcpu *v = arg;
	struct hyp_domain *d = v->d;
	struct hyp_exit ex;
	struct timespec ts;
	char name[16];

	snprintf(name, sizeof(name), "d%uv%u", d->domid, v->id);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		park_until_runnable(v);
		if (__atomic_load_n(&d->stopping, __ATOMIC_ACQUIRE))
			break;
		/* Runs hold a pCPU of the domain's cpupool: wait for one
		 * (back to parking when paused meanwhile). */
		if (!sched_acquire(v))
			continue;
		memset(&ex, 0, sizeof(ex));
		if (d->ops->vcpu_run(v, &ex) < 0)
			ex.kind = HYP_EXIT_CRASH;
		sched_release(v);
		if (ex.kind == HYP_EXIT_HCALL) {
			int64_t ret = hyp_hypercall(v, ex.nr, ex.arg);

			d->ops->vcpu_hcall_done(v, ret);
		} else if (ex.kind == HYP_EXIT_CRASH) {
			hyp__dom_crash(d);
			break;
		} else if (ex.kind == HYP_EXIT_STOPPED) {
			break;
		}
	}
	sched_vcpu_exit(v);
	if (!clock_gettime(v->cpu_clock, &ts))
		v->cpu_ns_done += (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	pthread_mutex_lock(&d->lock);
	v->exited = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int hyp__vcpu_start(struct hyp_vcpu *v)
{
	int err = pthread_create(&v->thread, NULL, vcpu_thread, v);

	if (err) {
		log_err("d%u: cannot start the thread of vCPU %u: %s", v->d->domid, v->id,
			ferry_strerror(err));
		return -err;
	}
	pthread_getcpuclockid(v->thread, &v->cpu_clock);
	v->thread_started = true;
	return 0;
}
