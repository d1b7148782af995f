// SPDX-License-Identifier: MIT
/*
 * Event channels, Xen's 2-level ABI: a per-domain port table (ports
 * 1 .. 4095), the pending and mask bitmaps in the guest's shared_info, and
 * the upcall. Semantics follow xen/common/event_channel.c and event_2l.c.
 *
 * Locking: each domain's table has its own mutex (ev->lock). An operation
 * on two domains (bind_interdomain, close of an interdomain port) takes
 * both, lower domid first. The upcall takes d->lock (to wake a blocked
 * vCPU) under ev->lock; nothing takes ev->lock under d->lock. The peer of
 * an interdomain port is found by domid (hyp_domain_get) on every use, so
 * no port holds a reference on another domain.
 *
 * Guest memory: the bits in shared_info are changed with atomic
 * read-modify-writes on the guest mapping (the guest changes the same
 * words concurrently), bounds-checked like hyp_gmem_write and marked in
 * the host-dirty bitmap (hyp_gmem_mark_dirty) as every ferryd write is.
 * A domain that has not mapped shared_info (shared_info_gpa == 0) gets
 * the wake-up only: there is nowhere to record the pending bit.
 *
 * Upcall: the vCPU's kicked flag is set (a vCPU in SCHEDOP_block or
 * halted wakes), and if the guest registered a vector callback
 * (HVM_PARAM_CALLBACK_IRQ) and vcpu_info.evtchn_upcall_mask is clear, the
 * backend injects the vector (kvm: an MSI to the vCPU's LAPIC; soft: no
 * interrupts exist, the wake is the delivery).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "common/log.h"
#include "hyp/evtchn.h"
#include "internal.h"

#define PORT_RESERVED 0xff /* port 0: never allocated (Xen's ECS_RESERVED) */
#define PORT_CHUNK 64	   /* the table grows by one pending word at a time */
#define NO_PORT 0	   /* virq_port[][] entry when unbound */

struct evtchn_port {
	uint8_t state;	      /* EVTCHNSTAT_* or PORT_RESERVED */
	uint8_t virq;	      /* EVTCHNSTAT_virq */
	uint16_t remote_dom;  /* unbound: who may bind; interdomain: the peer */
	uint32_t remote_port; /* interdomain */
	uint32_t vcpu;	      /* the vCPU notified */
	evtchn_backend_fn fn; /* interdomain with ferryd (remote_dom 0) */
	void *opaque;
};

struct evtchn_state {
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* backend_calls dropped */
	bool dead;		/* the domain is being destroyed */
	uint32_t nports;	/* table size, a multiple of PORT_CHUNK */
	struct evtchn_port *ports;
	unsigned backend_calls; /* evtchn_backend_fn calls in flight */
	uint32_t virq_port[HYP_MAX_VCPUS][NR_VIRQS];
	/* EVTCHN entries of a load in progress, by port (version 0: none);
	 * allocated by the first one, freed by evtchn_ctx_apply or fini. */
	struct ferry_hvm_evtchn *staged;
};

/* ---- init and teardown (domain.c) ---------------------------------------- */

int evtchn_dom_init(struct hyp_domain *d)
{
	struct evtchn_state *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return -ENOMEM;
	ev->ports = calloc(PORT_CHUNK, sizeof(*ev->ports));
	if (!ev->ports) {
		free(ev);
		return -ENOMEM;
	}
	ev->nports = PORT_CHUNK;
	ev->ports[0].state = PORT_RESERVED;
	pthread_mutex_init(&ev->lock, NULL);
	pthread_cond_init(&ev->cond, NULL);
	d->evtchn = ev;
	return 0;
}

void evtchn_dom_fini(struct hyp_domain *d)
{
	struct evtchn_state *ev = d->evtchn;

	if (!ev)
		return;
	pthread_mutex_destroy(&ev->lock);
	pthread_cond_destroy(&ev->cond);
	free(ev->staged);
	free(ev->ports);
	free(ev);
	d->evtchn = NULL;
}

/* ---- shared_info bits ------------------------------------------------------ */

/* Host address of the naturally aligned word at gpa, NULL outside RAM. */
static void *gword(struct hyp_domain *d, uint64_t gpa, uint64_t size)
{
	if (gpa & (size - 1) || size > d->mem_bytes || gpa > d->mem_bytes - size)
		return NULL;
	return d->hva + gpa;
}

/* Atomically ORs bits into the u64 at gpa; returns the old value. */
static uint64_t g_or64(struct hyp_domain *d, uint64_t gpa, uint64_t bits)
{
	uint64_t *p = gword(d, gpa, 8), old;

	if (!p)
		return ~0ULL; /* "already set": nothing more happens */
	old = __atomic_fetch_or(p, bits, __ATOMIC_SEQ_CST);
	if (!(old & bits))
		hyp_gmem_mark_dirty(d, gpa, 8);
	return old;
}

static uint64_t g_and64(struct hyp_domain *d, uint64_t gpa, uint64_t bits)
{
	uint64_t *p = gword(d, gpa, 8), old;

	if (!p)
		return 0;
	old = __atomic_fetch_and(p, bits, __ATOMIC_SEQ_CST);
	if (old & ~bits)
		hyp_gmem_mark_dirty(d, gpa, 8);
	return old;
}

static uint64_t g_load64(struct hyp_domain *d, uint64_t gpa)
{
	uint64_t *p = gword(d, gpa, 8);

	return p ? __atomic_load_n(p, __ATOMIC_SEQ_CST) : 0;
}

