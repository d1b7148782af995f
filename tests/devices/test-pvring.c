// SPDX-License-Identifier: MIT
/*
 * The PV console and xenstore rings (hyp/pv.h, devices/) on a soft
 * domain: the test plays the guest, writing into the ring pages in guest
 * memory and sending on the ports through hyp_test_hypercall, as a guest's
 * doorbell would. The soft backend's own guest uses the same rings once
 * it runs (Xen's hypercall ABI): the last test lets it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>

#include "harness.h"
#include "abi/guest.h"
#include "devices/xs-ring.h"
#include "hyp/evtchn.h"
#include "hyp/gmem.h"
#include "hyp/pv.h"
#include "hyp/sched.h"
#include "xenstore/xenstore.h"

#define ARG_GPA 0x500000u
#define SI_GPA FERRY_SHARED_INFO_GPA
#define CON(f) (FERRY_CONSOLE_GPA + offsetof(struct xencons_interface, f))
#define XS(f) (FERRY_XENSTORE_GPA + offsetof(struct xenstore_domain_interface, f))

static struct hyp *h;
static uint32_t domid;
static struct hyp_domain *d;
static uint32_t con_port, xs_port;
static int kicks;

static int64_t hc(uint64_t nr, uint64_t a0, uint64_t a1)
{
	const uint64_t args[5] = { a0, a1, 0, 0, 0 };

	return hyp_test_hypercall(h, domid, 0, nr, args);
}

static uint32_t rd32(uint64_t gpa)
{
	uint32_t v;

	cr_assert_eq(hyp_gmem_read(d, gpa, &v, 4), 0);
	return v;
}

static void wr32(uint64_t gpa, uint32_t v)
{
	cr_assert_eq(hyp_gmem_write(d, gpa, &v, 4), 0);
}

static int64_t get_param(uint32_t index, uint64_t *value)
{
	struct xen_hvm_param p = { .domid = DOMID_SELF, .index = index };
	int64_t r;

	cr_assert_eq(hyp_gmem_write(d, ARG_GPA, &p, sizeof(p)), 0);
	r = hc(__HYPERVISOR_hvm_op, HVMOP_get_param, ARG_GPA);
	cr_assert_eq(hyp_gmem_read(d, ARG_GPA, &p, sizeof(p)), 0);
	*value = p.value;
	return r;
}

static void send(uint32_t port)
{
	struct evtchn_send s = { .port = port };

	cr_assert_eq(hyp_gmem_write(d, ARG_GPA, &s, sizeof(s)), 0);
	cr_assert_eq(hc(__HYPERVISOR_event_channel_op, EVTCHNOP_send, ARG_GPA), 0);
}

static bool pending(uint32_t port)
{
	struct shared_info si;

	cr_assert_eq(hyp_gmem_read(d, SI_GPA, &si, sizeof(si)), 0);
	return si.evtchn_pending[port / 64] >> (port % 64) & 1;
}

static void ack(uint32_t port)
{
	struct shared_info si;

	cr_assert_eq(hyp_gmem_read(d, SI_GPA, &si, sizeof(si)), 0);
	si.evtchn_pending[port / 64] &= ~(1ULL << (port % 64));
	si.vcpu_info[0].evtchn_pending_sel = 0;
	si.vcpu_info[0].evtchn_upcall_pending = 0;
	cr_assert_eq(hyp_gmem_write(d, SI_GPA, &si, sizeof(si)), 0);
}

static void kick(void *opaque, uint32_t id)
{
	(void)opaque;
	if (id == domid)
		__atomic_add_fetch(&kicks, 1, __ATOMIC_SEQ_CST);
}

/* What hyp_events.console delivered, in order. */
static char ev_out[2 << 20];
static size_t ev_len;

static void on_console(void *opaque, uint32_t id, const char *buf, size_t len)
{
	(void)opaque;
	if (id != domid || len > sizeof(ev_out) - ev_len)
		return;
	memcpy(ev_out + ev_len, buf, len);
	ev_len += len;
}

