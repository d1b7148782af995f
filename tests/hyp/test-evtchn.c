// SPDX-License-Identifier: MIT
/*
 * Event channels (2-level ABI) through the guest's hypercall, on paused
 * soft domains: arguments are written into guest memory and the handler
 * runs through hyp_test_hypercall, as a guest's doorbell would.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>

#include "harness.h"
#include "abi/guest.h"
#include "hyp/evtchn.h"
#include "hyp/gmem.h"

#define ARG_GPA 0x500000u /* argument structs, in the workload arena */
#define SI_GPA FERRY_SHARED_INFO_GPA

struct env {
	struct hyp *h;
	uint32_t a, b;
	struct hyp_domain *da, *db;
};

static int64_t hc(struct env *e, uint32_t dom, uint64_t nr, uint64_t a0, uint64_t a1,
		  uint64_t a2)
{
	const uint64_t args[5] = { a0, a1, a2, 0, 0 };

	return hyp_test_hypercall(e->h, dom, 0, nr, args);
}

static struct hyp_domain *dom_of(struct env *e, uint32_t id)
{
	return id == e->a ? e->da : e->db;
}

/* event_channel_op(cmd, arg) with *arg copied in and back out. */
static int64_t evop(struct env *e, uint32_t dom, unsigned cmd, void *arg, size_t len)
{
	struct hyp_domain *d = dom_of(e, dom);
	int64_t r;

	cr_assert_eq(hyp_gmem_write(d, ARG_GPA, arg, len), 0);
	r = hc(e, dom, __HYPERVISOR_event_channel_op, cmd, ARG_GPA, 0);
	cr_assert_eq(hyp_gmem_read(d, ARG_GPA, arg, len), 0);
	return r;
}

static void map_shared_info(struct env *e, uint32_t dom)
{
	struct xen_add_to_physmap x = {
		.domid = DOMID_SELF, .space = XENMAPSPACE_shared_info, .gpfn = SI_GPA >> 12,
	};
	struct hyp_domain *d = dom_of(e, dom);
	static const uint8_t zero[4096];

	cr_assert_eq(hyp_gmem_write(d, SI_GPA, zero, sizeof(zero)), 0);
	cr_assert_eq(hyp_gmem_write(d, ARG_GPA, &x, sizeof(x)), 0);
	cr_assert_eq(hc(e, dom, __HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG_GPA, 0), 0);
}

static void env_up(struct env *e)
{
	struct hyp_dom_config c = harness_cfg("ea", 16, "workload=idle");

	e->h = harness_hyp("soft", 128);
	cr_assert_eq(hyp_domain_create(e->h, &c, true, &e->a), 0);
	snprintf(c.name, sizeof(c.name), "eb");
	cr_assert_eq(hyp_domain_create(e->h, &c, true, &e->b), 0);
	cr_assert_eq(hyp_domain_get(e->h, e->a, &e->da), 0);
	cr_assert_eq(hyp_domain_get(e->h, e->b, &e->db), 0);
	map_shared_info(e, e->a);
	map_shared_info(e, e->b);
}

static void env_down(struct env *e)
{
	if (e->da)
		hyp_domain_put(e->da);
	if (e->db)
		hyp_domain_put(e->db);
	hyp_destroy(e->h);
}

static struct shared_info si_of(struct env *e, uint32_t dom)
{
	struct shared_info si;

	cr_assert_eq(hyp_gmem_read(dom_of(e, dom), SI_GPA, &si, sizeof(si)), 0);
	return si;
}

static bool pending(struct env *e, uint32_t dom, uint32_t port)
{
	return si_of(e, dom).evtchn_pending[port / 64] >> (port % 64) & 1;
}

/* What a guest's handler does: clear the port's pending bit, the selector
 * and the upcall flag. */
static void guest_ack(struct env *e, uint32_t dom)
{
	struct shared_info si = si_of(e, dom);

	memset(si.evtchn_pending, 0, sizeof(si.evtchn_pending));
	si.vcpu_info[0].evtchn_pending_sel = 0;
	si.vcpu_info[0].evtchn_upcall_pending = 0;
	cr_assert_eq(hyp_gmem_write(dom_of(e, dom), SI_GPA, &si, sizeof(si)), 0);
}

