// SPDX-License-Identifier: MIT
/*
 * The guest's PV client, hosted: the ring and message code on its own
 * (index arithmetic across the 2^32 wrap, xenstore framing, reassembly of
 * replies fed in pieces, watch event parsing, console input lines), then
 * the whole client through wl_attach_xen against a fake hypervisor: HVM
 * params naming the rings, a xenstore that answers requests in the ring
 * synchronously on the guest's notify and fires watches, and a console
 * backend that drains out[] and feeds in[].
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <abi/guest.h>
#include <guests/workload.h>

#include "../../guests/workloads/pv.h"

/* ---- ring arithmetic ------------------------------------------------------ */

Test(pv_ring, used_and_wrap)
{
	cr_assert_eq(pv_ring_used(0, 0, 1024), 0);
	cr_assert_eq(pv_ring_used(10, 1034, 1024), 1024);
	cr_assert_eq(pv_ring_used(10, 1035, 1024), -1, "producer too far ahead");
	cr_assert_eq(pv_ring_used(20, 10, 1024), -1, "producer behind");
	/* Free-running indices wrap at 2^32. */
	cr_assert_eq(pv_ring_used(0xfffffff0u, 0x10u, 1024), 0x20);
}

Test(pv_ring, put_get_across_the_end)
{
	char ring[16], out[32];
	uint32_t cons = 0xfffffffau, prod = 0xfffffffau; /* slot 10, near 2^32 */
	size_t n;

	memset(ring, '.', sizeof(ring));
	n = pv_ring_put(ring, sizeof(ring), cons, prod, "abcdefghij", 10);
	cr_assert_eq(n, 10);
	prod += (uint32_t)n;
	cr_assert_eq(prod, 4u, "index wrapped");
	cr_assert_eq(memcmp(ring + 10, "abcdef", 6), 0);
	cr_assert_eq(memcmp(ring, "ghij", 4), 0);
	/* Only 6 bytes of room left. */
	cr_assert_eq(pv_ring_put(ring, sizeof(ring), cons, prod, "0123456789", 10), 6);
	prod += 6;
	cr_assert_eq(pv_ring_put(ring, sizeof(ring), cons, prod, "x", 1), 0, "full");
	n = pv_ring_get(ring, sizeof(ring), cons, prod, out, sizeof(out));
	cr_assert_eq(n, 16);
	cr_assert_eq(memcmp(out, "abcdefghij012345", 16), 0);
	/* A corrupt pair of indices moves nothing. */
	cr_assert_eq(pv_ring_get(ring, sizeof(ring), 0, 100, out, 1), 0);
	cr_assert_eq(pv_ring_put(ring, sizeof(ring), 0, 100, "x", 1), 0);
}

/* ---- xenstore messages ------------------------------------------------------ */

Test(pv_xs, frame_layout)
{
	const char *parts[2] = { "control/shutdown", "reboot" };
	size_t lens[2] = { 16, 6 };
	bool nul[2] = { true, false };
	char buf[64];
	struct pv_xs_hdr h;
	int64_t n = pv_xs_frame(buf, sizeof(buf), PV_XS_WRITE, 7, parts, lens, nul, 2);

	cr_assert_eq(n, (int64_t)sizeof(h) + 23);
	memcpy(&h, buf, sizeof(h));
	cr_assert_eq(h.type, PV_XS_WRITE);
	cr_assert_eq(h.req_id, 7u);
	cr_assert_eq(h.tx_id, 0u);
	cr_assert_eq(h.len, 23u);
	cr_assert_eq(memcmp(buf + sizeof(h), "control/shutdown\0reboot", 23), 0);
	/* Too small a buffer, too big a payload. */
	cr_assert_eq(pv_xs_frame(buf, 30, PV_XS_WRITE, 7, parts, lens, nul, 2), -1);
	{
		static char big[PV_XS_PAYLOAD_MAX + 1];
		static char out[PV_XS_PAYLOAD_MAX + 64];
		const char *bp[1] = { big };
		size_t bl[1] = { PV_XS_PAYLOAD_MAX };
		bool bn[1] = { true };

		cr_assert_eq(pv_xs_frame(out, sizeof(out), PV_XS_WRITE, 1, bp, bl, bn, 1), -1);
		bn[0] = false;
		cr_assert_eq(pv_xs_frame(out, sizeof(out), PV_XS_WRITE, 1, bp, bl, bn, 1),
			     (int64_t)(sizeof(h) + PV_XS_PAYLOAD_MAX));
	}
}