static void setup(void)
{
	struct hyp_params hp = {
		.backend = "soft",
		.memory_bytes = 64ULL << 20,
		.soft_guest = &wl_soft_guest_ops,
		.events = { .console = on_console },
		.pv_backend = &dev_pv_backend_ops,
		.pv_backend_opaque = harness_pv(),
	};
	struct hyp_dom_config c = harness_cfg("pv", 16, "workload=idle");
	struct xen_add_to_physmap x = {
		.domid = DOMID_SELF, .space = XENMAPSPACE_shared_info, .gpfn = SI_GPA >> 12,
	};
	static const uint8_t zero[4096];

	ev_len = 0;
	cr_assert_eq(hyp_create(&hp, &h), 0);
	dev_pv_set_xs_kick(harness_pv(), kick, NULL);
	cr_assert_eq(hyp_domain_create(h, &c, true, &domid), 0);
	cr_assert_eq(hyp_domain_get(h, domid, &d), 0);
	cr_assert_eq(hyp_gmem_write(d, SI_GPA, zero, sizeof(zero)), 0);
	cr_assert_eq(hyp_gmem_write(d, ARG_GPA, &x, sizeof(x)), 0);
	cr_assert_eq(hc(__HYPERVISOR_memory_op, XENMEM_add_to_physmap, ARG_GPA), 0);
	cr_assert_eq(hyp_pv_ports(h, domid, &con_port, &xs_port), 0);
	kicks = 0;
}

static void teardown(void)
{
	if (d)
		hyp_domain_put(d);
	d = NULL;
	dev_pv_set_xs_kick(harness_pv(), NULL, NULL);
	hyp_destroy(h);
	h = NULL;
}

TestSuite(pvring, .init = setup, .fini = teardown, .timeout = 60);

Test(pvring, params_and_ports)
{
	uint64_t v;
	struct xen_hvm_param p = { .domid = DOMID_SELF, .index = HVM_PARAM_STORE_PFN, .value = 7 };

	cr_assert_eq(get_param(HVM_PARAM_STORE_PFN, &v), 0);
	cr_assert_eq(v, FERRY_XENSTORE_GPA >> 12);
	cr_assert_eq(get_param(HVM_PARAM_CONSOLE_PFN, &v), 0);
	cr_assert_eq(v, FERRY_CONSOLE_GPA >> 12);
	cr_assert_eq(get_param(HVM_PARAM_CONSOLE_EVTCHN, &v), 0);
	cr_assert_eq(v, con_port);
	cr_assert_eq(get_param(HVM_PARAM_STORE_EVTCHN, &v), 0);
	cr_assert_eq(v, xs_port);
	cr_assert(con_port && xs_port && con_port != xs_port);
	cr_assert_eq(evtchn_port_state(d, con_port), EVTCHNSTAT_interdomain);
	cr_assert_eq(evtchn_port_state(d, xs_port), EVTCHNSTAT_interdomain);
	/* The guest reads them; only ferryd sets them. */
	cr_assert_eq(hyp_gmem_write(d, ARG_GPA, &p, sizeof(p)), 0);
	cr_assert_eq(hc(__HYPERVISOR_hvm_op, HVMOP_set_param, ARG_GPA), -XEN_EPERM);
	cr_assert_eq(get_param(3, &v), -XEN_EINVAL);
	/* The callback param still works. */
	cr_assert_eq(get_param(HVM_PARAM_CALLBACK_IRQ, &v), 0);
}

/* The guest's side of console output: bytes into out[], out_prod, send. */
static void guest_con_write(const char *s)
{
	uint32_t prod = rd32(CON(out_prod));
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		cr_assert_eq(hyp_gmem_write(d, CON(out) + ((prod + i) & 2047), s + i, 1), 0);
	wr32(CON(out_prod), prod + (uint32_t)n);
	send(con_port);
}

