// SPDX-License-Identifier: MIT
/*
 * Grant tables, Xen's v1 entries. Semantics follow xen/common/grant_table.c
 * for a grantee: a grant is pinned by checking its entry (type
 * GTF_permit_access, domid the grantee, not GTF_readonly for writes) and
 * setting GTF_reading / GTF_writing with a compare-and-swap on the entry's
 * flags and domid; the frame is read once pinned and kept until the last
 * pin goes. Unpinning clears the flags again.
 *
 * Where the table lives: in the granter's own RAM. The guest names the page
 * that is grant frame i with XENMEM_add_to_physmap(XENMAPSPACE_grant_table,
 * idx = i, gpfn), as Xen HVM guests do; the page is zeroed when it first
 * becomes a grant frame (and its contents move with it if the guest names
 * another page for the same frame later). GNTTABOP_setup_table sizes the
 * table and reports the frames' gfns (~0 for a frame not yet placed).
 * Where the frames are travels in the GNTTAB context entry (the entries
 * themselves are guest memory and travel with it); pins do not (they are
 * ferryd's transient copies and mappings of a running domain).
 *
 * Guests may use setup_table, query_size and copy. map_grant_ref and the
 * rest answer -XEN_ENOSYS: a guest cannot map another guest's page here
 * (it would need a foreign frame in its P2M). ferryd's backends map and
 * copy through gnttab.h.
 *
 * Locking: each domain's table has a mutex (gt->lock) held only while an
 * entry is pinned or unpinned; copies run unlocked with the pin held, and a
 * domain reference keeps the granter's memory mapped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "common/log.h"
#include "hyp/gnttab.h"
#include "internal.h"

#define GNTTAB_MAX_FRAMES 64 /* Xen's default max_grant_frames */
#define GNTTAB_MAX_REFS (GNTTAB_MAX_FRAMES * GNTTAB_ENTRIES_PER_FRAME)
#define NO_GFN UINT64_MAX
#define PIN_RETRIES 8 /* Xen gives up on a guest that keeps changing an entry */
#define COPY_MAX_OPS 4096

struct gnt_active {
	uint16_t readers, writers; /* read-only and writable pins */
	uint16_t domid;		   /* the grantee while pinned */
	uint32_t gfn;		   /* the frame while pinned */
};

struct gnttab_state {
	pthread_mutex_t lock;
	unsigned nr_frames;
	uint64_t frame_gfn[GNTTAB_MAX_FRAMES]; /* NO_GFN: not placed */
	struct gnt_active *act;		       /* GNTTAB_MAX_REFS, on first use */
	/* The GNTTAB entry of a load in progress. */
	bool ctx_have;
	unsigned ctx_nr_frames;
	uint64_t ctx_gfn[GNTTAB_MAX_FRAMES];
};

/* Why a pin failed; the guest sees a GNTST_*, ferryd an errno. */
enum pin_err { PIN_OK, PIN_BAD_REF, PIN_DENIED, PIN_READONLY, PIN_BAD_PAGE, PIN_BUSY };

static int16_t pin_gntst(enum pin_err e)
{
	static const int16_t st[] = {
		[PIN_OK] = GNTST_okay,
		[PIN_BAD_REF] = GNTST_bad_gntref,
		/* Xen's _set_status_v1 answers both with general_error. */
		[PIN_DENIED] = GNTST_general_error,
		[PIN_READONLY] = GNTST_general_error,
		[PIN_BAD_PAGE] = GNTST_bad_page,
		[PIN_BUSY] = GNTST_general_error,
	};
	return st[e];
}

static int pin_errno(enum pin_err e)
{
	static const int er[] = {
		[PIN_OK] = 0,		    [PIN_BAD_REF] = -EINVAL, [PIN_DENIED] = -EPERM,
		[PIN_READONLY] = -EROFS,    [PIN_BAD_PAGE] = -EFAULT, [PIN_BUSY] = -EBUSY,
	};
	return er[e];
}

int gnttab_dom_init(struct hyp_domain *d)
{
	struct gnttab_state *gt = calloc(1, sizeof(*gt));

	if (!gt)
		return -ENOMEM;
	for (unsigned i = 0; i < GNTTAB_MAX_FRAMES; i++)
		gt->frame_gfn[i] = NO_GFN;
	pthread_mutex_init(&gt->lock, NULL);
	d->gnttab = gt;
	return 0;
}