static size_t mk_msg(char *buf, uint32_t type, uint32_t req_id, const char *payload,
		     uint32_t len)
{
	struct pv_xs_hdr h = { .type = type, .req_id = req_id, .len = len };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	return sizeof(h) + len;
}

Test(pv_xs, reassembly_byte_by_byte_and_back_to_back)
{
	static struct pv_xs_rx rx;
	char stream[256];
	size_t len = 0, pos = 0;
	unsigned got = 0;
	bool done;

	len += mk_msg(stream + len, PV_XS_READ, 3, "65536", 5);
	len += mk_msg(stream + len, PV_XS_WATCH_EVENT, 0, "memory/target\0001\0", 16);
	len += mk_msg(stream + len, PV_XS_WRITE, 4, "", 0);
	pv_xs_rx_reset(&rx);
	/* One byte at a time. */
	while (pos < len) {
		int64_t took = pv_xs_rx_feed(&rx, stream + pos, 1, &done);

		cr_assert_geq(took, 0);
		pos += (size_t)took;
		if (!done)
			continue;
		got++;
		if (got == 1) {
			cr_assert_eq(rx.hdr.type, PV_XS_READ);
			cr_assert_str_eq(rx.body, "65536");
		} else if (got == 2) {
			const char *path, *token;

			cr_assert_eq(rx.hdr.type, PV_XS_WATCH_EVENT);
			cr_assert_eq(pv_xs_parse_watch(rx.body, rx.hdr.len, &path, &token), 0);
			cr_assert_str_eq(path, "memory/target");
			cr_assert_str_eq(token, "1");
		} else {
			cr_assert_eq(rx.hdr.type, PV_XS_WRITE);
			cr_assert_eq(rx.hdr.len, 0u);
		}
		pv_xs_rx_reset(&rx);
	}
	cr_assert_eq(got, 3u);

	/* All at once: each call stops at the end of a message. */
	pos = 0;
	got = 0;
	while (pos < len) {
		int64_t took = pv_xs_rx_feed(&rx, stream + pos, len - pos, &done);

		cr_assert_gt(took + done, 0);
		pos += (size_t)took;
		if (done) {
			got++;
			cr_assert_eq(rx.hdr.req_id, got == 1 ? 3u : got == 2 ? 0u : 4u);
			pv_xs_rx_reset(&rx);
		}
	}
	cr_assert_eq(got, 3u);
}

Test(pv_xs, oversized_header_is_refused)
{
	static struct pv_xs_rx rx;
	struct pv_xs_hdr h = { .type = PV_XS_READ, .len = PV_XS_PAYLOAD_MAX + 1 };
	bool done;

	pv_xs_rx_reset(&rx);
	cr_assert_eq(pv_xs_rx_feed(&rx, &h, sizeof(h), &done), -1);
}

Test(pv_xs, watch_events)
{
	const char *path, *token;

	cr_assert_eq(pv_xs_parse_watch("a/b\0tok\0", 8, &path, &token), 0);
	cr_assert_str_eq(path, "a/b");
	cr_assert_str_eq(token, "tok");
	/* The last NUL may be missing (the reader NUL-terminates the body). */
	cr_assert_eq(pv_xs_parse_watch("a/b\0tok", 7, &path, &token), 0);
	cr_assert_str_eq(token, "tok");
	cr_assert_eq(pv_xs_parse_watch("a/b", 3, &path, &token), -1, "no token");
	cr_assert_eq(pv_xs_parse_watch("\0tok\0", 5, &path, &token), -1, "no path");
	cr_assert_eq(pv_xs_parse_watch("a\0t\0x\0", 6, &path, &token), -1, "extra field");
}

Test(pv_xs, error_names)
{
	cr_assert_eq(pv_xs_errno("ENOENT", 7), XEN_ENOENT);
	cr_assert_eq(pv_xs_errno("EACCES", 7), 13);
	cr_assert_eq(pv_xs_errno("ENOENTX", 8), XEN_EINVAL);
	cr_assert_eq(pv_xs_errno("EN", 3), XEN_EINVAL);
}