static uint64_t pending_gpa(struct hyp_domain *d, uint32_t port)
{
	return d->shared_info_gpa + offsetof(struct shared_info, evtchn_pending) +
	       (port / 64) * 8;
}

static uint64_t mask_gpa(struct hyp_domain *d, uint32_t port)
{
	return d->shared_info_gpa + offsetof(struct shared_info, evtchn_mask) + (port / 64) * 8;
}

static uint64_t vcpu_info_gpa(struct hyp_domain *d, unsigned vcpu)
{
	return d->shared_info_gpa + vcpu * sizeof(struct vcpu_info);
}

/* Wake the vCPU and, when the guest can take it, inject its vector. */
static void upcall(struct hyp_domain *d, unsigned vcpu)
{
	struct hyp_vcpu *v = &d->vcpus[vcpu];
	uint64_t cb = d->callback_vector;
	uint8_t mask = 1;

	pthread_mutex_lock(&d->lock);
	v->kicked = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (cb >> HVM_PARAM_CALLBACK_TYPE_SHIFT != HVM_PARAM_CALLBACK_TYPE_VECTOR ||
	    (cb & 0xff) < 0x10 || !d->shared_info_gpa)
		return;
	if (hyp_gmem_read(d, vcpu_info_gpa(d, vcpu) +
				     offsetof(struct vcpu_info, evtchn_upcall_mask),
			  &mask, 1) || mask)
		return;
	d->ops->inject_vector(v, (uint8_t)cb);
}

/* Xen's vcpu_mark_events_pending: set evtchn_upcall_pending, upcall if it
 * was clear. */
static void mark_events_pending(struct hyp_domain *d, unsigned vcpu)
{
	uint8_t *p;

	if (d->shared_info_gpa) {
		p = gword(d, vcpu_info_gpa(d, vcpu) +
				     offsetof(struct vcpu_info, evtchn_upcall_pending), 1);
		if (!p)
			return;
		if (__atomic_exchange_n(p, 1, __ATOMIC_SEQ_CST))
			return;
		hyp_gmem_mark_dirty(d, (uint64_t)(p - d->hva), 1);
	}
	upcall(d, vcpu);
}

/* Xen's evtchn_2l_set_pending. Under ev->lock. */
static void set_pending(struct hyp_domain *d, uint32_t port)
{
	unsigned vcpu = d->evtchn->ports[port].vcpu;
	uint64_t bit = 1ULL << (port % 64);

	if (vcpu >= d->nvcpus)
		vcpu = 0;
	if (!d->shared_info_gpa) {
		upcall(d, vcpu);
		return;
	}
	if (g_or64(d, pending_gpa(d, port), bit) & bit)
		return;
	if (g_load64(d, mask_gpa(d, port)) & bit)
		return;
	if (g_or64(d, vcpu_info_gpa(d, vcpu) + offsetof(struct vcpu_info, evtchn_pending_sel),
		   1ULL << (port / 64)) & (1ULL << (port / 64)))
		return;
	mark_events_pending(d, vcpu);
}

static void clear_pending(struct hyp_domain *d, uint32_t port)
{
	if (d->shared_info_gpa)
		g_and64(d, pending_gpa(d, port), ~(1ULL << (port % 64)));
}

/* ---- the port table -------------------------------------------------------- */

static bool port_valid(struct evtchn_state *ev, uint32_t port)
{
	return port < ev->nports;
}

/* Lowest free port, growing the table; -XEN_ENOSPC when full. Under lock. */
static int get_free_port(struct evtchn_state *ev, uint32_t *out)
{
	struct evtchn_port *np;
	uint32_t n;

	if (ev->dead)
		return -XEN_ESRCH;
	for (uint32_t p = 1; p < ev->nports; p++)
		if (ev->ports[p].state == EVTCHNSTAT_closed) {
			*out = p;
			return 0;
		}
	if (ev->nports >= EVTCHN_2L_NR_CHANNELS)
		return -XEN_ENOSPC;
	n = ev->nports + PORT_CHUNK;
	np = realloc(ev->ports, n * sizeof(*np));
	if (!np)
		return -XEN_ENOMEM;
	memset(np + ev->nports, 0, PORT_CHUNK * sizeof(*np));
	ev->ports = np;
	*out = ev->nports;
	ev->nports = n;
	return 0;
}

/* Xen's evtchn_free. Under lock. */
static void free_port(struct hyp_domain *d, uint32_t port)
{
	struct evtchn_state *ev = d->evtchn;
	struct evtchn_port *p = &ev->ports[port];

	if (p->state == EVTCHNSTAT_virq && p->vcpu < HYP_MAX_VCPUS &&
	    ev->virq_port[p->vcpu][p->virq] == port)
		ev->virq_port[p->vcpu][p->virq] = NO_PORT;
	clear_pending(d, port);
	memset(p, 0, sizeof(*p));
}

/* Both domains' tables, lower domid first (one lock when a == b). */
static void lock2(struct hyp_domain *a, struct hyp_domain *b)
{
	if (!b || a == b) {
		pthread_mutex_lock(&a->evtchn->lock);
	} else if (a->domid < b->domid) {
		pthread_mutex_lock(&a->evtchn->lock);
		pthread_mutex_lock(&b->evtchn->lock);
	} else {
		pthread_mutex_lock(&b->evtchn->lock);
		pthread_mutex_lock(&a->evtchn->lock);
	}
}

