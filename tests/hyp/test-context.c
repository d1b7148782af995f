// SPDX-License-Identifier: MIT
/*
 * Save and restore of a domain's state (hyp/context.h), per backend: a
 * running built-in guest is paused, its memory and context moved into a
 * fresh domain, and the copy resumes and keeps verifying its memory.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>

#include <linux/kvm.h>

#include "formats/hvm-context.h"
#include "guests/workload.h"
#include "harness.h"
#include "abi/guest.h"
#include "hyp/context.h"
#include "hyp/evtchn.h"
#include "hyp/gmem.h"
#include "hyp/pv.h"
#include "hyp/sched.h"

/* Parameters are copied into each test process: no pointers inside. */
struct backend {
	char name[8];
};
static struct backend backends[] = { { "soft" }, { "kvm" } };

#define CMDLINE "workload=verify ws=8M rate=4M"

/* A saved context: descriptors each followed by their payload. */
struct ctxbuf {
	uint8_t *p;
	size_t len, cap;
	unsigned n;
};

static int emit_buf(void *opaque, uint16_t typecode, uint16_t instance, const void *data,
		    uint32_t len)
{
	struct ctxbuf *b = opaque;
	struct hvm_save_descriptor desc = { typecode, instance, len };

	while (b->len + sizeof(desc) + len > b->cap) {
		b->cap = b->cap ? b->cap * 2 : 65536;
		b->p = realloc(b->p, b->cap);
		cr_assert_not_null(b->p);
	}
	memcpy(b->p + b->len, &desc, sizeof(desc));
	memcpy(b->p + b->len + sizeof(desc), data, len);
	b->len += sizeof(desc) + len;
	b->n++;
	return 0;
}

/* Entry i of b: its descriptor and payload. */
static const uint8_t *entry_at(const struct ctxbuf *b, unsigned i,
			       struct hvm_save_descriptor *desc)
{
	size_t off = 0;

	for (unsigned k = 0;; k++) {
		cr_assert_leq(off + sizeof(*desc), b->len);
		memcpy(desc, b->p + off, sizeof(*desc));
		if (k == i)
			return b->p + off + sizeof(*desc);
		off += sizeof(*desc) + desc->length;
	}
}

/* A plain restore's end: commit the one load, then resume. */
static int load_done(struct hyp *h, uint32_t id)
{
	int err = hyp_domain_load_commit(h, id);

	return err ? err : hyp_domain_resume_restored(h, id);
}

/* Loads every entry except those of typecode skip (0: none); returns the
 * first error. */
static int load_all(struct hyp *h, uint32_t id, const struct ctxbuf *b, uint16_t skip)
{
	struct hvm_save_descriptor desc;

	for (unsigned i = 0; i < b->n; i++) {
		const uint8_t *data = entry_at(b, i, &desc);
		int err;

		if (skip && desc.typecode == skip)
			continue;
		err = hyp_domain_load_entry(h, id, desc.typecode, desc.instance, data,
					    desc.length);
		if (err)
			return err;
	}
	return 0;
}

static bool has_code(const struct ctxbuf *b, uint16_t code, unsigned *count)
{
	struct hvm_save_descriptor desc;

	*count = 0;
	for (unsigned i = 0; i < b->n; i++) {
		entry_at(b, i, &desc);
		if (desc.typecode == code)
			(*count)++;
	}
	return *count > 0;
}

/* Sum of the verify workload's per-page write generations in d's memory. */
static uint64_t gen_sum(struct hyp *h, uint32_t id)
{
	static const struct wl_platform plat; /* unused: the state exists */
	struct hyp_domain *d;
	struct hyp_gmem gm;
	struct wl_ctx ctx;
	uint64_t sum = 0;

	cr_assert_eq(hyp_domain_get(h, id, &d), 0);
	hyp_domain_gmem(d, &gm);
	cr_assert_eq(wl_attach(&ctx, &plat, (uintptr_t)gm.hva, gm.size, CMDLINE), 0);
	cr_assert_eq(wl_ws_pages(&ctx), 2048);
	for (uint64_t i = 0; i < wl_ws_pages(&ctx); i++)
		sum += wl_page_gen(&ctx, i);
	hyp_domain_put(d);
	return sum;
}

/* Copies all of src's guest memory into dst. */
static void copy_memory(struct hyp *h, uint32_t src, uint32_t dst)
{
	struct hyp_domain *s, *t;
	struct hyp_gmem gs, gt;

	cr_assert_eq(hyp_domain_get(h, src, &s), 0);
	cr_assert_eq(hyp_domain_get(h, dst, &t), 0);
	hyp_domain_gmem(s, &gs);
	hyp_domain_gmem(t, &gt);
	cr_assert_eq(gs.size, gt.size);
	memcpy(gt.hva, gs.hva, gs.size);
	hyp_gmem_mark_dirty(t, 0, gt.size);
	hyp_domain_put(t);
	hyp_domain_put(s);
}

/* Counts lines starting with prefix in the console, and those among them
 * that say mismatches=0. */
static unsigned count_lines(struct hyp *h, uint32_t id, const char *prefix, unsigned *clean)
{
	const char *con = harness_console(h, id);
	unsigned n = 0;

	*clean = 0;
	for (const char *p = strstr(con, prefix); p; p = strstr(p + 1, prefix)) {
		const char *eol = strchr(p, '\n');
		const char *m = strstr(p, "mismatches=0\n");

		n++;
		if (m && eol && m < eol)
			(*clean)++;
	}
	return n;
}

ParameterizedTestParameters(context, running_guest_moves)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/*
 * The proof: a running guest is paused, its state moved to a fresh domain,
 * and the copy continues correctly: its resume check finds every page as
 * the original left it, later sweeps stay clean and its writes go on.
 */
