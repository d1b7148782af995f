// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: hypercalls from hostile guests. Three paused soft
 * domains live for the whole run (their event-channel and grant state
 * accumulates); each input is a list of steps: write bytes into a domain's
 * memory, make a hypercall with chosen or raw arguments through
 * hyp_test_hypercall, or call ferryd's evtchn/gnttab API with fuzzed
 * values. ASan and UBSan watch every access the handlers make.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi/guest.h"
#include "common/log.h"
#include "devices/pv.h"
#include "guests/soft.h"
#include "hyp/evtchn.h"
#include "hyp/gmem.h"
#include "hyp/gnttab.h"
#include "hyp/hyp.h"

#define NDOMS 3
#define MEM_MB 8
#define ARG_GPA 0x500000u
#define TABLE_GPA 0x600000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static struct hyp *h;
static uint32_t ids[NDOMS];

struct in {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct in *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes && in->n; i++, in->p++, in->n--)
		v |= (uint64_t)*in->p << (8 * i);
	return v;
}

static void setup(void)
{
	struct hyp_params p = { .backend = "soft", .memory_bytes = 64ULL << 20,
				.soft_guest = &wl_soft_guest_ops,
				.pv_backend = &dev_pv_backend_ops };

	log_set_stderr(0);
	if (hyp_create(&p, &h))
		abort();
	for (unsigned i = 0; i < NDOMS; i++) {
		struct hyp_dom_config c = { .memory_mb = MEM_MB, .maxmem_mb = MEM_MB,
					    .vcpus = 1 + i % 2 };
		const uint64_t map[5] = { XENMEM_add_to_physmap, ARG_GPA, 0, 0, 0 };
		struct xen_add_to_physmap x = { .domid = DOMID_SELF,
						.space = XENMAPSPACE_shared_info,
						.gpfn = FERRY_SHARED_INFO_GPA >> 12 };
		struct hyp_domain *d;

		snprintf(c.name, sizeof(c.name), "f%u", i);
		if (hyp_domain_create(h, &c, true, &ids[i]) || hyp_domain_get(h, ids[i], &d))
			abort();
		/* shared_info and grant frame 0 in place, so events and grants
		 * reach their interesting paths from the first input. */
		hyp_gmem_write(d, ARG_GPA, &x, sizeof(x));
		hyp_test_hypercall(h, ids[i], 0, __HYPERVISOR_memory_op, map);
		x.space = XENMAPSPACE_grant_table;
		x.gpfn = TABLE_GPA >> 12;
		hyp_gmem_write(d, ARG_GPA, &x, sizeof(x));
		hyp_test_hypercall(h, ids[i], 0, __HYPERVISOR_memory_op, map);
		hyp_domain_put(d);
	}
}

static const uint64_t numbers[] = {
	__HYPERVISOR_event_channel_op, __HYPERVISOR_grant_table_op, __HYPERVISOR_memory_op,
	__HYPERVISOR_hvm_op,	       __HYPERVISOR_set_timer_op,   __HYPERVISOR_sched_op,
	__HYPERVISOR_xen_version,      __HYPERVISOR_console_io,
};

static uint64_t pick_gpa(struct in *in)
{
	switch (take(in, 1) & 7) {
	case 0: return ARG_GPA;
	case 1: return ARG_GPA + take(in, 2);
	case 2: return TABLE_GPA + (take(in, 2) & 0xfff);
	case 3: return (MEM_MB << 20) - (take(in, 1) & 0x3f);
	case 4: return ~0ULL - take(in, 1);
	case 5: return take(in, 8);
	default: return ARG_GPA;
	}
}

static void step_hypercall(struct in *in, uint32_t domid)
{
	uint8_t sel = (uint8_t)take(in, 1);
	uint64_t args[5] = { 0 };
	uint64_t nr = sel & 0x80 ? take(in, 1) : numbers[sel % (sizeof(numbers) / 8)];
	unsigned vcpu = (sel >> 3) & 3;

	args[0] = sel & 0x40 ? take(in, 8) : take(in, 1) & 0xf;
	args[1] = pick_gpa(in);
	args[2] = sel & 0x20 ? take(in, 8) : take(in, 1) & 7;
	args[3] = take(in, 1);
	args[4] = take(in, 1);
	/* A shutdown would end the run's domains; a block on a paused
	 * domain returns at once and is fine. */
	if (nr == __HYPERVISOR_sched_op && args[0] == SCHEDOP_shutdown)
		return;
	/* Absolute deadlines: keep the soft clock's "now" reachable. */
	if (nr == __HYPERVISOR_set_timer_op && (sel & 1))
		args[0] &= 0xffffffff;
	hyp_test_hypercall(h, domid, vcpu, nr, args);
}

static void backend_fn(void *opaque, uint32_t domid, uint32_t port)
{
	uint8_t *b = opaque;

	b[3] ^= (uint8_t)(domid + port);
}

static uint8_t buf[4096];

static void step_ferryd(struct in *in, struct hyp_domain *d)
{
	uint8_t op = (uint8_t)take(in, 1);
	uint32_t port = (uint32_t)take(in, 2), ref = (uint32_t)take(in, 2) & 0x3ff;
	uint32_t who = (uint32_t)take(in, 1) & 7;
	uint16_t off = (uint16_t)take(in, 2), n = (uint16_t)take(in, 2);
	struct gnttab_mapping m;

	switch (op % 8) {
	case 0: evtchn_alloc_unbound_for(d, who, &port); break;
	case 1: evtchn_bind_backend(d, port & 0x7f, backend_fn, buf); break;
	case 2: evtchn_notify(d, port); break;
	case 3: evtchn_unbind_backend(d, port & 0x7f); break;
	case 4: evtchn_raise_virq(d, op >> 3, who & 1); break;
	case 5:
		if (!gnttab_map(d, ref, who, op & 0x80, &m)) {
			buf[0] ^= m.ptr[0];
			buf[1] ^= m.ptr[4095];
			if (m.write)
				m.ptr[off & 0xfff] = buf[2];
			gnttab_unmap(&m);
		}
		break;
	case 6: gnttab_copy_from(d, ref, who, off, buf, n); break;
	case 7: gnttab_copy_to(d, ref, who, off, buf, n > sizeof(buf) ? 0 : n); break;
	}
	evtchn_port_state(d, port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct in in = { data, len };

	if (!h)
		setup();
	for (int steps = 0; in.n && steps < 64; steps++) {
		uint8_t k = (uint8_t)take(&in, 1);
		unsigned di = k % (NDOMS + 1);
		uint32_t domid = di < NDOMS ? ids[di] : (uint32_t)take(&in, 2);
		struct hyp_domain *d;

		if (hyp_domain_get(h, domid, &d)) {
			/* A wild domid still reaches the dispatcher's refusal. */
			const uint64_t args[5] = { 0 };

			hyp_test_hypercall(h, domid, 0, __HYPERVISOR_event_channel_op, args);
			continue;
		}
		switch ((k >> 2) & 3) {
		case 0: { /* guest writes its memory (arguments, grant entries) */
			uint8_t tmp[64];
			size_t n = take(&in, 1) % sizeof(tmp);
			uint64_t gpa = (k & 0x80) ? TABLE_GPA + (take(&in, 2) & 0xfff) : ARG_GPA;

			for (size_t i = 0; i < n; i++)
				tmp[i] = (uint8_t)take(&in, 1);
			hyp_gmem_write(d, gpa, tmp, n);
			break;
		}
		case 3:
			step_ferryd(&in, d);
			break;
		default:
			step_hypercall(&in, domid);
			break;
		}
		hyp_domain_put(d);
	}
	return 0;
}
