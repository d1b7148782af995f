/* SPDX-License-Identifier: MIT */
/*
 * The host side of Xen's PV console and xenstore rings.
 *
 * Every domain gets, at create (before its vCPUs run), two event channel
 * ports in its own table, interdomain with domain 0 (ferryd), and two ring
 * pages at fixed guest addresses (abi/guest.h):
 *   HVM_PARAM_CONSOLE_PFN    FERRY_CONSOLE_GPA >> 12   struct xencons_interface
 *   HVM_PARAM_CONSOLE_EVTCHN the console port
 *   HVM_PARAM_STORE_PFN      FERRY_XENSTORE_GPA >> 12  struct xenstore_domain_interface
 *   HVM_PARAM_STORE_EVTCHN   the xenstore port
 * The guest reads them with HVMOP_get_param.
 *
 * Console (hyp/pv-console.c, inside hyp): the guest's notify (and a poll
 * every 50 ms) moves out[] into the domain's console (ring, log, events,
 * as console_io does); hyp_console_input() feeds in[].
 *
 * Xenstore: the store lives with its owner (ferryd's loop thread), so the
 * guest's notify only calls the registered kick; the owner then services
 * the ring on the store's thread (devices/xs-ring.h, a dom0-side backend
 * like xenstored's, using the ports and index words below).
 */
#ifndef HYP_PV_H
#define HYP_PV_H

#include <stddef.h>
#include <stdint.h>

struct hyp;
struct hyp_domain;

/*
 * Console input: queues len bytes for the guest's in[] (any thread). What
 * fits goes in now with a notify, the rest on the guest's next notify or
 * poll (up to 4 KiB held; beyond that the oldest bytes are dropped, as a
 * terminal would). Returns 0 or -ENOENT.
 */
int hyp_console_input(struct hyp *h, uint32_t domid, const void *buf, size_t len);

/* The ports hyp allocated for domid (0 when it has none). */
int hyp_pv_ports(struct hyp *h, uint32_t domid, uint32_t *console_port,
		 uint32_t *store_port);

/*
 * Called on the guest's notify on its xenstore port (a vCPU thread), or
 * from the console poll thread as a safety net, with no hyp lock held:
 * must not block; ask the store's thread to call dev_xs_ring_service.
 * Set once before domains exist (or NULL to stop); any thread.
 */
typedef void (*hyp_xs_kick_fn)(void *opaque, uint32_t domid);
void hyp_xs_set_kick(struct hyp *h, hyp_xs_kick_fn fn, void *opaque);

/*
 * A ring index word in d's guest memory at gpa (inside a ring page): an
 * acquire load, and a release store marked dirty for log-dirty. For the
 * dom0-side backends (devices/); d is a reference the caller holds.
 */
uint32_t hyp_pv_idx_load(struct hyp_domain *d, uint64_t gpa);
void hyp_pv_idx_store(struct hyp_domain *d, uint64_t gpa, uint32_t v);

#endif