Test(pv_console, input_lines)
{
	struct pv_line l = { 0 };
	const char *in = "ab\x01" "c\r\ndef\n\rx";
	char lines[4][128];
	unsigned n = 0;

	for (const char *p = in; *p; p++)
		if (pv_line_add(&l, *p))
			strcpy(lines[n++], l.buf);
	cr_assert_eq(n, 3u);
	cr_assert_str_eq(lines[0], "abc", "control characters dropped");
	cr_assert_str_eq(lines[1], "def", "the LF of CRLF ends nothing");
	cr_assert_str_eq(lines[2], "", "LF then CR: an empty line");
	/* Overlong lines are cut. */
	for (unsigned i = 0; i < 500; i++)
		pv_line_add(&l, 'z');
	cr_assert(pv_line_add(&l, '\n'));
	cr_assert_eq(strlen(l.buf), sizeof(l.buf) - 1);
}

/* ---- the client against a fake hypervisor ------------------------------- */

#define MEM (8u << 20)
#define CONS_PORT 1u
#define XS_PORT 2u
#define MAX_NODES 16

static struct fakehv {
	uint8_t *mem;
	bool rings;
	bool store_dead;	/* a ring with no daemon behind it */
	uint64_t now;
	unsigned shutdowns, reason;
	char plat_con[8192];	/* what went to the platform's console */
	char ring_con[8192];	/* what came out of the console ring */
	struct { char path[64], val[64]; } nodes[MAX_NODES];
	struct { char path[64], token[16]; } watches[8];
	unsigned nwatches;
	char perms[256];	/* the last SET_PERMS payload, NULs as '|' */
	uint8_t peer_page[4096];	/* pong's granted page (ping tests) */
	unsigned copies, bad_copies;
	unsigned gnttab_frames;
	uint32_t unbound_remote;
	uint32_t closed;	/* the last port closed */
	/* ping tests: the domid pong's port 3 is unbound for ("" = any) */
	char pong_for[16];
} H;

static void *gp(uint64_t gpa)
{
	return H.mem + gpa;
}

static struct xenstore_domain_interface *xs(void)
{
	return gp(FERRY_XENSTORE_GPA);
}

static struct xencons_interface *con(void)
{
	return gp(FERRY_CONSOLE_GPA);
}

static struct shared_info *si(void)
{
	return gp(FERRY_SHARED_INFO_GPA);
}

static void raise_port(uint32_t port)
{
	si()->evtchn_pending[port / 64] |= 1ull << (port % 64);
	si()->vcpu_info[0].evtchn_upcall_pending = 1;
}

static const char *node_get(const char *path)
{
	for (unsigned i = 0; i < MAX_NODES; i++)
		if (H.nodes[i].path[0] && !strcmp(H.nodes[i].path, path))
			return H.nodes[i].val;
	return NULL;
}

static void node_set(const char *path, const char *val, size_t len)
{
	unsigned i, free_i = MAX_NODES;

	for (i = 0; i < MAX_NODES; i++) {
		if (H.nodes[i].path[0] && !strcmp(H.nodes[i].path, path))
			break;
		if (!H.nodes[i].path[0] && free_i == MAX_NODES)
			free_i = i;
	}
	if (i == MAX_NODES)
		i = free_i;
	cr_assert_lt(i, MAX_NODES);
	snprintf(H.nodes[i].path, sizeof(H.nodes[i].path), "%s", path);
	cr_assert_lt(len, sizeof(H.nodes[i].val));
	memcpy(H.nodes[i].val, val, len);
	H.nodes[i].val[len] = '\0';
}

static void rsp_put(uint32_t type, uint32_t req_id, const void *p, uint32_t len)
{
	struct pv_xs_hdr h = { .type = type, .req_id = req_id, .len = len };
	struct xenstore_domain_interface *r = xs();
	const char *b = (const char *)&h;

	cr_assert_leq(r->rsp_prod - r->rsp_cons + sizeof(h) + len, XENSTORE_RING_SIZE);
	for (size_t i = 0; i < sizeof(h); i++)
		r->rsp[MASK_XENSTORE_IDX(r->rsp_prod++)] = b[i];
	for (size_t i = 0; i < len; i++)
		r->rsp[MASK_XENSTORE_IDX(r->rsp_prod++)] = ((const char *)p)[i];
}

