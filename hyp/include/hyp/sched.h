/* SPDX-License-Identifier: MIT */
/*
 * The scheduler: ferryd's pCPUs (struct hyp_params.pcpus) grouped into
 * cpupools, each run by a scheduler: credit2 (weights, caps, hard and
 * soft affinity) or null (one dedicated pCPU per vCPU). Pool 0 "Pool-0"
 * holds every pCPU at start and runs credit2; every domain starts there.
 *
 * Caps (hyp_domain_set_cap, sched_credit2_set) are percent of one pCPU for
 * the whole domain, enforced per accounting period. All calls are safe
 * from any thread.
 */
#ifndef HYP_SCHED_H
#define HYP_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hyp;

#define SCHED_MAX_PCPUS 64
#define SCHED_MAX_POOLS 16
#define SCHED_POOL_NAME_MAX 64
#define SCHED_DEFAULT_WEIGHT 256
#define SCHED_MAX_WEIGHT 65535

/* "all", "3", "0-1,4": bit i = pCPU i. -EINVAL for a malformed list or a
 * pCPU >= npcpus (when npcpus is not 0). */
int sched_parse_cpulist(const char *s, unsigned npcpus, uint64_t *mask);
/* The shortest list ("0-2,5"; "all" when mask covers npcpus; "none"). */
void sched_format_cpulist(uint64_t mask, unsigned npcpus, char *buf, size_t len);

unsigned sched_npcpus(struct hyp *h);

struct sched_dom_params {
	unsigned weight;
	unsigned cap; /* % of one pCPU for the domain, 0 = none */
	char pool[SCHED_POOL_NAME_MAX];
};
int sched_credit2_get(struct hyp *h, uint32_t domid, struct sched_dom_params *out);
/* weight 1..65535, cap 0..100 * vCPUs; a negative value keeps the current. */
int sched_credit2_set(struct hyp *h, uint32_t domid, int weight, int cap);

/* Affinity of one vCPU (vcpu < 0: every vCPU); NULL keeps a mask. A hard
 * mask must leave at least one pCPU. */
int sched_vcpu_pin(struct hyp *h, uint32_t domid, int vcpu, const uint64_t *hard,
		   const uint64_t *soft);

struct sched_vcpu_info {
	uint32_t domid;
	unsigned vcpu;
	int cpu;	/* the pCPU running (or last ran) it, -1 never ran */
	char state[4];	/* Xen's: running 'r', blocked 'b', paused 'p' ("r--") */
	double time_s;
	uint64_t hard, soft;
};
/* The vCPUs of domid; returns the count or -errno. */
int sched_vcpu_list(struct hyp *h, uint32_t domid, struct sched_vcpu_info *out,
		    unsigned max);

struct sched_pool_info {
	unsigned id;
	char name[SCHED_POOL_NAME_MAX];
	char sched[16];	/* "credit2" or "null" */
	uint64_t cpus;
	unsigned ncpus;
	unsigned ndoms;
};
int sched_pool_list(struct hyp *h, struct sched_pool_info *out, unsigned max);
/* sched "credit2" (default when NULL or "") or "null". cpus must be free
 * pCPUs or Pool-0's (which keeps at least one). -EEXIST, -EBUSY, -EINVAL. */
int sched_pool_create(struct hyp *h, const char *name, const char *sched, uint64_t cpus);
/* The pool must hold no domain; its pCPUs go back to Pool-0. Not Pool-0. */
int sched_pool_destroy(struct hyp *h, const char *name);
int sched_pool_migrate(struct hyp *h, uint32_t domid, const char *pool);
int sched_pool_cpu_add(struct hyp *h, const char *pool, unsigned cpu);
int sched_pool_cpu_remove(struct hyp *h, const char *pool, unsigned cpu);

struct sched_stats {
	uint64_t switches; /* pCPU handovers since start */
};
void sched_get_stats(struct hyp *h, struct sched_stats *out);

#endif
