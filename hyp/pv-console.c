// SPDX-License-Identifier: MIT
/*
 * The PV rings' per-domain side (hyp/pv.h): at create, two ports in the
 * guest's table bound to ferryd (domain 0), one for the console ring at
 * FERRY_CONSOLE_GPA and one for the xenstore ring at FERRY_XENSTORE_GPA;
 * the console backend itself (xenconsoled's job), and the xenstore port's
 * notify, which only kicks the store's owner (devices/xs-ring.c does the
 * rest on the store's thread).
 *
 * Console: on the guest's notify, or every PV_POLL_MS from the poll thread
 * (a lost notify costs latency, not output), out[out_cons, out_prod) goes to
 * the console and out_cons moves past what it took (all of it, unless the
 * console's output gate is full: the rest waits in the ring, and the poll
 * takes it once the gate lets output out again); queued input goes into in[] and in_prod
 * moves; either way the guest gets a notify. A ring whose indices are more
 * than its size apart is resynchronised (out_cons = out_prod), logged once.
 * While the domain is paused nothing is written into its memory.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "hyp/evtchn.h"
#include "hyp/pv.h"
#include "internal.h"

#define PV_POLL_MS 50
#define PV_INPUT_MAX 4096

struct pv_state {
	pthread_mutex_t lock; /* the console ring and the input queue */
	pthread_cond_t cond;  /* stop */
	pthread_t poll;
	bool poll_started;
	bool stop;
	bool con_bad_logged;
	char in[PV_INPUT_MAX]; /* input not yet in the ring */
	size_t in_len;
	uint32_t xs_rsp_cons; /* poll: the last rsp_cons seen */
};

#define CON_GPA(field) (FERRY_CONSOLE_GPA + offsetof(struct xencons_interface, field))
#define XS_GPA(field) (FERRY_XENSTORE_GPA + offsetof(struct xenstore_domain_interface, field))

uint32_t hyp_pv_idx_load(struct hyp_domain *d, uint64_t gpa)
{
	return __atomic_load_n((uint32_t *)(d->hva + gpa), __ATOMIC_ACQUIRE);
}

void hyp_pv_idx_store(struct hyp_domain *d, uint64_t gpa, uint32_t v)
{
	__atomic_store_n((uint32_t *)(d->hva + gpa), v, __ATOMIC_RELEASE);
	hyp_gmem_mark_dirty(d, gpa, sizeof(v));
}

bool hyp__pv_rings_present(struct hyp_domain *d)
{
	return d->mem_bytes >= FERRY_CONSOLE_GPA + 4096 && d->mem_bytes >= FERRY_XENSTORE_GPA + 4096;
}

static bool dom_paused(struct hyp_domain *d)
{
	bool p;

	pthread_mutex_lock(&d->lock);
	p = d->paused || d->stopping;
	pthread_mutex_unlock(&d->lock);
	return p;
}

/* Under pv->lock. Returns true when an index moved (the guest needs a
 * notify). */
static bool con_out(struct hyp_domain *d)
{
	struct pv_state *pv = d->pv;
	char buf[sizeof(((struct xencons_interface *)0)->out)];
	uint32_t cons = hyp_pv_idx_load(d, CON_GPA(out_cons));
	uint32_t prod = hyp_pv_idx_load(d, CON_GPA(out_prod));
	uint32_t n = prod - cons, first;

	if (!n)
		return false;
	if (n > sizeof(buf)) {
		if (!pv->con_bad_logged)
			log_warn("d%u: console ring indices out of range (cons %u, prod %u): "
				 "resynchronised",
				 d->domid, cons, prod);
		pv->con_bad_logged = true;
		hyp_pv_idx_store(d, CON_GPA(out_cons), prod);
		return true;
	}
	first = (uint32_t)sizeof(buf) - MASK_XENCONS_IDX(cons, buf);
	if (first > n)
		first = n;
	if (hyp_gmem_read(d, CON_GPA(out) + MASK_XENCONS_IDX(cons, buf), buf, first) ||
	    hyp_gmem_read(d, CON_GPA(out), buf + first, n - first))
		return false;
	/* A full console gate takes less: the rest waits in the ring. */
	n = (uint32_t)hyp__console_offer(d, buf, n);
	if (!n)
		return false;
	hyp_pv_idx_store(d, CON_GPA(out_cons), cons + n);
	return true;
}