Test(pvring, console_output)
{
	ack(con_port);
	guest_con_write("hello from the ring\n");
	cr_assert(strstr(harness_console(h, domid), "hello from the ring\n"));
	cr_assert_eq(rd32(CON(out_cons)), rd32(CON(out_prod)));
	cr_assert(pending(con_port), "ferryd notifies after consuming");

	/* Wrapping at 2048, and the hypercall console still works. */
	wr32(CON(out_cons), 2040);
	wr32(CON(out_prod), 2040);
	guest_con_write("across the end of out[]|");
	cr_assert(strstr(harness_console(h, domid), "across the end of out[]|"));
	cr_assert_eq(rd32(CON(out_cons)), 2040 + 24);
	cr_assert_eq(hyp_gmem_write(d, ARG_GPA, "hc!", 3), 0);
	cr_assert_eq(hyp_test_hypercall(h, domid, 0, __HYPERVISOR_console_io,
					(const uint64_t[5]){ CONSOLEIO_write, 3, ARG_GPA }),
		     3);
	cr_assert(strstr(harness_console(h, domid), "hc!"));

	/* Corrupt indices are resynchronised, not trusted. */
	wr32(CON(out_prod), rd32(CON(out_cons)) + 100000);
	send(con_port);
	cr_assert_eq(rd32(CON(out_cons)), rd32(CON(out_prod)));
}

Test(pvring, console_input)
{
	char buf[16] = { 0 };

	/* Paused: held until the guest notifies. */
	ack(con_port);
	cr_assert_eq(dev_console_input(h, domid, "ls -l\r", 6), 0);
	cr_assert_eq(rd32(CON(in_prod)), 0);
	send(con_port);
	cr_assert_eq(rd32(CON(in_prod)), 6);
	cr_assert_eq(hyp_gmem_read(d, CON(in), buf, 6), 0);
	cr_assert_str_eq(buf, "ls -l\r");
	cr_assert(pending(con_port));

	/* A full in[]: the rest waits until the guest consumes. */
	{
		char big[1500];

		memset(big, 'x', sizeof(big));
		cr_assert_eq(dev_console_input(h, domid, big, sizeof(big)), 0);
		send(con_port);
		cr_assert_eq(rd32(CON(in_prod)) - rd32(CON(in_cons)), 1024);
		wr32(CON(in_cons), rd32(CON(in_prod)));
		send(con_port);
		cr_assert_eq(rd32(CON(in_prod)), 6 + 1500);
	}

	/* Running: the poll (or the call itself) delivers without a notify.
	 * In a cpupool without pCPUs, so the soft guest, which would use
	 * these rings too, never runs and the test stays the only guest. */
	cr_assert_eq(sched_pool_create(h, "nocpus", "credit2", 0), 0);
	cr_assert_eq(sched_pool_migrate(h, domid, "nocpus"), 0);
	cr_assert_eq(hyp_domain_unpause(h, domid), 0);
	cr_assert_eq(dev_console_input(h, domid, "q", 1), 0);
	for (int i = 0; i < 100 && rd32(CON(in_prod)) != 6 + 1500 + 1; i++)
		usleep(10000);
	cr_assert_eq(rd32(CON(in_prod)), 6 + 1500 + 1);
	/* Output without a notify: the 50 ms poll picks it up. */
	{
		uint32_t prod = rd32(CON(out_prod));

		cr_assert_eq(hyp_gmem_write(d, CON(out) + (prod & 2047), "P", 1), 0);
		wr32(CON(out_prod), prod + 1);
		for (int i = 0; i < 100 && rd32(CON(out_cons)) != prod + 1; i++)
			usleep(10000);
		cr_assert_eq(rd32(CON(out_cons)), prod + 1);
	}
	cr_assert_eq(hyp_domain_pause(h, domid), 0);
}

/* The soft guest itself: Xen's ABI on its vCPU thread, the console ring
 * for its output, no xenstore behind the ring (given up), console input
 * woken by the event channel. */
