// SPDX-License-Identifier: MIT
/* Domains: lifecycle, lookup, pause, guest-requested shutdown and crash. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/bitmap.h"
#include "common/clock.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/hugemap.h"
#include "common/log.h"
#include "internal.h"


/* Under h->lock. */
static struct hyp_domain *find_locked(struct hyp *h, uint32_t domid)
{
	for (struct hyp_domain *d = h->domains; d; d = d->next)
		if (d->domid == domid)
			return d;
	return NULL;
}

static struct hyp_domain *find_name_locked(struct hyp *h, const char *name)
{
	for (struct hyp_domain *d = h->domains; d; d = d->next)
		if (!strcmp(d->cfg.name, name))
			return d;
	return NULL;
}

int hyp_domain_get(struct hyp *h, uint32_t domid, struct hyp_domain **out)
{
	struct hyp_domain *d;

	pthread_mutex_lock(&h->lock);
	d = find_locked(h, domid);
	if (d)
		d->refs++;
	pthread_mutex_unlock(&h->lock);
	if (!d)
		return -ENOENT;
	*out = d;
	return 0;
}

/*
 * The P2M tables: populated in one call rather than a page fault per page,
 * on huge pages from 1 MiB (common/hugemap.h: 1 GiB's P2M took 5.4 ms
 * in 4 KiB pages here); their zero pages are MFN 0 and RAM until written.
 * HYP_P2M_RAM being 0 is what lets the type table skip its memset for the
 * populated part.
 */
_Static_assert(HYP_P2M_RAM == 0, "the P2M type table's zero pages must read as RAM");

static void *p2m_map(size_t bytes)
{
	return ferry_hugemap(bytes, true);
}

static void p2m_unmap(void *p, size_t bytes)
{
	ferry_hugeunmap(p, bytes);
}

/*
 * Guest memory goes 64 MiB at a time: one munmap of a 1 GiB domain held
 * the process's mmap lock 20-70 ms here, a stall for every other domain's
 * page faults and for a lazy restore starting meanwhile.
 */
static void unmap_guest(uint8_t *p, size_t bytes)
{
	const size_t step = (size_t)64 << 20;

	for (size_t off = 0; off < bytes; off += step)
		munmap(p + off, bytes - off < step ? bytes - off : step);
}

/* Frees everything once the last reference goes; vCPU threads are gone. */
static void dom_free(struct hyp_domain *d)
{
	struct hyp *h = d->h;

	hyp__pv_dom_fini(d); /* its poll thread reads guest memory */
	for (unsigned i = 0; i < d->nvcpus; i++)
		if (d->vcpus[i].exec)
			d->ops->vcpu_fini(&d->vcpus[i]);
	if (d->exec)
		d->ops->dom_fini(d);
	if (d->p2m) {
		hyp__mem_release(&d->h->mem, d->p2m, d->maxmem_bytes >> PAGE_SHIFT);
		p2m_unmap(d->p2m, (d->maxmem_bytes >> PAGE_SHIFT) * sizeof(*d->p2m));
	}
	hyp_uffd_free(d->uffd); /* before the mapping it covers goes */
	if (d->hva)
		unmap_guest(d->hva, d->maxmem_bytes);
	if (d->p2m_type)
		p2m_unmap(d->p2m_type, d->maxmem_bytes >> PAGE_SHIFT);
	free(d->host_dirty);
	free(d->unwritten);
	hyp__console_fini(d);
	evtchn_dom_fini(d);
	gnttab_dom_fini(d);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->p2m_lock);
	free(d);
	pthread_mutex_lock(&h->lock);
	h->nalive--;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

void hyp_domain_put(struct hyp_domain *d)
{
	struct hyp *h = d->h;
	int refs;

	pthread_mutex_lock(&h->lock);
	refs = --d->refs;
	pthread_mutex_unlock(&h->lock);
	if (!refs)
		dom_free(d);
}

void hyp__dom_set_state(struct hyp_domain *d, enum hyp_dom_state s)
{
	bool changed;

	pthread_mutex_lock(&d->lock);
	changed = d->state != s;
	d->state = s;
	pthread_mutex_unlock(&d->lock);
	if (changed && d->h->ev.state)
		d->h->ev.state(d->h->ev.opaque, d->domid, s);
}

static void kick_all(struct hyp_domain *d)
{
	for (unsigned i = 0; i < d->nvcpus; i++) {
		struct hyp_vcpu *v = &d->vcpus[i];

		if (v->thread_started)
			d->ops->vcpu_kick(v);
	}
}

/* Stops and joins every vCPU thread. */
static void stop_vcpus(struct hyp_domain *d)
{
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	for (unsigned i = 0; i < d->nvcpus; i++)
		d->vcpus[i].kicked = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	kick_all(d);
	for (unsigned i = 0; i < d->nvcpus; i++) {
		struct hyp_vcpu *v = &d->vcpus[i];

		if (v->thread_started && !pthread_equal(v->thread, pthread_self())) {
			pthread_join(v->thread, NULL);
			v->thread_started = false;
		}
	}
}

