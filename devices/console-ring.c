// SPDX-License-Identifier: MIT
/*
 * The PV rings' dom0-side backends per domain (devices/pv.h): the console
 * ring's backend (xenconsoled's job) and the xenstore port's notify, which
 * only kicks the store's owner (xs-ring.c does the rest on the store's
 * thread), with a poll thread per domain as the safety net for lost
 * notifies.
 *
 * Console: out[out_cons, out_prod) goes to the console and out_cons moves
 * past what it took (all of it, unless the console's output gate is full:
 * the rest waits in the ring, and the poll takes it once the gate lets
 * output out again); queued input goes into in[] and in_prod moves. A ring
 * whose indices are more than its size apart is resynchronised (out_cons =
 * out_prod), logged once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi/guest.h"
#include "common/err.h"
#include "common/log.h"
#include "devices/pv.h"
#include "hyp/evtchn.h"
#include "hyp/gmem.h"
#include "hyp/pv.h"

#define PV_POLL_MS 50
#define PV_INPUT_MAX 4096

struct dev_pv {
	pthread_mutex_t lock; /* the kick, held across a call */
	dev_xs_kick_fn xs_kick;
	void *xs_kick_opaque;
};

/* One domain's backends (hyp_pv_backend_priv). */
struct dev_pv_dom {
	struct dev_pv *pv;
	struct hyp_domain *d; /* hyp's, valid until dom_fini */
	uint32_t domid, con_port, xs_port;
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

/* Under st->lock. Returns true when an index moved (the guest needs a
 * notify). */
static bool con_out(struct dev_pv_dom *st)
{
	struct hyp_domain *d = st->d;
	char buf[sizeof(((struct xencons_interface *)0)->out)];
	uint32_t cons = hyp_pv_idx_load(d, CON_GPA(out_cons));
	uint32_t prod = hyp_pv_idx_load(d, CON_GPA(out_prod));
	uint32_t n = prod - cons, first;

	if (!n)
		return false;
	if (n > sizeof(buf)) {
		if (!st->con_bad_logged)
			log_warn("d%u: console ring indices out of range (cons %u, prod %u): "
				 "resynchronised",
				 st->domid, cons, prod);
		st->con_bad_logged = true;
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
	n = (uint32_t)hyp_console_offer(d, buf, n);
	if (!n)
		return false;
	hyp_pv_idx_store(d, CON_GPA(out_cons), cons + n);
	return true;
}

/* Under st->lock. */
static bool con_in(struct dev_pv_dom *st)
{
	struct hyp_domain *d = st->d;
	uint32_t cons, prod, space, n, size = sizeof(((struct xencons_interface *)0)->in);

	if (!st->in_len)
		return false;
	cons = hyp_pv_idx_load(d, CON_GPA(in_cons));
	prod = hyp_pv_idx_load(d, CON_GPA(in_prod));
	if (prod - cons > size) {
		if (!st->con_bad_logged)
			log_warn("d%u: console input indices out of range (cons %u, prod %u)",
				 st->domid, cons, prod);
		st->con_bad_logged = true;
		return false;
	}
	space = size - (prod - cons);
	n = st->in_len < space ? (uint32_t)st->in_len : space;
	if (!n)
		return false;
	for (uint32_t i = 0; i < n;) {
		uint32_t off = (prod + i) & (size - 1), run = size - off;

		if (run > n - i)
			run = n - i;
		if (hyp_gmem_write(d, CON_GPA(in) + off, st->in + i, run))
			return false;
		i += run;
	}
	hyp_pv_idx_store(d, CON_GPA(in_prod), prod + n);
	memmove(st->in, st->in + n, st->in_len - n);
	st->in_len -= n;
	return true;
}

static void con_service(struct dev_pv_dom *st)
{
	bool moved;

	pthread_mutex_lock(&st->lock);
	moved = con_out(st);
	moved |= con_in(st);
	pthread_mutex_unlock(&st->lock);
	if (moved)
		evtchn_notify(st->d, st->con_port);
}

static void con_notify(void *opaque, uint32_t domid, uint32_t port)
{
	(void)domid;
	(void)port;
	con_service(opaque);
}

static void xs_kick(struct dev_pv_dom *st)
{
	struct dev_pv *pv = st->pv;

	if (!pv)
		return; /* no owner to kick (a hyp made without one) */
	/* Under pv->lock so dev_pv_set_xs_kick(NULL) waits for a call in
	 * flight. */
	pthread_mutex_lock(&pv->lock);
	if (pv->xs_kick)
		pv->xs_kick(pv->xs_kick_opaque, st->domid);
	pthread_mutex_unlock(&pv->lock);
}

static void xs_notify(void *opaque, uint32_t domid, uint32_t port)
{
	(void)domid;
	(void)port;
	xs_kick(opaque);
}

void dev_pv_set_xs_kick(struct dev_pv *pv, dev_xs_kick_fn fn, void *opaque)
{
	pthread_mutex_lock(&pv->lock);
	pv->xs_kick = fn;
	pv->xs_kick_opaque = opaque;
	pthread_mutex_unlock(&pv->lock);
}

/* The safety net: lost notifies cost at most PV_POLL_MS. */
static void *poll_thread(void *arg)
{
	struct dev_pv_dom *st = arg;
	struct hyp_domain *d = st->d;

	pthread_mutex_lock(&st->lock);
	while (!st->stop) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += PV_POLL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&st->cond, &st->lock, &ts);
		if (st->stop)
			break;
		pthread_mutex_unlock(&st->lock);
		if (!hyp_domain_quiet(d)) {
			uint32_t rc, rq, rp;

			con_service(st);
			/* Requests waiting, or replies taken without a notify. */
			rq = hyp_pv_idx_load(d, XS_GPA(req_cons));
			rp = hyp_pv_idx_load(d, XS_GPA(req_prod));
			rc = hyp_pv_idx_load(d, XS_GPA(rsp_cons));
			if (rq != rp || rc != st->xs_rsp_cons) {
				st->xs_rsp_cons = rc;
				xs_kick(st);
			}
		}
		pthread_mutex_lock(&st->lock);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

static void dom_stop(void *opaque, struct hyp_domain *d, void *priv)
{
	struct dev_pv_dom *st = priv;

	if (!st->poll_started)
		return;
	pthread_mutex_lock(&st->lock);
	st->stop = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	pthread_join(st->poll, NULL);
	st->poll_started = false;
}

static void dom_fini(void *opaque, struct hyp_domain *d, void *priv)
{
	struct dev_pv_dom *st = priv;

	dom_stop(opaque, d, st);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
}

static int dom_init(void *opaque, struct hyp_domain *d, uint32_t con_port, uint32_t xs_port,
		    void **priv)
{
	struct dev_pv_dom *st = calloc(1, sizeof(*st));
	pthread_condattr_t ca;
	int err;

	if (!st)
		return -ENOMEM;
	st->pv = opaque;
	st->d = d;
	st->domid = hyp_domain_id(d);
	st->con_port = con_port;
	st->xs_port = xs_port;
	pthread_mutex_init(&st->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cond, &ca);
	pthread_condattr_destroy(&ca);
	err = evtchn_bind_backend(d, con_port, con_notify, st);
	if (!err)
		err = evtchn_bind_backend(d, xs_port, xs_notify, st);
	if (err) {
		log_err("d%u: cannot bind the PV ring ports: %s", st->domid,
			ferry_strerror(-err));
		goto err_unbind;
	}
	err = -pthread_create(&st->poll, NULL, poll_thread, st);
	if (err) {
		log_err("d%u: cannot start the console poll thread: %s", st->domid,
			ferry_strerror(-err));
		goto err_unbind;
	}
	st->poll_started = true;
	*priv = st;
	return 0;

err_unbind:
	/* fn is never called again once these return (hyp/evtchn.h). */
	evtchn_unbind_backend(d, con_port);
	evtchn_unbind_backend(d, xs_port);
	dom_fini(opaque, d, st);
	return err;
}

const struct hyp_pv_backend_ops dev_pv_backend_ops = {
	.dom_init = dom_init,
	.dom_stop = dom_stop,
	.dom_fini = dom_fini,
};

int dev_pv_new(struct dev_pv **out)
{
	struct dev_pv *pv = calloc(1, sizeof(*pv));

	if (!pv)
		return -ENOMEM;
	pthread_mutex_init(&pv->lock, NULL);
	*out = pv;
	return 0;
}

void dev_pv_free(struct dev_pv *pv)
{
	if (!pv)
		return;
	pthread_mutex_destroy(&pv->lock);
	free(pv);
}

int dev_console_input(struct hyp *h, uint32_t domid, const void *buf, size_t len)
{
	struct hyp_domain *d;
	struct dev_pv_dom *st;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	st = hyp_pv_backend_priv(d);
	if (!st) {
		hyp_domain_put(d);
		return -ENODEV;
	}
	if (len > PV_INPUT_MAX) {
		buf = (const char *)buf + (len - PV_INPUT_MAX);
		len = PV_INPUT_MAX;
	}
	pthread_mutex_lock(&st->lock);
	if (st->in_len + len > PV_INPUT_MAX) { /* drop the oldest */
		size_t drop = st->in_len + len - PV_INPUT_MAX;

		memmove(st->in, st->in + drop, st->in_len - drop);
		st->in_len -= drop;
	}
	memcpy(st->in + st->in_len, buf, len);
	st->in_len += len;
	pthread_mutex_unlock(&st->lock);
	if (!hyp_domain_quiet(d))
		con_service(st);
	hyp_domain_put(d);
	return 0;
}
