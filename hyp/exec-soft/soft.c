// SPDX-License-Identifier: MIT
/*
 * The soft execution backend: vCPUs are host threads running the built-in
 * guest's workload code (guests/workloads) directly against guest memory.
 * No x86 is emulated; what the workload keeps lives in guest memory, so
 * every path of the engine (dirty tracking, save, restore, migration) runs
 * on machines without /dev/kvm.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "common/log.h"
#include "guests/workload.h"
#include "../internal.h"

struct soft_dom {
	uint64_t time_base; /* CLOCK_MONOTONIC ns at system time 0 */
};

struct soft_vcpu {
	struct hyp_vcpu *v;
	struct wl_platform plat;
	struct wl_ctx ctx;
	bool attached;
	bool stopped;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int soft_probe(void) { return 0; }

static int soft_dom_init(struct hyp_domain *d)
{
	struct soft_dom *sd = calloc(1, sizeof(*sd));

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

	console_put(sv->v->d, s, len);
}

static void plat_block_until(void *opaque, uint64_t deadline_ns)
{
	struct soft_vcpu *sv = opaque;

	sv->v->timer_ns = deadline_ns;
	vcpu_block(sv->v);
}

static void plat_shutdown(void *opaque, unsigned reason)
{
	struct soft_vcpu *sv = opaque;

	sv->stopped = true;
	dom_guest_shutdown(sv->v->d, reason);
}

static int soft_vcpu_init(struct hyp_vcpu *v)
{
	struct soft_vcpu *sv = calloc(1, sizeof(*sv));

	if (!sv)
		return -ENOMEM;
	sv->v = v;
	sv->plat = (struct wl_platform){
		.now_ns = plat_now_ns,
		.console = plat_console,
		.block_until = plat_block_until,
		.shutdown = plat_shutdown,
		.opaque = sv,
	};
	v->exec = sv;
	return 0;
}

static void soft_vcpu_fini(struct hyp_vcpu *v)
{
	free(v->exec);
	v->exec = NULL;
}

static int soft_vcpu_run(struct hyp_vcpu *v, struct hyp_exit *ex)
{
	struct soft_vcpu *sv = v->exec;
	struct hyp_domain *d = v->d;

	if (v->id != 0) {
		/* Secondary vCPUs idle, as the guest kernel's do. */
		plat_block_until(sv, soft_now_ns(d) + 1000000000ULL);
		ex->kind = HYP_EXIT_NONE;
		return 0;
	}
	if (!sv->attached) {
		char banner[128];
		int n;

		n = snprintf(banner, sizeof(banner),
			     "ferry-guest: booted vcpu=0 mem=%lluM on soft\n",
			     (unsigned long long)(d->mem_bytes >> 20));
		console_put(d, banner, (size_t)n);
		if (wl_attach(&sv->ctx, &sv->plat, (uintptr_t)d->hva, d->mem_bytes,
			      d->cfg.cmdline)) {
			log_err("d%u: the workload refused its command line '%s'", d->domid,
				d->cfg.cmdline);
			ex->kind = HYP_EXIT_CRASH;
			return 0;
		}
		sv->attached = true;
	}
	wl_run_slice(&sv->ctx);
	ex->kind = sv->stopped ? HYP_EXIT_STOPPED : HYP_EXIT_NONE;
	return 0;
}

static void soft_vcpu_hcall_done(struct hyp_vcpu *v, int64_t ret)
{
	(void)v;
	(void)ret;
}

/* A soft vCPU returns from each slice (at most ~10 ms) and blocks through
 * vcpu_block, which the generic kick (d->cond) already wakes. */
static void soft_vcpu_kick(struct hyp_vcpu *v) { (void)v; }

static void soft_shared_info_mapped(struct hyp_domain *d, uint64_t gpa)
{
	(void)d;
	(void)gpa;
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
};
