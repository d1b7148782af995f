/* SPDX-License-Identifier: MIT */
/*
 * The CPL0 half: descriptor tables, Ferry detection, UART and TSC setup
 * when there is no Ferry, then iretq to CPL3. On kvm_pvm every instruction
 * here is emulated (~1 us each), so this file does as little as it can and
 * leaves all real work to user_main() at CPL3.
 */
#include <abi/guest.h>

#include "kernel.h"
#include "../workloads/internal.h"

struct tss64 {
	uint32_t rsvd0;
	uint64_t rsp0, rsp1, rsp2;
	uint64_t rsvd1;
	uint64_t ist[7];
	uint64_t rsvd2;
	uint16_t rsvd3;
	uint16_t iomap;
} __attribute__((packed));

/*
 * I/O from CPL3 (doorbell, UART): IOPL 3 is enough on hardware, but
 * kvm_pvm runs the guest at hardware IOPL 0 and takes the guest's rflags
 * back from hardware at every exit, so IOPL 3 is soon lost (seen: #GP on
 * the doorbell with IOPL 0 in the frame); it then emulates the faulting
 * `out`, which consults the TSS I/O bitmap. So every TSS points at one
 * shared bitmap that opens just the ports we use; ports past its end are
 * denied.
 */
#define IOBITMAP_BYTES 256	/* ports 0 .. 2047 */

struct tss_block {
	struct tss64 tss[MAX_VCPUS];	/* per vCPU: ltr marks it busy */
	uint8_t iobitmap[IOBITMAP_BYTES + 1];	/* + the 0xff terminator */
} __attribute__((packed, aligned(64)));

struct dtr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

struct kinfo kinfo;
static uint64_t gdts[MAX_VCPUS][GDT_ENTRIES] __attribute__((aligned(64)));
/* Initialised at build time: vCPUs come up concurrently, and a bitmap
 * being rewritten at run time would briefly close ports under another
 * vCPU's feet (and cost emulated instructions). */
_Static_assert(FERRY_DOORBELL_PORT == 29 * 8, "doorbell bit in byte 29");
static struct tss_block tss_block = {
	.iobitmap = {
		[0 ... 28] = 0xff,
		[29] = 0xfe,		/* 0xe8: doorbell */
		[30 ... 126] = 0xff,
		[127] = 0x00,		/* 0x3f8-0x3ff: COM1 */
		[128 ... 159] = 0xff,
		[160] = 0xfd,		/* 0x501: QEMU isa-debug-exit */
		[161 ... IOBITMAP_BYTES] = 0xff,
	},
};
static uint64_t idt[32 * 2] __attribute__((aligned(16)));
uint8_t ustacks[MAX_VCPUS][USTACK_SIZE] __attribute__((aligned(16)));

static void setup_gdt(unsigned vcpu)
{
	uint64_t *gdt = gdts[vcpu];
	struct tss64 *tss = &tss_block.tss[vcpu];
	uint64_t base = (uint64_t)(uintptr_t)tss;
	uint64_t iomap = (uint64_t)(uintptr_t)tss_block.iobitmap - base;
	uint64_t limit = iomap + IOBITMAP_BYTES;
	struct dtr d;

	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffull;	/* kernel code, L */
	gdt[2] = 0x00cf93000000ffffull;	/* kernel data */
	gdt[3] = 0x00cff3000000ffffull;	/* user data */
	gdt[4] = 0x00affb000000ffffull;	/* user code, L */
	gdt[5] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 |
		 ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	gdt[6] = base >> 32;
	tss->rsp0 = (uint64_t)(uintptr_t)kstacks[vcpu] + KSTACK_SIZE;
	tss->iomap = (uint16_t)iomap;

	d.limit = GDT_ENTRIES * 8 - 1;
	d.base = (uint64_t)(uintptr_t)gdt;
	__asm__ volatile("lgdt %0" : : "m"(d));
	__asm__ volatile("ltr %w0" : : "r"(GDT_TSS));
}

/* Every vCPU writes the same gates, so the race is harmless. */
static void setup_idt(void)
{
	struct dtr d;
	unsigned v;

	for (v = 0; v < 32; v++) {
		uint64_t h = (uint64_t)(uintptr_t)exc_stubs + v * 16;

		idt[2 * v] = (h & 0xffff) | (uint64_t)GDT_KCODE << 16 |
			     0x8eull << 40 | ((h >> 16) & 0xffff) << 48;
		idt[2 * v + 1] = h >> 32;
	}
	d.limit = sizeof(idt) - 1;
	d.base = (uint64_t)(uintptr_t)idt;
	__asm__ volatile("lidt %0" : : "m"(d));
}