/* A start or stop of the domain's vCPUs, for ev.run once d->lock is dropped. */
struct run_edge {
	bool set, running;
	uint64_t ns;
};

static void run_edge_locked(struct hyp_domain *d, bool running, struct run_edge *e)
{
	if (d->run_said == running)
		return;
	d->run_said = running;
	*e = (struct run_edge){.set = true, .running = running, .ns = ferry_now_ns()};
}

static void run_edge_emit(struct hyp *h, uint32_t domid, const struct run_edge *e)
{
	if (e->set && h->ev.run)
		h->ev.run(h->ev.opaque, domid, e->running, e->ns);
}

static int check_config(struct hyp *h, const struct hyp_dom_config *c,
			const struct hyp_exec_ops **ops)
{
	uint64_t pool_mb = h->mem.nframes >> (20 - PAGE_SHIFT);

	if (!c->name[0]) {
		log_err("domain config has no name");
		return -FERRY_EBADCFG;
	}
	if (!c->memory_mb || c->maxmem_mb < c->memory_mb) {
		log_err("%s: memory %llu MiB must be > 0 and <= maxmem %llu MiB", c->name,
			(unsigned long long)c->memory_mb, (unsigned long long)c->maxmem_mb);
		return -FERRY_EBADCFG;
	}
	/* Never reachable past the pool, and its P2M and address space would
	 * be reserved up front: 1 TiB of maxmem would cost 1 GiB at once.
	 * (Memory itself past the pool is "not enough memory", found before
	 * anything is reserved.) */
	if (c->maxmem_mb > pool_mb && c->memory_mb <= pool_mb) {
		log_err("%s: maxmem %llu MiB is above this host's memory pool of %llu MiB "
			"(ferryd --memory)", c->name, (unsigned long long)c->maxmem_mb,
			(unsigned long long)pool_mb);
		return -FERRY_EBADCFG;
	}
	if (c->max_kb > c->maxmem_mb << 10) {
		log_err("%s: max_kb %llu KiB is above maxmem %llu MiB", c->name,
			(unsigned long long)c->max_kb, (unsigned long long)c->maxmem_mb);
		return -FERRY_EBADCFG;
	}
	if (c->memory_mb < 8) {
		log_err("%s: memory %llu MiB is below the 8 MiB minimum", c->name,
			(unsigned long long)c->memory_mb);
		return -FERRY_EBADCFG;
	}
	if (!c->vcpus || c->vcpus > HYP_MAX_VCPUS) {
		log_err("%s: vcpus %u out of range 1..%u", c->name, c->vcpus, HYP_MAX_VCPUS);
		return -FERRY_EBADCFG;
	}
	*ops = c->backend[0] ? hyp_backend_by_name(c->backend) : h->default_ops;
	if (!*ops) {
		log_err("%s: unknown backend '%s' (expected kvm or soft)", c->name, c->backend);
		return -FERRY_EBADCFG;
	}
	if (*ops != h->default_ops) {
		char why[HYP_PROBE_WHY_MAX];
		int err = (*ops)->probe(why, sizeof(why));

		if (err) {
			log_err("%s: the %s backend cannot run here: %s", c->name, (*ops)->name,
				why);
			return err;
		}
	}
	return 0;
}

static int dom_load(struct hyp_domain *d)
{
	const char *kernel = d->cfg.kernel[0] ? d->cfg.kernel : d->h->guest_elf;
	uint64_t entry;
	int err;

	if (d->ops->loads_kernel) {
		/* The loader logs what is wrong with the image. */
		err = hyp_loader_load_elf(d->hva, d->mem_bytes, kernel, &entry);
		if (err)
			return err;
		d->entry = entry;
	}
	return hyp_loader_setup_boot(d->hva, d->mem_bytes, d->cfg.cmdline,
				     d->ops->loads_kernel);
}

/*
 * Builds a domain: memory populated, backend and vCPU threads started
 * (parked while paused). restore: no kernel, boot page tables, start info
 * or boot registers; the saved memory and context bring their own.
 */
/* A new domain's structure: paused, its locks made, nothing allocated. */
static struct hyp_domain *dom_alloc(struct hyp *h, const struct hyp_dom_config *cfg,
				    const struct hyp_exec_ops *ops, bool restore)
{
	struct hyp_domain *d = calloc(1, sizeof(*d));
	pthread_condattr_t ca;

	if (!d)
		return NULL;
	d->h = h;
	d->cfg = *cfg;
	d->ops = ops;
	d->refs = 1;
	d->paused = true;
	d->pause_ctl = 1; /* as Xen's: the toolstack unpauses it once built */
	d->state = HYP_DOM_PAUSED;
	d->nvcpus = cfg->vcpus;
	d->restoring = restore;
	d->con_log_fd = -1;
	snprintf(d->cfg.backend, sizeof(d->cfg.backend), "%s", ops->name);
	pthread_mutex_init(&d->lock, NULL);
	/* Every timed wait on it (hyp__vcpu_block, the cap) counts in CLOCK_MONOTONIC;
	 * with the default clock each wait returned at once and blocked vCPUs spun. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&d->con_lock, NULL);
	pthread_mutex_init(&d->con_order, NULL);
	pthread_mutex_init(&d->p2m_lock, NULL);
	d->mem_bytes = cfg->memory_mb << 20;
	d->maxmem_bytes = cfg->maxmem_mb << 20;
	/* A restore's: the saved domain's mem-max. What the physmap holds
	 * until the stream's holes are made may exceed it for a while. */
	d->max_pages = cfg->max_kb ? cfg->max_kb >> 2 : d->maxmem_bytes >> PAGE_SHIFT;
	return d;
}