static void unlock2(struct hyp_domain *a, struct hyp_domain *b)
{
	if (b && a != b)
		pthread_mutex_unlock(&b->evtchn->lock);
	pthread_mutex_unlock(&a->evtchn->lock);
}

/* The domain a guest names: itself (DOMID_SELF or its id) or another. */
static uint32_t resolve(struct hyp_domain *d, uint32_t dom)
{
	return dom == DOMID_SELF ? d->domid : dom;
}

/* Guests are unprivileged: only their own domain. -XEN_ESRCH for a domain
 * that does not exist, -XEN_EPERM for another one. */
static int64_t check_self(struct hyp_domain *d, uint32_t dom)
{
	struct hyp_domain *o;

	dom = resolve(d, dom);
	if (dom == d->domid)
		return 0;
	if (hyp_domain_get(d->h, dom, &o))
		return -XEN_ESRCH;
	hyp_domain_put(o);
	return -XEN_EPERM;
}

/* ---- operations (guest and ferryd) --------------------------------------- */

static int64_t do_alloc_unbound(struct hyp_domain *d, uint32_t remote, uint32_t *port)
{
	struct evtchn_state *ev = d->evtchn;
	int64_t err;

	pthread_mutex_lock(&ev->lock);
	err = get_free_port(ev, port);
	if (!err) {
		ev->ports[*port].state = EVTCHNSTAT_unbound;
		ev->ports[*port].remote_dom = (uint16_t)remote;
	}
	pthread_mutex_unlock(&ev->lock);
	return err;
}

static int64_t do_bind_interdomain(struct hyp_domain *d, uint32_t rdom, uint32_t rport,
				   uint32_t *lport)
{
	struct hyp_domain *rd = d;
	struct evtchn_port *rp;
	int64_t err;

	rdom = resolve(d, rdom);
	if (rdom != d->domid && hyp_domain_get(d->h, rdom, &rd))
		return -XEN_ESRCH;
	lock2(d, rd);
	if (rd->evtchn->dead) {
		err = -XEN_ESRCH;
		goto out;
	}
	if (!port_valid(rd->evtchn, rport)) {
		err = -XEN_EINVAL;
		goto out;
	}
	rp = &rd->evtchn->ports[rport];
	if (rp->state != EVTCHNSTAT_unbound || rp->remote_dom != d->domid) {
		err = -XEN_EINVAL;
		goto out;
	}
	err = get_free_port(d->evtchn, lport);
	if (err)
		goto out;
	rp = &rd->evtchn->ports[rport]; /* the table may have moved (rd == d) */
	d->evtchn->ports[*lport] = (struct evtchn_port){
		.state = EVTCHNSTAT_interdomain,
		.remote_dom = (uint16_t)rd->domid,
		.remote_port = rport,
	};
	rp->state = EVTCHNSTAT_interdomain;
	rp->remote_dom = (uint16_t)d->domid;
	rp->remote_port = *lport;
	/* Xen: notifications sent on the unbound remote port may be lost;
	 * always raise the new local port once. */
	set_pending(d, *lport);
out:
	unlock2(d, rd);
	if (rd != d)
		hyp_domain_put(rd);
	return err;
}

static int64_t do_bind_virq(struct hyp_domain *d, uint32_t virq, uint32_t vcpu,
			    uint32_t *port)
{
	struct evtchn_state *ev = d->evtchn;
	bool global = virq != VIRQ_TIMER && virq != VIRQ_DEBUG;
	int64_t err;

	if (virq >= NR_VIRQS || (global && vcpu != 0))
		return -XEN_EINVAL;
	if (vcpu >= d->nvcpus)
		return -XEN_ENOENT;
	pthread_mutex_lock(&ev->lock);
	if (ev->virq_port[vcpu][virq] != NO_PORT) {
		err = -XEN_EEXIST;
	} else {
		err = get_free_port(ev, port);
		if (!err) {
			ev->ports[*port] = (struct evtchn_port){
				.state = EVTCHNSTAT_virq, .virq = (uint8_t)virq, .vcpu = vcpu,
			};
			ev->virq_port[vcpu][virq] = *port;
		}
	}
	pthread_mutex_unlock(&ev->lock);
	return err;
}

static int64_t do_bind_ipi(struct hyp_domain *d, uint32_t vcpu, uint32_t *port)
{
	struct evtchn_state *ev = d->evtchn;
	int64_t err;

	if (vcpu >= d->nvcpus)
		return -XEN_ENOENT;
	pthread_mutex_lock(&ev->lock);
	err = get_free_port(ev, port);
	if (!err)
		ev->ports[*port] = (struct evtchn_port){ .state = EVTCHNSTAT_ipi, .vcpu = vcpu };
	pthread_mutex_unlock(&ev->lock);
	return err;
}

/* Xen's evtchn_close: the peer of an interdomain port becomes unbound (for
 * this domain). */
