/* SPDX-License-Identifier: MIT */
/*
 * The guest ABI: Xen's hypercall numbers and argument layouts, plus the few
 * Ferry extensions the built-in guest needs. Freestanding: this header is
 * compiled into ferryd and into the guest kernel, so it uses only <stdint.h>.
 *
 * Hypercall convention (Xen x86-64): rax = number, arguments in rdi, rsi,
 * rdx, r10, r8; result in rax. Ferry's one difference from Xen is the
 * doorbell: the guest executes `outb %al, $FERRY_DOORBELL_PORT` (from CPL3
 * with IOPL 3) instead of a hypercall page. Pointer arguments are guest
 * physical addresses: Ferry guests identity-map their memory.
 */
#ifndef HYP_ABI_H
#define HYP_ABI_H

#include <stdint.h>

/* ---- Ferry extensions ------------------------------------------------- */

#define FERRY_DOORBELL_PORT 0xe8

/*
 * CPUID leaves. A guest finds Ferry by the signature at 0x40000000
 * (ebx, ecx, edx spell "FerryHVFerry"); without it there is no doorbell and
 * the guest falls back to the 8250 UART at 0x3f8.
 *   0x40000000: eax = highest Ferry leaf, ebx:ecx:edx = signature
 *   0x40000001: eax = version (major << 16 | minor)
 *   0x40000002: eax = doorbell port, ebx = TSC frequency in kHz
 */
#define FERRY_CPUID_BASE 0x40000000u
#define FERRY_CPUID_SIG_EBX 0x72726546u /* "Ferr" */
#define FERRY_CPUID_SIG_ECX 0x46564879u /* "yHVF" */
#define FERRY_CPUID_SIG_EDX 0x79727265u /* "erry" */
#define FERRY_CPUID_MAX (FERRY_CPUID_BASE + 2)
#define FERRY_VERSION_MAJOR 0
#define FERRY_VERSION_MINOR 1

/*
 * Guest-physical layout set up by ferryd's loader (both backends):
 *   0x1000  struct hvm_start_info, then the memory map, then the command line
 *   0x2000  struct ferry_ctl (ferryd -> guest requests; polled by the guest)
 *   0x3000  shared_info, once the guest maps it there (XENMEM_add_to_physmap)
 *   0x4000  identity page tables (PML4, PDPT, PDs with 2 MiB pages), kvm only
 *   1 MiB   the kernel image (ELF, physical = virtual)
 *   4 MiB   the workload arena, to the end of RAM
 * Direct 64-bit entry (kvm backend): long mode, CPL0, paging on with the
 * identity map above, interrupts off, rbx = gpa of hvm_start_info,
 * rsi = vCPU id, rip = ELF entry, rsp = 0 (the guest sets its own stack).
 */
#define FERRY_START_INFO_GPA 0x1000u
#define FERRY_CTL_GPA 0x2000u
#define FERRY_SHARED_INFO_GPA 0x3000u
#define FERRY_PGTABLE_GPA 0x4000u
#define FERRY_KERNEL_GPA 0x100000u
#define FERRY_ARENA_GPA 0x400000u

/* Requests ferryd posts to the guest; replaced by xenstore control/ later. */
#define FERRY_CTL_MAGIC 0x4c544346u /* "FCTL" */
#define FERRY_CTL_REQ_NONE 0
#define FERRY_CTL_REQ_POWEROFF 1
#define FERRY_CTL_REQ_REBOOT 2
struct ferry_ctl {
	uint32_t magic;
	uint32_t shutdown_req;	/* FERRY_CTL_REQ_*, guest acts then clears */
	uint32_t resume_count;	/* bumped by ferryd each time the domain is resumed from a saved image */
	uint32_t pad;
};

/* ---- Xen: hypercall numbers ------------------------------------------- */

#define __HYPERVISOR_set_timer_op 15
#define __HYPERVISOR_memory_op 12
#define __HYPERVISOR_xen_version 17
#define __HYPERVISOR_console_io 18
#define __HYPERVISOR_sched_op 29
#define __HYPERVISOR_hvm_op 34

/* console_io */
#define CONSOLEIO_write 0
#define CONSOLEIO_read 1

/* sched_op */
#define SCHEDOP_yield 0
#define SCHEDOP_block 1
#define SCHEDOP_shutdown 2
struct sched_shutdown {
	uint32_t reason; /* SHUTDOWN_* */
};
#define SHUTDOWN_poweroff 0
#define SHUTDOWN_reboot 1
#define SHUTDOWN_suspend 2
#define SHUTDOWN_crash 3
#define SHUTDOWN_watchdog 4

/* xen_version */
#define XENVER_version 0
#define XENVER_extraversion 1
typedef char xen_extraversion_t[16];

/* memory_op */
#define XENMEM_add_to_physmap 7
#define XENMAPSPACE_shared_info 0
struct xen_add_to_physmap {
	uint16_t domid;
	uint16_t size;
	uint32_t space;
	uint64_t idx;
	uint64_t gpfn;
};

/* hvm_op */
#define HVMOP_set_param 0
#define HVMOP_get_param 1
struct xen_hvm_param {
	uint16_t domid;
	uint16_t pad;
	uint32_t index;
	uint64_t value;
};
#define HVM_PARAM_CALLBACK_IRQ 0
#define HVM_PARAM_CALLBACK_TYPE_VECTOR 2
#define HVM_PARAM_CALLBACK_TYPE_SHIFT 56

#define DOMID_SELF 0x7ff0u

/* Xen error numbers returned in rax (negated). */
#define XEN_EPERM 1
#define XEN_ENOENT 2
#define XEN_EFAULT 14
#define XEN_EINVAL 22
#define XEN_ENOSYS 38

/* ---- Xen: shared_info and time ----------------------------------------- */

struct vcpu_time_info {
	uint32_t version; /* odd while ferryd updates the record */
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time; /* ns */
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	int8_t flags;
	uint8_t pad1[2];
};

struct arch_vcpu_info {
	uint64_t cr2;
	uint64_t pad;
};

struct vcpu_info {
	uint8_t evtchn_upcall_pending;
	uint8_t evtchn_upcall_mask;
	uint8_t pad[6];
	uint64_t evtchn_pending_sel;
	struct arch_vcpu_info arch;
	struct vcpu_time_info time;
};

#define XEN_LEGACY_MAX_VCPUS 32
struct shared_info {
	struct vcpu_info vcpu_info[XEN_LEGACY_MAX_VCPUS];
	uint64_t evtchn_pending[64];
	uint64_t evtchn_mask[64];
	uint32_t wc_version;
	uint32_t wc_sec;
	uint32_t wc_nsec;
	uint32_t wc_sec_hi;
	uint8_t arch[256];
};

/* ---- Xen: PVH start info (xen/include/public/arch-x86/hvm/start_info.h) - */

#define XEN_HVM_START_MAGIC_VALUE 0x336ec578u
struct hvm_start_info {
	uint32_t magic;
	uint32_t version; /* 1: memmap fields valid */
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* 1 = RAM (E820) */
	uint32_t reserved;
};
#define XEN_HVM_MEMMAP_TYPE_RAM 1

/* ELF note carrying the 32-bit PVH entry point. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

_Static_assert(sizeof(struct vcpu_time_info) == 32, "vcpu_time_info");
_Static_assert(sizeof(struct vcpu_info) == 64, "vcpu_info");
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info");
_Static_assert(sizeof(struct xen_add_to_physmap) == 24, "xen_add_to_physmap");
_Static_assert(sizeof(struct xen_hvm_param) == 16, "xen_hvm_param");

#endif
