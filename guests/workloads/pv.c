/* SPDX-License-Identifier: MIT */
/*
 * The guest's PV client: event channels polled in shared_info (interrupts
 * stay off: every slice and every SCHEDOP_block return looks at the
 * pending bits), grant table frame 0, the console ring and a xenstore
 * client that watches control/shutdown and memory/target.
 *
 * Hypercall arguments go through a scratch page in guest memory
 * (PV_SCRATCH_GPA) because the hypervisor reads guest-physical addresses:
 * the same code then works with mem_base 0 (the guest kernel) and hosted.
 * Only vCPU 0 runs workloads, so the scratch page and struct pv_state
 * (PV_STATE_GPA) have one user.
 */
#include "pv.h"

#define PV_MAGIC 0x3156505952524546ull	/* "FERRYPV1" */
#define XS_TIMEOUT_NS (2ull * WL_NSEC_PER_SEC)
/* A store that does not answer the first request within this is taken
 * to be absent (a ring without a daemon behind it). */
#define XS_PROBE_NS (WL_NSEC_PER_SEC / 2)
#define CONS_WAIT_NS (100ull * 1000 * 1000)
#define XS_TX_MAX 512

_Static_assert(sizeof(struct pv_state) <= 3 * WL_PAGE_SIZE, "pv_state fits");
_Static_assert(PV_STATE_GPA + 3 * WL_PAGE_SIZE <= PV_SCRATCH_GPA, "pv layout");

void *pv_gpa(const struct wl_ctx *ctx, uint64_t gpa)
{
	return (void *)(ctx->mem_base + (uintptr_t)gpa);
}

static struct pv_state *pvs(const struct wl_ctx *ctx)
{
	return pv_gpa(ctx, PV_STATE_GPA);
}

static void *scratch(const struct wl_ctx *ctx)
{
	return pv_gpa(ctx, PV_SCRATCH_GPA);
}

static void zero(void *p, size_t n)
{
	volatile char *c = p;

	while (n--)
		*c++ = 0;
}

