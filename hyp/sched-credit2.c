// SPDX-License-Identifier: MIT
/*
 * Xen's credit2 over ferryd's pCPUs (one runqueue per cpupool).
 *
 * Every vCPU has credit (ns). A run burns the CPU time its thread got
 * while holding the pCPU (not wall time: the host may be busy too), scaled by
 * SCHED_DEFAULT_WEIGHT / weight, so a domain of weight 512 burns half as
 * fast as one of 256 and runs twice as long. A released pCPU goes to the
 * waiting vCPU with the most credit (ties: the longest waiting) whose hard
 * affinity allows it and whose domain has cap budget left; a vCPU prefers
 * a free pCPU of its soft affinity. When the vCPU chosen to run has no
 * credit left, every vCPU of the pool is topped up by CREDIT_INIT (debt is
 * carried, the top is CREDIT_INIT): credit2's reset. A run lasts one
 * timeslice at most while others wait (the ticker in cpupool.c kicks it).
 */
#include <errno.h>
#include <stdio.h>

#include "common/clock.h"
#include "common/log.h"
#include "internal.h"

static unsigned weight_of(const struct hyp_domain *d)
{
	return d->sched_weight ? d->sched_weight : SCHED_DEFAULT_WEIGHT;
}

static bool stop_waiting(const struct hyp_vcpu *v)
{
	const struct hyp_domain *d = v->d;

	return __atomic_load_n(&d->paused, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&d->stopping, __ATOMIC_RELAXED) ||
	       v->d->sched_pool != v->sched_pool_in;
}

static bool may_use(const struct hyp_vcpu *v, unsigned c)
{
	return !v->sched_hard || (v->sched_hard & (1ULL << c));
}

/* Whether w should get pCPU c before v. */
static bool beats(const struct hyp_vcpu *w, const struct hyp_vcpu *v, unsigned c,
		  uint64_t now)
{
	if (w == v || !w->sched_waiting || !may_use(w, c) || stop_waiting(w))
		return false;
	if (w->d->cap && w->d->sched_budget_ns <= 0 && now < w->d->sched_period_end_ns)
		return false;
	return w->sched_credit > v->sched_credit ||
	       (w->sched_credit == v->sched_credit && w->sched_seq < v->sched_seq);
}

bool hyp__credit2_has_waiter_locked(struct sched_pool *p)
{
	for (struct hyp_vcpu *w = p->vcpus; w; w = w->sched_next)
		if (w->sched_waiting && !stop_waiting(w))
			return true;
	return false;
}

static int pick_cpu(struct sched *s, struct sched_pool *p, const struct hyp_vcpu *v)
{
	uint64_t free = p->cpus, soft;
	int best = -1;

	for (unsigned c = 0; c < s->npcpus; c++)
		if (s->owner[c] || !may_use(v, c))
			free &= ~(1ULL << c);
	if (!free)
		return -1;
	soft = v->sched_soft ? free & v->sched_soft : 0;
	if (soft)
		free = soft;
	/* The pCPU it ran on last, when free: warm caches. */
	if (v->sched_last_cpu1 && (free & (1ULL << (v->sched_last_cpu1 - 1))))
		return (int)v->sched_last_cpu1 - 1;
	best = __builtin_ctzll(free);
	return best;
}

static void reset_credit(struct sched_pool *p)
{
	for (struct hyp_vcpu *w = p->vcpus; w; w = w->sched_next) {
		w->sched_credit += SCHED_CREDIT_INIT_NS;
		if (w->sched_credit > SCHED_CREDIT_INIT_NS)
			w->sched_credit = SCHED_CREDIT_INIT_NS;
	}
}