static void guest_set_mask(struct env *e, uint32_t dom, uint32_t port, bool on)
{
	struct shared_info si = si_of(e, dom);

	if (on)
		si.evtchn_mask[port / 64] |= 1ULL << (port % 64);
	else
		si.evtchn_mask[port / 64] &= ~(1ULL << (port % 64));
	cr_assert_eq(hyp_gmem_write(dom_of(e, dom), SI_GPA, &si, sizeof(si)), 0);
}

static struct evtchn_status status(struct env *e, uint32_t dom, uint32_t port, int64_t *r)
{
	struct evtchn_status st = { .dom = DOMID_SELF, .port = port };

	*r = evop(e, dom, EVTCHNOP_status, &st, sizeof(st));
	return st;
}

/* A offers a port to B, B binds it: the usual frontend/backend handshake. */
static void connect(struct env *e, uint32_t *pa, uint32_t *pb)
{
	struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = (uint16_t)e->b };
	struct evtchn_bind_interdomain bi = { .remote_dom = (uint16_t)e->a };

	cr_assert_eq(evop(e, e->a, EVTCHNOP_alloc_unbound, &au, sizeof(au)), 0);
	cr_assert_neq(au.port, 0, "port 0 is never allocated");
	bi.remote_port = au.port;
	cr_assert_eq(evop(e, e->b, EVTCHNOP_bind_interdomain, &bi, sizeof(bi)), 0);
	*pa = au.port;
	*pb = bi.local_port;
}

static int64_t send(struct env *e, uint32_t dom, uint32_t port)
{
	struct evtchn_send s = { .port = port };

	return evop(e, dom, EVTCHNOP_send, &s, sizeof(s));
}

Test(evtchn, interdomain_send_sets_pending, .timeout = 30)
{
	struct env e = { 0 };
	struct evtchn_status st;
	struct shared_info si;
	uint32_t pa, pb;
	int64_t r;

	env_up(&e);
	connect(&e, &pa, &pb);
	st = status(&e, e.a, pa, &r);
	cr_assert_eq(r, 0);
	cr_expect_eq(st.status, EVTCHNSTAT_interdomain);
	cr_expect_eq(st.u.interdomain.dom, e.b);
	cr_expect_eq(st.u.interdomain.port, pb);
	st = status(&e, e.b, pb, &r);
	cr_expect_eq(st.status, EVTCHNSTAT_interdomain);
	cr_expect_eq(st.u.interdomain.dom, e.a);
	cr_expect_eq(st.u.interdomain.port, pa);
	/* Xen raises the binder's new port once. */
	cr_expect(pending(&e, e.b, pb));
	guest_ack(&e, e.b);

	cr_assert_eq(send(&e, e.a, pa), 0);
	si = si_of(&e, e.b);
	cr_expect(si.evtchn_pending[pb / 64] >> (pb % 64) & 1, "pending bit not set");
	cr_expect(si.vcpu_info[0].evtchn_pending_sel >> (pb / 64) & 1, "selector not set");
	cr_expect_eq(si.vcpu_info[0].evtchn_upcall_pending, 1);
	cr_expect_not(pending(&e, e.a, pa), "the sender's own bit was set");

	cr_assert_eq(send(&e, e.b, pb), 0);
	cr_expect(pending(&e, e.a, pa));
	/* shared_info writes are in the host-dirty bitmap (migration sees them). */
	{
		struct hyp_gmem g;
		uint64_t *bm;

		hyp_domain_gmem(e.db, &g);
		bm = calloc((g.npages + 63) / 64, 8);
		hyp_gmem_take_host_dirty(e.db, bm);
		cr_expect(bm[(SI_GPA >> 12) / 64] >> ((SI_GPA >> 12) % 64) & 1,
			  "shared_info page not marked dirty");
		free(bm);
	}
	env_down(&e);
}