static void barrier(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool pv_available(const struct wl_ctx *ctx)
{
	return ctx->hypercall != NULL &&
	       ctx->mem_size >= FERRY_ARENA_GPA;
}

static bool pv_up(const struct wl_ctx *ctx)
{
	return pv_available(ctx) && pvs(ctx)->magic == PV_MAGIC;
}

long pv_hypercall(const struct wl_ctx *ctx, unsigned long nr, unsigned long a1,
		  unsigned long a2, unsigned long a3)
{
	if (!ctx->hypercall)
		return -XEN_ENOSYS;
	return ctx->hypercall(ctx->plat->opaque, nr, a1, a2, a3);
}

/* ---- console output ------------------------------------------------------ */

static uint64_t now_ns(const struct wl_ctx *ctx)
{
	return ctx->plat->now_ns(ctx->plat->opaque);
}

bool pv_console_write(const struct wl_ctx *ctx, const char *s, size_t len)
{
	struct pv_state *st;
	volatile struct xencons_interface *r;
	uint64_t give_up = 0;

	if (!pv_up(ctx) || !(st = pvs(ctx))->cons_gpa)
		return false;
	r = pv_gpa(ctx, st->cons_gpa);
	while (len) {
		uint32_t cons = r->out_cons, prod = r->out_prod;
		size_t n;

		barrier();
		n = pv_ring_put((char *)r->out, PV_CONS_OUT_SIZE, cons, prod, s,
				len);
		if (n) {
			barrier();	/* the bytes before the index */
			r->out_prod = prod + (uint32_t)n;
			pv_evtchn_send(ctx, st->cons_port);
			s += n;
			len -= n;
			continue;
		}
		if (pv_ring_used(cons, prod, PV_CONS_OUT_SIZE) < 0)
			return true;	/* corrupt: drop */
		/* Full: give the backend a moment, then drop the rest. */
		if (!give_up)
			give_up = now_ns(ctx) + CONS_WAIT_NS;
		else if (now_ns(ctx) >= give_up)
			return true;
		ctx->plat->block_until(ctx->plat->opaque,
				       now_ns(ctx) + 1000 * 1000);
	}
	return true;
}

void wl_console(const struct wl_ctx *ctx, const char *s, size_t len)
{
	if (!pv_console_write(ctx, s, len))
		ctx->plat->console(ctx->plat->opaque, s, len);
}

void wl_printf(const struct wl_ctx *ctx, const char *fmt, ...)
{
	char buf[192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = wl_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	wl_console(ctx, buf, (size_t)n);
}

/* ---- event channels ------------------------------------------------------ */

static volatile struct shared_info *shinfo(const struct wl_ctx *ctx)
{
	return pv_gpa(ctx, FERRY_SHARED_INFO_GPA);
}

int pv_evtchn_send(const struct wl_ctx *ctx, uint32_t port)
{
	struct evtchn_send *a = scratch(ctx);

	if (!port)
		return -XEN_EINVAL;
	a->port = port;
	return (int)pv_hypercall(ctx, __HYPERVISOR_event_channel_op,
				 EVTCHNOP_send, PV_SCRATCH_GPA, 0);
}

int pv_evtchn_unmask(const struct wl_ctx *ctx, uint32_t port)
{
	struct evtchn_unmask *a = scratch(ctx);

	a->port = port;
	return (int)pv_hypercall(ctx, __HYPERVISOR_event_channel_op,
				 EVTCHNOP_unmask, PV_SCRATCH_GPA, 0);
}

bool pv_evtchn_is_pending(const struct wl_ctx *ctx, uint32_t port)
{
	if (!port || port >= EVTCHN_2L_NR_CHANNELS)
		return false;
	return (shinfo(ctx)->evtchn_pending[port / 64] >> (port % 64)) & 1;
}

bool pv_evtchn_test_clear(const struct wl_ctx *ctx, uint32_t port)
{
	uint64_t bit, old;

	if (!port || port >= EVTCHN_2L_NR_CHANNELS)
		return false;
	bit = 1ull << (port % 64);
	old = __atomic_fetch_and(
		(uint64_t *)&shinfo(ctx)->evtchn_pending[port / 64], ~bit,
		__ATOMIC_SEQ_CST);
	return old & bit;
}

long pv_evtchn_alloc_unbound(const struct wl_ctx *ctx, uint32_t remote,
			     uint32_t *port)
{
	struct evtchn_alloc_unbound *a = scratch(ctx);
	long rc;

	a->dom = DOMID_SELF;
	a->remote_dom = (uint16_t)remote;
	a->port = 0;
	rc = pv_hypercall(ctx, __HYPERVISOR_event_channel_op,
			  EVTCHNOP_alloc_unbound, PV_SCRATCH_GPA, 0);
	if (!rc)
		*port = a->port;
	return rc;
}

long pv_evtchn_bind_interdomain(const struct wl_ctx *ctx, uint32_t remote,
				uint32_t rport, uint32_t *port)
{
	struct evtchn_bind_interdomain *a = scratch(ctx);
	long rc;

	a->remote_dom = (uint16_t)remote;
	a->pad = 0;
	a->remote_port = rport;
	a->local_port = 0;
	rc = pv_hypercall(ctx, __HYPERVISOR_event_channel_op,
			  EVTCHNOP_bind_interdomain, PV_SCRATCH_GPA, 0);
	if (!rc)
		*port = a->local_port;
	return rc;
}

/* Xen's upcall handler, minus the handlers: the vCPU-wide flags go down
 * first, so an event after this point blocks nobody. Port bits are left
 * for their owners to test and clear. */
static void upcall_ack(const struct wl_ctx *ctx)
{
	volatile struct vcpu_info *vi = &shinfo(ctx)->vcpu_info[0];

	vi->evtchn_upcall_pending = 0;
	__atomic_exchange_n((uint64_t *)&vi->evtchn_pending_sel, 0,
			    __ATOMIC_SEQ_CST);
}

void pv_block(struct wl_ctx *ctx, uint64_t deadline)
{
	struct pv_state *st = pvs(ctx);

	if (pv_up(ctx)) {
		upcall_ack(ctx);
		barrier();
		if (pv_evtchn_is_pending(ctx, st->cons_port) ||
		    pv_evtchn_is_pending(ctx, st->xs_port) ||
		    pv_evtchn_is_pending(ctx, st->extra_port))
			return;
	}
	ctx->plat->block_until(ctx->plat->opaque, deadline);
}

/* ---- grant table --------------------------------------------------------- */

long pv_gnttab_setup(struct wl_ctx *ctx)
{
	struct xen_add_to_physmap *x = scratch(ctx);
	long rc;

	if (pvs(ctx)->gnttab_ok)
		return 0;
	x->domid = DOMID_SELF;
	x->size = 0;
	x->space = XENMAPSPACE_grant_table;
	x->idx = 0;
	x->gpfn = PV_GNTTAB_GPA >> WL_PAGE_SHIFT;
	rc = pv_hypercall(ctx, __HYPERVISOR_memory_op, XENMEM_add_to_physmap,
			  PV_SCRATCH_GPA, 0);
	if (!rc)
		pvs(ctx)->gnttab_ok = 1;
	return rc;
}

void pv_gnttab_grant(const struct wl_ctx *ctx, uint32_t ref, uint32_t domid,
		     uint64_t gfn, bool readonly)
{
	volatile struct grant_entry_v1 *e = pv_gpa(ctx, PV_GNTTAB_GPA);

	e += ref;
	e->flags = 0;
	barrier();
	e->domid = (uint16_t)domid;
	e->frame = (uint32_t)gfn;
	barrier();	/* Xen's rule: frame and domid before the flags */
	e->flags = (uint16_t)(GTF_permit_access | (readonly ? GTF_readonly : 0));
}

int pv_gnttab_copy(const struct wl_ctx *ctx, bool to_peer, uint32_t peer,
		   uint32_t ref, uint16_t offset, uint64_t our_gpa, uint16_t len)
{
	struct gnttab_copy *c = scratch(ctx);
	struct gnttab_copy_ptr *mine = to_peer ? &c->source : &c->dest;
	struct gnttab_copy_ptr *theirs = to_peer ? &c->dest : &c->source;
	long rc;

	zero(c, sizeof(*c));
	mine->u.gmfn = our_gpa >> WL_PAGE_SHIFT;
	mine->domid = DOMID_SELF;
	mine->offset = (uint16_t)(our_gpa & (WL_PAGE_SIZE - 1));
	theirs->u.ref = ref;
	theirs->domid = (uint16_t)peer;
	theirs->offset = offset;
	c->len = len;
	c->flags = to_peer ? GNTCOPY_dest_gref : GNTCOPY_source_gref;
	rc = pv_hypercall(ctx, __HYPERVISOR_grant_table_op, GNTTABOP_copy,
			  PV_SCRATCH_GPA, 1);
	if (rc)
		return (int)rc;
	return c->status;
}

/* ---- xenstore ------------------------------------------------------------ */

static volatile struct xenstore_domain_interface *xs_ring(const struct wl_ctx *ctx)
{
	return pv_gpa(ctx, pvs(ctx)->xs_gpa);
}

static void xs_dispatch(struct pv_state *st)
{
	struct pv_xs_rx *rx = &st->rx;
	uint32_t i;

	if (rx->hdr.type == PV_XS_WATCH_EVENT) {
		const char *path, *token;

		if (!pv_xs_parse_watch(rx->body, rx->hdr.len, &path, &token) &&
		    token[0] >= '0' && token[0] < '0' + PV_XS_WATCHES &&
		    !token[1])
			st->watch_fired |= 1u << (token[0] - '0');
		return;
	}
	if (rx->hdr.req_id != st->xs_req_id)
		return;	/* a reply nobody waits for any more */
	st->reply_type = rx->hdr.type;
	st->reply_len = rx->hdr.len;
	for (i = 0; i <= rx->hdr.len; i++)
		st->reply[i] = rx->body[i];
	st->reply_ready = 1;
}

/* Takes whatever the store has written; returns whether it consumed any. */
static bool xs_pump(struct wl_ctx *ctx)
{
	struct pv_state *st = pvs(ctx);
	volatile struct xenstore_domain_interface *r;
	bool any = false;

	if (!st->xs_gpa || st->xs_broken)
		return false;
	r = xs_ring(ctx);
	for (;;) {
		uint32_t cons = r->rsp_cons, prod = r->rsp_prod;
		char buf[64];
		size_t n;
		int64_t took;
		bool done;

		barrier();	/* the index before the bytes */
		if (pv_ring_used(cons, prod, PV_XS_RING_SIZE) < 0) {
			st->xs_broken = 1;
			break;
		}
		n = pv_ring_get((const char *)r->rsp, PV_XS_RING_SIZE, cons,
				prod, buf, sizeof(buf));
		if (!n)
			break;
		took = pv_xs_rx_feed(&st->rx, buf, n, &done);
		if (took < 0) {
			st->xs_broken = 1;
			break;
		}
		barrier();
		r->rsp_cons = cons + (uint32_t)took;
		any = true;
		if (done) {
			xs_dispatch(st);
			pv_xs_rx_reset(&st->rx);
		}
	}
	if (any)
		pv_evtchn_send(ctx, st->xs_port);
	return any;
}

static int xs_send(struct wl_ctx *ctx, const char *msg, size_t len,
		   uint64_t deadline)
{
	struct pv_state *st = pvs(ctx);
	volatile struct xenstore_domain_interface *r = xs_ring(ctx);

	while (len) {
		uint32_t cons = r->req_cons, prod = r->req_prod;
		size_t n;

		barrier();
		if (pv_ring_used(cons, prod, PV_XS_RING_SIZE) < 0) {
			st->xs_broken = 1;
			return -XEN_EINVAL;
		}
		n = pv_ring_put((char *)r->req, PV_XS_RING_SIZE, cons, prod,
				msg, len);
		if (n) {
			barrier();
			r->req_prod = prod + (uint32_t)n;
			pv_evtchn_send(ctx, st->xs_port);
			msg += n;
			len -= n;
			continue;
		}
		xs_pump(ctx);	/* the store may wait for us to read */
		if (now_ns(ctx) >= deadline)
			return -XEN_EBUSY;
		pv_block(ctx, now_ns(ctx) + 1000 * 1000);
	}
	return 0;
}

/* One request; the reply lands in st->reply. */
static int xs_request(struct wl_ctx *ctx, uint32_t type,
		      const char *const *parts, const size_t *lens,
		      const bool *nul, unsigned nparts)
{
	struct pv_state *st = pvs(ctx);
	char msg[XS_TX_MAX];
	uint64_t deadline = now_ns(ctx) +
			    (st->xs_probing ? XS_PROBE_NS : XS_TIMEOUT_NS);
	int64_t len;
	int rc;

	if (!pv_up(ctx) || !st->xs_gpa || st->xs_broken)
		return -XEN_ENOSYS;
	st->xs_req_id++;
	st->reply_ready = 0;
	len = pv_xs_frame(msg, sizeof(msg), type, st->xs_req_id, parts, lens,
			  nul, nparts);
	if (len < 0)
		return -XEN_EINVAL;
	rc = xs_send(ctx, msg, (size_t)len, deadline);
	if (rc) {
		if (st->xs_probing)
			st->xs_broken = 1;
		return rc;
	}
	while (!st->reply_ready) {
		if (xs_pump(ctx))
			continue;
		if (st->xs_broken)
			return -XEN_EINVAL;
		if (now_ns(ctx) >= deadline) {
			if (st->xs_probing)
				st->xs_broken = 1;
			return -XEN_EBUSY;
		}
		pv_block(ctx, now_ns(ctx) + 10 * 1000 * 1000);
		pv_evtchn_test_clear(ctx, st->xs_port);
	}
	if (st->reply_type == PV_XS_ERROR)
		return -pv_xs_errno(st->reply, st->reply_len);
	return st->reply_type == type ? 0 : -XEN_EINVAL;
}

static size_t slen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int pv_xs_read(struct wl_ctx *ctx, const char *path, char *out, size_t outlen)
{
	struct pv_state *st = pvs(ctx);
	const char *parts[1] = { path };
	size_t lens[1] = { slen(path) }, i;
	bool nul[1] = { true };
	int rc = xs_request(ctx, PV_XS_READ, parts, lens, nul, 1);

	if (rc)
		return rc;
	for (i = 0; i + 1 < outlen && i < st->reply_len; i++)
		out[i] = st->reply[i];
	if (outlen)
		out[i] = '\0';
	return 0;
}

int pv_xs_write(struct wl_ctx *ctx, const char *path, const char *val)
{
	const char *parts[2] = { path, val };
	size_t lens[2] = { slen(path), slen(val) };
	bool nul[2] = { true, false };

	return xs_request(ctx, PV_XS_WRITE, parts, lens, nul, 2);
}

int pv_xs_set_perms(struct wl_ctx *ctx, const char *path,
		    const char *const *perms, unsigned n)
{
	const char *parts[4];
	size_t lens[4];
	bool nul[4];
	unsigned i;

	if (n > 3)
		return -XEN_EINVAL;
	parts[0] = path;
	for (i = 0; i < n; i++)
		parts[i + 1] = perms[i];
	for (i = 0; i <= n; i++) {
		lens[i] = slen(parts[i]);
		nul[i] = true;
	}
	return xs_request(ctx, PV_XS_SET_PERMS, parts, lens, nul, n + 1);
}

static int xs_watch(struct wl_ctx *ctx, const char *path, const char *token)
{
	const char *parts[2] = { path, token };
	size_t lens[2] = { slen(path), slen(token) };
	bool nul[2] = { true, true };

	return xs_request(ctx, PV_XS_WATCH, parts, lens, nul, 2);
}

static bool parse_u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || x > (UINT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	return true;
}

static bool streq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* ---- set-up and the per-slice poll --------------------------------------- */

static long get_param(const struct wl_ctx *ctx, uint32_t index, uint64_t *v)
{
	struct xen_hvm_param *p = scratch(ctx);
	long rc;

	p->domid = DOMID_SELF;
	p->pad = 0;
	p->index = index;
	p->value = 0;
	rc = pv_hypercall(ctx, __HYPERVISOR_hvm_op, HVMOP_get_param,
			  PV_SCRATCH_GPA, 0);
	if (!rc)
		*v = p->value;
	return rc;
}

/* A ring at pfn is usable if it is guest RAM outside the arena. */
static bool ring_at(const struct wl_ctx *ctx, uint32_t pfn_param,
		    uint32_t port_param, uint64_t *gpa, uint32_t *port)
{
	uint64_t pfn = 0, p = 0;

	if (get_param(ctx, pfn_param, &pfn) || !pfn ||
	    get_param(ctx, port_param, &p) || !p ||
	    p >= EVTCHN_2L_NR_CHANNELS)
		return false;
	if (pfn >= FERRY_ARENA_GPA >> WL_PAGE_SHIFT ||
	    pfn < PV_LOW_GPA >> WL_PAGE_SHIFT)
		return false;
	*gpa = pfn << WL_PAGE_SHIFT;
	*port = (uint32_t)p;
	pv_evtchn_unmask(ctx, *port);
	return true;
}

/* Our domid, and the watches (Xen fires each watch once when it is set:
 * that first event reads the initial value). */
static void xs_connect(struct wl_ctx *ctx)
{
	struct pv_state *st = pvs(ctx);
	char val[24];
	uint64_t v;

	if (!st->xs_gpa)
		return;
	if (xs_ring(ctx)->error) {
		st->xs_broken = 1;
		return;
	}
	st->xs_probing = 1;
	if (!pv_xs_read(ctx, "domid", val, sizeof(val)) && parse_u64(val, &v))
		st->domid = (uint32_t)v;
	st->xs_probing = 0;
	if (st->xs_broken)
		return;
	xs_watch(ctx, "control/shutdown", "0");
	xs_watch(ctx, "memory/target", "1");
}

static void pv_report(struct wl_ctx *ctx, const char *what)
{
	struct pv_state *st = pvs(ctx);

	wl_printf(ctx, "%s console=%s port=%u xenstore=%s port=%u domid=%u\n",
		  what, st->cons_gpa ? "ring" : "hypercall", st->cons_port,
		  st->xs_gpa && !st->xs_broken ? "ring" : "none", st->xs_port,
		  st->domid);
}

void pv_init(struct wl_ctx *ctx)
{
	struct pv_state *st;

	if (!pv_available(ctx))
		return;
	st = pvs(ctx);
	if (st->magic == PV_MAGIC)
		return;	/* attached again to a running guest */
	zero(st, sizeof(*st));
	ring_at(ctx, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN,
		&st->cons_gpa, &st->cons_port);
	ring_at(ctx, HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN, &st->xs_gpa,
		&st->xs_port);
	pv_xs_rx_reset(&st->rx);
	st->magic = PV_MAGIC;
	if (!st->cons_gpa && !st->xs_gpa)
		return;	/* nothing new: no new console lines either */

	xs_connect(ctx);
	pv_report(ctx, "pv:");
}

void pv_resume(struct wl_ctx *ctx)
{
	struct pv_state *st;

	if (!pv_up(ctx))
		return;
	st = pvs(ctx);
	st->cons_gpa = 0;
	st->cons_port = 0;
	st->xs_gpa = 0;
	st->xs_port = 0;
	ring_at(ctx, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_CONSOLE_EVTCHN,
		&st->cons_gpa, &st->cons_port);
	ring_at(ctx, HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN, &st->xs_gpa,
		&st->xs_port);
	/* Whatever was half read or awaited belongs to the old connection. */
	pv_xs_rx_reset(&st->rx);
	st->reply_ready = 0;
	st->xs_broken = 0;
	st->watch_fired = 0;
	st->cons_line.len = 0;
	/* The old domain's ports are gone (Xen's rule for interdomain
	 * channels over a migration); pingpong, seeing this, reconnects. */
	st->extra_port = 0;
	st->extra_pending = 0;
	if (!st->cons_gpa && !st->xs_gpa)
		return;
	xs_connect(ctx);
	pv_report(ctx, "pv: resumed,");
}

static void console_input(struct wl_ctx *ctx)
{
	struct pv_state *st = pvs(ctx);
	volatile struct xencons_interface *r;
	uint32_t cons, prod;
	bool any = false;

	if (!st->cons_gpa)
		return;
	r = pv_gpa(ctx, st->cons_gpa);
	cons = r->in_cons;
	prod = r->in_prod;
	barrier();
	if (pv_ring_used(cons, prod, PV_CONS_IN_SIZE) < 0)
		return;
	while (cons != prod) {
		char c = r->in[cons & (PV_CONS_IN_SIZE - 1)];

		cons++;
		any = true;
		if (pv_line_add(&st->cons_line, c))
			wl_printf(ctx, "console: input '%s'\n",
				  st->cons_line.buf);
	}
	if (any) {
		barrier();
		r->in_cons = cons;
		pv_evtchn_send(ctx, st->cons_port);
	}
}

static bool watch_shutdown(struct wl_ctx *ctx)
{
	char val[32];
	unsigned reason;

	if (pv_xs_read(ctx, "control/shutdown", val, sizeof(val)))
		return false;
	if (streq(val, "poweroff") || streq(val, "halt"))
		reason = SHUTDOWN_poweroff;
	else if (streq(val, "reboot"))
		reason = SHUTDOWN_reboot;
	else
		return false;	/* "", or suspend (not supported) */
	/* Acknowledge as Xen's guests do, so the toolstack sees it taken. */
	pv_xs_write(ctx, "control/shutdown", "");
	wl_printf(ctx, "ferry: shutdown requested (%s)\n",
		  reason == SHUTDOWN_reboot ? "reboot" : "poweroff");
	ctx->plat->shutdown(ctx->plat->opaque, reason);
	return true;
}

static void watch_target(struct wl_ctx *ctx)
{
	struct pv_state *st = pvs(ctx);
	char val[32];
	uint64_t kib;

	if (pv_xs_read(ctx, "memory/target", val, sizeof(val)) || !parse_u64(val, &kib))
		return;
	if (kib != st->target_kib) {
		st->target_kib = kib;
		wl_printf(ctx, "balloon: target=%llu KiB\n", (unsigned long long)kib);
	}
	/* The same target written again is a retry (after a mem-max). */
	wl_balloon_set_target(ctx, kib);
}

bool pv_poll(struct wl_ctx *ctx)
{
	struct pv_state *st;
	uint32_t fired;

	if (!pv_up(ctx))
		return false;
	st = pvs(ctx);
	upcall_ack(ctx);
	barrier();
	pv_evtchn_test_clear(ctx, st->cons_port);
	pv_evtchn_test_clear(ctx, st->xs_port);
	if (pv_evtchn_test_clear(ctx, st->extra_port))
		st->extra_pending = 1;
	console_input(ctx);
	xs_pump(ctx);
	fired = st->watch_fired;
	st->watch_fired = 0;
	if ((fired & (1u << PV_W_SHUTDOWN)) && watch_shutdown(ctx))
		return true;
	if (fired & (1u << PV_W_TARGET))
		watch_target(ctx);
	wl_balloon_slice(ctx);
	return false;
}