static void fire(const char *path)
{
	for (unsigned i = 0; i < H.nwatches; i++) {
		char ev[96];
		int n;

		if (strcmp(H.watches[i].path, path))
			continue;
		n = snprintf(ev, sizeof(ev), "%s%c%s", path, 0, H.watches[i].token);
		rsp_put(PV_XS_WATCH_EVENT, 0, ev, (uint32_t)n + 1);
		raise_port(XS_PORT);
	}
}

/* The store: every whole request in req[] is answered at once. */
static void store_service(void)
{
	struct xenstore_domain_interface *r = xs();

	for (;;) {
		struct pv_xs_hdr h;
		char body[PV_XS_PAYLOAD_MAX + 1];
		uint32_t avail = r->req_prod - r->req_cons;

		if (avail < sizeof(h))
			return;
		for (size_t i = 0; i < sizeof(h); i++)
			((char *)&h)[i] = r->req[MASK_XENSTORE_IDX(r->req_cons + i)];
		if (avail < sizeof(h) + h.len)
			return;
		for (uint32_t i = 0; i < h.len; i++)
			body[i] = r->req[MASK_XENSTORE_IDX(r->req_cons + sizeof(h) + i)];
		body[h.len] = '\0';
		r->req_cons += sizeof(h) + h.len;

		switch (h.type) {
		case PV_XS_READ: {
			const char *v = node_get(body);

			if (v)
				rsp_put(h.type, h.req_id, v, (uint32_t)strlen(v));
			else
				rsp_put(PV_XS_ERROR, h.req_id, "ENOENT", 7);
			break;
		}
		case PV_XS_WRITE: {
			size_t pl = strlen(body);

			node_set(body, body + pl + 1, h.len - pl - 1);
			rsp_put(h.type, h.req_id, "OK", 3);
			fire(body);
			break;
		}
		case PV_XS_WATCH: {
			cr_assert_lt(H.nwatches, 8u);
			cr_assert_lt(strlen(body), 64u);
			cr_assert_lt(strlen(body + strlen(body) + 1), 16u);
			strcpy(H.watches[H.nwatches].path, body);
			strcpy(H.watches[H.nwatches].token, body + strlen(body) + 1);
			H.nwatches++;
			rsp_put(h.type, h.req_id, "OK", 3);
			/* Xen fires a new watch once. */
			fire(body);
			break;
		}
		case PV_XS_SET_PERMS:
			for (uint32_t i = 0; i < h.len && i + 1 < sizeof(H.perms); i++)
				H.perms[i] = body[i] ? body[i] : '|';
			H.perms[h.len < sizeof(H.perms) ? h.len : sizeof(H.perms) - 1] = 0;
			rsp_put(h.type, h.req_id, "OK", 3);
			break;
		default:
			rsp_put(PV_XS_ERROR, h.req_id, "ENOSYS", 7);
		}
		raise_port(XS_PORT);
	}
}

static void console_drain(void)
{
	struct xencons_interface *c = con();
	size_t len = strlen(H.ring_con);

	while (c->out_cons != c->out_prod) {
		cr_assert_lt(len + 1, sizeof(H.ring_con));
		H.ring_con[len++] = c->out[MASK_XENCONS_IDX(c->out_cons++, c->out)];
	}
	H.ring_con[len] = '\0';
}

static void console_type(const char *s)
{
	struct xencons_interface *c = con();

	for (; *s; s++)
		c->in[MASK_XENCONS_IDX(c->in_prod++, c->in)] = *s;
	raise_port(CONS_PORT);
}

