// SPDX-License-Identifier: MIT
/*
 * cpupools and the scheduler's frame: ferryd's pCPUs are tokens a vCPU
 * thread holds while it runs guest code (sched_acquire .. sched_release
 * around every ops->vcpu_run). Each pCPU belongs to at most one pool; each
 * pool has a scheduler (sched-credit2.c, sched-null.c) deciding which
 * waiting vCPU takes a released pCPU. One mutex guards all of it (a
 * handover is a few list walks every ~10 ms), with a condvar per pool.
 *
 * The ticker thread ends runs: a credit2 vCPU holding a pCPU for a
 * timeslice while another waits, or whose domain ran out of cap budget,
 * is kicked (ops->vcpu_kick: KVM's immediate exit; soft vCPUs return after
 * every workload slice anyway).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"

/* The scheduler charges runs with this on v's own thread only (see the
 * ticker); vcpu-list's read from another thread is a query. */
uint64_t sched_thread_ns(struct hyp_vcpu *v)
{
	struct timespec ts;

	if (clock_gettime(v->cpu_clock, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void deadline_in(struct timespec *ts, uint64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += (long)(ns % 1000000000ULL);
	ts->tv_sec += (time_t)(ns / 1000000000ULL) + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

static void cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static uint64_t all_mask(unsigned n)
{
	return n >= 64 ? ~0ULL : (1ULL << n) - 1;
}

/* ---- cpu lists ---------------------------------------------------------- */

int sched_parse_cpulist(const char *s, unsigned npcpus, uint64_t *mask)
{
	uint64_t m = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (!strcmp(s, "all")) {
		*mask = all_mask(npcpus ? npcpus : SCHED_MAX_PCPUS);
		return 0;
	}
	while (*p) {
		char *end;
		unsigned long a, b;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		a = strtoul(p, &end, 10);
		b = a;
		p = end;
		if (*p == '-') {
			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			b = strtoul(p, &end, 10);
			p = end;
		}
		if (a > b || b >= SCHED_MAX_PCPUS || (npcpus && b >= npcpus))
			return -EINVAL;
		for (unsigned long i = a; i <= b; i++)
			m |= 1ULL << i;
		if (*p == ',')
			p++;
		else if (*p)
			return -EINVAL;
	}
	*mask = m;
	return 0;
}

void sched_format_cpulist(uint64_t mask, unsigned npcpus, char *buf, size_t len)
{
	size_t n = 0;

	if (!len)
		return;
	buf[0] = 0;
	if (npcpus && (mask & all_mask(npcpus)) == all_mask(npcpus)) {
		snprintf(buf, len, "all");
		return;
	}
	if (!mask) {
		snprintf(buf, len, "none");
		return;
	}
	for (unsigned i = 0; i < SCHED_MAX_PCPUS && n < len; i++) {
		unsigned j = i;

		if (!(mask & (1ULL << i)))
			continue;
		while (j + 1 < SCHED_MAX_PCPUS && (mask & (1ULL << (j + 1))))
			j++;
		if (j == i)
			n += (size_t)snprintf(buf + n, len - n, "%s%u", n ? "," : "", i);
		else
			n += (size_t)snprintf(buf + n, len - n, "%s%u-%u", n ? "," : "", i, j);
		i = j;
	}
}

/* ---- lists ---------------------------------------------------------------- */

void sched_list_add(struct sched *s, struct hyp_vcpu *v, unsigned pool)
{
	struct sched_pool *p = &s->pools[pool];

	v->sched_prev = NULL;
	v->sched_next = p->vcpus;
	if (p->vcpus)
		p->vcpus->sched_prev = v;
	p->vcpus = v;
	v->sched_pool_in = pool;
	v->sched_listed = true;
}

void sched_list_del(struct sched *s, struct hyp_vcpu *v)
{
	struct sched_pool *p = &s->pools[v->sched_pool_in];

	if (!v->sched_listed)
		return;
	if (v->sched_prev)
		v->sched_prev->sched_next = v->sched_next;
	else
		p->vcpus = v->sched_next;
	if (v->sched_next)
		v->sched_next->sched_prev = v->sched_prev;
	v->sched_next = v->sched_prev = NULL;
	v->sched_listed = false;
}

/* ---- the vCPU thread's side ------------------------------------------------ */

static void follow_pool(struct sched *s, struct hyp_vcpu *v)
{
	unsigned want = v->d->sched_pool;

	if (v->sched_listed && v->sched_pool_in == want)
		return;
	if (v->sched_listed) {
		if (s->pools[v->sched_pool_in].kind == SCHED_NULL)
			hyp__null_unassign_locked(s, v);
		sched_list_del(s, v);
	}
	sched_list_add(s, v, want);
	v->sched_waiting = false;
	v->sched_credit = SCHED_CREDIT_INIT_NS;
}

bool sched_acquire(struct hyp_vcpu *v)
{
	struct sched *s = v->d->h->sched;
	bool ok;

	pthread_mutex_lock(&s->lock);
	follow_pool(s, v);
	if (s->pools[v->sched_pool_in].kind == SCHED_NULL)
		ok = hyp__null_acquire_locked(s, v);
	else
		ok = hyp__credit2_acquire_locked(s, v);
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static void release(struct hyp_vcpu *v, bool runnable)
{
	struct sched *s = v->d->h->sched;

	pthread_mutex_lock(&s->lock);
	if (v->sched_running) {
		if (s->pools[v->sched_pool_in].kind == SCHED_NULL)
			hyp__null_release_locked(s, v);
		else
			hyp__credit2_release_locked(s, v, runnable);
	}
	if (!runnable && v->sched_waiting) {
		v->sched_waiting = false;
		pthread_cond_broadcast(&s->pools[v->sched_pool_in].cond);
	}
	pthread_mutex_unlock(&s->lock);
}

void sched_release(struct hyp_vcpu *v)
{
	if (__atomic_load_n(&v->sched_running, __ATOMIC_RELAXED))
		release(v, true); /* only this thread sets it */
}

void sched_block(struct hyp_vcpu *v)
{
	release(v, false);
}

void sched_vcpu_exit(struct hyp_vcpu *v)
{
	struct sched *s = v->d->h->sched;

	sched_block(v);
	pthread_mutex_lock(&s->lock);
	if (v->sched_listed) {
		if (s->pools[v->sched_pool_in].kind == SCHED_NULL)
			hyp__null_unassign_locked(s, v);
		sched_list_del(s, v);
	}
	pthread_mutex_unlock(&s->lock);
}

/* Wait for a pool event at most one tick (pause and stop are polled). */
void sched_wait_locked(struct sched *s, struct sched_pool *p, uint64_t ns)
{
	struct timespec until;

	deadline_in(&until, ns);
	pthread_cond_timedwait(&p->cond, &s->lock, &until);
}

/* ---- the ticker ------------------------------------------------------------ */

static void *ticker(void *arg)
{
	struct sched *s = arg;
	struct timespec until;

	pthread_setname_np(pthread_self(), "sched-tick");
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		uint64_t now = ferry_now_ns();

		for (unsigned c = 0; c < s->npcpus; c++) {
			struct hyp_vcpu *v = s->owner[c];
			struct hyp_domain *d;
			struct sched_pool *p;
			bool kick = false;

			if (!v || !v->sched_running || v->sched_kicked || s->cpu_pool[c] < 0)
				continue;
			p = &s->pools[v->sched_pool_in];
			if (p->kind != SCHED_CREDIT2)
				continue;
			d = v->d;
			if (now - v->sched_run_wall_ns >= SCHED_TIMESLICE_NS &&
			    hyp__credit2_has_waiter_locked(p))
				kick = true;
			/* Wall time since the run began bounds the CPU time it
			 * used. Never the thread's CPU clock from here: read from
			 * another thread while the hypervisor under this host has
			 * taken the CPU it runs on, Linux charges it the stolen
			 * time (and later drops the steal it cannot subtract), so
			 * budgets went on time the guest never ran. */
			if (d->cap && (int64_t)(now - v->sched_run_wall_ns) >= d->sched_budget_ns)
				kick = true;
			if (v->d->sched_pool != v->sched_pool_in)
				kick = true;
			if (kick) {
				v->sched_kicked = true;
				d->ops->vcpu_kick(v);
			}
		}
		deadline_in(&until, SCHED_TICK_NS);
		pthread_cond_timedwait(&s->tick_cond, &s->lock, &until);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int sched_init(struct hyp *h)
{
	struct sched *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->h = h;
	s->npcpus = h->pcpus > SCHED_MAX_PCPUS ? SCHED_MAX_PCPUS : h->pcpus;
	if (h->pcpus > SCHED_MAX_PCPUS)
		log_warn("scheduling on %u pCPUs (the most the scheduler handles)",
			 SCHED_MAX_PCPUS);
	pthread_mutex_init(&s->lock, NULL);
	cond_init_mono(&s->tick_cond);
	for (unsigned i = 0; i < SCHED_MAX_POOLS; i++)
		cond_init_mono(&s->pools[i].cond);
	for (unsigned c = 0; c < SCHED_MAX_PCPUS; c++)
		s->cpu_pool[c] = c < s->npcpus ? 0 : -1;
	s->pools[0].used = true;
	snprintf(s->pools[0].name, sizeof(s->pools[0].name), "Pool-0");
	s->pools[0].kind = SCHED_CREDIT2;
	s->pools[0].cpus = all_mask(s->npcpus);
	err = pthread_create(&s->ticker, NULL, ticker, s);
	if (err) {
		log_err("cannot start the scheduler tick thread: %s", ferry_strerror(err));
		free(s);
		return -err;
	}
	h->sched = s;
	return 0;
}

void sched_fini(struct hyp *h)
{
	struct sched *s = h->sched;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->tick_cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->ticker, NULL);
	for (unsigned i = 0; i < SCHED_MAX_POOLS; i++)
		pthread_cond_destroy(&s->pools[i].cond);
	pthread_cond_destroy(&s->tick_cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
	h->sched = NULL;
}

/* ---- pools ------------------------------------------------------------------ */

static int pool_find_locked(struct sched *s, const char *name)
{
	for (unsigned i = 0; i < SCHED_MAX_POOLS; i++)
		if (s->pools[i].used && !strcmp(s->pools[i].name, name))
			return (int)i;
	/* A numeric id names a pool too. */
	if (name[0] >= '0' && name[0] <= '9') {
		char *end;
		unsigned long id = strtoul(name, &end, 10);

		if (!*end && id < SCHED_MAX_POOLS && s->pools[id].used)
			return (int)id;
	}
	return -1;
}

static void pool_set_cpu_locked(struct sched *s, unsigned c, int pool)
{
	if (s->cpu_pool[c] >= 0)
		s->pools[s->cpu_pool[c]].cpus &= ~(1ULL << c);
	s->cpu_pool[c] = pool;
	if (pool >= 0) {
		s->pools[pool].cpus |= 1ULL << c;
		pthread_cond_broadcast(&s->pools[pool].cond);
	}
}

unsigned sched_npcpus(struct hyp *h)
{
	return h->sched->npcpus;
}

static unsigned count_doms(struct hyp *h, unsigned pool)
{
	unsigned n = 0;

	pthread_mutex_lock(&h->lock);
	for (struct hyp_domain *d = h->domains; d; d = d->next)
		if (__atomic_load_n(&d->sched_pool, __ATOMIC_RELAXED) == pool)
			n++;
	pthread_mutex_unlock(&h->lock);
	return n;
}

int sched_pool_list(struct hyp *h, struct sched_pool_info *out, unsigned max)
{
	struct sched *s = h->sched;
	unsigned n = 0;

	for (unsigned i = 0; i < SCHED_MAX_POOLS && n < max; i++) {
		struct sched_pool_info *o = &out[n];

		pthread_mutex_lock(&s->lock);
		if (!s->pools[i].used) {
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		memset(o, 0, sizeof(*o));
		o->id = i;
		snprintf(o->name, sizeof(o->name), "%s", s->pools[i].name);
		snprintf(o->sched, sizeof(o->sched), "%s",
			 s->pools[i].kind == SCHED_NULL ? "null" : "credit2");
		o->cpus = s->pools[i].cpus;
		o->ncpus = (unsigned)__builtin_popcountll(o->cpus);
		pthread_mutex_unlock(&s->lock);
		o->ndoms = count_doms(h, i);
		n++;
	}
	return (int)n;
}

int sched_pool_create(struct hyp *h, const char *name, const char *sched, uint64_t cpus)
{
	struct sched *s = h->sched;
	enum sched_kind kind;
	int slot = -1;

	if (!name || !*name || strlen(name) >= SCHED_POOL_NAME_MAX ||
	    (name[0] >= '0' && name[0] <= '9'))
		return -EINVAL;
	if (!sched || !*sched || !strcmp(sched, "credit2"))
		kind = SCHED_CREDIT2;
	else if (!strcmp(sched, "null"))
		kind = SCHED_NULL;
	else
		return -EINVAL;
	if (cpus & ~all_mask(s->npcpus))
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (pool_find_locked(s, name) >= 0) {
		pthread_mutex_unlock(&s->lock);
		return -EEXIST;
	}
	for (unsigned i = 1; i < SCHED_MAX_POOLS && slot < 0; i++)
		if (!s->pools[i].used)
			slot = (int)i;
	/* Every pCPU must be free or Pool-0's, and Pool-0 keeps one. */
	for (unsigned c = 0; c < s->npcpus && slot >= 0; c++)
		if ((cpus & (1ULL << c)) && s->cpu_pool[c] > 0)
			slot = -2;
	if (slot >= 0 && (s->pools[0].cpus & ~cpus) == 0)
		slot = -2;
	if (slot < 0) {
		pthread_mutex_unlock(&s->lock);
		return slot == -1 ? -ENOSPC : -EBUSY;
	}
	memset(s->pools[slot].name, 0, sizeof(s->pools[slot].name));
	snprintf(s->pools[slot].name, sizeof(s->pools[slot].name), "%s", name);
	s->pools[slot].kind = kind;
	s->pools[slot].cpus = 0;
	s->pools[slot].vcpus = NULL;
	s->pools[slot].used = true;
	for (unsigned c = 0; c < s->npcpus; c++)
		if (cpus & (1ULL << c))
			pool_set_cpu_locked(s, c, slot);
	pthread_mutex_unlock(&s->lock);
	log_info("cpupool %s created (%s)", name, kind == SCHED_NULL ? "null" : "credit2");
	return 0;
}

int sched_pool_destroy(struct hyp *h, const char *name)
{
	struct sched *s = h->sched;
	int id;

	pthread_mutex_lock(&s->lock);
	id = pool_find_locked(s, name);
	pthread_mutex_unlock(&s->lock);
	if (id < 0)
		return -ENOENT;
	if (id == 0)
		return -EPERM;
	if (count_doms(h, (unsigned)id))
		return -EBUSY;
	pthread_mutex_lock(&s->lock);
	if (s->pools[id].vcpus) {
		pthread_mutex_unlock(&s->lock);
		return -EBUSY;
	}
	/* Its pCPUs go back to Pool-0 (Xen leaves them free; ferryd has no
	 * cpupool-cpu-add verb yet). */
	for (unsigned c = 0; c < s->npcpus; c++)
		if (s->cpu_pool[c] == id)
			pool_set_cpu_locked(s, c, 0);
	s->pools[id].used = false;
	pthread_mutex_unlock(&s->lock);
	log_info("cpupool %s destroyed, its pCPUs back in Pool-0", name);
	return 0;
}

int sched_pool_cpu_add(struct hyp *h, const char *pool, unsigned cpu)
{
	struct sched *s = h->sched;
	int id, err = 0;

	pthread_mutex_lock(&s->lock);
	id = pool_find_locked(s, pool);
	if (id < 0)
		err = -ENOENT;
	else if (cpu >= s->npcpus)
		err = -EINVAL;
	else if (s->cpu_pool[cpu] >= 0)
		err = -EBUSY;
	else
		pool_set_cpu_locked(s, cpu, id);
	pthread_mutex_unlock(&s->lock);
	return err;
}

int sched_pool_cpu_remove(struct hyp *h, const char *pool, unsigned cpu)
{
	struct sched *s = h->sched;
	int id, err = 0;

	pthread_mutex_lock(&s->lock);
	id = pool_find_locked(s, pool);
	if (id < 0)
		err = -ENOENT;
	else if (cpu >= s->npcpus || s->cpu_pool[cpu] != id)
		err = -EINVAL;
	else if (__builtin_popcountll(s->pools[id].cpus) == 1 && s->pools[id].vcpus)
		err = -EBUSY; /* its domains would never run */
	else if (s->owner[cpu] && s->pools[id].kind == SCHED_NULL)
		err = -EBUSY;
	else
		pool_set_cpu_locked(s, cpu, -1);
	pthread_mutex_unlock(&s->lock);
	return err;
}

int sched_pool_migrate(struct hyp *h, uint32_t domid, const char *pool)
{
	struct sched *s = h->sched;
	struct hyp_domain *d;
	int id, err;

	err = hyp_domain_get(h, domid, &d);
	if (err)
		return err;
	pthread_mutex_lock(&s->lock);
	id = pool_find_locked(s, pool);
	if (id < 0) {
		err = -ENOENT;
	} else if ((unsigned)id != d->sched_pool) {
		unsigned old = d->sched_pool;

		__atomic_store_n(&d->sched_pool, (unsigned)id, __ATOMIC_RELAXED);
		/* vCPUs not running move now (a waiting one starts over in
		 * the new pool); running ones at their next acquire, the
		 * ticker ending their run. */
		for (unsigned i = 0; i < d->nvcpus; i++) {
			struct hyp_vcpu *v = &d->vcpus[i];

			if (!v->sched_listed || v->sched_running)
				continue;
			if (s->pools[v->sched_pool_in].kind == SCHED_NULL)
				hyp__null_unassign_locked(s, v);
			sched_list_del(s, v);
			sched_list_add(s, v, (unsigned)id);
			v->sched_waiting = false;
			v->sched_credit = SCHED_CREDIT_INIT_NS;
		}
		pthread_cond_broadcast(&s->pools[old].cond);
		pthread_cond_broadcast(&s->pools[id].cond);
	}
	pthread_mutex_unlock(&s->lock);
	if (!err)
		log_info("d%u: moved to cpupool %s", domid, pool);
	hyp_domain_put(d);
	return err;
}

/* ---- per-domain and per-vCPU queries ----------------------------------------- */

int sched_credit2_get(struct hyp *h, uint32_t domid, struct sched_dom_params *out)
{
	struct sched *s = h->sched;
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&s->lock);
	out->weight = d->sched_weight ? d->sched_weight : SCHED_DEFAULT_WEIGHT;
	out->cap = d->cap;
	snprintf(out->pool, sizeof(out->pool), "%s", s->pools[d->sched_pool].name);
	pthread_mutex_unlock(&s->lock);
	hyp_domain_put(d);
	return 0;
}

int sched_vcpu_pin(struct hyp *h, uint32_t domid, int vcpu, const uint64_t *hard,
		   const uint64_t *soft)
{
	struct sched *s = h->sched;
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	if (vcpu >= (int)d->nvcpus || (hard && !(*hard & all_mask(s->npcpus)))) {
		hyp_domain_put(d);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < d->nvcpus; i++) {
		struct hyp_vcpu *v = &d->vcpus[i];

		if (vcpu >= 0 && (unsigned)vcpu != i)
			continue;
		if (hard) {
			v->sched_hard = (*hard & all_mask(s->npcpus)) == all_mask(s->npcpus)
						? 0 : *hard;
			/* A running vCPU off its new mask stops at the next
			 * tick; a null assignment off the mask is dropped. */
			if (v->sched_cpu1 && v->sched_hard &&
			    !(v->sched_hard & (1ULL << (v->sched_cpu1 - 1)))) {
				if (v->sched_running && !v->sched_kicked) {
					v->sched_kicked = true;
					d->ops->vcpu_kick(v);
				}
				if (v->sched_listed &&
				    s->pools[v->sched_pool_in].kind == SCHED_NULL &&
				    !v->sched_running)
					hyp__null_unassign_locked(s, v);
			}
		}
		if (soft)
			v->sched_soft = (*soft & all_mask(s->npcpus)) == all_mask(s->npcpus)
						? 0 : *soft;
	}
	pthread_mutex_unlock(&s->lock);
	hyp_domain_put(d);
	return 0;
}

int sched_vcpu_list(struct hyp *h, uint32_t domid, struct sched_vcpu_info *out,
		    unsigned max)
{
	struct sched *s = h->sched;
	struct hyp_domain *d;
	unsigned n = 0;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < d->nvcpus && n < max; i++) {
		struct hyp_vcpu *v = &d->vcpus[i];
		struct sched_vcpu_info *o = &out[n++];
		unsigned c1 = v->sched_cpu1 ? v->sched_cpu1 : v->sched_last_cpu1;
		bool paused = __atomic_load_n(&d->paused, __ATOMIC_RELAXED);

		memset(o, 0, sizeof(*o));
		o->domid = domid;
		o->vcpu = i;
		o->cpu = c1 ? (int)c1 - 1 : -1;
		snprintf(o->state, sizeof(o->state), "%c%c%c", v->sched_running ? 'r' : '-',
			 v->blocked ? 'b' : '-', paused ? 'p' : '-');
		o->hard = v->sched_hard ? v->sched_hard : all_mask(s->npcpus);
		o->soft = v->sched_soft ? v->sched_soft : all_mask(s->npcpus);
		if (v->thread_started && !v->exited)
			o->time_s = (double)(v->cpu_ns_done + sched_thread_ns(v)) / 1e9;
		else
			o->time_s = (double)v->cpu_ns_done / 1e9;
	}
	pthread_mutex_unlock(&s->lock);
	hyp_domain_put(d);
	return (int)n;
}

void sched_get_stats(struct hyp *h, struct sched_stats *out)
{
	pthread_mutex_lock(&h->sched->lock);
	out->switches = h->sched->switches;
	pthread_mutex_unlock(&h->sched->lock);
}

/* ---- save and restore (context.c, formats/SPEC.md section 5) ------------- */

int sched_ctx_save(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque)
{
	struct sched *s = d->h->sched;
	struct ferry_hvm_sched e = { .version = 1 };
	struct ferry_hvm_sched_vcpu vc[HYP_MAX_VCPUS];
	int err;

	memset(vc, 0, sizeof(vc));
	pthread_mutex_lock(&s->lock);
	e.weight = d->sched_weight ? d->sched_weight : SCHED_DEFAULT_WEIGHT;
	/* The user's cap: migration's throttle is the source's business. */
	e.cap = __atomic_load_n(&d->sched_cap_user, __ATOMIC_RELAXED);
	snprintf(e.pool, sizeof(e.pool), "%s", s->pools[d->sched_pool].name);
	for (unsigned i = 0; i < d->nvcpus; i++) {
		vc[i].version = 1;
		vc[i].hard = d->vcpus[i].sched_hard;
		vc[i].soft = d->vcpus[i].sched_soft;
	}
	pthread_mutex_unlock(&s->lock);
	err = emit(opaque, FERRY_HVM_SCHED, 0, &e, sizeof(e));
	for (unsigned i = 0; !err && i < d->nvcpus; i++)
		err = emit(opaque, FERRY_HVM_SCHED_VCPU, (uint16_t)i, &vc[i], sizeof(vc[i]));
	return err;
}

static int load_sched(struct hyp_domain *d, const void *data, uint32_t len)
{
	struct ferry_hvm_sched e;
	const char *bad = NULL;
	size_t n;

	memcpy(&e, data, sizeof(e));
	n = strnlen(e.pool, sizeof(e.pool));
	if (e.version != 1)
		bad = "version";
	else if (e.reserved)
		bad = "reserved";
	else if (!e.weight || e.weight > SCHED_MAX_WEIGHT)
		bad = "weight (1..65535)";
	else if (e.cap > 100 * d->nvcpus)
		bad = "cap (at most 100 per vCPU)";
	else if (!n || n == sizeof(e.pool))
		bad = "pool (a NUL-terminated name)";
	for (size_t i = 0; !bad && i < n; i++)
		if (e.pool[i] < 0x20 || e.pool[i] > 0x7e)
			bad = "pool (printable ASCII)";
	if (bad) {
		log_err("d%u: HVM context entry SCHED: bad %s (version %u weight %u cap %u)",
			d->domid, bad, e.version, e.weight, e.cap);
		return -EINVAL;
	}
	if (d->ctx_have_sched) {
		log_err("d%u: HVM context entry SCHED comes twice", d->domid);
		return -EINVAL;
	}
	(void)len;
	d->ctx_sched = e;
	d->ctx_have_sched = true;
	return 0;
}

int sched_ctx_load(struct hyp_domain *d, uint16_t typecode, uint16_t instance,
		   const void *data, uint32_t len)
{
	struct ferry_hvm_sched_vcpu vc;

	if (typecode == FERRY_HVM_SCHED) {
		if (instance || len != sizeof(struct ferry_hvm_sched)) {
			log_err("d%u: HVM context entry SCHED/%u: instance must be 0 and length "
				"%zu, got %u", d->domid, instance, sizeof(struct ferry_hvm_sched),
				len);
			return -EINVAL;
		}
		return load_sched(d, data, len);
	}
	if (instance >= d->nvcpus || len != sizeof(vc)) {
		log_err("d%u: HVM context entry SCHED_VCPU/%u: the domain has %u vCPUs and the "
			"length must be %zu, got %u", d->domid, instance, d->nvcpus, sizeof(vc),
			len);
		return -EINVAL;
	}
	memcpy(&vc, data, sizeof(vc));
	if (vc.version != 1 || vc.reserved) {
		log_err("d%u: HVM context entry SCHED_VCPU/%u: bad %s (%u)", d->domid, instance,
			vc.version != 1 ? "version" : "reserved",
			vc.version != 1 ? vc.version : vc.reserved);
		return -EINVAL;
	}
	if (d->ctx_sched_vcpus & (1u << instance)) {
		log_err("d%u: HVM context entry SCHED_VCPU/%u comes twice", d->domid, instance);
		return -EINVAL;
	}
	d->ctx_sched_vcpu[instance] = vc;
	d->ctx_sched_vcpus |= 1u << instance;
	return 0;
}

/* mask limited to this host's pCPUs; 0 (any) with a warning when none is
 * left, a warning too when some were dropped. */
static uint64_t fit_mask(struct hyp_domain *d, unsigned vcpu, const char *what,
			 uint64_t mask)
{
	unsigned n = d->h->sched->npcpus;
	uint64_t fit = mask & all_mask(n);

	if (!mask || fit == mask)
		return mask;
	if (!fit)
		log_warn("d%u: vCPU %u: saved %s affinity 0x%llx names only pCPUs this host "
			 "lacks (it has %u): any pCPU", d->domid, vcpu, what,
			 (unsigned long long)mask, n);
	else
		log_warn("d%u: vCPU %u: saved %s affinity 0x%llx names pCPUs this host lacks "
			 "(it has %u): using 0x%llx", d->domid, vcpu, what,
			 (unsigned long long)mask, n, (unsigned long long)fit);
	return fit;
}

void sched_ctx_apply(struct hyp_domain *d)
{
	struct hyp *h = d->h;

	if (d->ctx_have_sched) {
		const struct ferry_hvm_sched *e = &d->ctx_sched;

		int pool;
		bool same_cap;

		pthread_mutex_lock(&h->sched->lock);
		d->sched_weight = e->weight;
		pool = pool_find_locked(h->sched, e->pool);
		same_cap = d->cap == e->cap;
		pthread_mutex_unlock(&h->sched->lock);
		__atomic_store_n(&d->sched_cap_user, e->cap, __ATOMIC_RELAXED);
		if (!same_cap && hyp_domain_set_cap(h, d->domid, e->cap))
			log_warn("d%u: cannot restore the cap %u%%", d->domid, e->cap);
		if (pool < 0)
			log_warn("d%u: cpupool %s does not exist here: staying in %s", d->domid,
				 e->pool, h->sched->pools[d->sched_pool].name);
		else if ((unsigned)pool != d->sched_pool &&
			 sched_pool_migrate(h, d->domid, e->pool))
			log_warn("d%u: cannot move to cpupool %s: staying in %s", d->domid,
				 e->pool, h->sched->pools[d->sched_pool].name);
	}
	for (unsigned i = 0; i < d->nvcpus; i++) {
		const struct ferry_hvm_sched_vcpu *vc = &d->ctx_sched_vcpu[i];
		uint64_t hard, soft, any = all_mask(h->sched->npcpus);

		if (!(d->ctx_sched_vcpus & (1u << i)))
			continue;
		hard = fit_mask(d, i, "hard", vc->hard);
		soft = fit_mask(d, i, "soft", vc->soft);
		if (sched_vcpu_pin(h, d->domid, (int)i, hard ? &hard : &any, soft ? &soft : &any))
			log_warn("d%u: cannot restore vCPU %u's affinity", d->domid, i);
	}
	d->ctx_have_sched = false;
	d->ctx_sched_vcpus = 0;
}