void gnttab_dom_fini(struct hyp_domain *d)
{
	struct gnttab_state *gt = d->gnttab;

	if (!gt)
		return;
	pthread_mutex_destroy(&gt->lock);
	free(gt->act);
	free(gt);
	d->gnttab = NULL;
}

unsigned gnttab_nr_frames(struct hyp_domain *d)
{
	unsigned n;

	pthread_mutex_lock(&d->gnttab->lock);
	n = d->gnttab->nr_frames;
	pthread_mutex_unlock(&d->gnttab->lock);
	return n;
}

/* ---- entries ---------------------------------------------------------------- */

/* The entry's flags and domid as one 32-bit word (little-endian: flags in
 * the low half); NULL when ref is outside the placed table. Under lock. */
static uint32_t *entry_hdr(struct hyp_domain *d, uint32_t ref, uint64_t *gpa)
{
	struct gnttab_state *gt = d->gnttab;
	uint64_t gfn;

	if (ref >= gt->nr_frames * GNTTAB_ENTRIES_PER_FRAME)
		return NULL;
	gfn = gt->frame_gfn[ref / GNTTAB_ENTRIES_PER_FRAME];
	if (gfn == NO_GFN || gfn >= d->mem_bytes >> PAGE_SHIFT)
		return NULL;
	*gpa = (gfn << PAGE_SHIFT) + (ref % GNTTAB_ENTRIES_PER_FRAME) * sizeof(struct grant_entry_v1);
	return (uint32_t *)(d->hva + *gpa);
}

/* Checks the entry for grantee/write and sets GTF_reading (and
 * GTF_writing) in one compare-and-swap. map: sub-page grants cannot be
 * mapped, only copied. */
static enum pin_err set_status(struct hyp_domain *d, uint32_t *hdr, uint64_t gpa,
			       uint32_t grantee, bool write, bool map)
{
	uint16_t mask = GTF_type_mask | (map ? GTF_sub_page : 0);

	for (int i = 0; i < PIN_RETRIES; i++) {
		uint32_t old = __atomic_load_n(hdr, __ATOMIC_SEQ_CST), nw;
		uint16_t flags = (uint16_t)old, domid = (uint16_t)(old >> 16);

		if ((flags & mask) != GTF_permit_access || domid != grantee)
			return PIN_DENIED;
		if (write && (flags & GTF_readonly))
			return PIN_READONLY;
		nw = old | GTF_reading | (write ? GTF_writing : 0);
		if (nw == old ||
		    __atomic_compare_exchange_n(hdr, &old, nw, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST)) {
			hyp_gmem_mark_dirty(d, gpa, 4);
			return PIN_OK;
		}
	}
	return PIN_BUSY;
}

static void clear_flags(struct hyp_domain *d, uint64_t gpa, uint32_t flags)
{
	uint32_t *hdr = (uint32_t *)(d->hva + gpa);

	__atomic_fetch_and(hdr, ~flags, __ATOMIC_SEQ_CST);
	hyp_gmem_mark_dirty(d, gpa, 4);
}