static long fake_hypercall(void *opaque, unsigned long nr, unsigned long a1,
			   unsigned long a2, unsigned long a3)
{
	(void)opaque;
	(void)a3;
	switch (nr) {
	case __HYPERVISOR_hvm_op: {
		struct xen_hvm_param *p = gp(a2);

		cr_assert_eq(a1, HVMOP_get_param);
		if (!H.rings)
			return -XEN_EINVAL;
		switch (p->index) {
		case HVM_PARAM_STORE_PFN: p->value = FERRY_XENSTORE_GPA >> 12; return 0;
		case HVM_PARAM_STORE_EVTCHN: p->value = XS_PORT; return 0;
		case HVM_PARAM_CONSOLE_PFN: p->value = FERRY_CONSOLE_GPA >> 12; return 0;
		case HVM_PARAM_CONSOLE_EVTCHN: p->value = CONS_PORT; return 0;
		default: return -XEN_EINVAL;
		}
	}
	case __HYPERVISOR_event_channel_op:
		switch (a1) {
		case EVTCHNOP_send: {
			struct evtchn_send *s = gp(a2);

			if (s->port == XS_PORT && !H.store_dead)
				store_service();
			else if (s->port == CONS_PORT)
				console_drain();
			else if (s->port == 6) {
				/* The fake pong answers every notify. */
				memcpy(H.peer_page + 8, H.peer_page, 8);
				raise_port(6);
			}
			return 0;
		}
		case EVTCHNOP_unmask:
			return 0;
		case EVTCHNOP_close:
			H.closed = ((struct evtchn_close *)gp(a2))->port;
			return 0;
		case EVTCHNOP_bind_interdomain: {
			struct evtchn_bind_interdomain *b = gp(a2);
			const char *me = node_get("domid");

			if (b->remote_dom != 4 || b->remote_port != 3)
				return -XEN_EINVAL;
			if (H.pong_for[0] && (!me || strcmp(me, H.pong_for)))
				return -XEN_EINVAL;
			b->local_port = 6;
			return 0;
		}
		case EVTCHNOP_alloc_unbound: {
			struct evtchn_alloc_unbound *u = gp(a2);

			cr_assert_eq(u->dom, DOMID_SELF);
			H.unbound_remote = u->remote_dom;
			u->port = 5;
			return 0;
		}
		default:
			return -XEN_ENOSYS;
		}
	case __HYPERVISOR_grant_table_op: {
		struct gnttab_copy *c = gp(a2);

		cr_assert_eq(a1, GNTTABOP_copy);
		cr_assert_eq(a3, 1ul);
		H.copies++;
		if (c->flags == GNTCOPY_dest_gref) {
			if (c->dest.u.ref != 8 || c->dest.domid != 4 ||
			    c->source.domid != DOMID_SELF) {
				H.bad_copies++;
				c->status = GNTST_bad_gntref;
				return 0;
			}
			memcpy(H.peer_page + c->dest.offset,
			       gp((c->source.u.gmfn << 12) + c->source.offset), c->len);
		} else {
			cr_assert_eq(c->flags, GNTCOPY_source_gref);
			if (c->source.u.ref != 8 || c->source.domid != 4) {
				H.bad_copies++;
				c->status = GNTST_bad_gntref;
				return 0;
			}
			memcpy(gp((c->dest.u.gmfn << 12) + c->dest.offset),
			       H.peer_page + c->source.offset, c->len);
		}
		c->status = GNTST_okay;
		return 0;
	}
	case __HYPERVISOR_memory_op: {
		struct xen_add_to_physmap *x = gp(a2);

		cr_assert_eq(a1, XENMEM_add_to_physmap);
		cr_assert_eq(x->space, XENMAPSPACE_grant_table);
		cr_assert_eq(x->gpfn << 12, PV_GNTTAB_GPA);
		H.gnttab_frames++;
		return 0;
	}
	default:
		return -XEN_ENOSYS;
	}
}

/* Time moves a little on every look, so loops bounded by time end. */
static uint64_t h_now(void *o)
{
	(void)o;
	return H.now += 1000;
}

static void h_console(void *o, const char *s, size_t len)
{
	size_t have = strlen(H.plat_con);

	(void)o;
	cr_assert_lt(have + len, sizeof(H.plat_con));
	memcpy(H.plat_con + have, s, len);
	H.plat_con[have + len] = '\0';
}

static void h_block(void *o, uint64_t deadline)
{
	(void)o;
	if (deadline > H.now)
		H.now = deadline;
}

static void h_shutdown(void *o, unsigned reason)
{
	(void)o;
	H.shutdowns++;
	H.reason = reason;
}

static const struct wl_platform hplat = {
	.now_ns = h_now,
	.console = h_console,
	.block_until = h_block,
	.shutdown = h_shutdown,
	.opaque = &H,
};

static struct wl_ctx hctx;