static int64_t do_close(struct hyp_domain *d, uint32_t port)
{
	struct evtchn_state *ev = d->evtchn;
	struct hyp_domain *rd;
	struct evtchn_port *p;
	uint32_t rdom, rport;

again:
	pthread_mutex_lock(&ev->lock);
	if (!port_valid(ev, port)) {
		pthread_mutex_unlock(&ev->lock);
		return -XEN_EINVAL;
	}
	p = &ev->ports[port];
	switch (p->state) {
	case EVTCHNSTAT_unbound:
	case EVTCHNSTAT_virq:
	case EVTCHNSTAT_ipi:
		free_port(d, port);
		pthread_mutex_unlock(&ev->lock);
		return 0;
	case EVTCHNSTAT_interdomain:
		break;
	default:
		pthread_mutex_unlock(&ev->lock);
		return -XEN_EINVAL;
	}
	rdom = p->remote_dom;
	rport = p->remote_port;
	if (rdom == EVTCHN_DOMID_FERRYD || rdom == d->domid) {
		/* ferryd's end needs no state change; a loopback peer is here. */
		if (rdom == d->domid && port_valid(ev, rport) &&
		    ev->ports[rport].state == EVTCHNSTAT_interdomain &&
		    ev->ports[rport].remote_port == port) {
			ev->ports[rport].state = EVTCHNSTAT_unbound;
			ev->ports[rport].remote_port = 0;
		}
		free_port(d, port);
		pthread_mutex_unlock(&ev->lock);
		return 0;
	}
	pthread_mutex_unlock(&ev->lock);

	if (hyp_domain_get(d->h, rdom, &rd))
		rd = NULL; /* gone: its teardown closes or already closed its end */
	lock2(d, rd);
	p = &ev->ports[port];
	if (p->state != EVTCHNSTAT_interdomain || p->remote_dom != rdom ||
	    p->remote_port != rport) {
		/* Changed while unlocked (the peer closed first): start over. */
		unlock2(d, rd);
		if (rd)
			hyp_domain_put(rd);
		goto again;
	}
	if (rd && port_valid(rd->evtchn, rport)) {
		struct evtchn_port *rp = &rd->evtchn->ports[rport];

		if (rp->state == EVTCHNSTAT_interdomain && rp->remote_dom == d->domid &&
		    rp->remote_port == port) {
			rp->state = EVTCHNSTAT_unbound;
			rp->remote_port = 0;
		}
	}
	free_port(d, port);
	unlock2(d, rd);
	if (rd)
		hyp_domain_put(rd);
	return 0;
}

/* Runs a backend's callback outside the lock. Called with ev->lock held,
 * returns with it released. */
static void call_backend(struct evtchn_state *ev, struct evtchn_port *p, uint32_t domid,
			 uint32_t port)
{
	evtchn_backend_fn fn = p->fn;
	void *opaque = p->opaque;

	if (!fn) {
		pthread_mutex_unlock(&ev->lock);
		return;
	}
	ev->backend_calls++;
	pthread_mutex_unlock(&ev->lock);
	fn(opaque, domid, port);
	pthread_mutex_lock(&ev->lock);
	if (!--ev->backend_calls)
		pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->lock);
}

/* Xen's evtchn_send from domain d. */
static int64_t do_send(struct hyp_domain *d, uint32_t port)
{
	struct evtchn_state *ev = d->evtchn;
	struct evtchn_port *p;
	struct hyp_domain *rd;
	uint32_t rdom, rport;

	pthread_mutex_lock(&ev->lock);
	if (!port_valid(ev, port)) {
		pthread_mutex_unlock(&ev->lock);
		return -XEN_EINVAL;
	}
	p = &ev->ports[port];
	switch (p->state) {
	case EVTCHNSTAT_ipi:
		set_pending(d, port);
		pthread_mutex_unlock(&ev->lock);
		return 0;
	case EVTCHNSTAT_unbound:
		/* Xen drops it silently. */
		pthread_mutex_unlock(&ev->lock);
		return 0;
	case EVTCHNSTAT_interdomain:
		break;
	default:
		pthread_mutex_unlock(&ev->lock);
		return -XEN_EINVAL;
	}
	rdom = p->remote_dom;
	rport = p->remote_port;
	if (rdom == EVTCHN_DOMID_FERRYD) {
		call_backend(ev, p, d->domid, port);
		return 0;
	}
	if (rdom == d->domid) {
		if (port_valid(ev, rport))
			set_pending(d, rport);
		pthread_mutex_unlock(&ev->lock);
		return 0;
	}
	pthread_mutex_unlock(&ev->lock);
	if (hyp_domain_get(d->h, rdom, &rd))
		return 0; /* the peer is being destroyed */
	pthread_mutex_lock(&rd->evtchn->lock);
	if (port_valid(rd->evtchn, rport)) {
		struct evtchn_port *rp = &rd->evtchn->ports[rport];

		if (rp->state == EVTCHNSTAT_interdomain && rp->remote_dom == d->domid &&
		    rp->remote_port == port)
			set_pending(rd, rport);
	}
	pthread_mutex_unlock(&rd->evtchn->lock);
	hyp_domain_put(rd);
	return 0;
}

static int64_t do_bind_vcpu(struct hyp_domain *d, uint32_t port, uint32_t vcpu)
{
	struct evtchn_state *ev = d->evtchn;
	struct evtchn_port *p;
	int64_t err = 0;

	if (vcpu >= d->nvcpus)
		return -XEN_ENOENT;
	pthread_mutex_lock(&ev->lock);
	if (!port_valid(ev, port)) {
		err = -XEN_EINVAL;
		goto out;
	}
	p = &ev->ports[port];
	switch (p->state) {
	case EVTCHNSTAT_virq:
		/* Per-vCPU VIRQs stay where they were bound. */
		if (p->virq == VIRQ_TIMER || p->virq == VIRQ_DEBUG) {
			err = -XEN_EINVAL;
			break;
		}
		ev->virq_port[p->vcpu][p->virq] = NO_PORT;
		ev->virq_port[vcpu][p->virq] = port;
		p->vcpu = vcpu;
		break;
	case EVTCHNSTAT_unbound:
	case EVTCHNSTAT_interdomain:
		p->vcpu = vcpu;
		break;
	default:
		err = -XEN_EINVAL;
	}
out:
	pthread_mutex_unlock(&ev->lock);
	return err;
}