/* Under pv->lock. */
static bool con_in(struct hyp_domain *d)
{
	struct pv_state *pv = d->pv;
	uint32_t cons, prod, space, n, size = sizeof(((struct xencons_interface *)0)->in);

	if (!pv->in_len)
		return false;
	cons = hyp_pv_idx_load(d, CON_GPA(in_cons));
	prod = hyp_pv_idx_load(d, CON_GPA(in_prod));
	if (prod - cons > size) {
		if (!pv->con_bad_logged)
			log_warn("d%u: console input indices out of range (cons %u, prod %u)",
				 d->domid, cons, prod);
		pv->con_bad_logged = true;
		return false;
	}
	space = size - (prod - cons);
	n = pv->in_len < space ? (uint32_t)pv->in_len : space;
	if (!n)
		return false;
	for (uint32_t i = 0; i < n;) {
		uint32_t off = (prod + i) & (size - 1), run = size - off;

		if (run > n - i)
			run = n - i;
		if (hyp_gmem_write(d, CON_GPA(in) + off, pv->in + i, run))
			return false;
		i += run;
	}
	hyp_pv_idx_store(d, CON_GPA(in_prod), prod + n);
	memmove(pv->in, pv->in + n, pv->in_len - n);
	pv->in_len -= n;
	return true;
}

static void con_service(struct hyp_domain *d)
{
	struct pv_state *pv = d->pv;
	bool moved;

	if (!hyp__pv_rings_present(d))
		return;
	pthread_mutex_lock(&pv->lock);
	moved = con_out(d);
	moved |= con_in(d);
	pthread_mutex_unlock(&pv->lock);
	if (moved)
		evtchn_notify(d, d->pv_con_port);
}

static void con_notify(void *opaque, uint32_t domid, uint32_t port)
{
	(void)domid;
	(void)port;
	con_service(opaque);
}

static void xs_kick(struct hyp_domain *d)
{
	struct hyp *h = d->h;

	/* Under h->lock so hyp_xs_set_kick(NULL) waits for a call in flight. */
	pthread_mutex_lock(&h->lock);
	if (h->xs_kick)
		h->xs_kick(h->xs_kick_opaque, d->domid);
	pthread_mutex_unlock(&h->lock);
}

static void xs_notify(void *opaque, uint32_t domid, uint32_t port)
{
	(void)domid;
	(void)port;
	xs_kick(opaque);
}

void hyp_xs_set_kick(struct hyp *h, hyp_xs_kick_fn fn, void *opaque)
{
	pthread_mutex_lock(&h->lock);
	h->xs_kick = fn;
	h->xs_kick_opaque = opaque;
	pthread_mutex_unlock(&h->lock);
}

/* The safety net: lost notifies cost at most PV_POLL_MS. */
static void *poll_thread(void *arg)
{
	struct hyp_domain *d = arg;
	struct pv_state *pv = d->pv;

	pthread_mutex_lock(&pv->lock);
	while (!pv->stop) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += PV_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&pv->cond, &pv->lock, &ts);
		if (pv->stop)
			break;
		pthread_mutex_unlock(&pv->lock);
		if (!dom_paused(d)) {
			uint32_t rc, rq, rp;

			con_service(d);
			/* Requests waiting, or replies taken without a notify. */
			rq = hyp_pv_idx_load(d, XS_GPA(req_cons));
			rp = hyp_pv_idx_load(d, XS_GPA(req_prod));
			rc = hyp_pv_idx_load(d, XS_GPA(rsp_cons));
			if (rq != rp || rc != pv->xs_rsp_cons) {
				pv->xs_rsp_cons = rc;
				xs_kick(d);
			}
		}
		pthread_mutex_lock(&pv->lock);
	}
	pthread_mutex_unlock(&pv->lock);
	return NULL;
}