ParameterizedTest(struct backend *backend, context, running_guest_moves, .timeout = 120)
{
	harness_need_backend(backend->name);
	struct hyp *h = harness_hyp(backend->name, 256);
	struct hyp_dom_config c = harness_cfg("orig", 64, CMDLINE);
	struct ctxbuf b = { 0 };
	struct hyp_tsc_info tsc;
	struct hyp_dom_info di;
	uint64_t gen_saved, gen_later;
	unsigned sweeps, clean, n;
	uint32_t orig, copy;

	cr_assert_eq(hyp_domain_create(h, &c, false, &orig), 0);
	cr_assert(harness_wait_console(h, orig, "verify: sweep", 1, 60),
		  "no verify sweep; console:\n%s", harness_console(h, orig));
	cr_expect_eq(hyp_domain_save_context(h, orig, emit_buf, &b), -EBUSY,
		     "saved a running domain");
	cr_assert_eq(hyp_domain_pause(h, orig), 0);
	cr_assert_eq(hyp_domain_save_context(h, orig, emit_buf, &b), 0);
	cr_assert(has_code(&b, FERRY_HVM_DOMAIN, &n) && n == 1);
	{
		/* The services' entries: ports (console, xenstore, ...), the
		 * grant table, scheduling (one per domain and per vCPU), the
		 * console history. */
		unsigned ports, other;

		cr_expect(has_code(&b, FERRY_HVM_EVTCHN, &ports) && ports >= 2);
		cr_expect(has_code(&b, FERRY_HVM_GNTTAB, &n) && n == 1);
		cr_expect(has_code(&b, FERRY_HVM_SCHED, &n) && n == 1);
		cr_expect(has_code(&b, FERRY_HVM_SCHED_VCPU, &n) && n == 1);
		cr_expect(has_code(&b, FERRY_HVM_CONSOLE, &n) && n == 1);
		other = b.n - ports - 4;
		if (!strcmp(backend->name, "kvm")) {
			cr_expect(has_code(&b, FERRY_HVM_KVM_MSRS, &n) && n == 1);
			cr_expect(has_code(&b, FERRY_HVM_KVM_CLOCK, &n) && n == 1);
			cr_expect_eq(other, 1 + 9 + 5 + 1, "%u entries", other);
		} else {
			cr_expect_eq(other, 3, "%u entries", other);
		}
	}
	cr_expect(has_code(&b, FERRY_HVM_VCPU, &n) && n == 1);
	cr_assert_eq(hyp_domain_tsc_info(h, orig, &tsc), 0);
	cr_expect_eq(tsc.mode, 0);
	cr_expect_gt(tsc.khz, 0);
	cr_expect_gt(tsc.nsec, 0);

	snprintf(c.name, sizeof(c.name), "copy");
	cr_assert_eq(hyp_domain_create_restore(h, &c, &copy), 0);
	cr_assert_eq(hyp_domain_info(h, copy, &di), 0);
	cr_expect_eq(di.state, HYP_DOM_PAUSED);
	cr_expect_eq(hyp_domain_unpause(h, copy), -EINVAL, "ran without a context");
	copy_memory(h, orig, copy);
	gen_saved = gen_sum(h, copy);
	cr_assert_gt(gen_saved, 0, "the original wrote nothing");
	/* Without the console history (console_history_moves): what the
	 * copy's console shows is then the copy's own. */
	cr_assert_eq(load_all(h, copy, &b, FERRY_HVM_CONSOLE), 0);
	cr_assert_eq(load_done(h, copy), 0);
	/* The copy's system time continues from the saved one. */
	{
		struct hvm_save_descriptor desc;
		struct ferry_hvm_domain dom;
		struct hyp_tsc_info now;

		memcpy(&dom, entry_at(&b, 0, &desc), sizeof(dom));
		cr_assert_eq(desc.typecode, FERRY_HVM_DOMAIN);
		cr_assert_eq(hyp_domain_tsc_info(h, copy, &now), 0);
		cr_expect_geq(now.nsec, dom.system_time_ns, "system time went back: %llu < %llu",
			      (unsigned long long)now.nsec,
			      (unsigned long long)dom.system_time_ns);
		cr_expect_lt(now.nsec, tsc.nsec + 10000000000ULL,
			     "system time jumped: %llu, saved at %llu",
			     (unsigned long long)now.nsec, (unsigned long long)tsc.nsec);
	}
	cr_assert_eq(hyp_domain_destroy(h, orig), 0);
	cr_assert_eq(hyp_domain_unpause(h, copy), 0);

	cr_assert(harness_wait_console(h, copy, "verify: resume pages=2048 mismatches=0", 1,
				       60),
		  "no clean resume check; console:\n%s", harness_console(h, copy));
	cr_assert(harness_wait_console(h, copy, "verify: sweep", 2, 60),
		  "no two sweeps after the resume; console:\n%s", harness_console(h, copy));
	sweeps = count_lines(h, copy, "verify: sweep", &clean);
	cr_expect_eq(clean, sweeps, "a sweep found mismatches; console:\n%s",
		     harness_console(h, copy));
	cr_expect_eq(count_lines(h, copy, "verify: resume", &clean), 1);
	cr_expect_eq(clean, 1);
	cr_expect_null(strstr(harness_console(h, copy), "verify: mismatch"));
	cr_expect_null(strstr(harness_console(h, copy), "ferry-guest: booted"),
		       "the copy booted again; console:\n%s", harness_console(h, copy));
	gen_later = gen_sum(h, copy);
	cr_expect_gt(gen_later, gen_saved, "write generations stopped at %llu",
		     (unsigned long long)gen_saved);
	cr_assert_eq(hyp_domain_info(h, copy, &di), 0);
	cr_expect(di.state == HYP_DOM_RUNNING || di.state == HYP_DOM_BLOCKED, "state %d",
		  di.state);

	cr_assert_eq(hyp_domain_destroy(h, copy), 0);
	free(b.p);
	hyp_destroy(h);
}

/* Saves a paused, never-run domain (fast) with CMDLINE into b. */
static uint32_t save_fresh(struct hyp *h, const char *name, struct ctxbuf *b)
{
	struct hyp_dom_config c = harness_cfg(name, 16, CMDLINE);
	uint32_t id;

	cr_assert_eq(hyp_domain_create(h, &c, true, &id), 0);
	cr_assert_eq(hyp_domain_save_context(h, id, emit_buf, b), 0);
	return id;
}

static uint32_t restore_target(struct hyp *h, const char *name)
{
	struct hyp_dom_config c = harness_cfg(name, 16, CMDLINE);
	uint32_t id;

	cr_assert_eq(hyp_domain_create_restore(h, &c, &id), 0);
	return id;
}

