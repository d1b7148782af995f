/* SPDX-License-Identifier: MIT */
/*
 * kvm-ring: KVM's per-vCPU dirty rings (a domain created with
 * logdirty = "ring"; the hyp core sets the rings up with the vCPUs).
 *
 * Turning logging on write-protects every page (rings have no
 * INITIALLY_SET); from then on each first write to a page pushes a
 * (slot, offset) entry onto the writing vCPU's ring. Harvesting walks each
 * ring from our fetch index while the entry's flags (read with acquire)
 * say DIRTY, maps slot+offset to a pfn in ld->pending, hands the entry back
 * by storing RESET (release), and finally asks KVM_RESET_DIRTY_RINGS to
 * re-protect the harvested pages and recycle the entries.
 *
 * Harvests happen on every peek and, when a vCPU's ring reaches its soft
 * limit, from that vCPU's thread (KVM_EXIT_DIRTY_RING_FULL, through
 * hyp_kvm_set_ring_full_hook): both take ld->lock and both collect into
 * ld->pending, so nothing a full ring forced out is lost before the
 * caller's next peek.
 *
 * The fetch index of a ring is ours to keep. A ring that was used by an
 * earlier ld session (disable, enable again) does not start at entry 0, so
 * each ring's position is found on the first harvest that sees a DIRTY
 * entry: the DIRTY entries form one contiguous run, which starts at the
 * DIRTY entry whose predecessor is not DIRTY.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/kvm.h>

#include "common/err.h"
#include "common/log.h"
#include "internal.h"

struct ldr_vcpu {
	struct kvm_dirty_gfn *ring;
	uint32_t entries; /* a power of two */
	uint32_t fetch;	  /* free-running; valid once known */
	bool known;
};

struct ldr_slot {
	uint32_t slot;
	uint64_t base_pfn, npages;
};

struct ldr {
	struct ldr *next; /* on ldr_live */
	struct ld_tracker *ld;
	int vm_fd;
	unsigned nvcpus, nslots;
	struct ldr_vcpu *vcpus;
	struct ldr_slot *slots;
	uint64_t unmapped; /* entries naming no known slot */
};

static bool ldr_probe(struct hyp_domain *d)
{
	uint32_t n = 0;

	return !strcmp(hyp_domain_backend_name(d), "kvm") &&
	       hyp_domain_nvcpus(d) > 0 && hyp_kvm_vcpu_ring(d, 0, &n) &&
	       n > 0;
}

static uint32_t ldr_flags(const struct kvm_dirty_gfn *e)
{
	return __atomic_load_n(&e->flags, __ATOMIC_ACQUIRE);
}

/* Finds where the run of DIRTY entries starts; false if there is none. */
static bool ldr_find_start(struct ldr_vcpu *v)
{
	uint32_t mask = v->entries - 1;

	for (uint32_t j = 0; j < v->entries; j++) {
		if (!(ldr_flags(&v->ring[j]) & KVM_DIRTY_GFN_F_DIRTY))
			continue;
		if (ldr_flags(&v->ring[(j - 1) & mask]) &
		    KVM_DIRTY_GFN_F_DIRTY)
			continue;
		v->fetch = j;
		v->known = true;
		return true;
	}
	return false;
}

static void ldr_mark(struct ld_tracker *ld, struct ldr *r, uint32_t slot_id,
		     uint64_t offset)
{
	uint32_t as_id = slot_id >> 16, id = slot_id & 0xffff;

	for (unsigned i = 0; as_id == 0 && i < r->nslots; i++) {
		struct ldr_slot *s = &r->slots[i];
		uint64_t pfn = s->base_pfn + offset;

		if (s->slot != id || offset >= s->npages)
			continue;
		if (pfn < ld->npages)
			__atomic_fetch_or(&ld->pending[pfn / 64],
					  1ull << (pfn % 64),
					  __ATOMIC_RELAXED);
		return;
	}
	r->unmapped++;
}

/* ld->lock held. Harvests every ring into ld->pending and resets them. */
static int ldr_harvest(struct ld_tracker *ld, struct ldr *r)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < r->nvcpus; i++) {
		struct ldr_vcpu *v = &r->vcpus[i];
		uint32_t mask = v->entries - 1;

		if (!v->ring || (!v->known && !ldr_find_start(v)))
			continue;
		for (;;) {
			struct kvm_dirty_gfn *e = &v->ring[v->fetch & mask];

			if (!(ldr_flags(e) & KVM_DIRTY_GFN_F_DIRTY))
				break;
			ldr_mark(ld, r, e->slot, e->offset);
			__atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET,
					 __ATOMIC_RELEASE);
			v->fetch++;
			n++;
		}
	}
	if (n && ioctl(r->vm_fd, KVM_RESET_DIRTY_RINGS, 0) < 0) {
		int err = -errno;

		log_err("logdirty: d%u: KVM_RESET_DIRTY_RINGS: %s",
			ld->domid, ferry_strerror(-err));
		return err;
	}
	return 0;
}

/*
 * The logs whose ring-full hook may still be called. The hyp core calls the
 * hook outside its own lock, so a call can still arrive after
 * hyp_kvm_set_ring_full_hook(d, NULL) returned: the hook only touches a log
 * it finds here, and ldr_disable() unlists the log, then waits on ld->lock
 * for a harvest already under way, before the log is freed.
 */