bool hyp__credit2_acquire_locked(struct sched *s, struct hyp_vcpu *v)
{
	struct sched_pool *p = &s->pools[v->sched_pool_in];
	bool ok = false;

	/* Still queued when it gave the pCPU back runnable. */
	if (!v->sched_waiting) {
		v->sched_waiting = true;
		v->sched_seq = ++p->seq;
	}
	/* Moved to another pool meanwhile: the caller starts over. */
	while (!stop_waiting(v) && p == &s->pools[v->sched_pool_in]) {
		uint64_t now = ferry_now_ns();
		int c;
		bool beaten = false;

		if (!hyp__cap_may_run_locked(v->d, now)) {
			uint64_t left = v->d->sched_period_end_ns - now;

			/* Until the refill; pause and stop are polled. */
			sched_wait_locked(s, p, left < 5 * SCHED_TICK_NS ? left : 5 * SCHED_TICK_NS);
			continue;
		}
		c = pick_cpu(s, p, v);
		for (struct hyp_vcpu *w = p->vcpus; w && c >= 0 && !beaten; w = w->sched_next)
			beaten = beats(w, v, (unsigned)c, now);
		if (c >= 0 && !beaten) {
			if (v->sched_credit <= 0)
				reset_credit(p);
			s->owner[c] = v;
			v->sched_cpu1 = (unsigned)c + 1;
			v->sched_last_cpu1 = v->sched_cpu1;
			v->sched_kicked = false;
			v->sched_run_wall_ns = now;
			v->sched_run_cpu_ns = sched_thread_ns(v);
			__atomic_store_n(&v->sched_running, true, __ATOMIC_RELAXED);
			s->switches++;
			ok = true;
			break;
		}
		sched_wait_locked(s, p, 5 * SCHED_TICK_NS);
	}
	v->sched_waiting = false;
	/* Another waiter may be the best one now that v left. */
	if (!ok)
		pthread_cond_broadcast(&p->cond);
	return ok;
}

void hyp__credit2_release_locked(struct sched *s, struct hyp_vcpu *v, bool runnable)
{
	uint64_t ran = sched_thread_ns(v) - v->sched_run_cpu_ns;
	unsigned c = v->sched_cpu1 - 1;

	if ((int64_t)ran < 0)
		ran = 0;
	v->sched_credit -= (int64_t)(ran * SCHED_DEFAULT_WEIGHT / weight_of(v->d));
	hyp__cap_charge_locked(v->d, ran);
	if (v->sched_cpu1 && s->owner[c] == v)
		s->owner[c] = NULL;
	v->sched_cpu1 = 0;
	__atomic_store_n(&v->sched_running, false, __ATOMIC_RELAXED);
	/* A vCPU that returned from its run (rather than blocked) stays
	 * queued: it competes for the pCPU it just left while its thread
	 * services the exit, or a waiter with less credit would take it. */
	if (runnable) {
		v->sched_waiting = true;
		v->sched_seq = ++s->pools[v->sched_pool_in].seq;
	}
	if (s->cpu_pool[c] >= 0)
		pthread_cond_broadcast(&s->pools[s->cpu_pool[c]].cond);
}

int sched_credit2_set(struct hyp *h, uint32_t domid, int weight, int cap)
{
	struct hyp_domain *d;
	int err;

	if (weight == 0 || weight > SCHED_MAX_WEIGHT)
		return -EINVAL;
	err = hyp_domain_get(h, domid, &d);
	if (err)
		return err;
	if (cap > (int)(100 * d->nvcpus)) {
		hyp_domain_put(d);
		return -EINVAL;
	}
	if (weight > 0) {
		pthread_mutex_lock(&h->sched->lock);
		d->sched_weight = (unsigned)weight;
		pthread_mutex_unlock(&h->sched->lock);
		log_info("d%u: weight %d", domid, weight);
	}
	if (cap >= 0)
		__atomic_store_n(&d->sched_cap_user, (unsigned)cap, __ATOMIC_RELAXED);
	hyp_domain_put(d);
	if (cap >= 0)
		return hyp_domain_set_cap(h, domid, (unsigned)cap);
	return 0;
}