Test(pvring, the_soft_guest_uses_the_rings)
{
	char line[96];

	cr_assert_eq(hyp_domain_unpause(h, domid), 0);
	snprintf(line, sizeof(line), "pv: console=ring port=%u xenstore=none port=%u domid=0\n",
		 con_port, xs_port);
	cr_assert(harness_wait_console(h, domid, line, 1, 30), "%s", harness_console(h, domid));
	cr_assert(harness_wait_console(h, domid, "workload: idle", 1, 30));
	cr_assert_eq(dev_console_input(h, domid, "hi there\r", 9), 0);
	cr_assert(harness_wait_console(h, domid, "console: input 'hi there'\n", 1, 30), "%s",
		  harness_console(h, domid));
	cr_assert(harness_wait_console(h, domid, "idle: heartbeat n=1\n", 1, 30));
	/* Everything went through the ring: out_cons caught up. */
	cr_assert_eq(hyp_domain_pause(h, domid), 0);
	cr_assert_eq(rd32(CON(out_cons)), rd32(CON(out_prod)));
	cr_assert_gt(rd32(CON(out_prod)), 0);
}

/* ---- xenstore ----------------------------------------------------------- */

static struct xs_store *store;
static struct dev_xs_ring *ring;

static void xs_up(void)
{
	cr_assert_eq(xs_store_new(NULL, &store), 0);
	cr_assert_eq(xs_domain_create(store, domid, "pv", 16384), 0);
	cr_assert_eq(dev_xs_ring_new(h, domid, store, &ring), 0);
	cr_assert_eq(rd32(XS(server_features)), XENSTORE_SERVER_FEATURE_ERROR);
}

static void xs_down(void)
{
	dev_xs_ring_free(ring);
	cr_assert_eq(xs_store_check(store), 0);
	xs_store_free(store);
}

/* One request into req[] (payload parts joined), then send. */
static void guest_xs_req(uint32_t type, uint32_t req_id, const char *payload, size_t len)
{
	struct xs_msg_hdr hdr = { .type = type, .req_id = req_id, .len = (uint32_t)len };
	char msg[256];
	uint32_t prod = rd32(XS(req_prod));

	cr_assert(sizeof(hdr) + len <= sizeof(msg));
	memcpy(msg, &hdr, sizeof(hdr));
	memcpy(msg + sizeof(hdr), payload, len);
	for (size_t i = 0; i < sizeof(hdr) + len; i++)
		cr_assert_eq(hyp_gmem_write(d, XS(req) + ((prod + i) & 1023), msg + i, 1), 0);
	wr32(XS(req_prod), prod + (uint32_t)(sizeof(hdr) + len));
	send(xs_port);
}

/* Takes one message out of rsp[]; false when none is complete. */
static bool guest_xs_rsp(struct xs_msg_hdr *hdr, char *payload, size_t max)
{
	uint32_t cons = rd32(XS(rsp_cons)), prod = rd32(XS(rsp_prod));
	char b[sizeof(*hdr)];

	if (prod - cons < sizeof(*hdr))
		return false;
	for (size_t i = 0; i < sizeof(*hdr); i++)
		cr_assert_eq(hyp_gmem_read(d, XS(rsp) + ((cons + i) & 1023), b + i, 1), 0);
	memcpy(hdr, b, sizeof(*hdr));
	if (prod - cons < sizeof(*hdr) + hdr->len)
		return false;
	cr_assert(hdr->len < max);
	for (size_t i = 0; i < hdr->len; i++)
		cr_assert_eq(hyp_gmem_read(d, XS(rsp) + ((cons + 16 + i) & 1023), payload + i, 1),
			     0);
	payload[hdr->len] = 0;
	wr32(XS(rsp_cons), cons + 16 + hdr->len);
	return true;
}

