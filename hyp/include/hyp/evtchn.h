/* SPDX-License-Identifier: MIT */
/*
 * Event channels (Xen's 2-level ABI) for ferryd's own backends. ferryd acts
 * as domain 0 (guest domids start at 1): a backend owns the far end of a
 * guest's interdomain port, as xenstored and xenconsoled do under Xen.
 *
 * Lifecycle of a backend port, as Xen's toolstack does it:
 *   evtchn_alloc_unbound_for(d, 0, &port)   port is unbound, for domain 0
 *   (tell the guest the port: start info, xenstore, ...)
 *   evtchn_bind_backend(d, port, fn, opaque) port is interdomain to ferryd
 *   evtchn_notify(d, port)                   raise it in the guest
 *   fn(opaque, domid, port)                  the guest sent on it
 *   evtchn_unbind_backend(d, port)           the guest's port is unbound
 *
 * Every function takes a domain reference the caller holds
 * (hyp_domain_get). Safe from any thread. Errors are negative errnos:
 * -EINVAL for a port that is not in the state the call needs, -ESRCH once
 * the domain is being destroyed.
 */
#ifndef HYP_EVTCHN_H
#define HYP_EVTCHN_H

#include <stdint.h>

struct hyp;
struct hyp_domain;

/* The domid ferryd's backends use as the remote end. */
#define EVTCHN_DOMID_FERRYD 0

/*
 * Called on the sending vCPU's thread (or the caller of evtchn_send's
 * equivalent) after the guest sent on a backend-bound port. No evtchn lock
 * is held: it may call evtchn_notify. It must not block for long: the guest
 * vCPU waits for it.
 */
typedef void (*evtchn_backend_fn)(void *opaque, uint32_t domid, uint32_t port);

/* Allocates an unbound port in d that remote_domid (0: ferryd) may bind. */
int evtchn_alloc_unbound_for(struct hyp_domain *d, uint32_t remote_domid,
			     uint32_t *port);
/* Binds ferryd to d's unbound port (allocated for domain 0): it becomes an
 * interdomain port whose sends call fn. fn and opaque are borrowed until
 * evtchn_unbind_backend or the domain's destruction. */
int evtchn_bind_backend(struct hyp_domain *d, uint32_t port, evtchn_backend_fn fn,
			void *opaque);
/* Xen's close rule from the far side: d's port goes back to unbound (for
 * domain 0), fn is never called again once this returns. */
int evtchn_unbind_backend(struct hyp_domain *d, uint32_t port);
/* Raises d's port, which must be bound to ferryd: sets it pending in the
 * guest's shared_info and delivers the upcall. */
int evtchn_notify(struct hyp_domain *d, uint32_t port);
/* Xen's EVTCHNSTAT_* of d's port (EVTCHNSTAT_closed for a free port);
 * -EINVAL beyond the 2-level limit. */
int evtchn_port_state(struct hyp_domain *d, uint32_t port);
/* Raises d's port bound to virq on vcpu (VIRQ_*; 0 for global ones);
 * -ENOENT when the guest has not bound it. */
int evtchn_raise_virq(struct hyp_domain *d, unsigned virq, unsigned vcpu);

/* ---- for tests and fuzzing only ---------------------------------------- */

/*
 * Runs hypercall nr with args as if vCPU vcpu of domid had made it (on the
 * calling thread). Pointer arguments are guest-physical addresses of that
 * domain. Use on paused domains: SCHEDOP_block returns at once then.
 * Returns the value the guest would see in rax, or -XEN_ESRCH / -XEN_EINVAL
 * for a missing domain or vCPU.
 */
int64_t hyp_test_hypercall(struct hyp *h, uint32_t domid, unsigned vcpu, uint64_t nr,
			   const uint64_t args[5]);

#endif
