/* SPDX-License-Identifier: MIT */
/*
 * The built-in guest's workloads, written once in freestanding C and compiled
 * both into the guest kernel (guests/kernel) and into ferryd's soft backend
 * (hyp/exec-soft). Everything a workload must keep across save, restore and
 * migration lives in guest memory (struct wl_state and the tables after it,
 * in the arena at FERRY_ARENA_GPA); the wl_ctx is rebuilt on every start.
 *
 * Freestanding: no libc. Only <stdint.h>, <stddef.h>, <stdbool.h>.
 */
#ifndef GUESTS_WORKLOAD_H
#define GUESTS_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the workloads need from where they run: the guest kernel implements it
 * with hypercalls and the TSC, the soft backend with ferryd's own calls. */
struct wl_platform {
	/* Guest system time in ns (Xen's vcpu_time_info clock). */
	uint64_t (*now_ns)(void *opaque);
	/* Console output, not NUL-terminated. */
	void (*console)(void *opaque, const char *s, size_t len);
	/* Sleep until the system time reaches deadline_ns or an event arrives
	 * (set_timer_op + SCHEDOP_block). May return early. */
	void (*block_until)(void *opaque, uint64_t deadline_ns);
	/* SCHEDOP_shutdown with a SHUTDOWN_* reason; does not return in the
	 * guest, returns in the soft backend (which then stops the vCPU). */
	void (*shutdown)(void *opaque, unsigned reason);
	/* The soft backend: a pause or stop is pending, end the slice at once
	 * (the workloads ask between batches of pages and stop where the
	 * state in guest memory is whole). NULL: never (the guest kernel,
	 * whose vCPU is stopped wherever it is). */
	bool (*preempted)(void *opaque);
	void *opaque;
};

/* A Xen hypercall (Xen's x86-64 numbers and arguments, pointers being
 * guest-physical addresses); returns rax. See wl_attach_xen. */
typedef long (*wl_hypercall_fn)(void *opaque, unsigned long nr,
				unsigned long a1, unsigned long a2,
				unsigned long a3);

/* Workload kinds, stored in guest memory. */
enum wl_kind { WL_IDLE = 1, WL_DIRTY = 2, WL_VERIFY = 3, WL_SPIN = 4,
	       WL_PINGPONG = 5 };

struct wl_ctx {
	const struct wl_platform *plat;
	/* Host address of guest-physical 0 (0 inside the guest, the guest
	 * mapping's base in ferryd). Guest memory stores only gpas. */
	uintptr_t mem_base;
	uint64_t mem_size; /* bytes of guest RAM */
	struct wl_state *st; /* at mem_base + FERRY_ARENA_GPA */
	wl_hypercall_fn hypercall; /* NULL: no PV services */
};

/*
 * Attach to guest memory. If the arena holds no initialised state (first
 * boot), parse cmdline ("workload=verify ws=64M rate=20M pattern=seq"; keys
 * the workload does not know are ignored) and lay out the state.
 * data=mix makes fill=, dirty and verify write pages like a real guest's
 * RAM (research/limits.md's "mix": zero, code-like, text-like and random
 * pages) instead of near-incompressible ones; verify still checks them. On an
 * already initialised arena (resume in a new process), keep it.
 * Returns 0, or -22 (EINVAL) for a bad command line after printing why on
 * the console.
 */
int wl_attach(struct wl_ctx *ctx, const struct wl_platform *plat,
	      uintptr_t mem_base, uint64_t mem_size, const char *cmdline);

/*
 * wl_attach with Xen's PV services: hypercall (called with plat->opaque)
 * gives the workloads event channels, grant tables, the console ring
 * (HVM_PARAM_CONSOLE_PFN) and a xenstore client (HVM_PARAM_STORE_PFN:
 * control/shutdown and memory/target watches), and makes
 * workload=pingpong possible. The platform must have mapped shared_info at
 * FERRY_SHARED_INFO_GPA; event channels are polled there (no interrupts).
 * wl_attach is this with hypercall NULL: no PV services, pingpong refused.
 */
int wl_attach_xen(struct wl_ctx *ctx, const struct wl_platform *plat,
		  wl_hypercall_fn hypercall, uintptr_t mem_base,
		  uint64_t mem_size, const char *cmdline);

/*
 * What wl_attach would say of cmdline on a first boot with mem_size bytes
 * of RAM, without touching memory: the same parser and the same checks
 * (values, the working set or fill= fitting the arena, pingpong's role and
 * peer). Lets ferryd refuse a domain before building it. Returns 0, or -22
 * (EINVAL) with the reason in err (NUL-terminated when errlen > 0), e.g.
 * "bad value 'nonesuch' for workload".
 */
int wl_check_cmdline(const char *cmdline, uint64_t mem_size, char *err, size_t errlen);

/*
 * Run one slice of work of at most about 10 ms, then return; sooner (within
 * about 100 us) when plat->preempted says so. Before working
 * it polls struct ferry_ctl (at FERRY_CTL_GPA): a shutdown request is
 * carried out through plat->shutdown, and a changed resume_count makes
 * verify check all pages and print its resume line.
 */
void wl_run_slice(struct wl_ctx *ctx);

/* For tests and ferryd: guest-memory records of what the workload wrote. */
/* gpa of the first working-set page and the number of pages. */
uint64_t wl_ws_gpa(const struct wl_ctx *ctx);
uint64_t wl_ws_pages(const struct wl_ctx *ctx);
/* Per-page write generation (incremented on each write of that page). */
uint32_t wl_page_gen(const struct wl_ctx *ctx, uint64_t page_index);

#endif