Test(pvring, xenstore_requests_and_watches)
{
	struct xs_msg_hdr hdr;
	char p[4200];
	int k0;

	xs_up();
	ack(xs_port);
	k0 = kicks;
	guest_xs_req(XS_READ, 7, "name", 5);
	cr_assert_eq(kicks, k0 + 1, "the guest's notify kicks the store's owner");
	cr_assert_eq(dev_xs_ring_service(ring), 0);
	cr_assert_eq(rd32(XS(req_cons)), rd32(XS(req_prod)));
	cr_assert(pending(xs_port));
	cr_assert(guest_xs_rsp(&hdr, p, sizeof(p)));
	cr_assert_eq(hdr.type, XS_READ);
	cr_assert_eq(hdr.req_id, 7);
	cr_assert_eq(hdr.len, 2);
	cr_assert_eq(memcmp(p, "pv", 2), 0);

	/* Absolute path the guest may not read: EACCES, as Xen says it. */
	guest_xs_req(XS_READ, 8, "/tool", 6);
	cr_assert_eq(dev_xs_ring_service(ring), 0);
	cr_assert(guest_xs_rsp(&hdr, p, sizeof(p)));
	cr_assert_eq(hdr.type, XS_ERROR);
	cr_assert_str_eq(p, "EACCES");

	/* A watch: OK, then the initial event, then one per change. */
	guest_xs_req(XS_WATCH, 9, "control/shutdown\0tok\0", 21);
	cr_assert_eq(dev_xs_ring_service(ring), 0);
	cr_assert(guest_xs_rsp(&hdr, p, sizeof(p)));
	cr_assert_eq(hdr.type, XS_WATCH);
	cr_assert_str_eq(p, "OK");
	cr_assert(guest_xs_rsp(&hdr, p, sizeof(p)));
	cr_assert_eq(hdr.type, XS_WATCH_EVENT);
	cr_assert_str_eq(p, "control/shutdown");
	cr_assert_str_eq(p + strlen(p) + 1, "tok");

	ack(xs_port);
	{
		char path[64];

		snprintf(path, sizeof(path), "/local/domain/%u/control/shutdown", domid);
		cr_assert_eq(xs_write(store, path, "poweroff", 8), 0);
	}
	cr_assert(pending(xs_port), "an event is notified when written");
	cr_assert(guest_xs_rsp(&hdr, p, sizeof(p)));
	cr_assert_eq(hdr.type, XS_WATCH_EVENT);
	cr_assert_str_eq(p, "control/shutdown");

	/* The guest writes its own node and reads it back in two requests
	 * sent together. */
	guest_xs_req(XS_WRITE, 10, "data/x\0hello", 12);
	guest_xs_req(XS_READ, 11, "data/x", 7);
	cr_assert_eq(dev_xs_ring_service(ring), 0);
	cr_assert(guest_xs_rsp(&hdr, p, sizeof(p)));
	cr_assert_eq(hdr.req_id, 10);
	cr_assert_eq(hdr.type, XS_WRITE);
	cr_assert(guest_xs_rsp(&hdr, p, sizeof(p)));
	cr_assert_eq(hdr.req_id, 11);
	cr_assert_str_eq(p, "hello");
	xs_down();
}