/* Xen's evtchn_2l_unmask. */
static int64_t do_unmask(struct hyp_domain *d, uint32_t port)
{
	struct evtchn_state *ev = d->evtchn;
	uint64_t bit, sel;
	unsigned vcpu;

	pthread_mutex_lock(&ev->lock);
	if (!port_valid(ev, port)) {
		pthread_mutex_unlock(&ev->lock);
		return -XEN_EINVAL;
	}
	bit = 1ULL << (port % 64);
	sel = 1ULL << (port / 64); /* port < 4096: 64 words */
	vcpu = ev->ports[port].vcpu < d->nvcpus ? ev->ports[port].vcpu : 0;
	if (d->shared_info_gpa && (g_and64(d, mask_gpa(d, port), ~bit) & bit) &&
	    (g_load64(d, pending_gpa(d, port)) & bit) &&
	    !(g_or64(d, vcpu_info_gpa(d, vcpu) + offsetof(struct vcpu_info, evtchn_pending_sel),
		     sel) & sel))
		mark_events_pending(d, vcpu);
	pthread_mutex_unlock(&ev->lock);
	return 0;
}

static int64_t do_status(struct hyp_domain *d, struct evtchn_status *st)
{
	struct evtchn_state *ev = d->evtchn;
	struct evtchn_port *p;
	int64_t err = check_self(d, st->dom);

	if (err)
		return err;
	pthread_mutex_lock(&ev->lock);
	if (!port_valid(ev, st->port)) {
		pthread_mutex_unlock(&ev->lock);
		return -XEN_EINVAL;
	}
	p = &ev->ports[st->port];
	memset(&st->u, 0, sizeof(st->u));
	st->status = p->state == PORT_RESERVED ? EVTCHNSTAT_closed : p->state;
	st->vcpu = p->vcpu;
	if (p->state == EVTCHNSTAT_unbound) {
		st->u.unbound.dom = p->remote_dom;
	} else if (p->state == EVTCHNSTAT_interdomain) {
		st->u.interdomain.dom = p->remote_dom;
		st->u.interdomain.port = p->remote_port;
	} else if (p->state == EVTCHNSTAT_virq) {
		st->u.virq = p->virq;
	}
	pthread_mutex_unlock(&ev->lock);
	return 0;
}

/* ---- the hypercall --------------------------------------------------------- */

/* Reads the argument struct, runs op, writes it back (same bounds, so the
 * write-back cannot fail once the read succeeded). */
#define IN(type, var)                                                   \
	type var;                                                       \
	if (hyp_gmem_read(d, a[1], &var, sizeof(var)))                  \
		return -XEN_EFAULT
#define OUT(var) (hyp_gmem_write(d, a[1], &var, sizeof(var)) ? -XEN_EFAULT : 0)

int64_t hyp__hc_event_channel_op(struct hyp_vcpu *v, const uint64_t *a)
{
	struct hyp_domain *d = v->d;
	int64_t err;

	switch (a[0]) {
	case EVTCHNOP_alloc_unbound: {
		IN(struct evtchn_alloc_unbound, x);
		err = check_self(d, x.dom);
		if (err)
			return err;
		err = do_alloc_unbound(d, resolve(d, x.remote_dom), &x.port);
		return err ? err : OUT(x);
	}
	case EVTCHNOP_bind_interdomain: {
		IN(struct evtchn_bind_interdomain, x);
		err = do_bind_interdomain(d, x.remote_dom, x.remote_port, &x.local_port);
		return err ? err : OUT(x);
	}
	case EVTCHNOP_bind_virq: {
		IN(struct evtchn_bind_virq, x);
		err = do_bind_virq(d, x.virq, x.vcpu, &x.port);
		return err ? err : OUT(x);
	}
	case EVTCHNOP_bind_ipi: {
		IN(struct evtchn_bind_ipi, x);
		err = do_bind_ipi(d, x.vcpu, &x.port);
		return err ? err : OUT(x);
	}
	case EVTCHNOP_close: {
		IN(struct evtchn_close, x);
		return do_close(d, x.port);
	}
	case EVTCHNOP_send: {
		IN(struct evtchn_send, x);
		return do_send(d, x.port);
	}
	case EVTCHNOP_status: {
		IN(struct evtchn_status, x);
		err = do_status(d, &x);
		return err ? err : OUT(x);
	}
	case EVTCHNOP_bind_vcpu: {
		IN(struct evtchn_bind_vcpu, x);
		return do_bind_vcpu(d, x.port, x.vcpu);
	}
	case EVTCHNOP_unmask: {
		IN(struct evtchn_unmask, x);
		return do_unmask(d, x.port);
	}
	default:
		return -XEN_ENOSYS;
	}
}

/* ---- timers and blocking (hypercall.c) ---------------------------------- */

int evtchn_raise_virq(struct hyp_domain *d, unsigned virq, unsigned vcpu)
{
	struct evtchn_state *ev = d->evtchn;
	uint32_t port;

	if (virq >= NR_VIRQS || vcpu >= d->nvcpus)
		return -EINVAL;
	pthread_mutex_lock(&ev->lock);
	port = ev->virq_port[vcpu][virq];
	if (port != NO_PORT)
		set_pending(d, port);
	pthread_mutex_unlock(&ev->lock);
	return port != NO_PORT ? 0 : -ENOENT;
}