ParameterizedTestParameters(context, missing_entry_refused)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/* A context without one of its required entries is refused at commit. */
ParameterizedTest(struct backend *backend, context, missing_entry_refused, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct hyp *h = harness_hyp(backend->name, 128);
	uint16_t codes[3] = { FERRY_HVM_DOMAIN,
			      !strcmp(backend->name, "kvm") ? FERRY_HVM_KVM_LAPIC
							    : FERRY_HVM_SOFT_VCPU,
			      !strcmp(backend->name, "kvm") ? FERRY_HVM_KVM_CLOCK : 0 };
	struct ctxbuf b = { 0 };
	uint32_t id;

	save_fresh(h, "orig", &b);
	for (unsigned i = 0; i < 3 && codes[i]; i++) {
		char name[16];

		snprintf(name, sizeof(name), "t%u", i);
		id = restore_target(h, name);
		cr_assert_eq(load_all(h, id, &b, codes[i]), 0);
		cr_expect_eq(hyp_domain_load_commit(h, id), -EINVAL,
			     "commit accepted a context without %s",
			     fmt_hvm_code_name(codes[i]));
		cr_expect_eq(hyp_domain_resume_restored(h, id), -EINVAL,
			     "resumed without a committed context");
		cr_expect_eq(hyp_domain_unpause(h, id), -EINVAL);
		cr_assert_eq(hyp_domain_destroy(h, id), 0);
	}
	/* The complete context loads. */
	id = restore_target(h, "full");
	cr_assert_eq(load_all(h, id, &b, 0), 0);
	cr_expect_eq(load_done(h, id), 0);
	free(b.p);
	hyp_destroy(h);
}

ParameterizedTestParameters(context, truncated_entry_refused)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/* Every entry one byte short (or one long) is refused at load_entry. */
ParameterizedTest(struct backend *backend, context, truncated_entry_refused, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct hyp *h = harness_hyp(backend->name, 128);
	struct hvm_save_descriptor desc;
	struct ctxbuf b = { 0 };
	uint8_t *big;
	uint32_t id;

	save_fresh(h, "orig", &b);
	id = restore_target(h, "t");
	big = calloc(1, 1 << 20);
	cr_assert_not_null(big);
	for (unsigned i = 0; i < b.n; i++) {
		const uint8_t *data = entry_at(&b, i, &desc);

		cr_assert_gt(desc.length, 0);
		cr_expect_eq(hyp_domain_load_entry(h, id, desc.typecode, desc.instance, data,
						   desc.length - 1),
			     -EINVAL, "%s/%u truncated to %u bytes accepted",
			     fmt_hvm_code_name(desc.typecode), desc.instance, desc.length - 1);
		memcpy(big, data, desc.length);
		if (desc.typecode == FERRY_HVM_KVM_MSRS)
			continue; /* one more whole MSR would be a valid length */
		cr_expect_eq(hyp_domain_load_entry(h, id, desc.typecode, desc.instance, big,
						   desc.length + 1),
			     -EINVAL, "%s/%u one byte long accepted",
			     fmt_hvm_code_name(desc.typecode), desc.instance);
	}
	/* An instance beyond the vCPUs, an unknown typecode. */
	{
		const uint8_t *data = entry_at(&b, b.n - 1, &desc);

		cr_expect_eq(hyp_domain_load_entry(h, id, desc.typecode, 7, data, desc.length),
			     -EINVAL);
		cr_expect_eq(hyp_domain_load_entry(h, id, 0x46ff, 0, data, desc.length),
			     -EINVAL);
	}
	free(big);
	free(b.p);
	hyp_destroy(h);
}

/* The payload of the (only) entry of typecode code in b. */
static const void *find_entry(const struct ctxbuf *b, uint16_t code, uint32_t len)
{
	struct hvm_save_descriptor desc;

	for (unsigned i = 0; i < b->n; i++) {
		const uint8_t *data = entry_at(b, i, &desc);

		if (desc.typecode == code) {
			cr_assert_eq(desc.length, len);
			return data;
		}
	}
	cr_assert_fail("no %s entry", fmt_hvm_code_name(code));
	return NULL;
}

ParameterizedTestParameters(context, vcpu_timer_travels)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/*
 * A guest paused between set_timer_op and SCHEDOP_block blocks again on the
 * other side and only the armed timer wakes it: the deadline is part of the
 * context (it was not, and copies of throttled guests hung in CI).
 */
ParameterizedTest(struct backend *backend, context, vcpu_timer_travels, .timeout = 60)
{
	harness_need_backend(backend->name);
	struct hyp *h = harness_hyp(backend->name, 128);
	struct ferry_hvm_vcpu vc, bad;
	struct ctxbuf b = { 0 }, again = { 0 };
	uint32_t id;

	save_fresh(h, "orig", &b);
	memcpy(&vc, find_entry(&b, FERRY_HVM_VCPU, sizeof(vc)), sizeof(vc));
	cr_expect_eq(vc.version, 1);
	cr_expect_eq(vc.timer_ns, 0, "a never-run guest has no timer");

	id = restore_target(h, "t");
	cr_assert_eq(load_all(h, id, &b, FERRY_HVM_VCPU), 0);
	bad = (struct ferry_hvm_vcpu){ .version = 2 };
	cr_expect_eq(hyp_domain_load_entry(h, id, FERRY_HVM_VCPU, 0, &bad, sizeof(bad)),
		     -EINVAL, "version 2 accepted");
	bad = (struct ferry_hvm_vcpu){ .version = 1, .reserved = 1 };
	cr_expect_eq(hyp_domain_load_entry(h, id, FERRY_HVM_VCPU, 0, &bad, sizeof(bad)),
		     -EINVAL, "reserved bits accepted");
	vc.timer_ns = 123456789012ULL;
	cr_expect_eq(hyp_domain_load_entry(h, id, FERRY_HVM_VCPU, 1, &vc, sizeof(vc)),
		     -EINVAL, "an entry for a second vCPU of a 1-vCPU domain");
	cr_assert_eq(hyp_domain_load_entry(h, id, FERRY_HVM_VCPU, 0, &vc, sizeof(vc)), 0);
	cr_assert_eq(load_done(h, id), 0);

	/* Still paused: save it again and find the same deadline. */
	cr_assert_eq(hyp_domain_save_context(h, id, emit_buf, &again), 0);
	memcpy(&vc, find_entry(&again, FERRY_HVM_VCPU, sizeof(vc)), sizeof(vc));
	cr_expect_eq(vc.timer_ns, 123456789012ULL, "timer %llu after the load",
		     (unsigned long long)vc.timer_ns);
	free(again.p);
	free(b.p);
	hyp_destroy(h);
}