/* Name check and domid allocation in one critical section. Counts d among
 * the living (dom_free undoes it, on every path). */
static int dom_claim_id(struct hyp *h, struct hyp_domain *d)
{
	uint64_t pages = d->mem_bytes >> PAGE_SHIFT, free_pages;
	int err = 0;

	pthread_mutex_lock(&h->lock);
	h->nalive++;
	if (h->closing) {
		err = -ESHUTDOWN;
		goto out;
	}
	if (find_name_locked(h, d->cfg.name)) {
		log_err("domain name '%s' is already in use", d->cfg.name);
		err = -EEXIST;
		goto out;
	}
	pthread_mutex_lock(&h->mem.lock);
	free_pages = h->mem.nfree;
	pthread_mutex_unlock(&h->mem.lock);
	if (pages > free_pages) {
		log_err("%s: domain needs %llu MiB, %llu MiB free of %llu MiB", d->cfg.name,
			(unsigned long long)d->cfg.memory_mb,
			(unsigned long long)(free_pages >> 8),
			(unsigned long long)(h->mem.nframes >> 8));
		err = -ENOMEM;
		goto out;
	}
	d->domid = h->next_domid++;
out:
	pthread_mutex_unlock(&h->lock);
	return err;
}

/* The guest-physical view (maxmem reserved), the P2M, the dirty bitmaps,
 * and memory_mb of it populated. */