Test(evtchn, mask_and_unmask, .timeout = 30)
{
	struct env e = { 0 };
	struct evtchn_unmask um;
	struct shared_info si;
	uint32_t pa, pb;

	env_up(&e);
	connect(&e, &pa, &pb);
	guest_ack(&e, e.b);
	guest_set_mask(&e, e.b, pb, true);
	cr_assert_eq(send(&e, e.a, pa), 0);
	si = si_of(&e, e.b);
	cr_expect(si.evtchn_pending[pb / 64] >> (pb % 64) & 1, "masked: still pending");
	cr_expect_eq(si.vcpu_info[0].evtchn_pending_sel, 0, "masked: no selector");
	cr_expect_eq(si.vcpu_info[0].evtchn_upcall_pending, 0, "masked: no upcall");

	um.port = pb;
	cr_assert_eq(evop(&e, e.b, EVTCHNOP_unmask, &um, sizeof(um)), 0);
	si = si_of(&e, e.b);
	cr_expect_not(si.evtchn_mask[pb / 64] >> (pb % 64) & 1, "unmask left the mask bit");
	cr_expect(si.vcpu_info[0].evtchn_pending_sel >> (pb / 64) & 1);
	cr_expect_eq(si.vcpu_info[0].evtchn_upcall_pending, 1, "unmask of a pending port");

	/* Unmask of a port with nothing pending raises nothing. */
	guest_ack(&e, e.b);
	guest_set_mask(&e, e.b, pb, true);
	cr_assert_eq(evop(&e, e.b, EVTCHNOP_unmask, &um, sizeof(um)), 0);
	si = si_of(&e, e.b);
	cr_expect_eq(si.vcpu_info[0].evtchn_upcall_pending, 0);
	um.port = 5000;
	cr_expect_eq(evop(&e, e.b, EVTCHNOP_unmask, &um, sizeof(um)), -XEN_EINVAL);
	env_down(&e);
}

Test(evtchn, close_makes_peer_unbound, .timeout = 30)
{
	struct env e = { 0 };
	struct evtchn_close cl;
	struct evtchn_bind_interdomain bi = { .remote_dom = (uint16_t)e.b };
	struct evtchn_status st;
	uint32_t pa, pb;
	int64_t r;

	env_up(&e);
	connect(&e, &pa, &pb);
	guest_ack(&e, e.b);
	cl.port = pa;
	cr_assert_eq(evop(&e, e.a, EVTCHNOP_close, &cl, sizeof(cl)), 0);
	st = status(&e, e.a, pa, &r);
	cr_expect_eq(st.status, EVTCHNSTAT_closed);
	st = status(&e, e.b, pb, &r);
	cr_expect_eq(st.status, EVTCHNSTAT_unbound, "peer is %u", st.status);
	cr_expect_eq(st.u.unbound.dom, e.a, "the unbound peer accepts the closer");
	/* Sending on an unbound port is dropped silently. */
	cr_expect_eq(send(&e, e.b, pb), 0);
	cr_expect_not(pending(&e, e.b, pb));
	cr_expect_eq(send(&e, e.a, pa), -XEN_EINVAL, "send on a closed port");
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_close, &cl, sizeof(cl)), -XEN_EINVAL,
		     "double close");
	/* A may bind B's now-unbound port again. */
	bi.remote_dom = (uint16_t)e.b;
	bi.remote_port = pb;
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_bind_interdomain, &bi, sizeof(bi)), 0);
	st = status(&e, e.b, pb, &r);
	cr_expect_eq(st.status, EVTCHNSTAT_interdomain);
	cr_expect_eq(st.u.interdomain.port, bi.local_port);

	/* Destroying A leaves B's end unbound. */
	hyp_domain_put(e.da);
	e.da = NULL;
	cr_assert_eq(hyp_domain_destroy(e.h, e.a), 0);
	cr_expect_eq(evtchn_port_state(e.db, pb), EVTCHNSTAT_unbound);
	env_down(&e);
}

