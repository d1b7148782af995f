/* SPDX-License-Identifier: MIT */
/*
 * The hyp side of Xen's PV console and xenstore rings.
 *
 * Every domain gets, at create (before its vCPUs run), two event channel
 * ports in its own table for domain 0 (ferryd), and two ring pages at fixed
 * guest addresses (abi/guest.h):
 *   HVM_PARAM_CONSOLE_PFN    FERRY_CONSOLE_GPA >> 12   struct xencons_interface
 *   HVM_PARAM_CONSOLE_EVTCHN the console port
 *   HVM_PARAM_STORE_PFN      FERRY_XENSTORE_GPA >> 12  struct xenstore_domain_interface
 *   HVM_PARAM_STORE_EVTCHN   the xenstore port
 * The guest reads them with HVMOP_get_param.
 *
 * The rings' other ends are dom0-side backends, as xenconsoled and
 * xenstored are under Xen: devices/ has them, ferryd hands them to hyp
 * (hyp_params.pv_backend), and they work through hyp's public API (guest
 * memory, event channels, the calls below). hyp never calls devices/
 * directly. Without a backend, domains get no PV rings.
 */
#ifndef HYP_PV_H
#define HYP_PV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hyp;
struct hyp_domain;

/*
 * The backends' hooks, called with no hyp lock held.
 * dom_init: at create, the domain paused and no vCPU started; con_port and
 *   xs_port are unbound ports for ferryd (evtchn_bind_backend binds them).
 *   Returns 0 with the backend's state for d in *priv (hyp_pv_backend_priv),
 *   or -errno, logged, having undone what it did (the create fails).
 * dom_stop: at destroy, before the ports close and guest memory goes: the
 *   backend stops touching d (joins its threads). Called again by fini.
 * dom_fini: frees priv; d is still valid.
 */
struct hyp_pv_backend_ops {
	int (*dom_init)(void *opaque, struct hyp_domain *d, uint32_t con_port,
			uint32_t xs_port, void **priv);
	void (*dom_stop)(void *opaque, struct hyp_domain *d, void *priv);
	void (*dom_fini)(void *opaque, struct hyp_domain *d, void *priv);
};

/* The backend's state for d (dom_init's *priv), NULL when d has no PV
 * rings. d is a reference the caller holds. */
void *hyp_pv_backend_priv(struct hyp_domain *d);

/* The ports hyp allocated for domid (0 when it has none). */
int hyp_pv_ports(struct hyp *h, uint32_t domid, uint32_t *console_port,
		 uint32_t *store_port);

/*
 * A ring index word in d's guest memory at gpa (inside a ring page): an
 * acquire load, and a release store marked dirty for log-dirty. d is a
 * reference the caller holds.
 */
uint32_t hyp_pv_idx_load(struct hyp_domain *d, uint64_t gpa);
void hyp_pv_idx_store(struct hyp_domain *d, uint64_t gpa, uint32_t v);

/* Paused, or being destroyed: a backend writes nothing into its memory. */
bool hyp_domain_quiet(struct hyp_domain *d);

/*
 * Guest console output from a backend into d's console (ring, log,
 * events, as console_io does). Takes what the console's output gate lets
 * through and returns how many bytes that is (all of them unless the gate
 * is full: the rest should wait in the guest's ring).
 */
size_t hyp_console_offer(struct hyp_domain *d, const char *buf, size_t len);

#endif
