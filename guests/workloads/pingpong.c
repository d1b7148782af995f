/* SPDX-License-Identifier: MIT */
/*
 * workload=pingpong role=ping|pong peer=DOMID [port=N gref=M]: two guests
 * bounce a counter through a page pong grants to ping, with Xen's ABI only.
 *
 *   pong: grant table frame 0, grant PP_GREF (its page at PV_SHARE_GPA,
 *         writable) and an unbound port for the peer; publishes both in
 *         data/pingpong/{port,gref} of its own xenstore area, readable by
 *         the peer (XS_SET_PERMS), and prints them in any case.
 *   ping: takes the port and grant from the command line, else from
 *         /local/domain/PEER/data/pingpong/ (retrying until they appear);
 *         binds the port (EVTCHNOP_bind_interdomain).
 *   round: ping writes its counter into the granted page (GNTTABOP_copy to
 *         the grant) and notifies; pong sees it in its own page, copies it
 *         to the answer slot and notifies back; ping reads the answer
 *         (GNTTABOP_copy from the grant). Both print
 *         "pingpong: round_trips=N rate=R/s" once a second.
 *
 * Interrupts stay off: both sides poll the port's pending bit and sleep
 * in SCHEDOP_block, which returns when an event is pending.
 *
 * Backends: the guest kernel (kvm) passes its hypercall to wl_attach_xen.
 * The code is hosted-clean and runs in tests/guests against a fake
 * hypervisor, but ferryd's soft backend attaches with plain wl_attach (no
 * hypercalls), so there pingpong refuses to start with a console line; it
 * would need wl_attach_xen with a function calling hyp_hypercall() on the
 * vCPU, and shared_info mapped at FERRY_SHARED_INFO_GPA.
 */
#include "pv.h"

#define PP_GREF 8		/* refs 0-7 are the toolstack's by convention */
#define PP_REPORT_NS WL_NSEC_PER_SEC
#define PP_SLICE_NS (10ull * 1000 * 1000)
#define PP_RETRY_NS (100ull * 1000 * 1000)
#define PP_RESEND_NS WL_NSEC_PER_SEC

struct pp_page {
	uint64_t ping;		/* written by ping (through the grant) */
	uint64_t pong;		/* pong's answer */
};

static uint64_t now_ns(const struct wl_ctx *ctx)
{
	return ctx->plat->now_ns(ctx->plat->opaque);
}

int pp_start(struct wl_ctx *ctx, const struct wl_params *p)
{
	if (!pv_available(ctx)) {
		wl_printf(ctx, "pingpong: needs Xen hypercalls, which this "
			  "platform does not offer\n");
		return -22;
	}
	if (!p->pp_role || !p->pp_peer) {
		wl_printf(ctx, "pingpong: needs role=ping|pong and peer=DOMID\n");
		return -22;
	}
	if (p->pp_role == WL_PP_PING &&
	    (p->pp_port != 0) != (p->pp_gref != UINT32_MAX)) {
		wl_printf(ctx, "pingpong: give both port= and gref=, or neither\n");
		return -22;
	}
	return 0;
}

static void pp_fail(struct wl_ctx *ctx, const char *what, long rc)
{
	wl_printf(ctx, "pingpong: %s failed: %ld\n", what, rc);
	ctx->plat->shutdown(ctx->plat->opaque, SHUTDOWN_crash);
}

static void report(struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;
	uint64_t dt = now - st->report_ns;
	uint64_t n = st->pp_rounds - st->pp_report_rounds;

	if (dt < PP_REPORT_NS)
		return;
	wl_printf(ctx, "pingpong: round_trips=%llu rate=%llu/s\n",
		  (unsigned long long)st->pp_rounds,
		  (unsigned long long)(n * WL_NSEC_PER_SEC / dt));
	st->report_ns = now;
	st->pp_report_rounds = st->pp_rounds;
}

