/* SPDX-License-Identifier: MIT */
/*
 * The CPL3 half: hypercalls through the doorbell, console, guest time,
 * then the workload loop. Under Ferry: Xen hypercalls and the shared_info
 * clock. Without Ferry (QEMU PVH): the 8250 UART and a calibrated TSC.
 */
#include <abi/guest.h>
#include <guests/workload.h>

#include "kernel.h"
#include "../workloads/internal.h"

/* Xen x86-64 convention; the doorbell port is an immediate, so rdx stays
 * free for the third argument. */
static long hypercall(unsigned long nr, unsigned long a1, unsigned long a2,
		      unsigned long a3, unsigned long a4, unsigned long a5)
{
	register unsigned long r10 __asm__("r10") = a4;
	register unsigned long r8 __asm__("r8") = a5;

	__asm__ volatile("outb %%al, %[port]"
			 : "+a"(nr), "+D"(a1), "+S"(a2), "+d"(a3), "+r"(r10),
			   "+r"(r8)
			 : [port] "N"(FERRY_DOORBELL_PORT)
			 : "memory", "rcx", "r11");
	return (long)nr;
}

/* ---- console ------------------------------------------------------------ */

static void uart_putc(char c)
{
	unsigned spins;

	for (spins = 0; !(inb(0x3fd) & 0x20) && spins < 100000; spins++)
		__asm__ volatile("pause");
	outb(0x3f8, (uint8_t)c);
}

void kcons_write(const char *s, size_t len)
{
	size_t i;

	if (kinfo.ferry) {
		hypercall(__HYPERVISOR_console_io, CONSOLEIO_write, len,
			  (unsigned long)(uintptr_t)s, 0, 0);
		return;
	}
	for (i = 0; i < len; i++) {
		if (s[i] == '\n')
			uart_putc('\r');
		uart_putc(s[i]);
	}
}

__attribute__((format(printf, 1, 2)))
static void kprintf(const char *fmt, ...)
{
	char buf[160];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = wl_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	kcons_write(buf, (size_t)n);
}

/* ---- time ----------------------------------------------------------------- */

/* Xen's scaling: ns = ((tsc_delta << shift) * mul) >> 32. */
static uint64_t scale_delta(uint64_t delta, uint32_t mul, int8_t shift)
{
	if (shift < 0)
		delta >>= -shift;
	else
		delta <<= shift;
	return (uint64_t)(((unsigned __int128)delta * mul) >> 32);
}

/* mul/shift for a TSC of khz, as Xen computes them for vcpu_time_info. */
static void tsc_scale(uint32_t khz, uint32_t *mul, int8_t *shift)
{
	uint64_t num = 1000000, den = khz ? khz : 1000000;	/* ns per ms */
	int8_t s = 0;

	while (num >= den) {
		den <<= 1;
		s++;
	}
	*mul = (uint32_t)((num << 32) / den);
	*shift = s;
}

static bool have_shinfo;
static uint32_t fb_mul;		/* TSC-only clock: UART mode, or no shinfo */
static int8_t fb_shift;

/* Globals are shared by all vCPUs; the CPL3 stack is not, so it tells
 * which vCPU we are without per-CPU segment setup. */
static unsigned this_vcpu(void)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);

	return (unsigned)((sp - (uintptr_t)ustacks) / USTACK_SIZE);
}

static uint64_t now_ns(void *opaque)
{
	volatile struct vcpu_time_info *t;
	uint64_t tsc_ts, sys, tsc;
	uint32_t ver, mul;
	int8_t shift;

	(void)opaque;
	if (!have_shinfo)
		return scale_delta(rdtsc(), fb_mul, fb_shift);
	t = &((volatile struct shared_info *)(uintptr_t)FERRY_SHARED_INFO_GPA)
		     ->vcpu_info[this_vcpu()].time;
	do {
		ver = t->version;
		__asm__ volatile("" ::: "memory");
		tsc_ts = t->tsc_timestamp;
		sys = t->system_time;
		mul = t->tsc_to_system_mul;
		shift = t->tsc_shift;
		tsc = rdtsc();
		__asm__ volatile("" ::: "memory");
	} while ((ver & 1) || ver != t->version);
	if (!mul)	/* ferryd has not published a clock yet */
		return scale_delta(tsc, fb_mul, fb_shift);
	/* A TSC behind the stamp (just restored) counts as no time. */
	if ((int64_t)(tsc - tsc_ts) < 0)
		tsc = tsc_ts;
	return sys + scale_delta(tsc - tsc_ts, mul, shift);
}

static void block_until(void *opaque, uint64_t deadline)
{
	(void)opaque;
	if (!kinfo.ferry) {
		while (now_ns(NULL) < deadline)
			__asm__ volatile("pause");
		return;
	}
	hypercall(__HYPERVISOR_set_timer_op, deadline, 0, 0, 0, 0);
	hypercall(__HYPERVISOR_sched_op, SCHEDOP_block, 0, 0, 0, 0);
}