/* Pins ref of d for grantee; *gfn gets the frame. */
static enum pin_err pin(struct hyp_domain *d, uint32_t ref, uint32_t grantee, bool write,
			bool map, uint32_t *gfn)
{
	struct gnttab_state *gt = d->gnttab;
	struct gnt_active *act;
	enum pin_err e = PIN_OK;
	uint64_t gpa;
	uint32_t *hdr;

	pthread_mutex_lock(&gt->lock);
	hdr = entry_hdr(d, ref, &gpa);
	if (!hdr) {
		e = PIN_BAD_REF;
		goto out;
	}
	if (!gt->act) {
		gt->act = calloc(GNTTAB_MAX_REFS, sizeof(*gt->act));
		if (!gt->act) {
			e = PIN_BUSY;
			goto out;
		}
	}
	act = &gt->act[ref];
	if (!act->readers && !act->writers) {
		uint32_t frame;

		e = set_status(d, hdr, gpa, grantee, write, map);
		if (e)
			goto out;
		frame = __atomic_load_n(hdr + 1, __ATOMIC_SEQ_CST);
		if (frame >= d->mem_bytes >> PAGE_SHIFT) {
			clear_flags(d, gpa, GTF_reading | GTF_writing);
			e = PIN_BAD_PAGE;
			goto out;
		}
		act->domid = (uint16_t)grantee;
		act->gfn = frame;
	} else {
		if (act->domid != grantee) {
			e = PIN_DENIED;
			goto out;
		}
		/* A first writer re-checks the live entry, as Xen does. */
		if (write && !act->writers) {
			e = set_status(d, hdr, gpa, grantee, true, map);
			if (e)
				goto out;
		}
	}
	if ((write ? act->writers : act->readers) == UINT16_MAX) {
		e = PIN_BUSY;
		goto out;
	}
	if (write)
		act->writers++;
	else
		act->readers++;
	*gfn = act->gfn;
out:
	pthread_mutex_unlock(&gt->lock);
	return e;
}

static void unpin(struct hyp_domain *d, uint32_t ref, bool write)
{
	struct gnttab_state *gt = d->gnttab;
	struct gnt_active *act;
	uint32_t clear = 0;
	uint64_t gpa;

	pthread_mutex_lock(&gt->lock);
	act = &gt->act[ref];
	if (write)
		act->writers--;
	else
		act->readers--;
	if (!act->writers)
		clear |= GTF_writing;
	if (!act->readers && !act->writers)
		clear |= GTF_reading;
	/* The frame holding the entry stays placed while it has pins
	 * (gnttab_add_to_physmap refuses to move it). */
	if (entry_hdr(d, ref, &gpa))
		clear_flags(d, gpa, clear);
	pthread_mutex_unlock(&gt->lock);
}

/* ---- placing frames (XENMEM_add_to_physmap) ---------------------------- */

int64_t gnttab_add_to_physmap(struct hyp_domain *d, uint64_t idx, uint64_t gpfn)
{
	static const uint8_t zero[PAGE_SIZE];
	struct gnttab_state *gt = d->gnttab;
	uint64_t old;
	int64_t err = 0;

	if (idx >= GNTTAB_MAX_FRAMES || gpfn >= d->mem_bytes >> PAGE_SHIFT)
		return -XEN_EINVAL;
	pthread_mutex_lock(&gt->lock);
	old = gt->frame_gfn[idx];
	if (old == gpfn)
		goto out;
	if (gt->act)
		for (unsigned i = 0; i < GNTTAB_ENTRIES_PER_FRAME; i++) {
			struct gnt_active *a = &gt->act[idx * GNTTAB_ENTRIES_PER_FRAME + i];

			if (a->readers || a->writers) {
				err = -XEN_EBUSY;
				goto out;
			}
		}
	if (old != NO_GFN && old < d->mem_bytes >> PAGE_SHIFT)
		hyp_gmem_write(d, gpfn << PAGE_SHIFT, d->hva + (old << PAGE_SHIFT), PAGE_SIZE);
	else
		hyp_gmem_write(d, gpfn << PAGE_SHIFT, zero, PAGE_SIZE);
	gt->frame_gfn[idx] = gpfn;
	if (gt->nr_frames <= idx)
		gt->nr_frames = (unsigned)idx + 1;
out:
	pthread_mutex_unlock(&gt->lock);
	return err;
}

/* ---- save and restore (context.c, formats/SPEC.md section 5) ----------- */

int gnttab_ctx_save(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque)
{
	struct gnttab_state *gt = d->gnttab;
	struct {
		struct ferry_hvm_gnttab h;
		uint64_t gfn[GNTTAB_MAX_FRAMES];
	} e;

	memset(&e, 0, sizeof(e));
	e.h.version = 1;
	e.h.gnttab_version = 1;
	pthread_mutex_lock(&gt->lock);
	e.h.nr_frames = gt->nr_frames;
	memcpy(e.gfn, gt->frame_gfn, gt->nr_frames * sizeof(e.gfn[0]));
	pthread_mutex_unlock(&gt->lock);
	_Static_assert(sizeof(e) == sizeof(e.h) + sizeof(e.gfn), "no padding");
	return emit(opaque, FERRY_HVM_GNTTAB, 0, &e,
		    (uint32_t)(sizeof(e.h) + e.h.nr_frames * sizeof(e.gfn[0])));
}