static void publish(struct wl_ctx *ctx, uint32_t port, uint32_t gref)
{
	struct pv_state *pv = pv_gpa(ctx, PV_STATE_GPA);
	char val[16], own[16], peer[16];
	const char *perms[2] = { own, peer };
	static const char *const nodes[] = { "data/pingpong/port",
					     "data/pingpong/gref",
					     "data/pingpong" };
	bool ok = true;
	unsigned i;

	if (!pv->xs_gpa || pv->xs_broken || !pv->domid) {
		wl_printf(ctx, "pingpong: pong port=%u gref=%u (no xenstore: "
			  "give them to ping)\n", port, gref);
		return;
	}
	wl_snprintf(val, sizeof(val), "%u", gref);
	ok = !pv_xs_write(ctx, nodes[1], val);
	wl_snprintf(val, sizeof(val), "%u", port);
	ok = ok && !pv_xs_write(ctx, nodes[0], val);
	/* Owned by us, readable by the peer. */
	wl_snprintf(own, sizeof(own), "n%u", pv->domid);
	wl_snprintf(peer, sizeof(peer), "r%u", ctx->st->pp_peer);
	for (i = 0; ok && i < 3; i++)
		ok = !pv_xs_set_perms(ctx, nodes[i], perms, 2);
	wl_printf(ctx, "pingpong: pong port=%u gref=%u%s\n", port, gref,
		  ok ? " published in xenstore" :
		       " (xenstore refused: give them to ping)");
}

static void pong_setup(struct wl_ctx *ctx)
{
	struct wl_state *st = ctx->st;
	struct pv_state *pv = pv_gpa(ctx, PV_STATE_GPA);
	volatile struct pp_page *pg = pv_gpa(ctx, PV_SHARE_GPA);
	uint32_t port;
	long rc;

	if ((rc = pv_gnttab_setup(ctx)))
		return pp_fail(ctx, "grant table set-up", rc);
	pg->ping = 0;
	pg->pong = 0;
	pv_gnttab_grant(ctx, PP_GREF, st->pp_peer, PV_SHARE_GPA >> WL_PAGE_SHIFT,
			false);
	if ((rc = pv_evtchn_alloc_unbound(ctx, st->pp_peer, &port)))
		return pp_fail(ctx, "EVTCHNOP_alloc_unbound", rc);
	pv_evtchn_unmask(ctx, port);
	st->pp_port = port;
	st->pp_gref = PP_GREF;
	pv->extra_port = port;
	publish(ctx, port, PP_GREF);
	st->pp_phase = 1;
	st->report_ns = now_ns(ctx);
}

/* /local/domain/DOM/data/pingpong/NAME as a number. */
static bool read_num(struct wl_ctx *ctx, uint32_t dom, const char *name,
		     uint64_t *v)
{
	char path[64], val[24], *s = val;
	uint64_t x = 0;

	wl_snprintf(path, sizeof(path), "/local/domain/%u/data/pingpong/%s",
		    dom, name);
	if (pv_xs_read(ctx, path, val, sizeof(val)) || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || x > UINT32_MAX)
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	return true;
}

/* Returns false while pong is not there yet. */
static bool ping_setup(struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;
	struct pv_state *pv = pv_gpa(ctx, PV_STATE_GPA);
	uint64_t port, gref;
	uint32_t local;
	long rc;

	if (now < st->pp_wait_ns)
		return false;
	st->pp_wait_ns = now + PP_RETRY_NS;
	if (!st->pp_rport) {
		if (!pv->xs_gpa || pv->xs_broken) {
			pp_fail(ctx, "finding pong without xenstore (give port= "
				"and gref=)", -XEN_ENOSYS);
			return false;
		}
		if (!read_num(ctx, st->pp_peer, "port", &port) ||
		    !read_num(ctx, st->pp_peer, "gref", &gref) ||
		    !port || port >= EVTCHN_2L_NR_CHANNELS) {
			if (!st->pp_waiting_said++)
				wl_printf(ctx, "pingpong: waiting for domain "
					  "%u's port and grant in xenstore\n",
					  st->pp_peer);
			return false;
		}
		st->pp_rport = (uint32_t)port;
		st->pp_gref = (uint32_t)gref;
	}
	rc = pv_evtchn_bind_interdomain(ctx, st->pp_peer, st->pp_rport, &local);
	if (rc) {
		if (!st->pp_waiting_said++)
			wl_printf(ctx, "pingpong: binding domain %u's port %u: "
				  "%ld, retrying\n", st->pp_peer, st->pp_rport,
				  rc);
		return false;
	}
	pv_evtchn_unmask(ctx, local);
	st->pp_port = local;
	pv->extra_port = local;
	wl_printf(ctx, "pingpong: ping port=%u bound to domain %u port %u "
		  "gref=%u\n", local, st->pp_peer, st->pp_rport, st->pp_gref);
	st->pp_phase = 1;
	st->pp_seq = 0;
	st->pp_sent_ns = 0;
	st->report_ns = now_ns(ctx);
	return true;
}