static int dom_map_memory(struct hyp_domain *d, bool restore, bool lazy)
{
	uint64_t pages = d->mem_bytes >> PAGE_SHIFT, maxpages = d->maxmem_bytes >> PAGE_SHIFT;
	int err;

	d->hva = mmap(NULL, d->maxmem_bytes, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	d->p2m = p2m_map(maxpages * sizeof(*d->p2m));
	d->p2m_type = p2m_map(maxpages);
	d->host_dirty = calloc(BITMAP_WORDS(maxpages), 8);
	if (restore && d->host_dirty) {
		d->unwritten = malloc(BITMAP_WORDS(maxpages) * 8);
		if (d->unwritten)
			memset(d->unwritten, 0xff, BITMAP_WORDS(maxpages) * 8);
	}
	if (d->hva != MAP_FAILED && hyp_uffd_new(d->hva, pages, &d->uffd))
		d->uffd = NULL;
	if (d->hva == MAP_FAILED || !d->p2m || !d->p2m_type || !d->host_dirty ||
	    (restore && !d->unwritten) || !d->uffd) {
		if (d->hva == MAP_FAILED)
			d->hva = NULL;
		/* Its zeros would name frame 0 to dom_free's release. */
		if (d->p2m) {
			p2m_unmap(d->p2m, maxpages * sizeof(*d->p2m));
			d->p2m = NULL;
		}
		return -ENOMEM;
	}
	/* Only the part past memory_mb is written here: populate gives every
	 * gfn below it a frame, and the tables' zero pages already say RAM. */
	memset(d->p2m + pages, 0xff, (maxpages - pages) * sizeof(*d->p2m));
	memset(d->p2m_type + pages, HYP_P2M_HOLE, maxpages - pages);
	err = lazy ? hyp__mem_populate_unscrubbed(&d->h->mem, d->domid, d->p2m, d->hva, pages)
		   : hyp__mem_populate(&d->h->mem, d->domid, d->p2m, d->hva, 0, pages);
	if (err) {
		/* Populate gave back what it took; what it never reached must
		 * not read as frame 0 to dom_free's release. */
		memset(d->p2m, 0xff, pages * sizeof(*d->p2m));
		hyp__p2m_set_locked(d, 0, pages, HYP_P2M_HOLE);
		log_err("d%u: cannot populate %llu MiB of guest memory: %s", d->domid,
			(unsigned long long)d->cfg.memory_mb, ferry_strerror(-err));
		return err;
	}
	/* Whatever the frames held stays out of reach until each page is
	 * filled (hyp_gmem_fill_pending). */
	if (lazy)
		hyp__p2m_set_locked(d, 0, pages, HYP_P2M_PENDING);
	d->nr_pages = pages;
	return 0;
}

/* The vCPUs in the backend's VM, and their threads (parked: the domain
 * is paused). */
static int dom_start_vcpus(struct hyp_domain *d)
{
	int err = 0;

	for (unsigned i = 0; !err && i < d->nvcpus; i++) {
		d->vcpus[i].d = d;
		d->vcpus[i].id = i;
		err = d->ops->vcpu_init(&d->vcpus[i]);
	}
	for (unsigned i = 0; !err && i < d->nvcpus; i++)
		err = hyp__vcpu_start(&d->vcpus[i]);
	return err;
}

static int dom_create(struct hyp *h, const struct hyp_dom_config *cfg, bool restore, bool lazy,
		      bool start_paused, uint32_t *domid)
{
	const struct hyp_exec_ops *ops;
	struct hyp_domain *d, **pp;
	int err;

	err = check_config(h, cfg, &ops);
	if (err)
		return err;
	d = dom_alloc(h, cfg, ops, restore);
	if (!d)
		return -ENOMEM;
	err = dom_claim_id(h, d);
	if (!err)
		err = dom_map_memory(d, restore, lazy);
	if (!err)
		err = hyp__console_init(d);
	if (!err)
		err = evtchn_dom_init(d);
	if (!err)
		err = gnttab_dom_init(d);
	if (!err)
		err = hyp__pv_dom_init(d);
	if (!err && !restore)
		err = dom_load(d);
	if (!err)
		err = ops->dom_init(d);
	if (err)
		goto err_free;
	err = dom_start_vcpus(d);
	if (err)
		goto err_stop;

	pthread_mutex_lock(&h->lock);
	for (pp = &h->domains; *pp; pp = &(*pp)->next)
		;
	*pp = d;
	d->listed = true;
	h->ndomains++;
	pthread_mutex_unlock(&h->lock);
	log_info("d%u: created '%s' (%s, %llu MiB, %u vCPUs)%s", d->domid, cfg->name,
		 ops->name, (unsigned long long)cfg->memory_mb, cfg->vcpus,
		 restore ? " to restore into" : "");
	*domid = d->domid;
	if (!start_paused)
		return hyp_domain_unpause(h, d->domid);
	return 0;

err_stop:
	stop_vcpus(d);
err_free:
	dom_free(d);
	return err;
}

int hyp_domain_create(struct hyp *h, const struct hyp_dom_config *cfg,
		      bool start_paused, uint32_t *domid)
{
	return dom_create(h, cfg, false, false, start_paused, domid);
}

int hyp_domain_create_restore(struct hyp *h, const struct hyp_dom_config *cfg,
			      uint32_t *domid)
{
	return dom_create(h, cfg, true, false, true, domid);
}

int hyp_domain_create_lazy(struct hyp *h, const struct hyp_dom_config *cfg, uint32_t *domid)
{
	int err = hyp_uffd_supported(HYP_UFFD_MINOR, NULL, 0) ?:
		  hyp_uffd_supported(HYP_UFFD_MISSING, NULL, 0);

	return err ?: dom_create(h, cfg, true, true, true, domid);
}

int hyp_domain_destroy(struct hyp *h, uint32_t domid)
{
	struct run_edge e = {0};
	struct hyp_domain *d, **pp;

	pthread_mutex_lock(&h->lock);
	for (pp = &h->domains; *pp && (*pp)->domid != domid; pp = &(*pp)->next)
		;
	d = *pp;
	if (!d) {
		pthread_mutex_unlock(&h->lock);
		return -ENOENT;
	}
	*pp = d->next;
	d->listed = false;
	h->ndomains--;
	pthread_mutex_unlock(&h->lock);

	hyp__dom_set_state(d, HYP_DOM_DYING);
	stop_vcpus(d);
	pthread_mutex_lock(&d->lock);
	run_edge_locked(d, false, &e);
	pthread_mutex_unlock(&d->lock);
	run_edge_emit(h, domid, &e);
	hyp__pv_dom_stop(d);
	evtchn_dom_close_all(d); /* peers' ports become unbound */
	log_info("d%u: destroyed '%s'", d->domid, d->cfg.name);
	if (h->ev.gone)
		h->ev.gone(h->ev.opaque, d->domid);
	hyp_domain_put(d);
	return 0;
}

/*
 * Waits until every vCPU thread is parked or gone, or until the domain is
 * no longer paused (an unpause meanwhile). Under d->lock.
 */
static void wait_parked_locked(struct hyp_domain *d)
{
	/* A vCPU stopped on a page that will never come never parks. */
	while (d->paused && !d->mem_lost) {
		bool all = true;

		for (unsigned i = 0; i < d->nvcpus; i++)
			if (d->vcpus[i].thread_started && !d->vcpus[i].parked &&
			    !d->vcpus[i].exited)
				all = false;
		if (all)
			return;
		pthread_cond_wait(&d->cond, &d->lock);
	}
}

bool hyp__dom_wait_parked(struct hyp_domain *d)
{
	bool paused;

	pthread_mutex_lock(&d->lock);
	wait_parked_locked(d);
	paused = d->paused;
	pthread_mutex_unlock(&d->lock);
	return paused;
}

/* ---- pausing: the toolstack's count, the operations' count, the fence ---- */

enum pause_count { PAUSE_CTL, PAUSE_OP };

#define PAUSE_CTL_MAX 255 /* Xen's limit on the controller pause count */

static bool guest_gone(const struct hyp_domain *d)
{
	return d->state == HYP_DOM_SHUTDOWN || d->state == HYP_DOM_CRASHED ||
	       d->state == HYP_DOM_DYING;
}

/*
 * Makes the vCPUs follow the counts and the fence: parks them (returning
 * once every one is parked) or lets them run. Under d->lock, which it drops
 * while kicking. Returns true when the state changed, to *st; a start or
 * stop of the vCPUs goes to *e.
 */
static bool pause_apply_locked(struct hyp_domain *d, enum hyp_dom_state *st, struct run_edge *e)
{
	if (d->pause_ctl || d->pause_op || d->fenced) {
		if (!d->paused) {
			/* Atomic: soft workloads poll it (plat_preempted). */
			__atomic_store_n(&d->paused, true, __ATOMIC_RELAXED);
			for (unsigned i = 0; i < d->nvcpus; i++)
				d->vcpus[i].kicked = true;
			pthread_cond_broadcast(&d->cond);
			pthread_mutex_unlock(&d->lock);
			kick_all(d);
			pthread_mutex_lock(&d->lock);
		}
		wait_parked_locked(d);
		if (d->paused)
			run_edge_locked(d, false, e);
		/* A guest that shut down or crashed meanwhile keeps that state. */
		if (!d->paused || (d->state != HYP_DOM_RUNNING && d->state != HYP_DOM_BLOCKED))
			return false;
		*st = d->state = HYP_DOM_PAUSED;
		return true;
	}
	if (!d->paused)
		return false;
	run_edge_locked(d, true, e); /* stamped before any vCPU can run */
	__atomic_store_n(&d->paused, false, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&d->cond);
	if (d->state != HYP_DOM_PAUSED)
		return false;
	/* Running before any vCPU can run: a guest that crashes at once must
	 * not have its "crashed" overwritten by this unpause. */
	*st = d->state = HYP_DOM_RUNNING;
	return true;
}

/*
 * Under d->lock: may count `which` move by delta? 0 or -errno (logged where
 * the caller cannot tell why); *noop: allowed, and nothing to do.
 */
static int pause_check_locked(struct hyp_domain *d, enum pause_count which, int delta, bool *noop)
{
	*noop = false;
	if (delta > 0) {
		if (guest_gone(d))
			return -EINVAL;
		if (which == PAUSE_CTL && d->pause_ctl >= PAUSE_CTL_MAX)
			return -EOVERFLOW;
		return 0;
	}
	if (which == PAUSE_OP) {
		if (!d->pause_op) {
			log_err("d%u: an operation's unpause without its pause", d->domid);
			return -EINVAL;
		}
		return 0;
	}
	if (guest_gone(d))
		return -EINVAL;
	if (d->fenced) {
		/* Another host may run it: see hyp_domain_set_fenced. */
		log_warn("d%u: unpause refused: the domain is fenced", d->domid);
		return -EPERM;
	}
	if (d->mem_lost) {
		log_err("d%u: cannot unpause: part of its memory could not be read "
			"(hyp_domain_mem_lost)", d->domid);
		return -EIO;
	}
	if (d->restoring) {
		/* Its vCPUs have no state to run from yet. */
		log_err("d%u: cannot unpause: its saved context is not loaded yet", d->domid);
		return -EINVAL;
	}
	if (d->pause_ctl)
		return 0;
	if (d->pause_op) {
		log_warn("d%u: unpause refused: an operation (%s) holds it paused", d->domid,
			 hyp_op_name(d->op));
		return -EBUSY;
	}
	*noop = true; /* running, and nobody paused it */
	return 0;
}

static int pause_move(struct hyp *h, uint32_t domid, enum pause_count which, int delta)
{
	enum hyp_dom_state st = HYP_DOM_RUNNING;
	struct run_edge e = {0};
	struct hyp_domain *d;
	bool noop, changed = false;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	err = pause_check_locked(d, which, delta, &noop);
	if (!err && !noop) {
		if (which == PAUSE_CTL)
			d->pause_ctl += (unsigned)delta;
		else
			d->pause_op += (unsigned)delta;
		changed = pause_apply_locked(d, &st, &e);
	}
	pthread_mutex_unlock(&d->lock);
	run_edge_emit(h, domid, &e);
	if (changed && h->ev.state)
		h->ev.state(h->ev.opaque, domid, st);
	hyp_domain_put(d);
	return err;
}

int hyp_domain_pause(struct hyp *h, uint32_t domid)
{
	return pause_move(h, domid, PAUSE_CTL, 1);
}

int hyp_domain_unpause(struct hyp *h, uint32_t domid)
{
	return pause_move(h, domid, PAUSE_CTL, -1);
}

int hyp_domain_op_pause(struct hyp *h, uint32_t domid)
{
	return pause_move(h, domid, PAUSE_OP, 1);
}

int hyp_domain_op_unpause(struct hyp *h, uint32_t domid)
{
	return pause_move(h, domid, PAUSE_OP, -1);
}

int hyp_domain_mem_lost(struct hyp *h, uint32_t domid)
{
	enum hyp_dom_state st = HYP_DOM_RUNNING;
	struct run_edge e = {0};
	struct hyp_domain *d;
	bool changed;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	if (d->mem_lost) {
		pthread_mutex_unlock(&d->lock);
		hyp_domain_put(d);
		return 0;
	}
	d->mem_lost = true;
	d->pause_op++; /* never given back: see hyp.h */
	changed = pause_apply_locked(d, &st, &e);
	pthread_mutex_unlock(&d->lock);
	run_edge_emit(h, domid, &e);
	log_err("d%u: part of its memory cannot be read: paused for good", domid);
	if (changed && h->ev.state)
		h->ev.state(h->ev.opaque, domid, st);
	hyp_domain_put(d);
	return 0;
}

int hyp_domain_set_fenced(struct hyp *h, uint32_t domid, bool fenced)
{
	enum hyp_dom_state st = HYP_DOM_RUNNING;
	struct run_edge e = {0};
	struct hyp_domain *d;
	bool changed = false;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	d->fenced = fenced;
	/* A restore's domain waits for its unpause whatever the fence says. */
	if (!d->restoring)
		changed = pause_apply_locked(d, &st, &e);
	pthread_mutex_unlock(&d->lock);
	run_edge_emit(h, domid, &e);
	log_info("d%u: %s", domid,
		 fenced ? "fenced (unpause refused until resolved)" : "fence lifted");
	if (changed && h->ev.state)
		h->ev.state(h->ev.opaque, domid, st);
	hyp_domain_put(d);
	return 0;
}

/* ---- the owner operation ------------------------------------------------ */

const char *hyp_op_name(enum hyp_op op)
{
	switch (op) {
	case HYP_OP_NONE: return "none";
	case HYP_OP_SAVE: return "save";
	case HYP_OP_MIGRATE: return "migration";
	case HYP_OP_SNAPSHOT: return "snapshot";
	case HYP_OP_REMUS: return "remus";
	}
	return "operation";
}

int hyp_domain_claim(struct hyp *h, uint32_t domid, enum hyp_op op, const char *detail,
		     struct hyp_op_holder *holder)
{
	struct hyp_domain *d;
	int err;

	if (op == HYP_OP_NONE)
		return -EINVAL;
	err = hyp_domain_get(h, domid, &d);
	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	if (d->op != HYP_OP_NONE) {
		if (holder) {
			holder->op = d->op;
			snprintf(holder->detail, sizeof(holder->detail), "%s", d->op_detail);
		}
		err = -EBUSY;
	} else {
		d->op = op;
		snprintf(d->op_detail, sizeof(d->op_detail), "%s", detail ? detail : "");
	}
	pthread_mutex_unlock(&d->lock);
	hyp_domain_put(d);
	return err;
}

int hyp_domain_release(struct hyp *h, uint32_t domid, enum hyp_op op)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	if (d->op == op && op != HYP_OP_NONE) {
		d->op = HYP_OP_NONE;
		d->op_detail[0] = 0;
	} else {
		err = -EINVAL;
	}
	pthread_mutex_unlock(&d->lock);
	if (err)
		log_err("d%u: released by a %s, which does not hold it", domid, hyp_op_name(op));
	hyp_domain_put(d);
	return err;
}

