// SPDX-License-Identifier: MIT
/*
 * Scheduler caps (credit2's cap: percent of one pCPU for the domain),
 * which are also migration's auto-converge throttle.
 *
 * A capped domain has a budget of cap% of SCHED_CAP_PERIOD_NS of CPU time
 * per period. Every run is charged to it (hyp__credit2_release_locked); with
 * the budget spent, the domain's vCPUs do not get a pCPU until the next
 * period, which refills it (an overdraft is carried over, so the average
 * holds at the cap). The scheduler's ticker ends a run whose wall time
 * reaches the rest of the budget (ops->vcpu_kick; the CPU time it used is
 * at most that), so a KVM vCPU cannot overrun by more than a tick.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "internal.h"

static int64_t budget_full(const struct hyp_domain *d)
{
	return (int64_t)(SCHED_CAP_PERIOD_NS / 100 * d->cap);
}

bool hyp__cap_may_run_locked(struct hyp_domain *d, uint64_t now)
{
	if (!d->cap)
		return true;
	if (now >= d->sched_period_end_ns) {
		int64_t full = budget_full(d);

		d->sched_budget_ns += full;
		if (d->sched_budget_ns > full)
			d->sched_budget_ns = full;
		/* Whole periods missed while idle are not banked. */
		if (now - d->sched_period_end_ns >= SCHED_CAP_PERIOD_NS)
			d->sched_period_end_ns = now + SCHED_CAP_PERIOD_NS;
		else
			d->sched_period_end_ns += SCHED_CAP_PERIOD_NS;
	}
	return d->sched_budget_ns > 0;
}

void hyp__cap_charge_locked(struct hyp_domain *d, uint64_t ns)
{
	if (!d->cap)
		return;
	d->sched_budget_ns -= (int64_t)ns;
	/* At most one period of debt. */
	if (d->sched_budget_ns < -(int64_t)SCHED_CAP_PERIOD_NS)
		d->sched_budget_ns = -(int64_t)SCHED_CAP_PERIOD_NS;
}

int hyp_domain_set_cap(struct hyp *h, uint32_t domid, unsigned pct)
{
	struct sched *s = h->sched;
	struct hyp_domain *d;
	int err;

	err = hyp_domain_get(h, domid, &d);
	if (err)
		return err;
	if (pct > 100 * d->nvcpus) {
		hyp_domain_put(d);
		return -EINVAL;
	}
	if (__atomic_load_n(&d->stopping, __ATOMIC_RELAXED)) {
		hyp_domain_put(d);
		return -ENOENT;
	}
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&d->cap, pct, __ATOMIC_RELAXED);
	d->sched_budget_ns = budget_full(d);
	d->sched_period_end_ns = ferry_now_ns() + SCHED_CAP_PERIOD_NS;
	/* Waiters held back by the old cap look again. */
	pthread_cond_broadcast(&s->pools[d->sched_pool].cond);
	pthread_mutex_unlock(&s->lock);
	hyp_domain_put(d);
	if (pct)
		log_info("d%u: cap %u%%", domid, pct);
	else
		log_info("d%u: cap removed", domid);
	return 0;
}