int gnttab_ctx_load(struct hyp_domain *d, uint16_t instance, const void *data, uint32_t len)
{
	struct gnttab_state *gt = d->gnttab;
	uint64_t pages = d->mem_bytes >> PAGE_SHIFT, gfn;
	struct ferry_hvm_gnttab h;
	const char *bad = NULL;

	if (instance != 0 || len < sizeof(h)) {
		log_err("d%u: HVM context entry GNTTAB/%u: instance must be 0 and the length at "
			"least %zu, got %u", d->domid, instance, sizeof(h), len);
		return -EINVAL;
	}
	memcpy(&h, data, sizeof(h));
	if (h.version != 1)
		bad = "version";
	else if (h.gnttab_version != 1)
		bad = "gnttab_version (only v1 tables)";
	else if (h.reserved)
		bad = "reserved";
	else if (h.nr_frames > GNTTAB_MAX_FRAMES)
		bad = "nr_frames";
	else if (len != sizeof(h) + (uint64_t)h.nr_frames * 8)
		bad = "length (nr_frames gfns must follow)";
	if (bad) {
		log_err("d%u: HVM context entry GNTTAB: bad %s (version %u, table v%u, %u frames "
			"of at most %u, length %u)", d->domid, bad, h.version, h.gnttab_version,
			h.nr_frames, GNTTAB_MAX_FRAMES, len);
		return -EINVAL;
	}
	for (unsigned i = 0; i < h.nr_frames; i++) {
		memcpy(&gfn, (const uint8_t *)data + sizeof(h) + i * 8ULL, 8);
		if (gfn != FERRY_GNTTAB_NO_GFN && gfn >= pages) {
			log_err("d%u: HVM context entry GNTTAB: bad frame_gfn[%u] 0x%llx: outside "
				"the domain's %llu pages", d->domid, i, (unsigned long long)gfn,
				(unsigned long long)pages);
			return -EINVAL;
		}
	}
	pthread_mutex_lock(&gt->lock);
	if (gt->ctx_have) {
		pthread_mutex_unlock(&gt->lock);
		log_err("d%u: HVM context entry GNTTAB comes twice", d->domid);
		return -EINVAL;
	}
	gt->ctx_have = true;
	gt->ctx_nr_frames = h.nr_frames;
	for (unsigned i = 0; i < GNTTAB_MAX_FRAMES; i++)
		gt->ctx_gfn[i] = NO_GFN;
	memcpy(gt->ctx_gfn, (const uint8_t *)data + sizeof(h), h.nr_frames * 8ULL);
	pthread_mutex_unlock(&gt->lock);
	return 0;
}

void gnttab_ctx_apply(struct hyp_domain *d)
{
	struct gnttab_state *gt = d->gnttab;

	pthread_mutex_lock(&gt->lock);
	if (gt->ctx_have) {
		/* No zeroing: the frames' contents came with guest memory. */
		gt->nr_frames = gt->ctx_nr_frames;
		memcpy(gt->frame_gfn, gt->ctx_gfn, sizeof(gt->frame_gfn));
		gt->ctx_have = false;
	}
	pthread_mutex_unlock(&gt->lock);
}

/* ---- the hypercall ----------------------------------------------------------- */

/* A guest names only itself (it is unprivileged). */
static int16_t own_domain(struct hyp_domain *d, uint16_t dom)
{
	struct hyp_domain *o;

	if (dom == DOMID_SELF || dom == d->domid)
		return GNTST_okay;
	if (hyp_domain_get(d->h, dom, &o))
		return GNTST_bad_domain;
	hyp_domain_put(o);
	return GNTST_permission_denied;
}

