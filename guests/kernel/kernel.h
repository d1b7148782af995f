/* SPDX-License-Identifier: MIT */
/*
 * Private to the built-in guest kernel: constants shared by entry.S and the
 * C files, and the few functions the CPL0 and CPL3 halves share.
 */
#ifndef GUESTS_KERNEL_H
#define GUESTS_KERNEL_H

#define KSTACK_SHIFT 13			/* 8 KiB CPL0 stack per vCPU */
#define KSTACK_SIZE (1 << KSTACK_SHIFT)
#define USTACK_SIZE (16 * 1024)		/* CPL3 stack per vCPU */
#define MAX_VCPUS 32			/* XEN_LEGACY_MAX_VCPUS */
#define PVH_MIN_GIB 4			/* the PVH path maps at least 4 GiB */
#define PVH_MAX_GIB 64			/* ... and at most this much */

#define GDT_KCODE 0x08
#define GDT_KDATA 0x10
#define GDT_UDATA 0x18			/* user selectors are these | 3 */
#define GDT_UCODE 0x20
#define GDT_TSS 0x28			/* 16-byte descriptor */
#define GDT_ENTRIES 7

#define USER_RFLAGS 0x3002		/* IOPL 3 (doorbell, UART), IF off */

#define CR0_PE 0x1
#define CR0_MP 0x2
#define CR0_ET 0x10
#define CR0_NE 0x20
#define CR0_WP 0x10000
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define CR4_OSFXSR 0x200
#define CR4_OSXMMEXCPT 0x400
#define MSR_EFER 0xc0000080
#define EFER_LME 0x100
#define PTE_P 0x1
#define PTE_RW 0x2
#define PTE_US 0x4
#define PTE_PS 0x80

#ifndef __ASSEMBLER__
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Filled in at CPL0 by every vCPU (same values), read at CPL3. */
struct kinfo {
	bool ferry;		/* Ferry CPUID signature seen */
	uint32_t tsc_khz;
	uint32_t ferry_version;
};
extern struct kinfo kinfo;

/* entry.S */
extern char exc_stubs[];
extern uint8_t kstacks[MAX_VCPUS][KSTACK_SIZE];
__attribute__((noreturn)) void enter_user(uint64_t rip, uint64_t rsp,
					  uint64_t arg0, uint64_t arg1);

/* cpl0.c */
extern uint8_t ustacks[MAX_VCPUS][USTACK_SIZE];
__attribute__((noreturn)) void cpl0_main(uint64_t start_info, uint64_t vcpu);
struct exc_frame {
	uint64_t vec, err, rip, cs, rflags, rsp, ss;
};
__attribute__((noreturn)) void exc_handler(struct exc_frame *f);

/* main.c: usable at CPL0 and CPL3 (I/O with IOPL 3). */
__attribute__((noreturn)) void user_main(uint64_t start_info, uint64_t vcpu);
void kcons_write(const char *s, size_t len);
__attribute__((noreturn)) void kshutdown(unsigned reason);

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c,
			 uint32_t *d)
{
	__asm__ volatile("cpuid"
			 : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
			 : "a"(leaf), "c"(0));
}
#endif

#endif
