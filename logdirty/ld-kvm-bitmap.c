/* SPDX-License-Identifier: MIT */
/*
 * kvm-bitmap: KVM's per-memslot dirty bitmap in manual-protect mode
 * (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with MANUAL_PROTECT_ENABLE |
 * INITIALLY_SET).
 *
 * Enable: the capability goes on the VM before the memslots get
 * KVM_MEM_LOG_DIRTY_PAGES; with INITIALLY_SET turning logging on does not
 * write-protect anything (0.1 ms/GiB instead of 4-5 ms) and starts with every
 * bit set. To give Xen's semantics (the first CLEAN reports only writes made
 * after enable) ld_enable then clears the whole log once, which is where the
 * deferred write-protection happens (about 4 ms/GiB).
 *
 * Peek-and-clean: KVM_GET_DIRTY_LOG per slot (a copy of the bitmap, about
 * 10 us/GiB), then KVM_CLEAR_DIRTY_LOG, which clears and re-protects, issued
 * per chunk of LD_CLEAR_CHUNK_WORDS words over just the span of words with
 * bits in it, so an idle guest costs one GET per slot and no CLEAR, and
 * the mmu_lock is never held for more than a chunk. A page written between
 * the GET and the CLEAR was already reported by the GET (its bit was set);
 * one written after the GET but not in it keeps its bit for the next round.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/kvm.h>

#include "common/bitmap.h"
#include "common/err.h"
#include "common/log.h"
#include "internal.h"

/* 512 words = 32768 pages = 128 MiB per KVM_CLEAR_DIRTY_LOG at most. */
#define LD_CLEAR_CHUNK_WORDS 512u

struct ldb_slot {
	uint32_t slot;	   /* KVM slot number (address space 0) */
	uint64_t base_pfn; /* first guest pfn */
	uint64_t npages;
	uint64_t nwords;
	uint64_t *map; /* KVM_GET_DIRTY_LOG buffer */
};

struct ldb {
	int vm_fd;
	unsigned nslots;
	struct ldb_slot *slots;
};

static bool ldb_probe(struct hyp_domain *d)
{
	return !strcmp(hyp_domain_backend_name(d), "kvm");
}

static int ldb_get(struct ld_tracker *ld, struct ldb *b, struct ldb_slot *s)
{
	struct kvm_dirty_log log = { .slot = s->slot };

	log.dirty_bitmap = s->map;
	if (ioctl(b->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
		int err = -errno;

		log_err("logdirty: d%u: KVM_GET_DIRTY_LOG slot %u: %s",
			ld->domid, s->slot, ferry_strerror(-err));
		return err;
	}
	return 0;
}

/* Clears (and re-protects) the bits of s->map over words [w0, w1). */
static int ldb_clear(struct ld_tracker *ld, struct ldb *b, struct ldb_slot *s,
		     uint64_t w0, uint64_t w1)
{
	struct kvm_clear_dirty_log c = { .slot = s->slot };
	uint64_t end = MIN(w1 * 64, s->npages);

	c.first_page = w0 * 64;
	c.num_pages = (uint32_t)(end - c.first_page);
	c.dirty_bitmap = &s->map[w0];
	if (ioctl(b->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0) {
		int err = -errno;

		log_err("logdirty: d%u: KVM_CLEAR_DIRTY_LOG slot %u pfn "
			"%#llx+%u: %s", ld->domid, s->slot,
			(unsigned long long)(s->base_pfn + c.first_page),
			c.num_pages, ferry_strerror(-err));
		return err;
	}
	return 0;
}

/*
 * Clears s->map's set bits in KVM, chunk by chunk, each CLEAR spanning
 * only from the chunk's first to its last non-zero word.
 */
static int ldb_clear_set(struct ld_tracker *ld, struct ldb *b, struct ldb_slot *s)
{
	for (uint64_t c0 = 0; c0 < s->nwords; c0 += LD_CLEAR_CHUNK_WORDS) {
		uint64_t c1 = MIN(c0 + LD_CLEAR_CHUNK_WORDS, s->nwords);
		uint64_t first = c1, last = 0;
		int ret;

		for (uint64_t w = c0; w < c1; w++) {
			if (!s->map[w])
				continue;
			if (first == c1)
				first = w;
			last = w;
		}
		if (first == c1)
			continue;
		ret = ldb_clear(ld, b, s, first, last + 1);
		if (ret)
			return ret;
	}
	return 0;
}

static void ldb_free(struct ldb *b)
{
	if (!b)
		return;
	for (unsigned i = 0; i < b->nslots; i++)
		free(b->slots[i].map);
	free(b->slots);
	free(b);
}

static int ldb_set_cap(int vm_fd, uint64_t flags)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		.args = { flags },
	};

	return ioctl(vm_fd, KVM_ENABLE_CAP, &cap) < 0 ? -errno : 0;
}