/* A kvm context cannot be loaded into a soft domain (nor the reverse). */
Test(context, other_backend_refused, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 128);
	struct kvm_regs regs = { .rip = 0x100000 };
	struct ctxbuf b = { 0 };
	struct hvm_save_descriptor desc;
	uint32_t soft_id, kvm_id, orig;

	soft_id = restore_target(h, "soft");
	cr_expect_eq(hyp_domain_load_entry(h, soft_id, FERRY_HVM_KVM_REGS, 0, &regs,
					   sizeof(regs)),
		     -EINVAL, "a KVM_REGS entry was loaded into a soft domain");
	if (!harness_have_kvm()) {
		hyp_destroy(h);
		return;
	}
	/* A real kvm context, and a soft one into a kvm domain. */
	{
		struct hyp_dom_config c = harness_cfg("korig", 16, CMDLINE);

		snprintf(c.backend, sizeof(c.backend), "kvm");
		cr_assert_eq(hyp_domain_create(h, &c, true, &orig), 0);
		cr_assert_eq(hyp_domain_save_context(h, orig, emit_buf, &b), 0);
		snprintf(c.name, sizeof(c.name), "ktarget");
		cr_assert_eq(hyp_domain_create_restore(h, &c, &kvm_id), 0);
	}
	for (unsigned i = 0; i < b.n; i++) {
		const uint8_t *data = entry_at(&b, i, &desc);

		if (desc.typecode == FERRY_HVM_DOMAIN || desc.typecode == FERRY_HVM_VCPU ||
		    (desc.typecode >= FERRY_HVM_EVTCHN && desc.typecode <= FERRY_HVM_CONSOLE))
			continue; /* every backend's (the console history too) */
		cr_expect_eq(hyp_domain_load_entry(h, soft_id, desc.typecode, desc.instance,
						   data, desc.length),
			     -EINVAL, "%s accepted by a soft domain",
			     fmt_hvm_code_name(desc.typecode));
	}
	{
		struct ferry_soft_vcpu sv = { .version = 1, .attached = 1 };

		cr_expect_eq(hyp_domain_load_entry(h, kvm_id, FERRY_HVM_SOFT_VCPU, 0, &sv,
						   sizeof(sv)),
			     -EINVAL, "a SOFT_VCPU entry was loaded into a kvm domain");
	}
	free(b.p);
	hyp_destroy(h);
}

/* ---- the domain's services: event channels, grant frames, scheduling ---- */

#define ARG_GPA 0x500000u /* argument structs, in the workload arena */

/* Hypercall nr(cmd, ARG_GPA) of domain id with *arg copied in and out. */
static int64_t hcall(struct hyp *h, uint32_t id, uint64_t nr, uint64_t cmd, void *arg,
		     size_t len)
{
	const uint64_t args[5] = { cmd, ARG_GPA, 0, 0, 0 };
	struct hyp_domain *d;
	int64_t r;

	cr_assert_eq(hyp_domain_get(h, id, &d), 0);
	cr_assert_eq(hyp_gmem_write(d, ARG_GPA, arg, len), 0);
	r = hyp_test_hypercall(h, id, 0, nr, args);
	cr_assert_eq(hyp_gmem_read(d, ARG_GPA, arg, len), 0);
	hyp_domain_put(d);
	return r;
}

/* A soft ferryd with two pCPUs, whatever the host has. */
static struct hyp *two_pcpu_hyp(void)
{
	struct hyp_params p = {
		.backend = "soft", .pcpus = 2, .memory_bytes = 128 << 20,
		.guest_elf = FERRY_GUEST_ELF, .soft_guest = &wl_soft_guest_ops,
		.pv_backend = &dev_pv_backend_ops, .pv_backend_opaque = harness_pv(),
	};
	struct hyp *h = NULL;

	cr_assert_eq(hyp_create(&p, &h), 0);
	return h;
}

/* The payload of the entry code/instance in b, NULL if absent. */
static const uint8_t *entry_of(const struct ctxbuf *b, uint16_t code, uint16_t instance,
			       uint32_t *len)
{
	struct hvm_save_descriptor desc;

	for (unsigned i = 0; i < b->n; i++) {
		const uint8_t *data = entry_at(b, i, &desc);

		if (desc.typecode == code && desc.instance == instance) {
			*len = desc.length;
			return data;
		}
	}
	return NULL;
}

/* Every service entry of a is in b byte for byte, and no other one. */
static void expect_same_services(const struct ctxbuf *a, const struct ctxbuf *b,
				 uint16_t skip_port)
{
	struct hvm_save_descriptor desc;
	unsigned na = 0, nb = 0;

	for (unsigned i = 0; i < a->n; i++) {
		const uint8_t *data = entry_at(a, i, &desc);
		const uint8_t *other;
		uint32_t len;

		if (desc.typecode < FERRY_HVM_EVTCHN || desc.typecode > FERRY_HVM_SCHED_VCPU)
			continue;
		na++;
		if (desc.typecode == FERRY_HVM_EVTCHN && desc.instance == skip_port)
			continue;
		other = entry_of(b, desc.typecode, desc.instance, &len);
		cr_expect_not_null(other, "%s/%u lost", fmt_hvm_code_name(desc.typecode),
				   desc.instance);
		if (other)
			cr_expect(len == desc.length && !memcmp(other, data, len),
				  "%s/%u changed", fmt_hvm_code_name(desc.typecode), desc.instance);
	}
	for (unsigned i = 0; i < b->n; i++) {
		entry_at(b, i, &desc);
		nb += desc.typecode >= FERRY_HVM_EVTCHN && desc.typecode <= FERRY_HVM_SCHED_VCPU;
	}
	cr_expect_eq(na, nb, "%u service entries saved, %u after the load", na, nb);
}

/*
 * Ports of every kind, grant frames and scheduling survive save, load into
 * a fresh target, save again; an interdomain channel to another guest
 * comes back unbound for that guest (Xen's rule: channels are host-local),
 * and the guest can bind it again.
 */
