// SPDX-License-Identifier: MIT
/*
 * The soft execution backend: vCPUs are host threads running the built-in
 * guest's workload code (guests/workloads) directly against guest memory.
 * hyp does not link that code: whoever creates the hyp hands it in
 * (hyp_params.soft_guest, struct hyp_soft_guest_ops; ferryd passes the
 * workloads library's), so a soft domain without it is refused.
 * No x86 is emulated; what the workload keeps lives in guest memory, so
 * every path of the engine (dirty tracking, save, restore, migration) runs
 * on machines without /dev/kvm.
 *
 * vCPU 0 gets Xen's hypercall ABI as the guest kernel does: it maps
 * shared_info at FERRY_SHARED_INFO_GPA through XENMEM_add_to_physmap, then
 * attaches the guest code (ops->attach), whose hypercalls go to hyp_hypercall on its
 * own thread, inside vcpu_run; so the PV services (event channels, grant
 * tables, console and xenstore rings, balloon, pingpong) run here as on kvm.
 * Blocking is set_timer_op + SCHEDOP_block, as in the guest kernel; events
 * are the kicked flag and shared_info's bits (no interrupts). A pause takes
 * effect when the slice returns (a block returns at once meanwhile), so
 * nothing is left half-done in a saved soft vCPU; the workload asks
 * plat_preempted between batches of pages and returns early, so that is
 * within about 100 us of the request, not at the end of a 10 ms slice. A stop (destroy, guest
 * shutdown) does not wait for the slice: the vCPU never runs again, so its
 * workload is abandoned at its next block, as a kvm vCPU that is never
 * entered again; a workload waiting out a deadline (the xenstore probe at
 * boot: 0.5 s) would otherwise hold the destroy that long.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "common/log.h"
#include "../internal.h"

struct soft_dom {
	uint64_t time_base; /* CLOCK_MONOTONIC ns at system time 0 (mod 2^64) */
	/* A context load in progress: SOFT_VCPU entries by vCPU id. */
	struct ferry_soft_vcpu load[HYP_MAX_VCPUS];
	uint64_t load_have; /* bit per vCPU id */
};
_Static_assert(HYP_MAX_VCPUS <= 64, "soft_dom.load_have has a bit per vCPU");

/* Where vCPU 0 puts XENMEM_add_to_physmap's argument, which the guest
 * kernel keeps on its stack: soft has no page tables, so their first page
 * is free guest memory. Cleared again afterwards. */
#define SOFT_ARG_GPA FERRY_PGTABLE_GPA

