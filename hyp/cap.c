// SPDX-License-Identifier: MIT
/*
 * Scheduler caps (credit2's cap: percent of one pCPU per vCPU), which is
 * also migration's auto-converge throttle.
 *
 * The vCPU loop calls cap_throttle() after every return from the backend:
 * it takes the thread's CPU time since the previous call and sleeps long
 * enough that runtime / (runtime + sleep) <= cap. A soft vCPU returns at
 * least every slice (~10 ms); a KVM vCPU may stay in KVM_RUN much longer,
 * so while a cap is set a per-domain throttle thread kicks every vCPU
 * (ops->vcpu_kick) every THROTTLE_TICK, making each run at most one tick.
 * The thread holds a domain reference and ends by itself when the cap is
 * removed or the domain is being destroyed (d->stopping).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "internal.h"

#define THROTTLE_TICK_NS 10000000ULL /* 10 ms */
/* CPU time below this is carried to the next check (sleeps too short to
 * be worth a wakeup). */
#define THROTTLE_MIN_RUN_NS 1000000ULL

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void deadline_in(struct timespec *ts, uint64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += (long)(ns % 1000000000ULL);
	ts->tv_sec += (time_t)(ns / 1000000000ULL) + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

static bool deadline_passed(const struct timespec *ts)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > ts->tv_sec || (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

void cap_throttle(struct hyp_vcpu *v)
{
	struct hyp_domain *d = v->d;
	unsigned cap = __atomic_load_n(&d->cap, __ATOMIC_RELAXED);
	uint64_t now, ran, sleep_ns;
	struct timespec until;

	if (!cap) {
		v->cap_base_ns = 0;
		return;
	}
	now = thread_cpu_ns();
	if (!v->cap_base_ns) {
		v->cap_base_ns = now ? now : 1;
		return;
	}
	ran = now - v->cap_base_ns;
	if (ran < THROTTLE_MIN_RUN_NS)
		return;
	v->cap_base_ns = now;
	if (cap >= 100)
		return;
	sleep_ns = ran * (100 - cap) / cap;
	deadline_in(&until, sleep_ns);
	pthread_mutex_lock(&d->lock);
	/* Pause, destroy and a lifted or raised cap end the sleep early. */
	while (d->cap == cap && !d->paused && !d->stopping && !deadline_passed(&until))
		pthread_cond_timedwait(&d->cond, &d->lock, &until);
	pthread_mutex_unlock(&d->lock);
}

static void *throttle_thread(void *arg)
{
	struct hyp_domain *d = arg;
	struct timespec until;
	char name[16];

	snprintf(name, sizeof(name), "d%ucap", d->domid);
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&d->lock);
	while (d->cap && d->cap < 100 && !d->stopping) {
		/* Under d->lock with stopping clear: no vCPU thread has been
		 * joined yet (stop_vcpus sets stopping first). */
		if (!d->paused)
			for (unsigned i = 0; i < d->nvcpus; i++)
				if (d->vcpus[i].thread_started && !d->vcpus[i].exited)
					d->ops->vcpu_kick(&d->vcpus[i]);
		deadline_in(&until, THROTTLE_TICK_NS);
		while (d->cap && !d->stopping && !deadline_passed(&until))
			pthread_cond_timedwait(&d->cond, &d->lock, &until);
	}
	d->cap_thread = false;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	hyp_domain_put(d);
	return NULL;
}

int hyp_domain_set_cap(struct hyp *h, uint32_t domid, unsigned pct)
{
	struct hyp_domain *d;
	pthread_attr_t attr;
	pthread_t t;
	int err;

	if (pct > 100)
		return -EINVAL;
	/* The reference goes to the throttle thread when one starts. */
	err = hyp_domain_get(h, domid, &d);
	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	if (d->stopping) {
		pthread_mutex_unlock(&d->lock);
		hyp_domain_put(d);
		return -ENOENT;
	}
	__atomic_store_n(&d->cap, pct, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&d->cond);
	/* 100 % of one pCPU per vCPU throttles nothing: no thread. */
	if (!pct || pct == 100 || d->cap_thread) {
		pthread_mutex_unlock(&d->lock);
		hyp_domain_put(d);
		if (pct)
			log_info("d%u: cap %u%%", domid, pct);
		else
			log_info("d%u: cap removed", domid);
		return 0;
	}
	d->cap_thread = true;
	pthread_mutex_unlock(&d->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&t, &attr, throttle_thread, d);
	pthread_attr_destroy(&attr);
	if (err) {
		log_err("d%u: cannot start the throttle thread: %s", domid, strerror(err));
		pthread_mutex_lock(&d->lock);
		d->cap_thread = false;
		__atomic_store_n(&d->cap, 0, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&d->lock);
		hyp_domain_put(d);
		return -err;
	}
	log_info("d%u: cap %u%%", domid, pct);
	return 0;
}