int hyp_domain_holder(struct hyp *h, uint32_t domid, struct hyp_op_holder *out)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	out->op = d->op;
	snprintf(out->detail, sizeof(out->detail), "%s", d->op_detail);
	pthread_mutex_unlock(&d->lock);
	hyp_domain_put(d);
	return 0;
}

int hyp_domain_shutdown(struct hyp *h, uint32_t domid, bool reboot)
{
	struct ferry_ctl ctl;
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	err = hyp_gmem_read(d, FERRY_CTL_GPA, &ctl, sizeof(ctl));
	if (!err) {
		ctl.shutdown_req = reboot ? FERRY_CTL_REQ_REBOOT : FERRY_CTL_REQ_POWEROFF;
		err = hyp_gmem_write(d, FERRY_CTL_GPA, &ctl, sizeof(ctl));
	}
	if (!err) {
		/* Wake blocked vCPUs so the guest sees the request now. */
		pthread_mutex_lock(&d->lock);
		for (unsigned i = 0; i < d->nvcpus; i++)
			d->vcpus[i].kicked = true;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		log_info("d%u: %s requested", domid, reboot ? "reboot" : "shutdown");
	}
	hyp_domain_put(d);
	return err;
}

struct reaper_job {
	struct hyp *h;
	uint32_t domid;
	bool restart;
	struct hyp_dom_config cfg;
};