Test(pvring, xenstore_full_rsp_queues)
{
	struct xs_msg_hdr hdr;
	char p[4200], big[3000], path[64];
	static char acc[8192];
	size_t have = 0;
	unsigned events = 0;

	xs_up();
	memset(big, 'v', sizeof(big));
	snprintf(path, sizeof(path), "/local/domain/%u/data/big", domid);
	cr_assert_eq(xs_write(store, path, big, sizeof(big)), 0);
	guest_xs_req(XS_WATCH, 1, "data\0w\0", 7);
	cr_assert_eq(dev_xs_ring_service(ring), 0);
	/* Replies over 1024 bytes: the first part now, the rest as the
	 * guest consumes; requests behind it wait in req[]. */
	guest_xs_req(XS_READ, 2, "data/big", 9);
	guest_xs_req(XS_READ, 3, "name", 5);
	cr_assert_eq(dev_xs_ring_service(ring), 0);
	cr_assert(guest_xs_rsp(&hdr, p, sizeof(p))); /* watch OK */
	cr_assert(guest_xs_rsp(&hdr, p, sizeof(p))); /* initial event */
	cr_assert_eq(hdr.type, XS_WATCH_EVENT);
	/* The guest drains what is there (keeping partial messages aside)
	 * and notifies, until both replies are in. */
	for (int i = 0; i < 20 && have < 16 + sizeof(big) + 16 + 2; i++) {
		uint32_t c = rd32(XS(rsp_cons)), pr = rd32(XS(rsp_prod));

		cr_assert(pr - c <= 1024);
		for (uint32_t j = c; j != pr; j++)
			cr_assert_eq(hyp_gmem_read(d, XS(rsp) + (j & 1023), acc + have++, 1), 0);
		wr32(XS(rsp_cons), pr);
		send(xs_port);
		cr_assert_eq(dev_xs_ring_service(ring), 0);
	}
	cr_assert_eq(have, 16 + sizeof(big) + 16 + 2, "have %zu", have);
	memcpy(&hdr, acc, 16);
	cr_assert_eq(hdr.req_id, 2);
	cr_assert_eq(hdr.len, sizeof(big));
	cr_assert_eq(memcmp(acc + 16, big, sizeof(big)), 0);
	memcpy(&hdr, acc + 16 + sizeof(big), 16);
	cr_assert_eq(hdr.req_id, 3);
	cr_assert_eq(memcmp(acc + 32 + sizeof(big), "pv", 2), 0);

	/* Many events while the guest reads nothing: queued, then all
	 * delivered in order once it does. */
	for (int i = 0; i < 100; i++) {
		char sub[80];

		snprintf(sub, sizeof(sub), "/local/domain/%u/data/n%d", domid, i);
		cr_assert_eq(xs_write(store, sub, "1", 1), 0);
	}
	for (int i = 0; i < 200; i++) {
		while (guest_xs_rsp(&hdr, p, sizeof(p))) {
			char want[32];

			cr_assert_eq(hdr.type, XS_WATCH_EVENT);
			snprintf(want, sizeof(want), "data/n%u", events);
			cr_assert_str_eq(p, want);
			events++;
		}
		if (events == 100)
			break;
		cr_assert_eq(dev_xs_ring_service(ring), 0);
	}
	cr_assert_eq(events, 100);
	xs_down();
}

Test(pvring, xenstore_broken_ring)
{
	xs_up();
	wr32(XS(req_prod), rd32(XS(req_cons)) + 5000);
	send(xs_port);
	cr_assert_eq(dev_xs_ring_service(ring), -EPIPE);
	cr_assert_eq(rd32(XS(error)), XENSTORE_ERROR_RINGIDX);
	xs_down();
}

Test(pvring, xenstore_oversized_message)
{
	struct xs_msg_hdr hdr = { .type = XS_WRITE, .req_id = 1, .len = 5000 };

	xs_up();
	cr_assert_eq(hyp_gmem_write(d, XS(req), &hdr, sizeof(hdr)), 0);
	wr32(XS(req_prod), 16);
	send(xs_port);
	cr_assert_eq(dev_xs_ring_service(ring), -EPIPE);
	cr_assert_eq(rd32(XS(error)), XENSTORE_ERROR_PROTO);
	xs_down();
}

Test(pvring, destroy_with_ring_attached)
{
	xs_up();
	hyp_domain_put(d);
	d = NULL;
	cr_assert_eq(hyp_domain_destroy(h, domid), 0);
	cr_assert_eq(dev_xs_ring_service(ring), -EPIPE);
	xs_down();
}