void evtchn_timer_poll(struct hyp_vcpu *v)
{
	struct hyp_domain *d = v->d;
	bool bound;

	if (!v->timer_ns || d->ops->now_ns(d) < v->timer_ns)
		return;
	pthread_mutex_lock(&d->evtchn->lock);
	bound = d->evtchn->virq_port[v->id][VIRQ_TIMER] != NO_PORT;
	pthread_mutex_unlock(&d->evtchn->lock);
	/* Unbound: the deadline only ends SCHEDOP_block, as before. Bound: a
	 * one-shot timer, as Xen's. */
	if (bound) {
		v->timer_ns = 0;
		evtchn_raise_virq(d, VIRQ_TIMER, v->id);
	}
}

void evtchn_block(struct hyp_vcpu *v)
{
	struct hyp_domain *d = v->d;

	if (d->shared_info_gpa) {
		uint64_t vi = vcpu_info_gpa(d, v->id);
		uint8_t zero = 0, pending = 0;

		/* Xen's do_block: enable event delivery, then sleep only if
		 * nothing is pending. */
		hyp_gmem_write(d, vi + offsetof(struct vcpu_info, evtchn_upcall_mask), &zero, 1);
		if (!hyp_gmem_read(d, vi + offsetof(struct vcpu_info, evtchn_upcall_pending),
				   &pending, 1) && pending)
			return;
	}
	hyp__vcpu_block(v);
	evtchn_timer_poll(v);
}

/* ---- teardown ------------------------------------------------------------- */

void evtchn_dom_close_all(struct hyp_domain *d)
{
	struct evtchn_state *ev = d->evtchn;
	uint32_t n;

	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	ev->dead = true;
	while (ev->backend_calls)
		pthread_cond_wait(&ev->cond, &ev->lock);
	n = ev->nports;
	pthread_mutex_unlock(&ev->lock);
	for (uint32_t p = 1; p < n; p++)
		do_close(d, p);
}

/* ---- save and restore (context.c, formats/SPEC.md section 5) ------------- */

int evtchn_ctx_save(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque)
{
	struct evtchn_state *ev = d->evtchn;
	struct ferry_hvm_evtchn *out;
	uint32_t n = 0;
	int err = 0;

	/* Copied under the lock, emitted outside it (emit may do I/O). */
	pthread_mutex_lock(&ev->lock);
	out = calloc(ev->nports, sizeof(*out));
	if (!out) {
		pthread_mutex_unlock(&ev->lock);
		return -ENOMEM;
	}
	for (uint32_t port = 1; port < ev->nports; port++) {
		const struct evtchn_port *p = &ev->ports[port];
		struct ferry_hvm_evtchn *e = &out[port];

		if (p->state != EVTCHNSTAT_unbound && p->state != EVTCHNSTAT_interdomain &&
		    p->state != EVTCHNSTAT_virq && p->state != EVTCHNSTAT_ipi)
			continue;
		e->version = 1;
		e->state = p->state;
		e->vcpu = p->vcpu;
		if (p->state == EVTCHNSTAT_virq)
			e->virq = p->virq;
		if (p->state == EVTCHNSTAT_unbound || p->state == EVTCHNSTAT_interdomain) {
			bool ferryd = p->remote_dom == EVTCHN_DOMID_FERRYD;

			e->remote = ferryd ? FERRY_EVTCHN_REMOTE_FERRYD : FERRY_EVTCHN_REMOTE_GUEST;
			e->remote_dom = ferryd ? 0 : p->remote_dom;
			if (p->state == EVTCHNSTAT_interdomain && !ferryd)
				e->remote_port = p->remote_port;
		}
		n++;
	}
	pthread_mutex_unlock(&ev->lock);
	for (uint32_t port = 1; !err && n && port < EVTCHN_2L_NR_CHANNELS; port++) {
		if (!out[port].version)
			continue;
		err = emit(opaque, FERRY_HVM_EVTCHN, (uint16_t)port, &out[port], sizeof(out[port]));
		n--;
	}
	free(out);
	return err;
}

/* The field of e that is wrong for a saved port, NULL if none. */
static const char *ctx_bad_field(struct hyp_domain *d, uint16_t port,
				 const struct ferry_hvm_evtchn *e)
{
	bool pv = port == d->pv_con_port || port == d->pv_xs_port;

	if (e->version != 1)
		return "version";
	if (e->reserved)
		return "reserved";
	if (e->vcpu >= d->nvcpus)
		return "vcpu";
	switch (e->state) {
	case EVTCHNSTAT_virq:
		if (e->virq >= NR_VIRQS)
			return "virq";
		if (e->virq != VIRQ_TIMER && e->virq != VIRQ_DEBUG && e->vcpu)
			return "vcpu (a global VIRQ is bound on vCPU 0)";
		/* fall through */
	case EVTCHNSTAT_ipi:
		if (e->state == EVTCHNSTAT_ipi && e->virq)
			return "virq";
		if (e->remote || e->remote_port || e->remote_dom)
			return "remote";
		break;
	case EVTCHNSTAT_unbound:
	case EVTCHNSTAT_interdomain:
		if (e->virq)
			return "virq";
		if (e->remote == FERRY_EVTCHN_REMOTE_FERRYD) {
			if (e->remote_dom || e->remote_port)
				return "remote_dom/remote_port (0 for ferryd)";
			/* ferryd's ends are the receiving ferryd's backends,
			 * which gave the new domain its own ports. */
			if (e->state == EVTCHNSTAT_interdomain && !pv)
				return "port (not a port of this ferryd's backends)";
		} else if (e->remote == FERRY_EVTCHN_REMOTE_GUEST) {
			if (!e->remote_dom || e->remote_dom >= DOMID_SELF)
				return "remote_dom";
			if (e->state == EVTCHNSTAT_interdomain
				    ? !e->remote_port || e->remote_port >= EVTCHN_2L_NR_CHANNELS
				    : e->remote_port != 0)
				return "remote_port";
		} else {
			return "remote";
		}
		break;
	default:
		return "state";
	}
	if (pv && (e->state != EVTCHNSTAT_interdomain ||
		   e->remote != FERRY_EVTCHN_REMOTE_FERRYD))
		return "state (the port is a backend's port here)";
	return NULL;
}

