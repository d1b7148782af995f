// SPDX-License-Identifier: MIT
/*
 * Xen's null scheduler: a vCPU gets a pCPU of its pool (within its hard
 * affinity) for itself and keeps it, running or blocked, until it leaves
 * the pool or ends; with no free pCPU it waits. No timeslices, no credit.
 */
#include "common/clock.h"
#include "internal.h"

void hyp__null_unassign_locked(struct sched *s, struct hyp_vcpu *v)
{
	unsigned c;

	if (!v->sched_cpu1)
		return;
	c = v->sched_cpu1 - 1;
	if (s->owner[c] == v)
		s->owner[c] = NULL;
	v->sched_cpu1 = 0;
	__atomic_store_n(&v->sched_running, false, __ATOMIC_RELAXED);
	if (s->cpu_pool[c] >= 0)
		pthread_cond_broadcast(&s->pools[s->cpu_pool[c]].cond);
}

bool hyp__null_acquire_locked(struct sched *s, struct hyp_vcpu *v)
{
	struct sched_pool *p = &s->pools[v->sched_pool_in];
	struct hyp_domain *d = v->d;

	for (;;) {
		if (__atomic_load_n(&d->paused, __ATOMIC_RELAXED) ||
		    __atomic_load_n(&d->stopping, __ATOMIC_RELAXED) ||
		    d->sched_pool != v->sched_pool_in || p != &s->pools[v->sched_pool_in])
			return false;
		/* The assignment lapses when the pCPU left the pool. */
		if (v->sched_cpu1 && s->cpu_pool[v->sched_cpu1 - 1] != (int)v->sched_pool_in)
			hyp__null_unassign_locked(s, v);
		if (v->sched_cpu1)
			break;
		for (unsigned c = 0; c < s->npcpus; c++) {
			if (!(p->cpus & (1ULL << c)) || s->owner[c] ||
			    (v->sched_hard && !(v->sched_hard & (1ULL << c))))
				continue;
			s->owner[c] = v;
			v->sched_cpu1 = c + 1;
			v->sched_last_cpu1 = c + 1;
			s->switches++;
			break;
		}
		if (v->sched_cpu1)
			break;
		sched_wait_locked(s, p, 5 * SCHED_TICK_NS);
	}
	v->sched_run_cpu_ns = sched_thread_ns(v);
	v->sched_run_wall_ns = ferry_now_ns();
	__atomic_store_n(&v->sched_running, true, __ATOMIC_RELAXED);
	return true;
}

void hyp__null_release_locked(struct sched *s, struct hyp_vcpu *v)
{
	(void)s;
	__atomic_store_n(&v->sched_running, false, __ATOMIC_RELAXED);
}