Test(evtchn, errors, .timeout = 30)
{
	struct env e = { 0 };
	struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = 0x100 };
	struct evtchn_bind_interdomain bi;
	struct evtchn_bind_virq bv;
	struct evtchn_bind_ipi ip = { .vcpu = 3 };
	struct evtchn_close cl = { .port = 0 };
	struct evtchn_status st = { .dom = DOMID_SELF, .port = 4096 };
	uint32_t pa, pb;

	env_up(&e);
	cr_expect_eq(send(&e, e.a, 4096), -XEN_EINVAL);
	cr_expect_eq(send(&e, e.a, 0xffffffffu), -XEN_EINVAL);
	cr_expect_eq(send(&e, e.a, 0), -XEN_EINVAL, "port 0 is reserved");
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_close, &cl, sizeof(cl)), -XEN_EINVAL);
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_status, &st, sizeof(st)), -XEN_EINVAL);
	st.port = 1;
	st.dom = (uint16_t)e.b;
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_status, &st, sizeof(st)), -XEN_EPERM,
		     "status of another domain");
	st.dom = 999;
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_status, &st, sizeof(st)), -XEN_ESRCH);
	au.dom = (uint16_t)e.b;
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_alloc_unbound, &au, sizeof(au)), -XEN_EPERM,
		     "allocating in another domain");

	/* Binding: only a port unbound for the binder. */
	connect(&e, &pa, &pb);
	bi = (struct evtchn_bind_interdomain){ .remote_dom = 999, .remote_port = pa };
	cr_expect_eq(evop(&e, e.b, EVTCHNOP_bind_interdomain, &bi, sizeof(bi)), -XEN_ESRCH);
	bi.remote_dom = (uint16_t)e.a;
	cr_expect_eq(evop(&e, e.b, EVTCHNOP_bind_interdomain, &bi, sizeof(bi)), -XEN_EINVAL,
		     "bound twice");
	bi.remote_port = 4000;
	cr_expect_eq(evop(&e, e.b, EVTCHNOP_bind_interdomain, &bi, sizeof(bi)), -XEN_EINVAL);
	au = (struct evtchn_alloc_unbound){ .dom = DOMID_SELF, .remote_dom = (uint16_t)e.a };
	cr_assert_eq(evop(&e, e.a, EVTCHNOP_alloc_unbound, &au, sizeof(au)), 0);
	bi.remote_port = au.port;
	cr_expect_eq(evop(&e, e.b, EVTCHNOP_bind_interdomain, &bi, sizeof(bi)), -XEN_EINVAL,
		     "bound a port offered to someone else");

	/* VIRQs and IPIs. */
	bv = (struct evtchn_bind_virq){ .virq = NR_VIRQS, .vcpu = 0 };
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_bind_virq, &bv, sizeof(bv)), -XEN_EINVAL);
	bv = (struct evtchn_bind_virq){ .virq = VIRQ_CONSOLE, .vcpu = 1 };
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_bind_virq, &bv, sizeof(bv)), -XEN_EINVAL,
		     "global VIRQ on vCPU 1");
	bv = (struct evtchn_bind_virq){ .virq = VIRQ_TIMER, .vcpu = 7 };
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_bind_virq, &bv, sizeof(bv)), -XEN_ENOENT);
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_bind_ipi, &ip, sizeof(ip)), -XEN_ENOENT);
	bv = (struct evtchn_bind_virq){ .virq = VIRQ_CONSOLE, .vcpu = 0 };
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_bind_virq, &bv, sizeof(bv)), 0);
	cr_expect_eq(send(&e, e.a, bv.port), -XEN_EINVAL, "send on a VIRQ port");
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_bind_virq, &bv, sizeof(bv)), -XEN_EEXIST);

	/* Guest pointers outside RAM, unknown commands. */
	cr_expect_eq(hc(&e, e.a, __HYPERVISOR_event_channel_op, EVTCHNOP_send, 16ULL << 20, 0),
		     -XEN_EFAULT);
	cr_expect_eq(hc(&e, e.a, __HYPERVISOR_event_channel_op, EVTCHNOP_status, ~0ULL - 3, 0),
		     -XEN_EFAULT);
	cr_expect_eq(hc(&e, e.a, __HYPERVISOR_event_channel_op, 77, ARG_GPA, 0), -XEN_ENOSYS);
	cr_expect_eq(hc(&e, e.a, __HYPERVISOR_event_channel_op, EVTCHNOP_bind_pirq, ARG_GPA, 0),
		     -XEN_ENOSYS);
	env_down(&e);
}

Test(evtchn, port_exhaustion, .timeout = 30)
{
	struct env e = { 0 };
	struct evtchn_alloc_unbound au = { .dom = DOMID_SELF, .remote_dom = DOMID_SELF };
	unsigned n = 0;
	int64_t r;

	env_up(&e);
	while ((r = evop(&e, e.a, EVTCHNOP_alloc_unbound, &au, sizeof(au))) == 0) {
		cr_assert_lt(au.port, EVTCHN_2L_NR_CHANNELS);
		n++;
	}
	cr_expect_eq(r, -XEN_ENOSPC);
	/* Ports 1..4095, less the two ferryd gives every domain for its PV
	 * console and xenstore rings (hyp/pv.h). */
	cr_expect_eq(n, EVTCHN_2L_NR_CHANNELS - 3, "ports 3..4095, got %u", n);
	env_down(&e);
}