Test(context, services_round_trip, .timeout = 60)
{
	struct hyp *h = two_pcpu_hyp();
	struct hyp_dom_config c = harness_cfg("a", 16, CMDLINE);
	struct evtchn_bind_virq virq = { .virq = VIRQ_TIMER };
	struct evtchn_bind_virq gvirq = { .virq = VIRQ_CONSOLE };
	struct evtchn_bind_ipi ipi = { .vcpu = 0 };
	struct evtchn_alloc_unbound un = { .dom = DOMID_SELF };
	struct evtchn_alloc_unbound pun = { .dom = DOMID_SELF };
	struct evtchn_bind_interdomain bi = { 0 };
	struct xen_add_to_physmap x = { .domid = DOMID_SELF, .space = XENMAPSPACE_grant_table };
	struct ferry_hvm_evtchn e;
	struct ferry_hvm_sched sp;
	struct ctxbuf b = { 0 }, again = { 0 };
	uint64_t hard = 0x2, soft = 0x2;
	const uint8_t *p;
	uint32_t a, peer, t, len;

	cr_assert_eq(hyp_domain_create(h, &c, true, &a), 0);
	snprintf(c.name, sizeof(c.name), "peer");
	cr_assert_eq(hyp_domain_create(h, &c, true, &peer), 0);
	cr_assert_eq(hcall(h, a, __HYPERVISOR_event_channel_op, EVTCHNOP_bind_virq, &virq,
			   sizeof(virq)), 0);
	cr_assert_eq(hcall(h, a, __HYPERVISOR_event_channel_op, EVTCHNOP_bind_virq, &gvirq,
			   sizeof(gvirq)), 0);
	cr_assert_eq(hcall(h, a, __HYPERVISOR_event_channel_op, EVTCHNOP_bind_ipi, &ipi,
			   sizeof(ipi)), 0);
	un.remote_dom = (uint16_t)peer;
	cr_assert_eq(hcall(h, a, __HYPERVISOR_event_channel_op, EVTCHNOP_alloc_unbound, &un,
			   sizeof(un)), 0);
	pun.remote_dom = (uint16_t)a;
	cr_assert_eq(hcall(h, peer, __HYPERVISOR_event_channel_op, EVTCHNOP_alloc_unbound,
			   &pun, sizeof(pun)), 0);
	bi.remote_dom = (uint16_t)peer;
	bi.remote_port = pun.port;
	cr_assert_eq(hcall(h, a, __HYPERVISOR_event_channel_op, EVTCHNOP_bind_interdomain,
			   &bi, sizeof(bi)), 0);
	/* Grant frames 0 and 2 placed, 1 not. */
	x.idx = 0;
	x.gpfn = 0x400;
	cr_assert_eq(hcall(h, a, __HYPERVISOR_memory_op, XENMEM_add_to_physmap, &x, sizeof(x)),
		     0);
	x.idx = 2;
	x.gpfn = 0x402;
	cr_assert_eq(hcall(h, a, __HYPERVISOR_memory_op, XENMEM_add_to_physmap, &x, sizeof(x)),
		     0);
	cr_assert_eq(sched_credit2_set(h, a, 512, 50), 0);
	cr_assert_eq(sched_pool_create(h, "pp", "credit2", 0x2), 0);
	cr_assert_eq(sched_pool_migrate(h, a, "pp"), 0);
	cr_assert_eq(sched_vcpu_pin(h, a, 0, &hard, &soft), 0);

	cr_assert_eq(hyp_domain_save_context(h, a, emit_buf, &b), 0);
	p = entry_of(&b, FERRY_HVM_GNTTAB, 0, &len);
	cr_assert_not_null(p);
	cr_expect_eq(len, sizeof(struct ferry_hvm_gnttab) + 3 * 8);
	memcpy(&sp, entry_of(&b, FERRY_HVM_SCHED, 0, &len), sizeof(sp));
	cr_expect(sp.weight == 512 && sp.cap == 50 && !strcmp(sp.pool, "pp"),
		  "weight %u cap %u pool %s", sp.weight, sp.cap, sp.pool);
	p = entry_of(&b, FERRY_HVM_EVTCHN, (uint16_t)bi.local_port, &len);
	cr_assert_not_null(p);
	memcpy(&e, p, sizeof(e));
	cr_expect(e.state == EVTCHNSTAT_interdomain && e.remote == FERRY_EVTCHN_REMOTE_GUEST &&
		  e.remote_dom == peer && e.remote_port == pun.port);

	t = restore_target(h, "t");
	cr_assert_eq(load_all(h, t, &b, 0), 0);
	cr_assert_eq(load_done(h, t), 0);
	cr_assert_eq(hyp_domain_save_context(h, t, emit_buf, &again), 0);
	expect_same_services(&b, &again, (uint16_t)bi.local_port);
	p = entry_of(&again, FERRY_HVM_EVTCHN, (uint16_t)bi.local_port, &len);
	cr_assert_not_null(p);
	memcpy(&e, p, sizeof(e));
	cr_expect(e.state == EVTCHNSTAT_unbound && e.remote == FERRY_EVTCHN_REMOTE_GUEST &&
		  e.remote_dom == peer && e.remote_port == 0,
		  "state %u remote %u dom %u port %u", e.state, e.remote, e.remote_dom,
		  e.remote_port);
	/* The peer reconnects to the restored domain's port. */
	bi = (struct evtchn_bind_interdomain){ .remote_dom = (uint16_t)t,
					       .remote_port = bi.local_port };
	cr_expect_eq(hcall(h, peer, __HYPERVISOR_event_channel_op, EVTCHNOP_bind_interdomain,
			   &bi, sizeof(bi)), 0);
	free(again.p);
	free(b.p);
	hyp_destroy(h);
}

/* A cpupool and pCPUs this host lacks fall back with a warning. */
Test(context, sched_falls_back, .timeout = 60)
{
	struct hyp *h = two_pcpu_hyp();
	struct ferry_hvm_sched sp = { .version = 1, .weight = 300, .cap = 0 };
	struct ferry_hvm_sched_vcpu vc = { .version = 1, .hard = 1ULL << 40,
					   .soft = (1ULL << 41) | 1 };
	struct ctxbuf b = { 0 }, again = { 0 };
	uint32_t id, len;

	snprintf(sp.pool, sizeof(sp.pool), "Nowhere");
	save_fresh(h, "orig", &b);
	id = restore_target(h, "t");
	/* Everything but the saved scheduling, then ours. */
	{
		struct hvm_save_descriptor desc;

		for (unsigned i = 0; i < b.n; i++) {
			const uint8_t *data = entry_at(&b, i, &desc);

			if (desc.typecode == FERRY_HVM_SCHED || desc.typecode == FERRY_HVM_SCHED_VCPU)
				continue;
			cr_assert_eq(hyp_domain_load_entry(h, id, desc.typecode, desc.instance,
							   data, desc.length), 0);
		}
	}
	cr_assert_eq(hyp_domain_load_entry(h, id, FERRY_HVM_SCHED, 0, &sp, sizeof(sp)), 0);
	cr_assert_eq(hyp_domain_load_entry(h, id, FERRY_HVM_SCHED_VCPU, 0, &vc, sizeof(vc)), 0);
	cr_assert_eq(load_done(h, id), 0);
	cr_assert_eq(hyp_domain_save_context(h, id, emit_buf, &again), 0);
	memcpy(&sp, entry_of(&again, FERRY_HVM_SCHED, 0, &len), sizeof(sp));
	cr_expect(sp.weight == 300 && !strcmp(sp.pool, "Pool-0"), "weight %u pool %s",
		  sp.weight, sp.pool);
	memcpy(&vc, entry_of(&again, FERRY_HVM_SCHED_VCPU, 0, &len), sizeof(vc));
	cr_expect(vc.hard == 0 && vc.soft == 1, "hard 0x%llx soft 0x%llx",
		  (unsigned long long)vc.hard, (unsigned long long)vc.soft);
	free(again.p);
	free(b.p);
	hyp_destroy(h);
}

