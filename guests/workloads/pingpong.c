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
 * Migration (away and back, formats/SPEC.md 5): a moved domain's port
 * comes back unbound for its old peer (channels are host-local) and its
 * grant frames where they were, under a new domid. Each side keeps
 * data/pingpong/peer in its own area, naming its peer and writable by
 * anyone (permissions do not travel: each offers it again after a move),
 * and reads it once a second; a domain it names other than the peer means
 * the peer moved: the port is closed and set up anew for the new domid.
 *   pong moved: seeing its resume, pong publishes again and writes its new
 *         domid into ping's node. Ping, whose copies to the old domain fail
 *         once it is gone, waits (phase 2) for its node to change, then
 *         binds the new port.
 *   ping moved: seeing its resume, ping drops its dead port and, while it
 *         cannot bind pong's published port, writes its new domid into
 *         pong's node; pong closes its port, grants its page to the new
 *         domid, offers a new port and publishes; ping reads and binds it.
 * A domain resumed on a host without its peer waits until it is back.
 *
 * Backends: both attach with wl_attach_xen: the guest kernel (kvm) passes
 * its doorbell, ferryd's soft backend a function calling hyp_hypercall()
 * on the vCPU's thread. The code is hosted-clean and runs in tests/guests
 * against a fake hypervisor.
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

int wl_pp_start(struct wl_ctx *ctx)
{
	if (!pv_available(ctx)) {
		wl_printf(ctx, "pingpong: needs Xen hypercalls, which this "
			  "platform does not offer\n");
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

/* The xenstore node path as a number (at most UINT32_MAX). */
static bool xs_num(struct wl_ctx *ctx, const char *path, uint64_t *v)
{
	char val[24], *s = val;
	uint64_t x = 0;

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

/* /local/domain/DOM/data/pingpong/NAME as a number. */
static bool read_num(struct wl_ctx *ctx, uint32_t dom, const char *name,
		     uint64_t *v)
{
	char path[64];

	wl_snprintf(path, sizeof(path), "/local/domain/%u/data/pingpong/%s",
		    dom, name);
	return xs_num(ctx, path, v);
}

/* Our data/pingpong/peer: anyone may write it (a moved peer names its new
 * domid there). Best effort: without it we cannot follow a move. */
static void offer_peer_node(struct wl_ctx *ctx)
{
	struct pv_state *pv = pv_gpa(ctx, PV_STATE_GPA);
	char val[16], all[16];
	const char *perms[1] = { all };

	if (!pv->domid)
		return;
	wl_snprintf(val, sizeof(val), "%u", ctx->st->pp_peer);
	wl_snprintf(all, sizeof(all), "b%u", pv->domid);
	if (pv_xs_write(ctx, "data/pingpong/peer", val) ||
	    pv_xs_set_perms(ctx, "data/pingpong/peer", perms, 1))
		wl_printf(ctx, "pingpong: cannot offer data/pingpong/peer: "
			  "a moved peer will not be found\n");
}

/* The domid in our data/pingpong/peer, 0 if none. */
static uint32_t peer_node(struct wl_ctx *ctx)
{
	uint64_t x;

	if (!xs_num(ctx, "data/pingpong/peer", &x) || x >= DOMID_SELF)
		return 0;
	return (uint32_t)x;
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
	offer_peer_node(ctx);
	publish(ctx, port, PP_GREF);
	st->pp_phase = 1;
	st->report_ns = now_ns(ctx);
}

/* The peer moved to domain peer: drop the dead port and set up anew
 * (ping binds, pong grants and offers). */
static void follow(struct wl_ctx *ctx, uint32_t peer)
{
	struct wl_state *st = ctx->st;
	struct pv_state *pv = pv_gpa(ctx, PV_STATE_GPA);
	struct evtchn_close *a = pv_gpa(ctx, PV_SCRATCH_GPA);

	if (peer != st->pp_peer)
		wl_printf(ctx, "pingpong: peer is now domain %u (was %u), "
			  "reconnecting\n", peer, st->pp_peer);
	if (st->pp_port) {
		a->port = st->pp_port;
		pv_hypercall(ctx, __HYPERVISOR_event_channel_op, EVTCHNOP_close,
			     PV_SCRATCH_GPA, 0);
	}
	pv->extra_port = 0;
	st->pp_port = 0;
	st->pp_peer = peer;
	st->pp_rport = 0;
	st->pp_waiting_said = 0;
	st->pp_wait_ns = 0;
	st->pp_phase = 0;
}

/* Once a second (running) or per retry (ping waiting), has the peer
 * moved? */
static bool peer_moved(struct wl_ctx *ctx)
{
	uint32_t peer = peer_node(ctx);

	if (!peer || peer == ctx->st->pp_peer)
		return false;
	follow(ctx, peer);
	return true;
}

/* Ping, not bound: make pong's data/pingpong/peer name us, in case we
 * moved. Fails quietly where pong is not (another host). */
static void tell_peer(struct wl_ctx *ctx)
{
	struct pv_state *pv = pv_gpa(ctx, PV_STATE_GPA);
	char path[64], val[16];
	uint64_t named;

	if (!pv->domid)
		return;
	wl_snprintf(path, sizeof(path), "/local/domain/%u/data/pingpong/peer",
		    ctx->st->pp_peer);
	if (xs_num(ctx, path, &named) && named == pv->domid)
		return;
	wl_snprintf(val, sizeof(val), "%u", pv->domid);
	pv_xs_write(ctx, path, val);
}

/* Pong after a resume: offer the same port and grant again under the new
 * domid, and tell ping where we are now. */
static void pong_resumed(struct wl_ctx *ctx)
{
	struct wl_state *st = ctx->st;
	struct pv_state *pv = pv_gpa(ctx, PV_STATE_GPA);
	char path[64], val[16];

	pv->extra_port = st->pp_port;
	wl_printf(ctx, "pingpong: pong resumed as domain %u\n", pv->domid);
	offer_peer_node(ctx);
	publish(ctx, st->pp_port, st->pp_gref);
	if (!pv->domid || !pv->xs_gpa || pv->xs_broken)
		return;
	wl_snprintf(path, sizeof(path), "/local/domain/%u/data/pingpong/peer",
		    st->pp_peer);
	wl_snprintf(val, sizeof(val), "%u", pv->domid);
	if (pv_xs_write(ctx, path, val))
		wl_printf(ctx, "pingpong: domain %u is not here: waiting\n",
			  st->pp_peer);
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
		tell_peer(ctx);
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
		/* Offered to our old domid (we moved): pong offers a new
		 * one once told, so look again. */
		if (pv->xs_gpa && !pv->xs_broken)
			st->pp_rport = 0;
		return false;
	}
	pv_evtchn_unmask(ctx, local);
	st->pp_port = local;
	pv->extra_port = local;
	wl_printf(ctx, "pingpong: ping port=%u bound to domain %u port %u "
		  "gref=%u\n", local, st->pp_peer, st->pp_rport, st->pp_gref);
	offer_peer_node(ctx);
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
			if (now_ns(ctx) < end && !wl_preempted(ctx))
				continue;
			return;
		}
		/* Nothing to do: sleep till the next report or an event; any
		 * other event ends the slice so pv_poll sees it. */
		pv_block(ctx, st->report_ns + PP_REPORT_NS);
		if (!pv_evtchn_is_pending(ctx, st->pp_port) ||
		    now_ns(ctx) >= end || wl_preempted(ctx))
			return;
	}
}