static void h_setup_dead(bool rings, bool dead, const char *cmdline)
{
	memset(&H, 0, sizeof(H));
	H.store_dead = dead;
	H.mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(H.mem, MAP_FAILED);
	H.rings = rings;
	H.now = 1000;
	node_set("domid", "7", 1);
	node_set("memory/target", "65536", 5);
	node_set("control/shutdown", "", 0);
	cr_assert_eq(wl_attach_xen(&hctx, &hplat, fake_hypercall, (uintptr_t)H.mem, MEM,
				   cmdline), 0, "plat console: %s", H.plat_con);
}

static void h_setup(bool rings, const char *cmdline)
{
	h_setup_dead(rings, false, cmdline);
}

static void h_teardown(void)
{
	munmap(H.mem, MEM);
}

Test(pv_client, console_ring_xenstore_watches_and_input, .fini = h_teardown)
{
	h_setup(true, "workload=idle");
	/* Everything after the set-up goes through the ring. */
	cr_assert_str_eq(H.plat_con, "");
	cr_assert(strstr(H.ring_con, "pv: console=ring port=1 xenstore=ring port=2 domid=7\n"),
		  "%s", H.ring_con);
	cr_assert(strstr(H.ring_con, "workload: idle ws=0 rate=20M pattern=seq\n"));
	cr_assert_eq(H.nwatches, 2u);

	/* The watches' first events: the initial target is reported. */
	wl_run_slice(&hctx);
	cr_assert(strstr(H.ring_con, "balloon: target=65536 KiB\n"), "%s", H.ring_con);
	cr_assert_eq(H.shutdowns, 0u);

	/* A new target. */
	node_set("memory/target", "32768", 5);
	fire("memory/target");
	wl_run_slice(&hctx);
	cr_assert(strstr(H.ring_con, "balloon: target=32768 KiB\n"), "%s", H.ring_con);

	/* Console input, echoed per line. */
	console_type("hello wor");
	wl_run_slice(&hctx);
	cr_assert_null(strstr(H.ring_con, "console: input"));
	console_type("ld\r\n");
	wl_run_slice(&hctx);
	cr_assert(strstr(H.ring_con, "console: input 'hello world'\n"), "%s", H.ring_con);
	cr_assert_eq(con()->in_cons, con()->in_prod);

	/* An unknown request in control/shutdown is ignored... */
	node_set("control/shutdown", "suspend", 7);
	fire("control/shutdown");
	wl_run_slice(&hctx);
	cr_assert_eq(H.shutdowns, 0u);
	/* ... reboot is carried out and acknowledged. */
	node_set("control/shutdown", "reboot", 6);
	fire("control/shutdown");
	wl_run_slice(&hctx);
	cr_assert_eq(H.shutdowns, 1u);
	cr_assert_eq(H.reason, SHUTDOWN_reboot);
	cr_assert_str_eq(node_get("control/shutdown"), "");
	cr_assert(strstr(H.ring_con, "ferry: shutdown requested (reboot)\n"));
	cr_assert_eq(xs()->rsp_cons, xs()->rsp_prod, "every reply consumed");
}

Test(pv_client, poweroff_through_xenstore, .fini = h_teardown)
{
	h_setup(true, "workload=dirty ws=64K rate=1M");
	wl_run_slice(&hctx);
	node_set("control/shutdown", "poweroff", 8);
	fire("control/shutdown");
	wl_run_slice(&hctx);
	cr_assert_eq(H.shutdowns, 1u);
	cr_assert_eq(H.reason, SHUTDOWN_poweroff);
}

Test(pv_client, a_silent_store_is_given_up_quickly, .fini = h_teardown)
{
	uint64_t t0 = 1000;

	h_setup_dead(true, true, "workload=idle");
	cr_assert_leq(H.now - t0, 600000000ull, "gave up after %llu ns",
		      (unsigned long long)(H.now - t0));
	cr_assert(strstr(H.ring_con, "pv: console=ring port=1 xenstore=none port=2 domid=0\n"),
		  "%s", H.ring_con);
	cr_assert_eq(H.nwatches, 0u);
	cr_assert(strstr(H.ring_con, "workload: idle"));
	/* Later slices do not wait for the store again. */
	t0 = H.now;
	wl_run_slice(&hctx);
	cr_assert_leq(H.now - t0, 1100000000ull);
}