/* Loads one entry into id and expects it refused. */
#define REFUSED(code, inst, ptr, len, why)                                             \
	cr_expect_eq(hyp_domain_load_entry(h, id, code, inst, ptr, len), -EINVAL, why)
/* var = good with one field changed, refused. */
#define BAD(code, inst, var, good, field, value, why)                                  \
	do {                                                                           \
		var = good;                                                            \
		field = value;                                                         \
		REFUSED(code, inst, &var, sizeof(var), why);                           \
	} while (0)

/* Hostile entries: every field checked, each refused with -EINVAL. */
Test(context, services_malformed_refused, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 128);
	uint32_t id = restore_target(h, "t"), con, xs;
	struct ferry_hvm_evtchn e, ok = { .version = 1, .state = EVTCHNSTAT_ipi };
	struct {
		struct ferry_hvm_gnttab h;
		uint64_t gfn[2];
	} g, gok = { { .version = 1, .gnttab_version = 1, .nr_frames = 2 }, { 0x10, 0x11 } };
	struct ferry_hvm_sched s, sok = { .version = 1, .weight = 256, .pool = "Pool-0" };
	struct ferry_hvm_sched_vcpu v, vok = { .version = 1 };
	struct {
		struct ferry_hvm_console h;
		char data[4];
	} k, kok = {{.version = 1, .total_written = 10, .length = 4}, {'a', 'b', 'c', 'd'}};

	cr_assert_eq(hyp_pv_ports(h, id, &con, &xs), 0);
	cr_assert(con && xs);
	REFUSED(FERRY_HVM_EVTCHN, 0, &ok, sizeof(ok), "port 0");
	REFUSED(FERRY_HVM_EVTCHN, 4096, &ok, sizeof(ok), "port 4096");
	REFUSED(FERRY_HVM_EVTCHN, 9, &ok, sizeof(ok) - 1, "short");
#define BAD_E(field, value, why) BAD(FERRY_HVM_EVTCHN, 9, e, ok, e.field, value, why)
	BAD_E(version, 2, "version 2");
	BAD_E(reserved, 1, "reserved");
	BAD_E(state, EVTCHNSTAT_pirq, "pirq");
	BAD_E(state, EVTCHNSTAT_closed, "closed");
	BAD_E(state, 77, "state 77");
	BAD_E(vcpu, 1, "vCPU 1 of 1");
	BAD_E(virq, 3, "an ipi with a virq");
	BAD_E(remote_port, 3, "an ipi with a remote");
	ok.state = EVTCHNSTAT_virq;
	BAD_E(virq, NR_VIRQS, "virq 24");
	BAD_E(remote, 1, "a virq with a remote");
	ok.state = EVTCHNSTAT_unbound;
	ok.remote = FERRY_EVTCHN_REMOTE_GUEST;
	ok.remote_dom = 5;
	BAD_E(remote, 2, "remote kind 2");
	BAD_E(remote_dom, 0, "a guest peer 0");
	BAD_E(remote_dom, DOMID_SELF, "a guest peer DOMID_SELF");
	BAD_E(remote_port, 5, "an unbound port with a remote port");
	BAD_E(virq, 1, "an unbound port with a virq");
	ok.state = EVTCHNSTAT_interdomain;
	ok.remote_port = 3;
	BAD_E(remote_port, 0, "interdomain without a remote port");
	BAD_E(remote_port, 4096, "remote port 4096");
	ok.remote = FERRY_EVTCHN_REMOTE_FERRYD;
	ok.remote_dom = 0;
	ok.remote_port = 0;
	e = ok;
	REFUSED(FERRY_HVM_EVTCHN, 9, &e, sizeof(e), "bound to ferryd on a port of no backend");
	e = (struct ferry_hvm_evtchn){ .version = 1, .state = EVTCHNSTAT_ipi };
	REFUSED(FERRY_HVM_EVTCHN, (uint16_t)con, &e, sizeof(e), "the console port as an ipi");
	e = (struct ferry_hvm_evtchn){ .version = 1, .state = EVTCHNSTAT_virq };
	cr_expect_eq(hyp_domain_load_entry(h, id, FERRY_HVM_EVTCHN, 9, &e, sizeof(e)), 0);
	REFUSED(FERRY_HVM_EVTCHN, 9, &e, sizeof(e), "port 9 twice");
	REFUSED(FERRY_HVM_EVTCHN, 10, &e, sizeof(e), "VIRQ_TIMER twice");
#undef BAD_E

	REFUSED(FERRY_HVM_GNTTAB, 1, &gok, sizeof(gok), "instance 1");
	REFUSED(FERRY_HVM_GNTTAB, 0, &gok, 15, "shorter than its header");
	REFUSED(FERRY_HVM_GNTTAB, 0, &gok, sizeof(gok) - 8, "a gfn missing");
#define BAD_G(field, value, why) BAD(FERRY_HVM_GNTTAB, 0, g, gok, field, value, why)
	BAD_G(g.h.version, 2, "version 2");
	BAD_G(g.h.gnttab_version, 2, "a v2 table");
	BAD_G(g.h.reserved, 1, "reserved");
	BAD_G(g.h.nr_frames, 65, "65 frames");
	BAD_G(g.h.nr_frames, 0xffffffffu, "2^32-1 frames");
	BAD_G(g.gfn[1], 16 << 8, "a frame beyond the domain's memory");
#undef BAD_G
	cr_expect_eq(hyp_domain_load_entry(h, id, FERRY_HVM_GNTTAB, 0, &gok, sizeof(gok)), 0);
	REFUSED(FERRY_HVM_GNTTAB, 0, &gok, sizeof(gok), "twice");

	REFUSED(FERRY_HVM_SCHED, 1, &sok, sizeof(sok), "instance 1");
	REFUSED(FERRY_HVM_SCHED, 0, &sok, sizeof(sok) - 1, "short");
