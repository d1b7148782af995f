// SPDX-License-Identifier: MIT
/*
 * wl_soft_guest_ops (guests/soft.h): hyp's soft-backend guest interface
 * wired to the workloads (wl_attach_xen, wl_run_slice). The context keeps
 * the workloads' platform beside the workload context, as wl_ctx points to
 * it for as long as it is attached.
 */
#include "guests/soft.h"
#include "guests/workload.h"

struct soft_guest {
	struct wl_platform plat;
	struct wl_ctx ctx;
};

static int soft_guest_attach(void *opaque, const struct hyp_soft_platform *plat,
			     hyp_soft_hypercall_fn hypercall, uintptr_t mem_base, uint64_t mem_size,
			     const char *cmdline)
{
	struct soft_guest *g = opaque;

	g->plat = (struct wl_platform){
		.now_ns = plat->now_ns,
		.console = plat->console,
		.block_until = plat->block_until,
		.shutdown = plat->shutdown,
		.preempted = plat->preempted,
		.opaque = plat->opaque,
	};
	return wl_attach_xen(&g->ctx, &g->plat, hypercall, mem_base, mem_size, cmdline);
}

static void soft_guest_run_slice(void *opaque)
{
	struct soft_guest *g = opaque;

	wl_run_slice(&g->ctx);
}

const struct hyp_soft_guest_ops wl_soft_guest_ops = {
	.ctx_size = sizeof(struct soft_guest),
	.attach = soft_guest_attach,
	.run_slice = soft_guest_run_slice,
};