static void *reaper(void *arg)
{
	struct reaper_job *j = arg;
	struct hyp *h = j->h;
	uint32_t id;

	hyp_domain_destroy(h, j->domid);
	if (j->restart) {
		if (hyp_domain_create(h, &j->cfg, false, &id) == 0)
			log_info("'%s' restarted as d%u", j->cfg.name, id);
		else
			log_err("'%s' could not be restarted", j->cfg.name);
	}
	free(j);
	pthread_mutex_lock(&h->lock);
	h->nreapers--;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static const char *const reason_names[] = { "poweroff", "reboot", "suspend",
					    "crash", "watchdog" };

void hyp__dom_guest_shutdown(struct hyp_domain *d, unsigned reason)
{
	enum hyp_on_event action;
	struct reaper_job *j;
	pthread_t t;
	pthread_attr_t attr;

	switch (reason) {
	case SHUTDOWN_poweroff: action = d->cfg.on_poweroff; break;
	case SHUTDOWN_reboot: action = d->cfg.on_reboot; break;
	case SHUTDOWN_suspend: action = HYP_ON_PRESERVE; break;
	default: action = d->cfg.on_crash; break;
	}
	log_info("d%u: guest shut down (%s), action %s", d->domid,
		 reason < 5 ? reason_names[reason] : "unknown",
		 action == HYP_ON_DESTROY ? "destroy"
		 : action == HYP_ON_RESTART ? "restart" : "preserve");
	pthread_mutex_lock(&d->lock);
	d->shutdown_reason = reason;
	d->stopping = true;
	for (unsigned i = 0; i < d->nvcpus; i++)
		d->vcpus[i].kicked = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	kick_all(d);
	hyp__dom_set_state(d, reason == SHUTDOWN_crash || reason == SHUTDOWN_watchdog
				 ? HYP_DOM_CRASHED : HYP_DOM_SHUTDOWN);
	if (action == HYP_ON_PRESERVE)
		return;
	/* Destroy joins the vCPU threads, one of which is us: hand it off. */
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->h = d->h;
	j->domid = d->domid;
	j->restart = action == HYP_ON_RESTART;
	j->cfg = d->cfg;
	pthread_mutex_lock(&d->h->lock);
	d->h->nreapers++;
	pthread_mutex_unlock(&d->h->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, reaper, j)) {
		log_err("d%u: cannot start the reaper; domain left shut down", d->domid);
		free(j);
		pthread_mutex_lock(&d->h->lock);
		d->h->nreapers--;
		pthread_cond_broadcast(&d->h->cond);
		pthread_mutex_unlock(&d->h->lock);
	}
	pthread_attr_destroy(&attr);
}