#define BAD_S(field, value, why) BAD(FERRY_HVM_SCHED, 0, s, sok, field, value, why)
	BAD_S(s.version, 0, "version 0");
	BAD_S(s.reserved, 1, "reserved");
	BAD_S(s.weight, 0, "weight 0");
	BAD_S(s.weight, 65536, "weight 65536");
	BAD_S(s.cap, 101, "cap 101 on one vCPU");
	BAD_S(s.pool[0], 0, "no pool name");
	BAD_S(s.pool[2], '\n', "a pool name with a newline");
#undef BAD_S
	s = sok;
	memset(s.pool, 'x', sizeof(s.pool));
	REFUSED(FERRY_HVM_SCHED, 0, &s, sizeof(s), "an unterminated pool name");
	cr_expect_eq(hyp_domain_load_entry(h, id, FERRY_HVM_SCHED, 0, &sok, sizeof(sok)), 0);
	REFUSED(FERRY_HVM_SCHED, 0, &sok, sizeof(sok), "twice");

	REFUSED(FERRY_HVM_SCHED_VCPU, 1, &vok, sizeof(vok), "vCPU 1 of 1");
	REFUSED(FERRY_HVM_SCHED_VCPU, 0, &vok, sizeof(vok) + 1, "long");
	BAD(FERRY_HVM_SCHED_VCPU, 0, v, vok, v.version, 2, "version 2");
	BAD(FERRY_HVM_SCHED_VCPU, 0, v, vok, v.reserved, 1, "reserved");
	cr_expect_eq(hyp_domain_load_entry(h, id, FERRY_HVM_SCHED_VCPU, 0, &vok, sizeof(vok)),
		     0);
	REFUSED(FERRY_HVM_SCHED_VCPU, 0, &vok, sizeof(vok), "twice");

	/* Its length is the header's and the 4 bytes' (no padding). */
#define KLEN (sizeof(kok.h) + sizeof(kok.data))
	REFUSED(FERRY_HVM_CONSOLE, 1, &kok, KLEN, "instance 1");
	REFUSED(FERRY_HVM_CONSOLE, 0, &kok, sizeof(kok.h) - 1, "shorter than its header");
	REFUSED(FERRY_HVM_CONSOLE, 0, &kok, KLEN - 1, "a byte missing");
#define BAD_K(field, value, why)                                                                   \
	do {                                                                                       \
		k = kok;                                                                           \
		k.h.field = value;                                                                 \
		REFUSED(FERRY_HVM_CONSOLE, 0, &k, KLEN, why);                                      \
	} while (0)
	BAD_K(version, 2, "version 2");
	BAD_K(reserved, 1, "reserved");
	BAD_K(reserved2, 1, "reserved2");
	BAD_K(length, 5, "a length beyond the entry");
	BAD_K(total_written, 3, "more bytes than were ever written");
#undef BAD_K
	cr_expect_eq(hyp_domain_load_entry(h, id, FERRY_HVM_CONSOLE, 0, &kok, KLEN), 0);
	REFUSED(FERRY_HVM_CONSOLE, 0, &kok, KLEN, "twice");
#undef KLEN
	hyp_destroy(h);
}

/* The console history travels as a CONSOLE entry: the copy's console shows
 * what the original's did (xl console on the target), byte for byte. */
Test(context, console_history_moves, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 256);
	struct hyp_dom_config c = harness_cfg("orig", 64, CMDLINE);
	static char saved[65536 + 1];
	struct ferry_hvm_console con;
	struct ctxbuf b = {0};
	const uint8_t *p;
	uint32_t orig, copy, len = 0;
	unsigned n;

	cr_assert_eq(hyp_domain_create(h, &c, false, &orig), 0);
	cr_assert(harness_wait_console(h, orig, "verify: sweep", 1, 60),
		  "no verify sweep; console:\n%s", harness_console(h, orig));
	cr_assert_eq(hyp_domain_pause(h, orig), 0);
	snprintf(saved, sizeof(saved), "%s", harness_console(h, orig));
	cr_assert_eq(hyp_domain_save_context(h, orig, emit_buf, &b), 0);
	cr_assert(has_code(&b, FERRY_HVM_CONSOLE, &n) && n == 1, "%u CONSOLE entries", n);
	p = entry_of(&b, FERRY_HVM_CONSOLE, 0, &len);
	cr_assert_geq(len, sizeof(con));
	memcpy(&con, p, sizeof(con));
	cr_expect(con.version == 1 && !con.reserved && !con.reserved2);
	cr_expect_eq(con.length, len - sizeof(con));
	cr_expect_eq(con.total_written, strlen(saved));
	cr_expect(con.length == strlen(saved) && !memcmp(p + sizeof(con), saved, con.length),
		  "the entry holds %u bytes, not the console's %zu", con.length, strlen(saved));

	snprintf(c.name, sizeof(c.name), "copy");
	cr_assert_eq(hyp_domain_create_restore(h, &c, &copy), 0);
	cr_expect_str_empty(harness_console(h, copy));
	copy_memory(h, orig, copy);
	cr_assert_eq(load_all(h, copy, &b, 0), 0);
	cr_assert_eq(load_done(h, copy), 0);
	cr_expect_str_eq(harness_console(h, copy), saved);
	cr_assert_eq(hyp_domain_destroy(h, orig), 0);
	cr_assert_eq(hyp_domain_destroy(h, copy), 0);
	free(b.p);
	hyp_destroy(h);
}

/* What the console gate holds (HA: an epoch not acknowledged yet) is
 * output the guest wrote: a copy restored from the context shows it after
 * what was let out, once each, though the original's readers have not
 * seen it yet. */