int hyp__pv_dom_init(struct hyp_domain *d)
{
	struct pv_state *pv;
	pthread_condattr_t ca;
	int err;

	if (!hyp__pv_rings_present(d))
		return 0; /* below FERRY_ARENA_GPA: check_config refuses such domains */
	pv = calloc(1, sizeof(*pv));
	if (!pv)
		return -ENOMEM;
	pthread_mutex_init(&pv->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pv->cond, &ca);
	pthread_condattr_destroy(&ca);
	d->pv = pv;
	/* The console port first: a guest sees ports 1 (console), 2 (store). */
	err = evtchn_alloc_unbound_for(d, EVTCHN_DOMID_FERRYD, &d->pv_con_port);
	if (!err)
		err = evtchn_bind_backend(d, d->pv_con_port, con_notify, d);
	if (!err)
		err = evtchn_alloc_unbound_for(d, EVTCHN_DOMID_FERRYD, &d->pv_xs_port);
	if (!err)
		err = evtchn_bind_backend(d, d->pv_xs_port, xs_notify, d);
	if (err) {
		log_err("d%u: cannot set up the PV ring ports: %s", d->domid, ferry_strerror(-err));
		return err;
	}
	err = -pthread_create(&pv->poll, NULL, poll_thread, d);
	if (err) {
		log_err("d%u: cannot start the console poll thread: %s", d->domid,
			ferry_strerror(-err));
		return err;
	}
	pv->poll_started = true;
	return 0;
}

void hyp__pv_dom_stop(struct hyp_domain *d)
{
	struct pv_state *pv = d->pv;

	if (!pv || !pv->poll_started)
		return;
	pthread_mutex_lock(&pv->lock);
	pv->stop = true;
	pthread_cond_broadcast(&pv->cond);
	pthread_mutex_unlock(&pv->lock);
	pthread_join(pv->poll, NULL);
	pv->poll_started = false;
}

void hyp__pv_dom_fini(struct hyp_domain *d)
{
	struct pv_state *pv = d->pv;

	if (!pv)
		return;
	hyp__pv_dom_stop(d);
	pthread_mutex_destroy(&pv->lock);
	pthread_cond_destroy(&pv->cond);
	free(pv);
	d->pv = NULL;
}

int hyp_console_input(struct hyp *h, uint32_t domid, const void *buf, size_t len)
{
	struct hyp_domain *d;
	struct pv_state *pv;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	pv = d->pv;
	if (!pv) {
		hyp_domain_put(d);
		return -ENODEV;
	}
	if (len > PV_INPUT_MAX) {
		buf = (const char *)buf + (len - PV_INPUT_MAX);
		len = PV_INPUT_MAX;
	}
	pthread_mutex_lock(&pv->lock);
	if (pv->in_len + len > PV_INPUT_MAX) { /* drop the oldest */
		size_t drop = pv->in_len + len - PV_INPUT_MAX;

		memmove(pv->in, pv->in + drop, pv->in_len - drop);
		pv->in_len -= drop;
	}
	memcpy(pv->in + pv->in_len, buf, len);
	pv->in_len += len;
	pthread_mutex_unlock(&pv->lock);
	if (!dom_paused(d))
		con_service(d);
	hyp_domain_put(d);
	return 0;
}

int hyp_pv_ports(struct hyp *h, uint32_t domid, uint32_t *console_port,
		 uint32_t *store_port)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	*console_port = d->pv_con_port;
	*store_port = d->pv_xs_port;
	hyp_domain_put(d);
	return 0;
}

int64_t hyp__pv_hvm_param(struct hyp_domain *d, uint32_t index, uint64_t *value)
{
	if (!d->pv)
		return -XEN_EINVAL;
	switch (index) {
	case HVM_PARAM_STORE_PFN:
		*value = FERRY_XENSTORE_GPA >> 12;
		return 0;
	case HVM_PARAM_STORE_EVTCHN:
		*value = d->pv_xs_port;
		return 0;
	case HVM_PARAM_CONSOLE_PFN:
		*value = FERRY_CONSOLE_GPA >> 12;
		return 0;
	case HVM_PARAM_CONSOLE_EVTCHN:
		*value = d->pv_con_port;
		return 0;
	default:
		return -XEN_EINVAL;
	}
}