/* ---- shutdown ------------------------------------------------------------ */

static const char *reason_name(unsigned reason)
{
	switch (reason) {
	case SHUTDOWN_poweroff: return "poweroff";
	case SHUTDOWN_reboot: return "reboot";
	case SHUTDOWN_suspend: return "suspend";
	case SHUTDOWN_crash: return "crash";
	case SHUTDOWN_watchdog: return "watchdog";
	default: return "?";
	}
}

void kshutdown(unsigned reason)
{
	struct sched_shutdown sd = { .reason = reason };
	uint16_t cs;

	if (kinfo.ferry) {
		hypercall(__HYPERVISOR_sched_op, SCHEDOP_shutdown,
			  (unsigned long)(uintptr_t)&sd, 0, 0, 0);
	} else {
		kprintf("ferry-guest: shutdown (%s)\n", reason_name(reason));
		/* QEMU's isa-debug-exit, if present: exit status 2r+1. */
		outb(0x501, (uint8_t)reason);
	}
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	for (;;) {
		if ((cs & 3) == 0)
			__asm__ volatile("cli; hlt");
		else if (kinfo.ferry)
			hypercall(__HYPERVISOR_sched_op, SCHEDOP_block, 0, 0,
				  0, 0);
		else
			__asm__ volatile("pause");
	}
}

static void plat_console(void *opaque, const char *s, size_t len)
{
	(void)opaque;
	kcons_write(s, len);
}

static void plat_shutdown(void *opaque, unsigned reason)
{
	(void)opaque;
	kshutdown(reason);
}

static long plat_hypercall(void *opaque, unsigned long nr, unsigned long a1,
			   unsigned long a2, unsigned long a3)
{
	(void)opaque;
	return hypercall(nr, a1, a2, a3, 0, 0);
}

static const struct wl_platform plat = {
	.now_ns = now_ns,
	.console = plat_console,
	.block_until = block_until,
	.shutdown = plat_shutdown,
	.opaque = NULL,
};

/* ---- main ------------------------------------------------------------------ */

static bool map_shared_info(void)
{
	struct xen_add_to_physmap xatp = {
		.domid = DOMID_SELF,
		.size = 0,
		.space = XENMAPSPACE_shared_info,
		.idx = 0,
		.gpfn = FERRY_SHARED_INFO_GPA >> 12,
	};
	long rc;

	rc = hypercall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap,
		       (unsigned long)(uintptr_t)&xatp, 0, 0, 0);
	if (rc < 0) {
		kprintf("ferry-guest: mapping shared_info failed: %ld\n", rc);
		return false;
	}
	return true;
}

/* End of the RAM region holding the arena: the workload needs its RAM
 * contiguous from FERRY_ARENA_GPA. */
static uint64_t arena_ram_end(const struct hvm_start_info *si)
{
	const struct hvm_memmap_table_entry *e;
	uint32_t i;

	if (si->version < 1 || !si->memmap_paddr)
		return 0;
	e = (const void *)(uintptr_t)si->memmap_paddr;
	for (i = 0; i < si->memmap_entries; i++)
		if (e[i].type == XEN_HVM_MEMMAP_TYPE_RAM &&
		    e[i].addr <= FERRY_ARENA_GPA &&
		    e[i].addr + e[i].size > FERRY_ARENA_GPA)
			return e[i].addr + e[i].size;
	return 0;
}

void user_main(uint64_t start_info, uint64_t vcpu)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)start_info;
	const char *cmdline = "";
	struct wl_ctx ctx;
	uint64_t mem = 0;

	tsc_scale(kinfo.tsc_khz, &fb_mul, &fb_shift);
	if (kinfo.ferry)
		have_shinfo = map_shared_info();

	if (si && si->magic == XEN_HVM_START_MAGIC_VALUE) {
		mem = arena_ram_end(si);
		if (si->cmdline_paddr)
			cmdline = (const char *)(uintptr_t)si->cmdline_paddr;
	}
	kprintf("ferry-guest: booted vcpu=%u mem=%lluM on %s\n", (unsigned)vcpu,
		(unsigned long long)(mem >> 20),
		kinfo.ferry ? "ferry" : "uart");

	if (vcpu != 0) {
		for (;;)
			block_until(NULL, now_ns(NULL) + 3600 * WL_NSEC_PER_SEC);
	}
	if (!kinfo.tsc_khz && !have_shinfo)
		kprintf("ferry-guest: no TSC frequency, time is a guess\n");
	if (!mem) {
		kprintf("ferry-guest: no usable start info / memory map\n");
		kshutdown(SHUTDOWN_crash);
	}
	/* The PV services (event channels, grant tables, console and
	 * xenstore rings) poll shared_info: only with it mapped. */
	if (wl_attach_xen(&ctx, &plat,
			  kinfo.ferry && have_shinfo ? plat_hypercall : NULL, 0,
			  mem, cmdline))
		kshutdown(SHUTDOWN_crash);
	for (;;)
		wl_run_slice(&ctx);
}