int evtchn_ctx_load(struct hyp_domain *d, uint16_t port, const void *data, uint32_t len)
{
	struct evtchn_state *ev = d->evtchn;
	struct ferry_hvm_evtchn e;
	const char *bad;
	int err = 0;

	if (!port || port >= EVTCHN_2L_NR_CHANNELS || len != sizeof(e)) {
		log_err("d%u: HVM context entry EVTCHN/%u: the port must be 1..%u and the "
			"length %zu, got length %u", d->domid, port, EVTCHN_2L_NR_CHANNELS - 1,
			sizeof(e), len);
		return -EINVAL;
	}
	memcpy(&e, data, sizeof(e));
	bad = ctx_bad_field(d, port, &e);
	if (bad) {
		log_err("d%u: HVM context entry EVTCHN/%u: bad %s (state %u virq %u vcpu %u "
			"remote %u dom %u port %u)", d->domid, port, bad, e.state, e.virq,
			e.vcpu, e.remote, e.remote_dom, e.remote_port);
		return -EINVAL;
	}
	pthread_mutex_lock(&ev->lock);
	if (!ev->staged)
		ev->staged = calloc(EVTCHN_2L_NR_CHANNELS, sizeof(*ev->staged));
	if (!ev->staged) {
		err = -ENOMEM;
		goto out;
	}
	if (ev->staged[port].version) {
		log_err("d%u: HVM context entry EVTCHN/%u: the port comes twice", d->domid, port);
		err = -EINVAL;
		goto out;
	}
	if (e.state == EVTCHNSTAT_virq)
		for (uint32_t p = 1; p < EVTCHN_2L_NR_CHANNELS; p++)
			if (ev->staged[p].version && ev->staged[p].state == EVTCHNSTAT_virq &&
			    ev->staged[p].virq == e.virq && ev->staged[p].vcpu == e.vcpu) {
				log_err("d%u: HVM context entry EVTCHN/%u: bad virq: VIRQ %u on "
					"vCPU %u is port %u already", d->domid, port, e.virq,
					e.vcpu, p);
				err = -EINVAL;
				goto out;
			}
	ev->staged[port] = e;
out:
	pthread_mutex_unlock(&ev->lock);
	return err;
}

/* Grows the table to hold port. Under lock. */
static int ctx_grow(struct evtchn_state *ev, uint32_t port)
{
	uint32_t n = (port / PORT_CHUNK + 1) * PORT_CHUNK;
	struct evtchn_port *np;

	if (port < ev->nports)
		return 0;
	np = realloc(ev->ports, n * sizeof(*np));
	if (!np)
		return -ENOMEM;
	memset(np + ev->nports, 0, (n - ev->nports) * sizeof(*np));
	ev->ports = np;
	ev->nports = n;
	return 0;
}

/*
 * A restore loads a context once per epoch (hyp_domain_load_commit): the
 * guest has not run since, so every open port not bound to ferryd's
 * backends came from the previous epoch's apply and gives way to this one.
 */
static void ctx_reset_locked(struct hyp_domain *d, struct evtchn_state *ev)
{
	if (!d->restoring)
		return;
	for (uint32_t port = 1; port < ev->nports; port++) {
		struct evtchn_port *p = &ev->ports[port];

		if (p->fn || p->state == EVTCHNSTAT_closed || p->state == PORT_RESERVED)
			continue;
		if (p->state == EVTCHNSTAT_virq && ev->virq_port[p->vcpu][p->virq] == port)
			ev->virq_port[p->vcpu][p->virq] = NO_PORT;
		*p = (struct evtchn_port){ .state = EVTCHNSTAT_closed };
	}
}