/* Occurrences of needle in the events so far. */
static int ev_count(const char *needle)
{
	int n = 0;

	ev_out[ev_len] = 0;
	for (const char *p = ev_out; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* HA's output commit: held output reaches neither the events nor the ring
 * until released; a release up to a mark lets out exactly that prefix,
 * once; opening the gate lets out the rest, in order. */
Test(pvring, console_gate_release_to_mark)
{
	uint64_t m0, m1, m2;

	ack(con_port);
	guest_con_write("before\n");
	cr_assert_eq(hyp_console_gate_hold(h, domid), 0);
	cr_assert_eq(hyp_console_gate_mark(h, domid, &m0), 0);
	guest_con_write("epoch1\n");
	cr_assert_eq(hyp_console_gate_mark(h, domid, &m1), 0);
	cr_expect_eq(m1 - m0, 7);
	guest_con_write("epoch2\n");
	cr_assert_eq(hyp_console_gate_mark(h, domid, &m2), 0);
	cr_assert_eq(rd32(CON(out_cons)), rd32(CON(out_prod)), "held output left the ring");
	cr_expect_eq(ev_count("epoch"), 0, "held output reached the events: %s", ev_out);
	cr_expect_null(strstr(harness_console(h, domid), "epoch"));

	cr_assert_eq(hyp_console_gate_release(h, domid, m1), 0);
	cr_expect_eq(ev_count("epoch1\n"), 1);
	cr_expect_eq(ev_count("epoch2"), 0);
	cr_expect(strstr(harness_console(h, domid), "before\nepoch1\n"));
	cr_expect_null(strstr(harness_console(h, domid), "epoch2"));
	/* Again, and a mark already passed: nothing repeated. */
	cr_assert_eq(hyp_console_gate_release(h, domid, m1), 0);
	cr_assert_eq(hyp_console_gate_release(h, domid, m0), 0);
	cr_expect_eq(ev_count("epoch1"), 1);
	/* Still holding: new output waits too. */
	guest_con_write("epoch3\n");
	cr_assert_eq(hyp_console_gate_release(h, domid, m2), 0);
	cr_expect_eq(ev_count("epoch2\n"), 1);
	cr_expect_eq(ev_count("epoch3"), 0);
	cr_expect_eq(hyp_console_gate_release(h, domid, m2 + 100), -EINVAL,
		     "a release past the output's end");

	cr_assert_eq(hyp_console_gate_open(h, domid), 0);
	ev_out[ev_len] = 0;
	cr_expect_str_eq(ev_out, "before\nepoch1\nepoch2\nepoch3\n");
	cr_expect(strstr(harness_console(h, domid), "before\nepoch1\nepoch2\nepoch3\n"));
	/* Open: output goes straight out again. */
	guest_con_write("after\n");
	cr_expect_eq(ev_count("after\n"), 1);
}

/* At HYP_CONSOLE_GATE_MAX held bytes the backend stops taking output: the
 * guest's ring backs up, nothing is lost, and all of it comes out in order
 * once the gate opens. */
Test(pvring, console_gate_bound_backs_up_the_ring)
{
	const size_t total = HYP_CONSOLE_GATE_MAX + 3000;
	size_t written = 0;
	char chunk[2048];

	ack(con_port);
	cr_assert_eq(hyp_console_gate_hold(h, domid), 0);
	while (written < total) {
		uint32_t cons = rd32(CON(out_cons)), prod = rd32(CON(out_prod));
		size_t room = 2048 - (prod - cons), n = total - written;

		if (!room)
			break; /* backed up */
		n = n < room ? n : room;
		for (size_t i = 0; i < n; i++)
			chunk[i] = (char)('a' + (written + i) % 26);
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(hyp_gmem_write(d, CON(out) + ((prod + i) & 2047), chunk + i,
						    1),
				     0);
		wr32(CON(out_prod), prod + (uint32_t)n);
		send(con_port);
		written += n;
	}
	cr_assert_lt(written, total, "the gate took more than its bound");
	cr_expect_eq(rd32(CON(out_prod)) - rd32(CON(out_cons)), 2048, "the ring is full");
	cr_expect_eq(ev_len, 0);

	cr_assert_eq(hyp_console_gate_open(h, domid), 0);
	send(con_port); /* the backend drains the ring again */
	cr_assert_eq(rd32(CON(out_cons)), rd32(CON(out_prod)));
	cr_assert_eq(ev_len, written);
	for (size_t i = 0; i < written; i++)
		if (ev_out[i] != (char)('a' + i % 26))
			cr_assert_fail("byte %zu out of order", i);
}