Test(pv_client, no_rings_keeps_the_platform_console, .fini = h_teardown)
{
	h_setup(false, "workload=idle");
	cr_assert_str_eq(H.plat_con, "workload: idle ws=0 rate=20M pattern=seq\n");
	cr_assert_str_eq(H.ring_con, "");
	wl_run_slice(&hctx);
	H.now += 2000000000ull;
	wl_run_slice(&hctx);
	cr_assert(strstr(H.plat_con, "idle: heartbeat n=1\n"), "%s", H.plat_con);
}

Test(pv_client, pong_grants_and_publishes, .fini = h_teardown)
{
	const struct grant_entry_v1 *e;

	h_setup(true, "workload=pingpong role=pong peer=9");
	wl_run_slice(&hctx);
	cr_assert_eq(H.gnttab_frames, 1u);
	e = gp(PV_GNTTAB_GPA);
	cr_assert_eq(e[8].flags, GTF_permit_access);
	cr_assert_eq(e[8].domid, 9);
	cr_assert_eq(e[8].frame, PV_SHARE_GPA >> 12);
	cr_assert_eq(H.unbound_remote, 9u);
	cr_assert_str_eq(node_get("data/pingpong/port"), "5");
	cr_assert_str_eq(node_get("data/pingpong/gref"), "8");
	cr_assert_str_eq(H.perms, "data/pingpong|n7|r9|");
	cr_assert(strstr(H.ring_con, "pingpong: pong port=5 gref=8 published in xenstore\n"),
		  "%s", H.ring_con);
}

Test(pv_client, ping_finds_pong_in_xenstore_and_bounces, .fini = h_teardown)
{
	uint64_t before;

	h_setup(true, "workload=pingpong role=ping peer=4");
	/* Pong has not published yet: ping waits and says so once. */
	wl_run_slice(&hctx);
	wl_run_slice(&hctx);
	cr_assert(strstr(H.ring_con, "pingpong: waiting for domain 4's port and grant"),
		  "%s", H.ring_con);
	cr_assert_eq(H.copies, 0u);
	node_set("/local/domain/4/data/pingpong/port", "3", 1);
	node_set("/local/domain/4/data/pingpong/gref", "8", 1);
	H.now += 200000000ull;
	wl_run_slice(&hctx);
	cr_assert(strstr(H.ring_con, "pingpong: ping port=6 bound to domain 4 port 3 gref=8\n"),
		  "%s", H.ring_con);
	before = H.copies;
	for (int i = 0; i < 5; i++)
		wl_run_slice(&hctx);
	cr_assert_gt(H.copies, before + 10, "rounds went through the grant");
	cr_assert_eq(H.bad_copies, 0u);
	/* The counter came back as sent. */
	uint64_t sent, answered;
	memcpy(&sent, H.peer_page, 8);
	memcpy(&answered, H.peer_page + 8, 8);
	cr_assert_eq(sent, answered);
	cr_assert_gt(sent, 5u);
	H.now += 1100000000ull;
	wl_run_slice(&hctx);
	cr_assert(strstr(H.ring_con, "pingpong: round_trips="), "%s", H.ring_con);
}

/* The domain was restored or migrated: ferryd bumps resume_count. */
static void h_resume(const char *new_domid)
{
	struct ferry_ctl *c = gp(FERRY_CTL_GPA);

	c->magic = FERRY_CTL_MAGIC;
	c->resume_count++;
	node_set("domid", new_domid, strlen(new_domid));
}

Test(pv_client, pong_follows_a_moved_ping, .fini = h_teardown)
{
	const struct grant_entry_v1 *e;

	h_setup(true, "workload=pingpong role=pong peer=9");
	wl_run_slice(&hctx);
	cr_assert_str_eq(node_get("data/pingpong/peer"), "9", "pong offers its peer node");
	/* Ping resumed as domain 12 and says so in pong's node: at the next
	 * check (once a second) pong closes its port, grants its page to 12
	 * and offers a port for 12. */
	node_set("data/pingpong/peer", "12", 2);
	H.unbound_remote = 0;
	H.now += 1100000000ull;
	wl_run_slice(&hctx);
	cr_assert(strstr(H.ring_con, "pingpong: peer is now domain 12 (was 9), reconnecting\n"),
		  "%s", H.ring_con);
	cr_assert_eq(H.closed, 5u);
	wl_run_slice(&hctx);
	e = gp(PV_GNTTAB_GPA);
	cr_assert_eq(e[8].domid, 12);
	cr_assert_eq(e[8].flags, GTF_permit_access);
	cr_assert_eq(H.unbound_remote, 12u);
	cr_assert_str_eq(H.perms, "data/pingpong|n7|r12|", "readable by the new ping");
	cr_assert_str_eq(node_get("data/pingpong/port"), "5");
}