int evtchn_ctx_apply(struct hyp_domain *d)
{
	struct evtchn_state *ev = d->evtchn;
	int err = 0;

	pthread_mutex_lock(&ev->lock);
	ctx_reset_locked(d, ev);
	for (uint32_t port = 1; ev->staged && port < EVTCHN_2L_NR_CHANNELS; port++) {
		const struct ferry_hvm_evtchn *e = &ev->staged[port];
		struct evtchn_port *p;

		if (!e->version)
			continue;
		err = ctx_grow(ev, port);
		if (err) {
			log_err("d%u: cannot restore event channel port %u: out of memory",
				d->domid, port);
			break;
		}
		p = &ev->ports[port];
		if (e->state == EVTCHNSTAT_interdomain && e->remote == FERRY_EVTCHN_REMOTE_FERRYD) {
			/* Already bound to this ferryd's backend at create. */
			p->vcpu = e->vcpu;
			continue;
		}
		if (p->state != EVTCHNSTAT_closed) {
			log_err("d%u: cannot restore event channel port %u: in use (state %u)",
				d->domid, port, p->state);
			err = -EBUSY;
			break;
		}
		*p = (struct evtchn_port){ .state = e->state, .vcpu = e->vcpu };
		switch (e->state) {
		case EVTCHNSTAT_virq:
			p->virq = e->virq;
			ev->virq_port[e->vcpu][e->virq] = port;
			break;
		case EVTCHNSTAT_unbound:
			p->remote_dom = e->remote_dom;
			break;
		case EVTCHNSTAT_interdomain:
			/* A guest peer stays on the old host (channels are
			 * host-local): the port is unbound for it, as after
			 * the peer's close, and the guest reconnects. */
			p->state = EVTCHNSTAT_unbound;
			p->remote_dom = e->remote_dom;
			break;
		default:
			break;
		}
	}
	free(ev->staged);
	ev->staged = NULL;
	pthread_mutex_unlock(&ev->lock);
	return err;
}

/* ---- ferryd's API (evtchn.h) --------------------------------------------- */

static int xen_to_errno(int64_t e)
{
	switch (e) {
	case 0: return 0;
	case -XEN_ESRCH: return -ESRCH;
	case -XEN_ENOSPC: return -ENOSPC;
	case -XEN_ENOMEM: return -ENOMEM;
	case -XEN_EEXIST: return -EEXIST;
	case -XEN_ENOENT: return -ENOENT;
	case -XEN_EPERM: return -EPERM;
	default: return -EINVAL;
	}
}

int evtchn_alloc_unbound_for(struct hyp_domain *d, uint32_t remote_domid, uint32_t *port)
{
	if (remote_domid >= DOMID_SELF)
		return -EINVAL;
	return xen_to_errno(do_alloc_unbound(d, remote_domid, port));
}

int evtchn_bind_backend(struct hyp_domain *d, uint32_t port, evtchn_backend_fn fn,
			void *opaque)
{
	struct evtchn_state *ev = d->evtchn;
	struct evtchn_port *p;
	int err = 0;

	if (!fn)
		return -EINVAL;
	pthread_mutex_lock(&ev->lock);
	if (ev->dead) {
		err = -ESRCH;
	} else if (!port_valid(ev, port) || ev->ports[port].state != EVTCHNSTAT_unbound ||
		   ev->ports[port].remote_dom != EVTCHN_DOMID_FERRYD) {
		err = -EINVAL;
	} else {
		p = &ev->ports[port];
		p->state = EVTCHNSTAT_interdomain;
		p->remote_port = 0;
		p->fn = fn;
		p->opaque = opaque;
		/* As for a guest's bind_interdomain: raise it once. */
		set_pending(d, port);
	}
	pthread_mutex_unlock(&ev->lock);
	return err;
}

int evtchn_unbind_backend(struct hyp_domain *d, uint32_t port)
{
	struct evtchn_state *ev = d->evtchn;
	struct evtchn_port *p;
	int err = 0;

	pthread_mutex_lock(&ev->lock);
	if (!port_valid(ev, port) || ev->ports[port].state != EVTCHNSTAT_interdomain ||
	    ev->ports[port].remote_dom != EVTCHN_DOMID_FERRYD) {
		err = -EINVAL;
	} else {
		p = &ev->ports[port];
		p->state = EVTCHNSTAT_unbound;
		p->fn = NULL;
		p->opaque = NULL;
		while (ev->backend_calls)
			pthread_cond_wait(&ev->cond, &ev->lock);
	}
	pthread_mutex_unlock(&ev->lock);
	return err;
}

int evtchn_notify(struct hyp_domain *d, uint32_t port)
{
	struct evtchn_state *ev = d->evtchn;
	int err = 0;

	pthread_mutex_lock(&ev->lock);
	if (!port_valid(ev, port) || ev->ports[port].state != EVTCHNSTAT_interdomain ||
	    ev->ports[port].remote_dom != EVTCHN_DOMID_FERRYD)
		err = -EINVAL;
	else
		set_pending(d, port);
	pthread_mutex_unlock(&ev->lock);
	return err;
}

int evtchn_port_state(struct hyp_domain *d, uint32_t port)
{
	struct evtchn_state *ev = d->evtchn;
	int st;

	pthread_mutex_lock(&ev->lock);
	if (port >= EVTCHN_2L_NR_CHANNELS)
		st = -EINVAL;
	else if (!port_valid(ev, port) || ev->ports[port].state == PORT_RESERVED)
		st = EVTCHNSTAT_closed;
	else
		st = ev->ports[port].state;
	pthread_mutex_unlock(&ev->lock);
	return st;
}

int64_t hyp_test_hypercall(struct hyp *h, uint32_t domid, unsigned vcpu, uint64_t nr,
			   const uint64_t args[5])
{
	struct hyp_domain *d;
	int64_t ret;

	if (hyp_domain_get(h, domid, &d))
		return -XEN_ESRCH;
	if (vcpu >= d->nvcpus) {
		hyp_domain_put(d);
		return -XEN_EINVAL;
	}
	ret = hyp_hypercall(&d->vcpus[vcpu], nr, args);
	hyp_domain_put(d);
	return ret;
}
