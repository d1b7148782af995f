// SPDX-License-Identifier: MIT
/*
 * A guest's xenstore ring as a connection of the store (devices/xs-ring.h):
 * what Xen's xenstored does for a domain's interface page, on the store's
 * thread (the store is single-threaded; the guest's notify only kicks its
 * owner, see console-ring.c). Guest memory, ports and the ring's index
 * words go through hyp's public API (hyp/gmem.h, evtchn.h, pv.h).
 *
 * Output (replies and watch events, from xs_conn's out_fn) goes straight
 * into rsp[] while it fits and nothing is queued; the rest waits in a queue
 * here and moves on the next service. Requests are consumed only while the
 * queue is empty, so a guest that does not read its replies stops being
 * served (its requests wait in req[]) instead of growing the queue; watch
 * events beyond PV_XS_QUEUE_MAX queued bytes are dropped, as xenstored
 * drops events over a domain's quota. Bad indices or a request over
 * XENSTORE_PAYLOAD_MAX break the ring: error is set in the page (Xen's
 * XENSTORE_SERVER_FEATURE_ERROR) and the ring is ignored from then on.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "abi/guest.h"
#include "common/err.h"
#include "common/log.h"
#include "devices/xs-ring.h"
#include "hyp/evtchn.h"
#include "hyp/gmem.h"
#include "hyp/hyp.h"
#include "hyp/pv.h"
#include "xenstore/xenstore.h"

#define PV_XS_QUEUE_MAX (1u << 20)
#define XS_GPA(field) (FERRY_XENSTORE_GPA + offsetof(struct xenstore_domain_interface, field))

struct xs_outq {
	struct xs_outq *next;
	size_t len, off;
	char buf[];
};

struct dev_xs_ring {
	struct hyp *h;
	uint32_t domid;
	uint32_t port; /* the guest's xenstore port, bound to ferryd */
	struct xs_conn *conn;
	struct xs_outq *head, *tail;
	size_t queued;
	bool broken;
};

uint32_t dev_xs_ring_domid(const struct dev_xs_ring *r)
{
	return r->domid;
}

static void ring_break(struct dev_xs_ring *r, struct hyp_domain *d, uint32_t error,
		       const char *why)
{
	r->broken = true;
	log_warn("d%u: xenstore ring broken (%s); ignored from now on", r->domid, why);
	hyp_pv_idx_store(d, XS_GPA(error), error);
	evtchn_notify(d, r->port);
}

/* Writes up to len bytes into rsp[]; returns how many, or -1 when the
 * ring is broken. */
static long rsp_write(struct dev_xs_ring *r, struct hyp_domain *d, const char *msg,
		      size_t len)
{
	uint32_t cons = hyp_pv_idx_load(d, XS_GPA(rsp_cons));
	uint32_t prod = hyp_pv_idx_load(d, XS_GPA(rsp_prod));
	uint32_t used = prod - cons, n, done = 0;

	if (used > XENSTORE_RING_SIZE) {
		ring_break(r, d, XENSTORE_ERROR_RINGIDX, "rsp indices out of range");
		return -1;
	}
	n = XENSTORE_RING_SIZE - used;
	if (n > len)
		n = (uint32_t)len;
	while (done < n) {
		uint32_t off = MASK_XENSTORE_IDX(prod + done), run = XENSTORE_RING_SIZE - off;

		if (run > n - done)
			run = n - done;
		hyp_gmem_write(d, XS_GPA(rsp) + off, msg + done, run);
		done += run;
	}
	if (n)
		hyp_pv_idx_store(d, XS_GPA(rsp_prod), prod + n);
	return n;
}

/* Moves queued output into rsp[]. True when rsp_prod moved. */
static bool flush(struct dev_xs_ring *r, struct hyp_domain *d)
{
	bool moved = false;

	while (r->head && !r->broken) {
		struct xs_outq *q = r->head;
		long n = rsp_write(r, d, q->buf + q->off, q->len - q->off);

		if (n <= 0)
			break;
		moved = true;
		q->off += (size_t)n;
		r->queued -= (size_t)n;
		if (q->off < q->len)
			break;
		r->head = q->next;
		if (!r->head)
			r->tail = NULL;
		free(q);
	}
	return moved;
}