/* Ping: pong's grant is gone (pong moved away or died): wait for it. */
static void ping_lost(struct wl_ctx *ctx, int rc)
{
	struct wl_state *st = ctx->st;

	wl_printf(ctx, "pingpong: domain %u unreachable (GNTTABOP_copy: %d), "
		  "waiting for it to come back\n", st->pp_peer, rc);
	st->pp_phase = 2;
	st->pp_wait_ns = 0;
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
				return ping_lost(ctx, rc);
			st->pp_sent_ns = now ? now : 1;
			pv_evtchn_send(ctx, st->pp_port);
		}
		if (port_fired(ctx)) {
			rc = pv_gnttab_copy(ctx, false, st->pp_peer,
					    st->pp_gref, 8, PV_SHARE_GPA + 8,
					    sizeof(uint64_t));
			if (rc)
				return ping_lost(ctx, rc);
			ans = mine->pong;
			if (ans == st->pp_seq) {
				st->pp_rounds++;
				st->pp_sent_ns = 0;
			}
			if (now_ns(ctx) < end && !wl_preempted(ctx))
				continue;
			return;
		}
		if (now >= end || wl_preempted(ctx))
			return;
		pv_block(ctx, st->pp_sent_ns + PP_RESEND_NS);
		if (!pv_evtchn_is_pending(ctx, st->pp_port))
			return;
	}
}

void wl_pp_slice(struct wl_ctx *ctx, uint64_t now)
{
	struct wl_state *st = ctx->st;
	struct pv_state *pv = pv_gpa(ctx, PV_STATE_GPA);

	/* pv_resume forgets our port: we were restored or migrated. */
	if (st->pp_phase && !pv->extra_port) {
		if (st->pp_role == WL_PP_PONG) {
			pong_resumed(ctx);
		} else {
			/* Our channel came back unbound; pong's port was
			 * offered to our old domid. Tell pong and wait for a
			 * new offer (ping_setup). */
			wl_printf(ctx, "pingpong: ping resumed as domain %u: "
				  "waiting for domain %u to offer its port "
				  "again\n", pv->domid, st->pp_peer);
			follow(ctx, st->pp_peer);
		}
	}
	if (st->pp_phase == 2) {
		/* Ping waiting for a moved pong. */
		if (now >= st->pp_wait_ns) {
			st->pp_wait_ns = now + PP_RETRY_NS;
			if (peer_moved(ctx))
				return;
		}
		pv_block(ctx, st->pp_wait_ns);
		return;
	}
	if (st->pp_phase == 1 && now - st->report_ns >= PP_REPORT_NS &&
	    peer_moved(ctx))
		return;
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
