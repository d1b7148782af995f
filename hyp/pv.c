// SPDX-License-Identifier: MIT
/*
 * The PV rings' per-domain side in hyp (hyp/pv.h): at create, two ports in
 * the guest's table for ferryd (domain 0), one for the console ring at
 * FERRY_CONSOLE_GPA and one for the xenstore ring at FERRY_XENSTORE_GPA,
 * handed to the dom0-side backends (hyp_params.pv_backend, from devices/),
 * which bind them and move the data; the guest's HVM params that name
 * them. Without a backend a domain has no PV rings: the guest's console
 * goes through its console_io hypercall.
 */
#include <errno.h>
#include <stddef.h>

#include "common/err.h"
#include "common/log.h"
#include "hyp/evtchn.h"
#include "hyp/pv.h"
#include "internal.h"

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

bool hyp_domain_quiet(struct hyp_domain *d)
{
	bool p;

	pthread_mutex_lock(&d->lock);
	p = d->paused || d->stopping;
	pthread_mutex_unlock(&d->lock);
	return p;
}

void *hyp_pv_backend_priv(struct hyp_domain *d)
{
	return d->pv_on ? d->pv_priv : NULL;
}

int hyp__pv_dom_init(struct hyp_domain *d)
{
	const struct hyp_pv_backend_ops *ops = d->h->pv_backend;
	int err;

	/* Below FERRY_ARENA_GPA: check_config refuses such domains. */
	if (!ops || !hyp__pv_rings_present(d))
		return 0;
	/* The console port first: a guest sees ports 1 (console), 2 (store). */
	err = evtchn_alloc_unbound_for(d, EVTCHN_DOMID_FERRYD, &d->pv_con_port);
	if (!err)
		err = evtchn_alloc_unbound_for(d, EVTCHN_DOMID_FERRYD, &d->pv_xs_port);
	if (err) {
		log_err("d%u: cannot set up the PV ring ports: %s", d->domid, ferry_strerror(-err));
		return err;
	}
	err = ops->dom_init(d->h->pv_backend_opaque, d, d->pv_con_port, d->pv_xs_port,
			    &d->pv_priv);
	if (err)
		return err; /* the backend logged it */
	d->pv_on = true;
	return 0;
}

void hyp__pv_dom_stop(struct hyp_domain *d)
{
	if (d->pv_on)
		d->h->pv_backend->dom_stop(d->h->pv_backend_opaque, d, d->pv_priv);
}

void hyp__pv_dom_fini(struct hyp_domain *d)
{
	if (!d->pv_on)
		return;
	hyp__pv_dom_stop(d);
	d->h->pv_backend->dom_fini(d->h->pv_backend_opaque, d, d->pv_priv);
	d->pv_priv = NULL;
	d->pv_on = false;
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
	if (!d->pv_on)
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
