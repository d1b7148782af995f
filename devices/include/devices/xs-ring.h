/* SPDX-License-Identifier: MIT */
/*
 * devices/: the dom0-side backends of the guests' PV devices, as Xen's
 * backends run in dom0 (xenstored, xenconsoled, blkback, netback). They use
 * hyp's public API (guest memory, event channels, the PV rings' ports) and
 * the xenstore; hyp never calls them.
 *
 * The xenstore ring (Xen's xenstore_domain_interface at FERRY_XENSTORE_GPA,
 * hyp/pv.h): one guest connection of a struct xs_store over the guest's
 * ring page, acting as the guest's domid. Everything here runs on the
 * store's thread (the store is single-threaded); the guest's notify reaches
 * that thread through the kick (dev_pv_set_xs_kick, devices/pv.h).
 */
#ifndef DEVICES_XS_RING_H
#define DEVICES_XS_RING_H

#include <stdint.h>

struct hyp;
struct xs_store;
struct dev_xs_ring;

/*
 * Makes domid's ring a connection of s (acting as domid) and, unless the
 * domain is being restored (its page says what it said), sets the page's
 * server_features. -ENOENT for no such domain, -ENODEV for one without
 * PV rings. The ring is the caller's (dev_xs_ring_free).
 */
int dev_xs_ring_new(struct hyp *h, uint32_t domid, struct xs_store *s,
		    struct dev_xs_ring **out);
/*
 * Writes queued replies and events into rsp[], then, once nothing is
 * queued, feeds what req[] holds to the store. Notifies the guest when an
 * index moved. Returns 0, or -EPIPE once the ring is broken (bad indices
 * or a protocol error: error is set in the page, as Xen's xenstored does,
 * and the ring is ignored from then on) or the domain is gone.
 */
int dev_xs_ring_service(struct dev_xs_ring *r);
uint32_t dev_xs_ring_domid(const struct dev_xs_ring *r);
/* Frees the connection (watches, transactions) and r; NULL is fine. */
void dev_xs_ring_free(struct dev_xs_ring *r);

#endif