Test(pv_client, a_moved_ping_tells_pong_and_binds_again, .fini = h_teardown)
{
	uint64_t before;

	h_setup(true, "workload=pingpong role=ping peer=4");
	strcpy(H.pong_for, "7");
	node_set("/local/domain/4/data/pingpong/port", "3", 1);
	node_set("/local/domain/4/data/pingpong/gref", "8", 1);
	node_set("/local/domain/4/data/pingpong/peer", "7", 1);
	wl_run_slice(&hctx);
	cr_assert(strstr(H.ring_con, "pingpong: ping port=6 bound to domain 4 port 3 gref=8\n"),
		  "%s", H.ring_con);

	/* Moved: domain 11 now. Pong's port is still offered to 7, so the
	 * bind fails until pong follows; meanwhile ping names itself in
	 * pong's node. */
	h_resume("11");
	H.now += 200000000ull;
	wl_run_slice(&hctx);
	cr_assert(strstr(H.ring_con, "pingpong: ping resumed as domain 11: waiting for domain 4"),
		  "%s", H.ring_con);
	cr_assert_eq(H.closed, 6u, "the dead port is closed");
	cr_assert_str_eq(node_get("/local/domain/4/data/pingpong/peer"), "11");
	cr_assert(strstr(H.ring_con, "pingpong: binding domain 4's port 3"), "%s", H.ring_con);
	H.now += 200000000ull;
	wl_run_slice(&hctx);
	cr_assert_null(strstr(strstr(H.ring_con, "resumed as domain 11"), "bound to domain 4"));

	/* Pong followed and offers its port to 11: ping binds and bounces. */
	strcpy(H.pong_for, "11");
	H.now += 200000000ull;
	wl_run_slice(&hctx);
	cr_assert(strstr(strstr(H.ring_con, "resumed as domain 11"),
			 "pingpong: ping port=6 bound to domain 4 port 3 gref=8\n"),
		  "%s", H.ring_con);
	before = H.copies;
	wl_run_slice(&hctx);
	cr_assert_gt(H.copies, before, "rounds go through the grant again");
	cr_assert_eq(H.bad_copies, 0u);
}

Test(pv_client, ping_with_port_and_gref_needs_no_xenstore, .fini = h_teardown)
{
	h_setup_dead(true, true, "workload=pingpong role=ping peer=4 port=3 gref=8");
	wl_run_slice(&hctx);
	cr_assert(strstr(H.ring_con, "pingpong: ping port=6 bound to domain 4 port 3 gref=8\n"),
		  "%s", H.ring_con);
	cr_assert_gt(H.copies, 2u);
	cr_assert_eq(H.bad_copies, 0u);
}

Test(pv_client, pingpong_needs_hypercalls)
{
	static uint8_t *mem;
	struct wl_ctx c;

	memset(&H, 0, sizeof(H));
	mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(mem, MAP_FAILED);
	cr_assert_eq(wl_attach(&c, &hplat, (uintptr_t)mem, MEM,
			       "workload=pingpong role=pong peer=2"), -22);
	cr_assert(strstr(H.plat_con, "pingpong: needs Xen hypercalls"), "%s", H.plat_con);
	memset(&H, 0, sizeof(H));
	H.mem = mem;
	cr_assert_eq(wl_attach_xen(&c, &hplat, fake_hypercall, (uintptr_t)mem, MEM,
				   "workload=pingpong role=ping"), -22);
	cr_assert(strstr(H.plat_con, "needs role=ping|pong and peer=DOMID"), "%s", H.plat_con);
	cr_assert_eq(wl_attach_xen(&c, &hplat, fake_hypercall, (uintptr_t)mem, MEM,
				   "workload=pingpong role=ping peer=3 port=4"), -22);
	cr_assert_eq(wl_attach_xen(&c, &hplat, fake_hypercall, (uintptr_t)mem, MEM,
				   "workload=pingpong role=ping peer=0"), -22);
	munmap(mem, MEM);
}