struct soft_vcpu {
	struct hyp_vcpu *v;
	struct hyp_soft_platform plat;
	void *guest; /* the guest code's context: soft_guest->ctx_size bytes */
	bool live;   /* guest attached to the memory as it is now */
	bool attached;
	bool stopped;
	jmp_buf abandon; /* back to soft_vcpu_run from a block when stopping */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int soft_probe(char *why, size_t len)
{
	return 0;
}

static int soft_dom_init(struct hyp_domain *d)
{
	struct soft_dom *sd;

	if (!d->h->soft_guest) {
		log_err("d%u: the soft backend has no guest code to run (hyp_params.soft_guest "
			"is not set)",
			d->domid);
		return -EINVAL;
	}
	sd = calloc(1, sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	sd->time_base = mono_ns();
	d->exec = sd;
	return 0;
}

static void soft_dom_fini(struct hyp_domain *d)
{
	free(d->exec);
	d->exec = NULL;
}

static uint64_t soft_now_ns(struct hyp_domain *d)
{
	struct soft_dom *sd = d->exec;

	return mono_ns() - sd->time_base;
}

/* ---- the workload's platform: ferryd's own calls ------------------------ */

static uint64_t plat_now_ns(void *opaque)
{
	struct soft_vcpu *sv = opaque;

	return soft_now_ns(sv->v->d);
}

static void plat_console(void *opaque, const char *s, size_t len)
{
	struct soft_vcpu *sv = opaque;

	hyp__console_put(sv->v->d, s, len);
}

/* A Xen hypercall from the workload, on the vCPU's thread. */
static long plat_hypercall(void *opaque, unsigned long nr, unsigned long a1, unsigned long a2,
			   unsigned long a3)
{
	struct soft_vcpu *sv = opaque;
	const uint64_t arg[5] = { a1, a2, a3, 0, 0 };
	int64_t ret = hyp_hypercall(sv->v, nr, arg);

	/* The guest kernel never returns from it; the workload does, and the
	 * vCPU stops when its slice ends, as after plat_shutdown. */
	if (nr == __HYPERVISOR_sched_op && a1 == SCHEDOP_shutdown && !ret)
		sv->stopped = true;
	return (long)ret;
}

/* The guest kernel's block_until: SCHEDOP_block returns at once when an
 * event is pending in shared_info (an evtchn notify since the workload
 * last looked), else sleeps until the deadline, a notify or a pause. */
static void plat_block_until(void *opaque, uint64_t deadline_ns)
{
	struct soft_vcpu *sv = opaque;

	plat_hypercall(sv, __HYPERVISOR_set_timer_op, deadline_ns, 0, 0);
	plat_hypercall(sv, __HYPERVISOR_sched_op, SCHEDOP_block, 0, 0);
	/* A block that slept gave the pCPU back; the rest of the slice runs
	 * on one again, as a kvm vCPU re-enters only with one. Refused when
	 * paused or stopping: the slice then ends without. A stopping vCPU
	 * leaves the workload's frames here (they hold nothing of ferryd's:
	 * the hypercalls have returned, no lock is held). */
	if (__atomic_load_n(&sv->v->d->stopping, __ATOMIC_ACQUIRE))
		longjmp(sv->abandon, 1);
	if (!__atomic_load_n(&sv->v->sched_running, __ATOMIC_RELAXED))
		sched_acquire(sv->v);
}

/* Asked by the workload between batches of pages (every ~10 us of work):
 * a pause or a stop is pending. The slice then returns at once and the
 * vCPU parks, so a pause takes about that long instead of the rest of a
 * 10 ms slice. */
static bool plat_preempted(void *opaque)
{
	struct soft_vcpu *sv = opaque;
	struct hyp_domain *d = sv->v->d;

	return __atomic_load_n(&d->paused, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&d->stopping, __ATOMIC_RELAXED);
}

static void plat_shutdown(void *opaque, unsigned reason)
{
	struct soft_vcpu *sv = opaque;

	sv->stopped = true;
	hyp__dom_guest_shutdown(sv->v->d, reason);
}

/* What the guest kernel does at boot, through the same hypercall, so the
 * domain records shared_info exactly as for kvm. A failure is logged and
 * leaves the workload without PV services, as in the guest kernel. */
static void map_shared_info(struct soft_vcpu *sv)
{
	static const struct xen_add_to_physmap zero;
	const struct xen_add_to_physmap x = {
		.domid = DOMID_SELF,
		.space = XENMAPSPACE_shared_info,
		.idx = 0,
		.gpfn = FERRY_SHARED_INFO_GPA >> 12,
	};
	struct hyp_domain *d = sv->v->d;
	long rc;

	if (hyp_gmem_write(d, SOFT_ARG_GPA, &x, sizeof(x)))
		rc = -XEN_EFAULT;
	else
		rc = plat_hypercall(sv, __HYPERVISOR_memory_op, XENMEM_add_to_physmap, SOFT_ARG_GPA,
				    0);
	hyp_gmem_write(d, SOFT_ARG_GPA, &zero, sizeof(zero));
	if (rc)
		log_err("d%u: mapping shared_info failed (%ld): the workload gets no PV services",
			d->domid, rc);
}

static int soft_vcpu_init(struct hyp_vcpu *v)
{
	struct soft_vcpu *sv = calloc(1, sizeof(*sv));

	if (!sv)
		return -ENOMEM;
	sv->guest = calloc(1, v->d->h->soft_guest->ctx_size ? v->d->h->soft_guest->ctx_size : 1);
	if (!sv->guest) {
		free(sv);
		return -ENOMEM;
	}
	sv->v = v;
	sv->plat = (struct hyp_soft_platform){
		.now_ns = plat_now_ns,
		.console = plat_console,
		.block_until = plat_block_until,
		.shutdown = plat_shutdown,
		.preempted = plat_preempted,
		.opaque = sv,
	};
	v->exec = sv;
	return 0;
}

static void soft_vcpu_fini(struct hyp_vcpu *v)
{
	struct soft_vcpu *sv = v->exec;

	if (sv)
		free(sv->guest);
	free(v->exec);
	v->exec = NULL;
}

/* One slice of the workload; leaves by longjmp when the vCPU is stopping. */
static void run_workload(struct hyp_vcpu *v, struct hyp_exit *ex)
{
	struct soft_vcpu *sv = v->exec;
	struct hyp_domain *d = v->d;
	const struct hyp_soft_guest_ops *guest = d->h->soft_guest;

	if (v->id != 0) {
		/* Secondary vCPUs idle, as the guest kernel's do. */
		plat_block_until(sv, soft_now_ns(d) + 1000000000ULL);
		ex->kind = HYP_EXIT_NONE;
		return;
	}
	if (!sv->live) {
		hyp_soft_hypercall_fn hc;
		char banner[128];
		int n;

		/* Attached before a save: the workload finds its state (and
		 * shared_info mapped) in the restored memory and keeps it; no
		 * second boot banner. */
		if (!sv->attached) {
			n = snprintf(banner, sizeof(banner),
				     "ferry-guest: booted vcpu=0 mem=%lluM on soft\n",
				     (unsigned long long)(d->mem_bytes >> 20));
			hyp__console_put(d, banner, (size_t)n);
			map_shared_info(sv);
		}
		/* As the guest kernel: PV services only with shared_info
		 * where the workloads poll it (not in a stream saved before
		 * soft had them). */
		hc = d->shared_info_gpa == FERRY_SHARED_INFO_GPA ? plat_hypercall : NULL;
		if (guest->attach(sv->guest, &sv->plat, hc, (uintptr_t)d->hva, d->mem_bytes,
				  d->cfg.cmdline)) {
			log_err("d%u: the workload refused its command line '%s'", d->domid,
				d->cfg.cmdline);
			ex->kind = HYP_EXIT_CRASH;
			return;
		}
		sv->attached = true;
		sv->live = true;
	}
	guest->run_slice(sv->guest);
	ex->kind = sv->stopped ? HYP_EXIT_STOPPED : HYP_EXIT_NONE;
}

static int soft_vcpu_run(struct hyp_vcpu *v, struct hyp_exit *ex)
{
	struct soft_vcpu *sv = v->exec;

	if (setjmp(sv->abandon)) {
		ex->kind = HYP_EXIT_STOPPED; /* stopping: abandoned in a block */
		return 0;
	}
	run_workload(v, ex);
	return 0;
}

static void soft_vcpu_hcall_done(struct hyp_vcpu *v, int64_t ret)
{
	(void)v;
	(void)ret;
}

/* A soft vCPU returns from each slice (at most ~10 ms) and blocks through
 * hyp__vcpu_block, which the generic kick (d->cond) already wakes. */
static void soft_vcpu_kick(struct hyp_vcpu *v) { (void)v; }

/* A soft vCPU has no interrupts: the event-channel wake (the kicked flag
 * evtchn.c sets) is the whole delivery; the workload polls shared_info. */
static void soft_inject_vector(struct hyp_vcpu *v, uint8_t vector)
{
	(void)v;
	(void)vector;
}

static void soft_shared_info_mapped(struct hyp_domain *d, uint64_t gpa)
{
	(void)d;
	(void)gpa;
}

/* ---- save and restore: one SOFT_VCPU entry per vCPU ---------------------- */

/* Nothing is left half-done when a soft vCPU returns from its slice. */
static void soft_vcpu_quiesce(struct hyp_vcpu *v) { (void)v; }

static int soft_save_context(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque)
{
	for (unsigned i = 0; i < d->nvcpus; i++) {
		struct hyp_vcpu *v = &d->vcpus[i];
		struct soft_vcpu *sv = v->exec;
		struct ferry_soft_vcpu e = {
			.version = 1,
			.attached = sv->attached,
			.timer_ns = v->timer_ns,
		};
		int err = emit(opaque, FERRY_HVM_SOFT_VCPU, (uint16_t)i, &e, sizeof(e));

		if (err)
			return err;
	}
	return 0;
}

static int soft_load_entry(struct hyp_domain *d, uint16_t typecode, uint16_t instance,
			   const void *data, uint32_t len)
{
	struct soft_dom *sd = d->exec;
	struct ferry_soft_vcpu e;

	if (typecode != FERRY_HVM_SOFT_VCPU) {
		log_err("d%u: HVM context entry 0x%04x/%u: not a soft entry", d->domid,
			typecode, instance);
		return -EINVAL;
	}
	if (instance >= d->nvcpus) {
		log_err("d%u: HVM context entry SOFT_VCPU/%u: no such vCPU (the domain has %u)",
			d->domid, instance, d->nvcpus);
		return -EINVAL;
	}
	if (len != sizeof(e)) {
		log_err("d%u: HVM context entry SOFT_VCPU/%u: length %u, expected %zu",
			d->domid, instance, len, sizeof(e));
		return -EINVAL;
	}
	memcpy(&e, data, sizeof(e));
	if (e.version != 1 || e.attached > 1) {
		log_err("d%u: HVM context entry SOFT_VCPU/%u: version %u attached %u, expected "
			"version 1 and attached 0 or 1", d->domid, instance, e.version,
			e.attached);
		return -EINVAL;
	}
	sd->load[instance] = e;
	sd->load_have |= 1ULL << instance;
	/* Now, not at load_done: the generic VCPU entry that follows wins. */
	d->vcpus[instance].timer_ns = e.timer_ns;
	return 0;
}

static int soft_load_done(struct hyp_domain *d, const struct ferry_hvm_domain *dom)
{
	struct soft_dom *sd = d->exec;

	for (unsigned i = 0; i < d->nvcpus; i++)
		if (!(sd->load_have & (1ULL << i))) {
			log_err("d%u: HVM context has no SOFT_VCPU entry for vCPU %u", d->domid,
				i);
			return -EINVAL;
		}
	for (unsigned i = 0; i < d->nvcpus; i++) {
		struct hyp_vcpu *v = &d->vcpus[i];
		struct soft_vcpu *sv = v->exec;

		sv->attached = sd->load[i].attached;
		sv->live = false; /* re-attach to the restored memory */
	}
	/* System time continues from the saved value: now_ns() is
	 * mono - time_base, in unsigned (modular) arithmetic. */
	sd->time_base = mono_ns() - dom->system_time_ns;
	sd->load_have = 0;
	return 0;
}

static uint32_t soft_tsc_khz(struct hyp_domain *d)
{
	(void)d;
	return 1000000; /* system time in ns: a 1 GHz "TSC" */
}

const struct hyp_exec_ops hyp_exec_ops_soft = {
	.name               = "soft",
	.probe              = soft_probe,
	.dom_init           = soft_dom_init,
	.dom_fini           = soft_dom_fini,
	.vcpu_init          = soft_vcpu_init,
	.vcpu_fini          = soft_vcpu_fini,
	.vcpu_run           = soft_vcpu_run,
	.vcpu_hcall_done    = soft_vcpu_hcall_done,
	.vcpu_kick          = soft_vcpu_kick,
	.now_ns             = soft_now_ns,
	.shared_info_mapped = soft_shared_info_mapped,
	.loads_kernel       = false,
	.vcpu_quiesce       = soft_vcpu_quiesce,
	.save_context       = soft_save_context,
	.load_entry         = soft_load_entry,
	.load_done          = soft_load_done,
	.tsc_khz            = soft_tsc_khz,
	.inject_vector      = soft_inject_vector,
};