Test(evtchn, virq_timer_and_ipi, .timeout = 30)
{
	struct env e = { 0 };
	struct evtchn_bind_virq bv = { .virq = VIRQ_TIMER, .vcpu = 0 };
	struct evtchn_bind_ipi ip = { .vcpu = 0 };
	struct evtchn_bind_vcpu bvc;
	struct evtchn_status st;
	int64_t r;

	env_up(&e);
	cr_assert_eq(evop(&e, e.a, EVTCHNOP_bind_virq, &bv, sizeof(bv)), 0);
	st = status(&e, e.a, bv.port, &r);
	cr_expect_eq(st.status, EVTCHNSTAT_virq);
	cr_expect_eq(st.u.virq, VIRQ_TIMER);
	/* A deadline far ahead does not fire; one in the past does, once. */
	cr_assert_eq(hc(&e, e.a, __HYPERVISOR_set_timer_op, ~0ULL >> 1, 0, 0), 0);
	cr_expect_not(pending(&e, e.a, bv.port));
	cr_assert_eq(hc(&e, e.a, __HYPERVISOR_set_timer_op, 1, 0, 0), 0);
	cr_expect(pending(&e, e.a, bv.port), "VIRQ_TIMER not raised");
	cr_expect_eq(si_of(&e, e.a).vcpu_info[0].evtchn_upcall_pending, 1);
	/* Per-vCPU VIRQs cannot move. */
	bvc = (struct evtchn_bind_vcpu){ .port = bv.port, .vcpu = 0 };
	cr_expect_eq(evop(&e, e.a, EVTCHNOP_bind_vcpu, &bvc, sizeof(bvc)), -XEN_EINVAL);
	/* Closing clears the pending bit. */
	{
		struct evtchn_close cl = { .port = bv.port };

		cr_assert_eq(evop(&e, e.a, EVTCHNOP_close, &cl, sizeof(cl)), 0);
		cr_expect_not(pending(&e, e.a, bv.port));
	}

	guest_ack(&e, e.a);
	cr_assert_eq(evop(&e, e.a, EVTCHNOP_bind_ipi, &ip, sizeof(ip)), 0);
	st = status(&e, e.a, ip.port, &r);
	cr_expect_eq(st.status, EVTCHNSTAT_ipi);
	cr_assert_eq(send(&e, e.a, ip.port), 0);
	cr_expect(pending(&e, e.a, ip.port));
	/* SCHEDOP_block with an event pending returns at once. */
	cr_expect_eq(hc(&e, e.a, __HYPERVISOR_sched_op, SCHEDOP_block, 0, 0), 0);
	env_down(&e);
}

struct backend_log {
	int calls;
	uint32_t domid, port;
};

static void backend_fn(void *opaque, uint32_t domid, uint32_t port)
{
	struct backend_log *l = opaque;

	l->calls++;
	l->domid = domid;
	l->port = port;
}

Test(evtchn, ferryd_backend_port, .timeout = 30)
{
	struct env e = { 0 };
	struct backend_log log = { 0 };
	struct evtchn_status st;
	uint32_t port;
	int64_t r;

	env_up(&e);
	cr_assert_eq(evtchn_alloc_unbound_for(e.da, EVTCHN_DOMID_FERRYD, &port), 0);
	st = status(&e, e.a, port, &r);
	cr_expect_eq(st.status, EVTCHNSTAT_unbound);
	cr_expect_eq(st.u.unbound.dom, 0);
	cr_expect_eq(evtchn_notify(e.da, port), -EINVAL, "notify before bind");
	cr_assert_eq(evtchn_bind_backend(e.da, port, backend_fn, &log), 0);
	cr_expect_eq(evtchn_port_state(e.da, port), EVTCHNSTAT_interdomain);
	cr_expect_eq(evtchn_bind_backend(e.da, port, backend_fn, &log), -EINVAL);
	guest_ack(&e, e.a);

	cr_assert_eq(send(&e, e.a, port), 0);
	cr_expect_eq(log.calls, 1);
	cr_expect_eq(log.domid, e.a);
	cr_expect_eq(log.port, port);
	cr_assert_eq(evtchn_notify(e.da, port), 0);
	cr_expect(pending(&e, e.a, port));
	cr_expect_eq(evtchn_notify(e.da, 9999), -EINVAL);
	/* B cannot bind a port offered to ferryd. */
	{
		struct evtchn_bind_interdomain bi = { .remote_dom = (uint16_t)e.a };

		bi.remote_port = port;
		cr_expect_eq(evop(&e, e.b, EVTCHNOP_bind_interdomain, &bi, sizeof(bi)),
			     -XEN_EINVAL);
	}
	cr_assert_eq(evtchn_unbind_backend(e.da, port), 0);
	cr_expect_eq(evtchn_port_state(e.da, port), EVTCHNSTAT_unbound);
	cr_expect_eq(send(&e, e.a, port), 0);
	cr_expect_eq(log.calls, 1, "called after unbind");
	cr_expect_eq(evtchn_notify(e.da, port), -EINVAL);
	cr_expect_eq(evtchn_port_state(e.da, 4096), -EINVAL);
	env_down(&e);
}