/* CPUID is asked here because at CPL3 kvm_pvm may not serve Ferry's
 * leaves from the table ferryd installed. */
static void detect_ferry(void)
{
	uint32_t a, b, c, d, port;

	cpuid(FERRY_CPUID_BASE, &a, &b, &c, &d);
	if (b != FERRY_CPUID_SIG_EBX || c != FERRY_CPUID_SIG_ECX ||
	    d != FERRY_CPUID_SIG_EDX || a < FERRY_CPUID_MAX)
		return;
	cpuid(FERRY_CPUID_BASE + 1, &a, &b, &c, &d);
	kinfo.ferry_version = a;
	cpuid(FERRY_CPUID_BASE + 2, &port, &b, &c, &d);
	/* The doorbell is an immediate operand of outb. */
	if (port != FERRY_DOORBELL_PORT)
		return;
	kinfo.tsc_khz = b;
	kinfo.ferry = true;
}

static void uart_init(void)
{
	outb(0x3f9, 0x00);	/* no interrupts */
	outb(0x3fb, 0x80);	/* DLAB */
	outb(0x3f8, 0x01);	/* 115200 */
	outb(0x3f9, 0x00);
	outb(0x3fb, 0x03);	/* 8N1 */
	outb(0x3fa, 0xc7);	/* FIFOs on */
	outb(0x3fc, 0x03);	/* DTR, RTS */
}

/* TSC kHz without Ferry: hypervisor leaf 0x40000010, then CPUID 0x15 and
 * 0x16, then 10 ms of PIT channel 2. */
static uint32_t tsc_khz_probe(void)
{
	uint32_t a, b, c, d, max;
	uint64_t t0, t1, spins;

	cpuid(1, &a, &b, &c, &d);
	if (c & (1u << 31)) {
		cpuid(0x40000000, &max, &b, &c, &d);
		if (max >= 0x40000010 && max < 0x40000100) {
			cpuid(0x40000010, &a, &b, &c, &d);
			if (a > 1000 && a < 100000000)
				return a;
		}
	}
	cpuid(0, &max, &b, &c, &d);
	if (max >= 0x15) {
		cpuid(0x15, &a, &b, &c, &d);
		if (a && b && c)
			return (uint32_t)((uint64_t)c * b / a / 1000);
	}
	if (max >= 0x16) {
		cpuid(0x16, &a, &b, &c, &d);
		if (a & 0xffff)
			return (a & 0xffff) * 1000;
	}

	outb(0x61, (inb(0x61) & ~0x02) | 0x01);	/* gate on, speaker off */
	outb(0x43, 0xb0);			/* ch2, lo/hi, mode 0 */
	outb(0x42, 11932 & 0xff);		/* 1193182 Hz / 100 */
	outb(0x42, 11932 >> 8);
	t0 = rdtsc();
	for (spins = 0; !(inb(0x61) & 0x20); spins++)
		if (spins > 50000000)
			return 0;
	t1 = rdtsc();
	return (uint32_t)((t1 - t0) / 10);
}

void cpl0_main(uint64_t start_info, uint64_t vcpu)
{
	setup_gdt((unsigned)vcpu);
	setup_idt();
	detect_ferry();
	if (!kinfo.ferry && vcpu == 0) {
		uart_init();
		kinfo.tsc_khz = tsc_khz_probe();
	}
	enter_user((uint64_t)(uintptr_t)user_main,
		   (uint64_t)(uintptr_t)ustacks[vcpu] + USTACK_SIZE - 8,
		   start_info, vcpu);
}

void exc_handler(struct exc_frame *f)
{
	char buf[128];
	uint64_t cr2 = 0;
	int n;

	if (f->vec == 14)
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	n = wl_snprintf(buf, sizeof(buf),
			"guest: exception %llu at 0x%llx err=0x%llx cr2=0x%llx "
			"cs=0x%llx rflags=0x%llx\n",
			(unsigned long long)f->vec, (unsigned long long)f->rip,
			(unsigned long long)f->err, (unsigned long long)cr2,
			(unsigned long long)f->cs, (unsigned long long)f->rflags);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	kcons_write(buf, (size_t)n);
	kshutdown(SHUTDOWN_crash);
}