static pthread_mutex_t ldr_live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ldr *ldr_live;

static void ldr_list(struct ldr *r)
{
	pthread_mutex_lock(&ldr_live_lock);
	r->next = ldr_live;
	ldr_live = r;
	pthread_mutex_unlock(&ldr_live_lock);
}

static void ldr_unlist(struct ldr *r)
{
	pthread_mutex_lock(&ldr_live_lock);
	for (struct ldr **p = &ldr_live; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			break;
		}
	}
	pthread_mutex_unlock(&ldr_live_lock);
}

/* A vCPU thread, on KVM_EXIT_DIRTY_RING_FULL. */
static void ldr_ring_full(void *opaque, unsigned vcpu)
{
	struct ld_tracker *ld = NULL;

	pthread_mutex_lock(&ldr_live_lock);
	for (struct ldr *r = ldr_live; r; r = r->next) {
		if (r->ld == opaque) {
			ld = r->ld;
			pthread_mutex_lock(&ld->lock);
			break;
		}
	}
	pthread_mutex_unlock(&ldr_live_lock);
	if (!ld)
		return;
	if (ld->priv) {
		ld->ring_full_events++;
		ldr_harvest(ld, ld->priv);
	}
	pthread_mutex_unlock(&ld->lock);
}

static void ldr_free(struct ldr *r)
{
	if (!r)
		return;
	free(r->vcpus);
	free(r->slots);
	free(r);
}

static int ldr_enable(struct ld_tracker *ld)
{
	struct hyp_domain *d = ld->d;
	struct ldr *r;
	int ret;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->vm_fd = hyp_kvm_vm_fd(d);
	r->nvcpus = hyp_domain_nvcpus(d);
	r->nslots = hyp_kvm_nslots(d);
	r->vcpus = calloc(r->nvcpus ? r->nvcpus : 1, sizeof(*r->vcpus));
	r->slots = calloc(r->nslots ? r->nslots : 1, sizeof(*r->slots));
	if (!r->vcpus || !r->slots) {
		ldr_free(r);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < r->nslots; i++) {
		uint64_t gpa, size;

		hyp_kvm_slot(d, i, &r->slots[i].slot, &gpa, &size);
		r->slots[i].base_pfn = gpa >> PAGE_SHIFT;
		r->slots[i].npages = size >> PAGE_SHIFT;
	}
	for (unsigned i = 0; i < r->nvcpus; i++) {
		struct ldr_vcpu *v = &r->vcpus[i];

		v->ring = hyp_kvm_vcpu_ring(d, i, &v->entries);
		if (v->ring && (!v->entries ||
				(v->entries & (v->entries - 1)))) {
			log_err("logdirty: d%u: vCPU %u dirty ring has %u "
				"entries", ld->domid, i, v->entries);
			ldr_free(r);
			return -EINVAL;
		}
	}

	/* Called without ld->lock (a vCPU may already sit in the hook,
	 * waiting for it, while turning logging on waits for vCPUs). */
	r->ld = ld;
	pthread_mutex_lock(&ld->lock);
	ld->priv = r;
	pthread_mutex_unlock(&ld->lock);
	ldr_list(r);
	hyp_kvm_set_ring_full_hook(d, ldr_ring_full, ld);
	ret = hyp_kvm_set_dirty_logging(d, true);
	if (ret) {
		log_err("logdirty: d%u: turning KVM dirty logging on failed",
			ld->domid);
		hyp_kvm_set_ring_full_hook(d, NULL, NULL);
		ldr_unlist(r);
		pthread_mutex_lock(&ld->lock);
		ld->priv = NULL;
		pthread_mutex_unlock(&ld->lock);
		ldr_free(r);
		return ret;
	}
	/* Entries pushed while turning on predate enable; generic code
	 * discards ld->pending after this. */
	pthread_mutex_lock(&ld->lock);
	ret = ldr_harvest(ld, r);
	pthread_mutex_unlock(&ld->lock);
	return ret;
}

static int ldr_collect(struct ld_tracker *ld)
{
	return ldr_harvest(ld, ld->priv);
}

/*
 * Called without ld->lock: the ring-full hook takes ld->lock, and
 * unregistering it may wait for a hook in flight.
 */
static void ldr_disable(struct ld_tracker *ld)
{
	struct ldr *r = ld->priv;

	if (hyp_kvm_set_dirty_logging(ld->d, false))
		log_warn("logdirty: d%u: turning KVM dirty logging off "
			 "failed", ld->domid);
	hyp_kvm_set_ring_full_hook(ld->d, NULL, NULL);
	ldr_unlist(r);
	pthread_mutex_lock(&ld->lock);
	/* Leave the rings empty for whoever logs next. */
	ldr_harvest(ld, r);
	if (r->unmapped)
		log_warn("logdirty: d%u: %llu dirty-ring entries named no "
			 "memslot", ld->domid,
			 (unsigned long long)r->unmapped);
	ld->priv = NULL;
	pthread_mutex_unlock(&ld->lock);
	ldr_free(r);
}

const struct ld_ops ld_ops_kvm_ring = {
	.name = "kvm-ring",
	.probe = ldr_probe,
	.enable = ldr_enable,
	.collect = ldr_collect,
	.peek = NULL, /* harvesting is the only way to read a ring */
	.disable = ldr_disable,
};