/* kvm: the upcall injects the registered vector as an MSI; a guest that
 * never enabled its LAPIC for it must keep running. */
Test(evtchn, kvm_upcall_is_harmless, .timeout = 60)
{
	harness_need_backend("kvm");
	struct hyp *h = harness_hyp("kvm", 256);
	struct hyp_dom_config c = harness_cfg("k", 64, "workload=idle");
	struct xen_hvm_param p = {
		.domid = DOMID_SELF, .index = HVM_PARAM_CALLBACK_IRQ,
		.value = (uint64_t)HVM_PARAM_CALLBACK_TYPE_VECTOR << HVM_PARAM_CALLBACK_TYPE_SHIFT |
			 0xf3,
	};
	struct evtchn_bind_ipi ip = { .vcpu = 0 };
	struct evtchn_send s;
	struct hyp_dom_info di;
	struct hyp_domain *d;
	uint64_t args[5] = { 0 };
	uint64_t arg = (48u << 20); /* unused by the idle workload */
	uint32_t id;

	cr_assert_eq(hyp_domain_create(h, &c, false, &id), 0);
	cr_assert(harness_wait_console(h, id, "ferry-guest: booted", 1, 20),
		  "no boot; console:\n%s", harness_console(h, id));
	cr_assert_eq(hyp_domain_get(h, id, &d), 0);
	cr_assert_eq(hyp_gmem_write(d, arg, &p, sizeof(p)), 0);
	args[0] = HVMOP_set_param;
	args[1] = arg;
	cr_assert_eq(hyp_test_hypercall(h, id, 0, __HYPERVISOR_hvm_op, args), 0);
	cr_assert_eq(hyp_gmem_write(d, arg, &ip, sizeof(ip)), 0);
	args[0] = EVTCHNOP_bind_ipi;
	cr_assert_eq(hyp_test_hypercall(h, id, 0, __HYPERVISOR_event_channel_op, args), 0);
	cr_assert_eq(hyp_gmem_read(d, arg, &ip, sizeof(ip)), 0);
	for (int i = 0; i < 50; i++) {
		static const uint64_t zero[64];

		/* Clear what the guest does not handle so each send upcalls
		 * (field by field: kvmclock owns the time records). */
		cr_assert_eq(hyp_gmem_write(d, FERRY_SHARED_INFO_GPA, zero, 1), 0);
		cr_assert_eq(hyp_gmem_write(d, FERRY_SHARED_INFO_GPA +
						       offsetof(struct vcpu_info, evtchn_pending_sel),
					    zero, 8), 0);
		cr_assert_eq(hyp_gmem_write(d, FERRY_SHARED_INFO_GPA +
						       offsetof(struct shared_info, evtchn_pending),
					    zero, sizeof(zero)), 0);
		s.port = ip.port;
		cr_assert_eq(hyp_gmem_write(d, arg, &s, sizeof(s)), 0);
		args[0] = EVTCHNOP_send;
		cr_assert_eq(hyp_test_hypercall(h, id, 0, __HYPERVISOR_event_channel_op, args), 0);
	}
	usleep(300000);
	cr_assert_eq(hyp_domain_info(h, id, &di), 0);
	cr_expect(di.state == HYP_DOM_RUNNING || di.state == HYP_DOM_BLOCKED,
		  "state %s after upcalls; console:\n%s", hyp_state_name(di.state),
		  harness_console(h, id));
	hyp_domain_put(d);
	cr_assert_eq(hyp_domain_destroy(h, id), 0);
	hyp_destroy(h);
}