Test(context, console_history_carries_held_output, .timeout = 60)
{
	struct hyp *h = harness_hyp("soft", 256);
	struct hyp_dom_config c = harness_cfg("orig", 64, CMDLINE);
	static char out[65536 + 1], all[65536 + 1];
	struct ctxbuf b = {0};
	uint32_t orig, copy;
	size_t n_out;

	cr_assert_eq(hyp_domain_create(h, &c, false, &orig), 0);
	cr_assert(harness_wait_console(h, orig, "verify: sweep", 1, 60),
		  "no verify sweep; console:\n%s", harness_console(h, orig));
	cr_assert_eq(hyp_console_gate_hold(h, orig), 0);
	snprintf(out, sizeof(out), "%s", harness_console(h, orig));
	n_out = strlen(out);
	/* A sweep written while held: not in the original's console yet. */
	usleep(2500 * 1000);
	cr_assert_eq(hyp_domain_pause(h, orig), 0);
	cr_assert_str_eq(harness_console(h, orig), out, "held output came out");
	cr_assert_eq(hyp_domain_save_context(h, orig, emit_buf, &b), 0);
	snprintf(c.name, sizeof(c.name), "copy");
	cr_assert_eq(hyp_domain_create_restore(h, &c, &copy), 0);
	copy_memory(h, orig, copy);
	cr_assert_eq(load_all(h, copy, &b, 0), 0);
	cr_assert_eq(load_done(h, copy), 0);
	snprintf(all, sizeof(all), "%s", harness_console(h, copy));
	cr_assert_gt(strlen(all), n_out, "the held output is not in the copy:\n%s", all);
	cr_assert_eq(strncmp(all, out, n_out), 0, "the copy's console does not start with what "
						  "was let out:\n%s", all);
	cr_assert(strstr(all + n_out, "verify: sweep"), "no held sweep in:\n%s", all + n_out);
	/* Let out on the original now: the same bytes, once. */
	cr_assert_eq(hyp_console_gate_open(h, orig), 0);
	cr_assert_str_eq(harness_console(h, orig), all);
	cr_assert_eq(hyp_domain_destroy(h, orig), 0);
	cr_assert_eq(hyp_domain_destroy(h, copy), 0);
	free(b.p);
	hyp_destroy(h);
}

static uint32_t resume_count(struct hyp *h, uint32_t id)
{
	struct hyp_domain *d;
	struct ferry_ctl ctl;

	cr_assert_eq(hyp_domain_get(h, id, &d), 0);
	cr_assert_eq(hyp_gmem_read(d, FERRY_CTL_GPA, &ctl, sizeof(ctl)), 0);
	hyp_domain_put(d);
	return ctl.resume_count;
}

/* A running verify guest that has swept its memory once. */
static uint32_t start_verify(struct hyp *h, const struct hyp_dom_config *c)
{
	uint32_t id;

	cr_assert_eq(hyp_domain_create(h, c, false, &id), 0);
	cr_assert(harness_wait_console(h, id, "verify: sweep", 1, 60),
		  "no verify sweep; console:\n%s", harness_console(h, id));
	return id;
}

/* Pauses orig and takes its memory (into dst) and context (into b). */
static void take_epoch(struct hyp *h, uint32_t orig, uint32_t dst, struct ctxbuf *b)
{
	b->len = b->n = 0;
	cr_assert_eq(hyp_domain_pause(h, orig), 0);
	cr_assert_eq(hyp_domain_save_context(h, orig, emit_buf, b), 0);
	copy_memory(h, orig, dst);
}

ParameterizedTestParameters(context, epochs_then_one_resume)
{
	return cr_make_param_array(struct backend, backends, 2);
}

/*
 * A checkpointed restore: the same target loads and commits two epochs of a
 * running guest (ports, grant table, console history again each time), stays
 * paused and unrunnable in between, and the one resume bumps the guest's
 * resume counter once; the copy then verifies as the original left it at
 * the second epoch.
 */
ParameterizedTest(struct backend *backend, context, epochs_then_one_resume, .timeout = 120)
{
	harness_need_backend(backend->name);
	struct hyp *h = harness_hyp(backend->name, 256);
	struct hyp_dom_config c = harness_cfg("orig", 64, CMDLINE);
	struct ctxbuf b = { 0 };
	uint32_t orig, copy, count0, port;
	unsigned clean, sweeps;
	struct hyp_domain *d;

	orig = start_verify(h, &c);
	/* A port of the guest's own (unbound, for a domain 7) travels in
	 * each epoch: the second commit must replace the first's. */
	cr_assert_eq(hyp_domain_get(h, orig, &d), 0);
	cr_assert_eq(evtchn_alloc_unbound_for(d, 7, &port), 0);
	hyp_domain_put(d);
	snprintf(c.name, sizeof(c.name), "copy");
	cr_assert_eq(hyp_domain_create_restore(h, &c, &copy), 0);

	take_epoch(h, orig, copy, &b);
	count0 = resume_count(h, copy);
	cr_assert_eq(load_all(h, copy, &b, 0), 0);
	cr_assert_eq(hyp_domain_load_commit(h, copy), 0);
	cr_expect_eq(resume_count(h, copy), count0, "a commit bumped the resume counter");
	cr_expect_eq(hyp_domain_unpause(h, copy), -EINVAL, "ran between epochs");

	cr_assert_eq(hyp_domain_unpause(h, orig), 0);
	cr_assert(harness_wait_console(h, orig, "verify: sweep", 2, 60),
		  "no second sweep; console:\n%s", harness_console(h, orig));
	take_epoch(h, orig, copy, &b);
	sweeps = count_lines(h, orig, "verify: sweep", &clean);
	cr_assert_eq(load_all(h, copy, &b, 0), 0);
	cr_assert_eq(hyp_domain_load_commit(h, copy), 0, "the second epoch's commit");
	cr_expect_eq(resume_count(h, copy), count0);
	/* The history was replaced, not appended to. */
	cr_expect_eq(count_lines(h, copy, "verify: sweep", &clean), sweeps,
		     "console history of the copy:\n%s", harness_console(h, copy));

	cr_assert_eq(hyp_domain_get(h, copy, &d), 0);
	cr_expect_eq(evtchn_port_state(d, port), EVTCHNSTAT_unbound);
	hyp_domain_put(d);
	cr_assert_eq(hyp_domain_resume_restored(h, copy), 0);
	cr_expect_eq(resume_count(h, copy), count0 + 1);
	cr_expect_eq(hyp_domain_resume_restored(h, copy), -EINVAL, "resumed twice");
	cr_expect_eq(hyp_domain_load_commit(h, copy), -EINVAL, "committed after the resume");
	cr_assert_eq(hyp_domain_destroy(h, orig), 0);
	cr_assert_eq(hyp_domain_unpause(h, copy), 0);
	cr_assert(harness_wait_console(h, copy, "verify: resume pages=2048 mismatches=0", 1,
				       60),
		  "no clean resume check; console:\n%s", harness_console(h, copy));
	cr_expect_eq(count_lines(h, copy, "verify: resume", &clean), 1);
	cr_assert(harness_wait_console(h, copy, "verify: sweep", sweeps + 1, 60),
		  "no sweep after the resume; console:\n%s", harness_console(h, copy));
	cr_expect_null(strstr(harness_console(h, copy), "verify: mismatch"));
	cr_assert_eq(hyp_domain_destroy(h, copy), 0);
	free(b.p);
	hyp_destroy(h);
}