/* Our port fired (seen by pv_poll or now). */
static bool port_fired(struct wl_ctx *ctx)
{
	struct pv_state *pv = pv_gpa(ctx, PV_STATE_GPA);
	bool fired = pv->extra_pending;

	pv->extra_pending = 0;
	return pv_evtchn_test_clear(ctx, ctx->st->pp_port) || fired;
}

static void pong_slice(struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;
	volatile struct pp_page *pg = pv_gpa(ctx, PV_SHARE_GPA);
	uint64_t end = now + PP_SLICE_NS;

	for (;;) {
		if (port_fired(ctx)) {
			uint64_t v = pg->ping;

			if (v != pg->pong) {
				pg->pong = v;
				st->pp_rounds++;
			}
			/* Answer a repeat too: ping resends when it missed
			 * our notify. */
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			pv_evtchn_send(ctx, st->pp_port);
			if (now_ns(ctx) < end)
				continue;
			return;
		}
		/* Nothing to do: sleep till the next report or an event; any
		 * other event ends the slice so pv_poll sees it. */
		pv_block(ctx, st->report_ns + PP_REPORT_NS);
		if (!pv_evtchn_is_pending(ctx, st->pp_port) ||
		    now_ns(ctx) >= end)
			return;
	}
}

static void ping_slice(struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;
	uint64_t end = now + PP_SLICE_NS, ans;
	volatile struct pp_page *mine = pv_gpa(ctx, PV_SHARE_GPA);
	int rc;

	for (;;) {
		now = now_ns(ctx);
		if (!st->pp_sent_ns ||
		    now - st->pp_sent_ns >= PP_RESEND_NS) {
			if (!st->pp_sent_ns)
				st->pp_seq++;
			mine->ping = st->pp_seq;
			rc = pv_gnttab_copy(ctx, true, st->pp_peer, st->pp_gref,
					    0, PV_SHARE_GPA, sizeof(uint64_t));
			if (rc)
				return pp_fail(ctx, "GNTTABOP_copy to pong", rc);
			st->pp_sent_ns = now ? now : 1;
			pv_evtchn_send(ctx, st->pp_port);
		}
		if (port_fired(ctx)) {
			rc = pv_gnttab_copy(ctx, false, st->pp_peer,
					    st->pp_gref, 8, PV_SHARE_GPA + 8,
					    sizeof(uint64_t));
			if (rc)
				return pp_fail(ctx, "GNTTABOP_copy from pong",
					       rc);
			ans = mine->pong;
			if (ans == st->pp_seq) {
				st->pp_rounds++;
				st->pp_sent_ns = 0;
			}
			if (now_ns(ctx) < end)
				continue;
			return;
		}
		if (now >= end)
			return;
		pv_block(ctx, st->pp_sent_ns + PP_RESEND_NS);
		if (!pv_evtchn_is_pending(ctx, st->pp_port))
			return;
	}
}

void pp_slice(struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;

	if (st->pp_phase == 0) {
		if (st->pp_role == WL_PP_PONG) {
			pong_setup(ctx);
		} else if (!ping_setup(ctx, now)) {
			pv_block(ctx, st->pp_wait_ns);
			return;
		}
		if (st->pp_phase == 0)
			return;
		now = now_ns(ctx);
	}
	report(ctx, now);
	if (st->pp_role == WL_PP_PONG)
		pong_slice(ctx, now);
	else
		ping_slice(ctx, now);
}