static int64_t op_setup_table(struct hyp_domain *d, uint64_t gpa)
{
	struct gnttab_state *gt = d->gnttab;
	struct gnttab_setup_table x;

	if (hyp_gmem_read(d, gpa, &x, sizeof(x)))
		return -XEN_EFAULT;
	x.status = own_domain(d, x.dom);
	if (!x.status && x.nr_frames > GNTTAB_MAX_FRAMES)
		x.status = GNTST_general_error;
	if (!x.status) {
		uint64_t list[GNTTAB_MAX_FRAMES];

		pthread_mutex_lock(&gt->lock);
		if (gt->nr_frames < x.nr_frames)
			gt->nr_frames = x.nr_frames;
		memcpy(list, gt->frame_gfn, sizeof(list));
		pthread_mutex_unlock(&gt->lock);
		if (x.nr_frames && hyp_gmem_write(d, x.frame_list, list, x.nr_frames * 8ULL))
			x.status = GNTST_bad_virt_addr;
	}
	return hyp_gmem_write(d, gpa, &x, sizeof(x)) ? -XEN_EFAULT : 0;
}

static int64_t op_query_size(struct hyp_domain *d, uint64_t gpa)
{
	struct gnttab_query_size x;

	if (hyp_gmem_read(d, gpa, &x, sizeof(x)))
		return -XEN_EFAULT;
	x.status = own_domain(d, x.dom);
	x.nr_frames = x.status ? 0 : gnttab_nr_frames(d);
	x.max_nr_frames = GNTTAB_MAX_FRAMES;
	return hyp_gmem_write(d, gpa, &x, sizeof(x)) ? -XEN_EFAULT : 0;
}

/* One side of a copy, resolved and (for a grant) pinned. */
struct copy_side {
	struct hyp_domain *d; /* a reference is held when != caller */
	uint32_t ref;
	bool pinned, write;
	uint64_t gpa;
};

static int16_t side_acquire(struct hyp_domain *caller, const struct gnttab_copy_ptr *p,
			    bool gref, bool write, uint16_t len, struct copy_side *s)
{
	uint32_t gfn;
	enum pin_err e;

	memset(s, 0, sizeof(*s));
	if (p->offset > PAGE_SIZE || len > PAGE_SIZE - p->offset)
		return GNTST_bad_copy_arg;
	if (!gref) {
		/* The caller's own frame. */
		if (p->domid != DOMID_SELF && p->domid != caller->domid)
			return GNTST_permission_denied;
		if (p->u.gmfn >= caller->mem_bytes >> PAGE_SHIFT)
			return GNTST_bad_page;
		s->d = caller;
		s->gpa = (p->u.gmfn << PAGE_SHIFT) + p->offset;
		return GNTST_okay;
	}
	if (p->domid == DOMID_SELF || p->domid == caller->domid)
		s->d = caller;
	else if (hyp_domain_get(caller->h, p->domid, &s->d))
		return GNTST_bad_domain;
	e = pin(s->d, p->u.ref, caller->domid, write, false, &gfn);
	if (e) {
		if (s->d != caller)
			hyp_domain_put(s->d);
		s->d = NULL;
		return pin_gntst(e);
	}
	s->ref = p->u.ref;
	s->pinned = true;
	s->write = write;
	s->gpa = ((uint64_t)gfn << PAGE_SHIFT) + p->offset;
	return GNTST_okay;
}

static void side_release(struct hyp_domain *caller, struct copy_side *s)
{
	if (!s->d)
		return;
	if (s->pinned)
		unpin(s->d, s->ref, s->write);
	if (s->d != caller)
		hyp_domain_put(s->d);
	s->d = NULL;
}

static int16_t copy_one(struct hyp_domain *d, const struct gnttab_copy *op)
{
	struct copy_side src, dst;
	int16_t st;

	if (op->flags & ~(GNTCOPY_source_gref | GNTCOPY_dest_gref))
		return GNTST_bad_copy_arg;
	st = side_acquire(d, &op->source, op->flags & GNTCOPY_source_gref, false, op->len,
			  &src);
	if (st)
		return st;
	st = side_acquire(d, &op->dest, op->flags & GNTCOPY_dest_gref, true, op->len, &dst);
	if (!st) {
		/* Pinned frames are inside their domains' RAM (checked at pin). */
		memmove(dst.d->hva + dst.gpa, src.d->hva + src.gpa, op->len);
		hyp_gmem_mark_dirty(dst.d, dst.gpa, op->len);
	}
	side_release(d, &dst);
	side_release(d, &src);
	return st;
}