void hyp__dom_crash(struct hyp_domain *d)
{
	hyp__dom_guest_shutdown(d, SHUTDOWN_crash);
}

int hyp_domain_lookup(struct hyp *h, const char *s, uint32_t *domid)
{
	struct hyp_domain *d;
	char *end;
	unsigned long id;

	pthread_mutex_lock(&h->lock);
	d = find_name_locked(h, s);
	if (!d) {
		id = strtoul(s, &end, 10);
		if (*s && !*end)
			d = find_locked(h, (uint32_t)id);
	}
	if (d)
		*domid = d->domid;
	pthread_mutex_unlock(&h->lock);
	return d ? 0 : -ENOENT;
}

static double vcpu_cpu_s(struct hyp_vcpu *v)
{
	struct timespec ts;
	uint64_t ns = v->cpu_ns_done;

	if (v->thread_started && !v->exited && !clock_gettime(v->cpu_clock, &ts))
		ns += (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	return (double)ns / 1e9;
}

int hyp_domain_info(struct hyp *h, uint32_t domid, struct hyp_dom_info *out)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);
	bool all_blocked = true;

	if (err)
		return err;
	memset(out, 0, sizeof(*out));
	out->domid = d->domid;
	pthread_mutex_lock(&d->p2m_lock);
	out->memory_kb = d->nr_pages << 2;
	out->maxmem_kb = d->max_pages << 2;
	pthread_mutex_unlock(&d->p2m_lock);
	out->vcpus = d->nvcpus;
	out->backend = d->ops->name;
	pthread_mutex_lock(&d->lock);
	snprintf(out->name, sizeof(out->name), "%s", d->cfg.name);
	out->state = d->state;
	out->shutdown_reason = d->shutdown_reason;
	out->cap = d->cap;
	out->fenced = d->fenced;
	out->pause_count = d->pause_ctl;
	out->op_pause_count = d->pause_op;
	out->op = d->op;
	out->restoring = d->restoring;
	out->mem_lost = d->mem_lost;
	for (unsigned i = 0; i < d->nvcpus; i++) {
		out->cpu_time_s += vcpu_cpu_s(&d->vcpus[i]);
		if (!d->vcpus[i].blocked)
			all_blocked = false;
	}
	pthread_mutex_unlock(&d->lock);
	if (out->state == HYP_DOM_RUNNING && all_blocked)
		out->state = HYP_DOM_BLOCKED;
	hyp_domain_put(d);
	return 0;
}