static int ldb_enable(struct ld_tracker *ld)
{
	const uint64_t want = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
			      KVM_DIRTY_LOG_INITIALLY_SET;
	struct hyp_domain *d = ld->d;
	struct ldb *b;
	int ret, caps;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->vm_fd = hyp_kvm_vm_fd(d);
	b->nslots = hyp_kvm_nslots(d);
	b->slots = calloc(b->nslots ? b->nslots : 1, sizeof(*b->slots));
	if (!b->slots) {
		ret = -ENOMEM;
		goto err;
	}
	for (unsigned i = 0; i < b->nslots; i++) {
		struct ldb_slot *s = &b->slots[i];
		uint64_t gpa, size;

		hyp_kvm_slot(d, i, &s->slot, &gpa, &size);
		s->base_pfn = gpa >> PAGE_SHIFT;
		s->npages = size >> PAGE_SHIFT;
		s->nwords = BITMAP_WORDS(s->npages);
		s->map = calloc(s->nwords ? s->nwords : 1, sizeof(uint64_t));
		if (!s->map) {
			ret = -ENOMEM;
			goto err;
		}
	}

	caps = ioctl(b->vm_fd, KVM_CHECK_EXTENSION,
		     KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	if (caps < 0 || ((uint64_t)caps & want) != want) {
		log_err("logdirty: d%u: KVM lacks MANUAL_DIRTY_LOG_PROTECT2 "
			"with INITIALLY_SET (%d)", ld->domid, caps);
		ret = -ENOTSUP;
		goto err;
	}
	/* Before the slots get KVM_MEM_LOG_DIRTY_PAGES. */
	ret = ldb_set_cap(b->vm_fd, want);
	if (ret) {
		log_err("logdirty: d%u: KVM_ENABLE_CAP manual protect: %s",
			ld->domid, ferry_strerror(-ret));
		goto err;
	}
	ret = hyp_kvm_set_dirty_logging(d, true);
	if (ret) {
		log_err("logdirty: d%u: turning KVM dirty logging on failed",
			ld->domid);
		goto err_cap;
	}
	/* Every bit starts set: clear them all (this write-protects). */
	for (unsigned i = 0; i < b->nslots; i++) {
		struct ldb_slot *s = &b->slots[i];

		memset(s->map, 0xff, s->nwords * sizeof(uint64_t));
		ret = ldb_clear_set(ld, b, s);
		memset(s->map, 0, s->nwords * sizeof(uint64_t));
		if (ret)
			goto err_log;
	}
	ld->priv = b;
	return 0;

err_log:
	hyp_kvm_set_dirty_logging(d, false);
err_cap:
	ldb_set_cap(b->vm_fd, 0);
err:
	ldb_free(b);
	return ret;
}

static int ldb_collect(struct ld_tracker *ld)
{
	struct ldb *b = ld->priv;
	int ret;

	for (unsigned i = 0; i < b->nslots; i++) {
		struct ldb_slot *s = &b->slots[i];

		ret = ldb_get(ld, b, s);
		if (ret)
			return ret;
		ld_bitmap_or_at(ld->pending, ld->npages, s->map, s->npages,
				s->base_pfn);
		ret = ldb_clear_set(ld, b, s);
		if (ret)
			return ret;
	}
	return 0;
}

static int ldb_peek(struct ld_tracker *ld, uint64_t *dst)
{
	struct ldb *b = ld->priv;
	int ret;

	for (unsigned i = 0; i < b->nslots; i++) {
		struct ldb_slot *s = &b->slots[i];

		ret = ldb_get(ld, b, s);
		if (ret)
			return ret;
		ld_bitmap_or_at(dst, ld->npages, s->map, s->npages,
				s->base_pfn);
	}
	return 0;
}

static void ldb_disable(struct ld_tracker *ld)
{
	struct ldb *b = ld->priv;

	if (hyp_kvm_set_dirty_logging(ld->d, false))
		log_warn("logdirty: d%u: turning KVM dirty logging off "
			 "failed", ld->domid);
	ldb_set_cap(b->vm_fd, 0);
	ldb_free(b);
	ld->priv = NULL;
}

const struct ld_ops ld_ops_kvm_bitmap = {
	.name = "kvm-bitmap",
	.probe = ldb_probe,
	.enable = ldb_enable,
	.collect = ldb_collect,
	.peek = ldb_peek,
	.disable = ldb_disable,
};