int64_t hyp__hc_grant_table_op(struct hyp_vcpu *v, const uint64_t *a)
{
	struct hyp_domain *d = v->d;
	uint64_t cmd = a[0], uop = a[1], count = a[2];
	size_t size;

	switch (cmd) {
	case GNTTABOP_setup_table: size = sizeof(struct gnttab_setup_table); break;
	case GNTTABOP_query_size: size = sizeof(struct gnttab_query_size); break;
	case GNTTABOP_copy: size = sizeof(struct gnttab_copy); break;
	default: return -XEN_ENOSYS;
	}
	if (count > COPY_MAX_OPS)
		return -XEN_EINVAL;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t gpa = uop + i * size;
		int64_t err;

		if (gpa < uop)
			return -XEN_EFAULT;
		if (cmd == GNTTABOP_setup_table) {
			err = op_setup_table(d, gpa);
		} else if (cmd == GNTTABOP_query_size) {
			err = op_query_size(d, gpa);
		} else {
			struct gnttab_copy op;

			if (hyp_gmem_read(d, gpa, &op, sizeof(op)))
				return -XEN_EFAULT;
			op.status = copy_one(d, &op);
			err = hyp_gmem_write(d, gpa + offsetof(struct gnttab_copy, status),
					     &op.status, sizeof(op.status)) ? -XEN_EFAULT : 0;
		}
		if (err)
			return err;
	}
	return 0;
}

/* ---- ferryd's API (gnttab.h) --------------------------------------------- */

int gnttab_map(struct hyp_domain *granter, uint32_t ref, uint32_t for_domid, bool write,
	       struct gnttab_mapping *m)
{
	struct hyp_domain *d;
	enum pin_err e;
	uint32_t gfn;

	memset(m, 0, sizeof(*m));
	/* Our own reference; fails once the domain is being destroyed. */
	if (hyp_domain_get(granter->h, granter->domid, &d))
		return -ESRCH;
	e = pin(d, ref, for_domid, write, true, &gfn);
	if (e) {
		hyp_domain_put(d);
		return pin_errno(e);
	}
	m->d = d;
	m->ref = ref;
	m->gfn = gfn;
	m->write = write;
	m->ptr = d->hva + ((uint64_t)gfn << PAGE_SHIFT);
	return 0;
}

void gnttab_mark_dirty(struct gnttab_mapping *m)
{
	if (m->d && m->write)
		hyp_gmem_mark_dirty(m->d, (uint64_t)m->gfn << PAGE_SHIFT, PAGE_SIZE);
}

void gnttab_unmap(struct gnttab_mapping *m)
{
	if (!m->d)
		return;
	gnttab_mark_dirty(m);
	unpin(m->d, m->ref, m->write);
	hyp_domain_put(m->d);
	memset(m, 0, sizeof(*m));
}

static int copy_grant(struct hyp_domain *granter, uint32_t ref, uint32_t for_domid,
		      uint16_t offset, void *buf, uint16_t len, bool write)
{
	enum pin_err e;
	uint64_t gpa;
	uint32_t gfn;

	if (offset > PAGE_SIZE || len > PAGE_SIZE - offset)
		return -EINVAL;
	e = pin(granter, ref, for_domid, write, false, &gfn);
	if (e)
		return pin_errno(e);
	gpa = ((uint64_t)gfn << PAGE_SHIFT) + offset;
	if (write) {
		memcpy(granter->hva + gpa, buf, len);
		hyp_gmem_mark_dirty(granter, gpa, len);
	} else {
		memcpy(buf, granter->hva + gpa, len);
	}
	unpin(granter, ref, write);
	return 0;
}

int gnttab_copy_from(struct hyp_domain *granter, uint32_t ref, uint32_t for_domid,
		     uint16_t offset, void *dst, uint16_t len)
{
	return copy_grant(granter, ref, for_domid, offset, dst, len, false);
}

int gnttab_copy_to(struct hyp_domain *granter, uint32_t ref, uint32_t for_domid,
		   uint16_t offset, const void *src, uint16_t len)
{
	return copy_grant(granter, ref, for_domid, offset, (void *)src, len, true);
}