static int ring_out(void *opaque, const void *msg, size_t len)
{
	struct dev_xs_ring *r = opaque;
	struct hyp_domain *d;
	struct xs_outq *q;
	size_t off = 0;
	bool moved = false;

	if (r->broken || hyp_domain_get(r->h, r->domid, &d))
		return -EPIPE;
	if (!r->head) {
		long n = rsp_write(r, d, msg, len);

		if (n < 0) {
			hyp_domain_put(d);
			return -EPIPE;
		}
		off = (size_t)n;
		moved = n > 0;
	}
	if (off < len) {
		const struct xs_msg_hdr *hdr = msg;

		if (len >= sizeof(*hdr) && hdr->type == XS_WATCH_EVENT &&
		    r->queued + len > PV_XS_QUEUE_MAX && !off) {
			if (moved)
				evtchn_notify(d, r->port);
			hyp_domain_put(d);
			return -ENOBUFS; /* a watch event over the quota: dropped */
		}
		q = malloc(sizeof(*q) + len - off);
		if (!q) {
			if (moved)
				evtchn_notify(d, r->port);
			hyp_domain_put(d);
			return -ENOMEM;
		}
		q->next = NULL;
		q->len = len - off;
		q->off = 0;
		memcpy(q->buf, (const char *)msg + off, len - off);
		if (r->tail)
			r->tail->next = q;
		else
			r->head = q;
		r->tail = q;
		r->queued += q->len;
	}
	if (moved)
		evtchn_notify(d, r->port);
	hyp_domain_put(d);
	return 0;
}

int dev_xs_ring_new(struct hyp *h, uint32_t domid, struct xs_store *s,
		    struct dev_xs_ring **out)
{
	struct dev_xs_ring *r;
	struct hyp_domain *d;
	struct hyp_dom_info info;
	uint32_t features = XENSTORE_SERVER_FEATURE_ERROR, con_port, xs_port;
	int err = hyp_domain_info(h, domid, &info);

	if (!err)
		err = hyp_pv_ports(h, domid, &con_port, &xs_port);
	if (err)
		return err;
	if (!xs_port)
		return -ENODEV; /* a domain without PV rings */
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->h = h;
	r->domid = domid;
	r->port = xs_port;
	err = xs_conn_new(s, domid, ring_out, r, &r->conn);
	if (!err)
		err = hyp_domain_get(h, domid, &d);
	if (err) {
		xs_conn_free(r->conn);
		free(r);
		return err;
	}
	/* Restored domains keep what their page says; a new one's is zero. */
	if (!info.restoring)
		hyp_gmem_write(d, XS_GPA(server_features), &features, sizeof(features));
	hyp_domain_put(d);
	*out = r;
	return 0;
}

int dev_xs_ring_service(struct dev_xs_ring *r)
{
	struct hyp_domain *d;
	char buf[XENSTORE_RING_SIZE];
	bool moved;

	if (r->broken || hyp_domain_get(r->h, r->domid, &d))
		return -EPIPE;
	moved = flush(r, d);
	while (!r->head && !r->broken) {
		uint32_t cons = hyp_pv_idx_load(d, XS_GPA(req_cons));
		uint32_t prod = hyp_pv_idx_load(d, XS_GPA(req_prod));
		uint32_t n = prod - cons, first;
		int err;

		if (n > XENSTORE_RING_SIZE) {
			ring_break(r, d, XENSTORE_ERROR_RINGIDX, "req indices out of range");
			break;
		}
		if (!n)
			break;
		first = XENSTORE_RING_SIZE - MASK_XENSTORE_IDX(cons);
		if (first > n)
			first = n;
		hyp_gmem_read(d, XS_GPA(req) + MASK_XENSTORE_IDX(cons), buf, first);
		hyp_gmem_read(d, XS_GPA(req), buf + first, n - first);
		hyp_pv_idx_store(d, XS_GPA(req_cons), prod);
		moved = true; /* req_cons: the guest may wait for space */
		err = xs_conn_feed(r->conn, buf, n);
		if (err) {
			ring_break(r, d, XENSTORE_ERROR_PROTO,
				   err == -E2BIG ? "a message over 4096 bytes" :
						   ferry_strerror(-err));
			break;
		}
	}
	if (moved && !r->broken)
		evtchn_notify(d, r->port);
	hyp_domain_put(d);
	return r->broken ? -EPIPE : 0;
}

void dev_xs_ring_free(struct dev_xs_ring *r)
{
	if (!r)
		return;
	xs_conn_free(r->conn);
	while (r->head) {
		struct xs_outq *q = r->head;

		r->head = q->next;
		free(q);
	}
	free(r);
}