int hyp_domain_config(struct hyp *h, uint32_t domid, struct hyp_dom_config *out)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pthread_mutex_lock(&d->lock); /* the name may be changing */
	*out = d->cfg;
	pthread_mutex_unlock(&d->lock);
	/* As Xen's libxl_retrieve_domain_configuration: the live maximum. */
	pthread_mutex_lock(&d->p2m_lock);
	out->max_kb = d->max_pages << 2;
	pthread_mutex_unlock(&d->p2m_lock);
	hyp_domain_put(d);
	return 0;
}

/*
 * The name changes under h->lock (so two domains never share one) and
 * d->lock (readers of d->cfg copy it under d->lock).
 */
int hyp_domain_rename(struct hyp *h, uint32_t domid, const char *name)
{
	struct hyp_domain *d, *other;
	char old[HYP_NAME_MAX];

	if (!name || !*name || strlen(name) >= HYP_NAME_MAX)
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	d = find_locked(h, domid);
	if (!d) {
		pthread_mutex_unlock(&h->lock);
		return -ENOENT;
	}
	other = find_name_locked(h, name);
	if (other && other != d) {
		pthread_mutex_unlock(&h->lock);
		log_err("d%u: cannot rename to '%s': d%u has that name", domid, name, other->domid);
		return -EEXIST;
	}
	pthread_mutex_lock(&d->lock);
	snprintf(old, sizeof(old), "%s", d->cfg.name);
	snprintf(d->cfg.name, sizeof(d->cfg.name), "%s", name);
	pthread_mutex_unlock(&d->lock);
	d->refs++;
	pthread_mutex_unlock(&h->lock);
	/* The console log follows the name (guest-NAME.log). */
	hyp__console_rename(d);
	log_info("d%u: renamed '%s' to '%s'", domid, old, name);
	hyp_domain_put(d);
	return 0;
}

int hyp_domain_list(struct hyp *h, uint32_t *ids, unsigned max)
{
	unsigned n = 0;

	pthread_mutex_lock(&h->lock);
	for (struct hyp_domain *d = h->domains; d && n < max; d = d->next)
		ids[n++] = d->domid;
	pthread_mutex_unlock(&h->lock);
	return (int)n;
}

/* ---- gmem.h ------------------------------------------------------------ */

struct hyp_uffd *hyp_domain_uffd(struct hyp_domain *d)
{
	return d->uffd;
}

void hyp_domain_gmem(struct hyp_domain *d, struct hyp_gmem *out)
{
	out->hva = d->hva;
	out->size = d->mem_bytes;
	out->npages = d->mem_bytes >> PAGE_SHIFT;
}

uint32_t hyp_domain_id(struct hyp_domain *d) { return d->domid; }
const char *hyp_domain_backend_name(struct hyp_domain *d) { return d->ops->name; }
unsigned hyp_domain_nvcpus(struct hyp_domain *d) { return d->nvcpus; }

static bool gpa_ok(struct hyp_domain *d, uint64_t gpa, uint64_t len)
{
	return len <= d->mem_bytes && gpa <= d->mem_bytes - len;
}

void hyp_gmem_mark_dirty(struct hyp_domain *d, uint64_t gpa, uint64_t len)
{
	if (!len || !gpa_ok(d, gpa, len))
		return;
	for (uint64_t p = gpa >> PAGE_SHIFT; p <= (gpa + len - 1) >> PAGE_SHIFT; p++)
		bitmap_set_atomic(d->host_dirty, p);
}

int hyp_gmem_write(struct hyp_domain *d, uint64_t gpa, const void *src, uint64_t len)
{
	if (!gpa_ok(d, gpa, len))
		return -EFAULT;
	memcpy(d->hva + gpa, src, len);
	hyp_gmem_mark_dirty(d, gpa, len);
	return 0;
}

int hyp_gmem_read(struct hyp_domain *d, uint64_t gpa, void *dst, uint64_t len)
{
	if (!gpa_ok(d, gpa, len))
		return -EFAULT;
	memcpy(dst, d->hva + gpa, len);
	return 0;
}

uint64_t hyp_gmem_take_host_dirty(struct hyp_domain *d, uint64_t *bitmap)
{
	uint64_t words = BITMAP_WORDS(d->mem_bytes >> PAGE_SHIFT), n = 0;

	for (uint64_t i = 0; i < words; i++) {
		uint64_t w = __atomic_exchange_n(&d->host_dirty[i], 0, __ATOMIC_ACQ_REL);

		if (w) {
			n += (uint64_t)__builtin_popcountll(w & ~bitmap[i]);
			bitmap[i] |= w;
		}
	}
	return n;
}

void hyp_kvm_set_ring_full_hook(struct hyp_domain *d, hyp_ring_full_fn fn,
				void *opaque)
{
	pthread_mutex_lock(&d->lock);
	d->ring_full = fn;
	d->ring_full_opaque = opaque;
	/* Once this returns, no call to the old hook is still running. */
	while (d->ring_full_busy)
		pthread_cond_wait(&d->cond, &d->lock);
	pthread_mutex_unlock(&d->lock);
}
