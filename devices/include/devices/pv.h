/* SPDX-License-Identifier: MIT */
/*
 * The dom0-side backends of every domain's PV rings (hyp/pv.h): the
 * console backend (xenconsoled's job) and the xenstore port's notify, which
 * kicks the store's owner (the ring itself: devices/xs-ring.h).
 *
 * ferryd makes one struct dev_pv per hyp and hands hyp dev_pv_backend_ops
 * with it (hyp_params.pv_backend, .pv_backend_opaque); hyp calls them for
 * each domain it creates and destroys.
 *
 * Console: on the guest's notify, or every 50 ms from the domain's poll
 * thread (a lost notify costs latency, not output), out[] goes to the
 * domain's console (hyp_console_offer; what its output gate holds back
 * waits in the ring) and queued input goes into in[]; either way the guest
 * gets a notify. While the domain is paused nothing is written into its
 * memory.
 */
#ifndef DEVICES_PV_H
#define DEVICES_PV_H

#include <stddef.h>
#include <stdint.h>

#include "hyp/pv.h"

struct hyp;
struct dev_pv;

/* The hooks hyp calls; their opaque is a struct dev_pv. */
extern const struct hyp_pv_backend_ops dev_pv_backend_ops;

int dev_pv_new(struct dev_pv **out);
/* After hyp_destroy (no domain left). NULL is fine. */
void dev_pv_free(struct dev_pv *pv);

/*
 * Called on the guest's notify on its xenstore port (a vCPU thread), or
 * from the poll thread as a safety net, with no lock held: must not block;
 * ask the store's thread to service the ring (dev_xs_ring_service). Set
 * once before domains exist (or NULL to stop: waits for a call in
 * flight); any thread.
 */
typedef void (*dev_xs_kick_fn)(void *opaque, uint32_t domid);
void dev_pv_set_xs_kick(struct dev_pv *pv, dev_xs_kick_fn fn, void *opaque);

/*
 * Console input: queues len bytes for the guest's in[] (any thread). What
 * fits goes in now with a notify, the rest on the guest's next notify or
 * poll (up to 4 KiB held; beyond that the oldest bytes are dropped, as a
 * terminal would). Returns 0, -ENOENT (no such domain) or -ENODEV (no PV
 * rings).
 */
int dev_console_input(struct hyp *h, uint32_t domid, const void *buf, size_t len);

#endif
