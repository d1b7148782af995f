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
#ifndef ABI_GUEST_H
#define ABI_GUEST_H

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
 *   1 MiB   the kernel image (ELF, physical = virtual), below 0x3fe000
 *   0x3fe000 the xenstore ring (struct xenstore_domain_interface)
 *   0x3ff000 the PV console ring (struct xencons_interface)
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
#define FERRY_XENSTORE_GPA 0x3fe000u
#define FERRY_CONSOLE_GPA 0x3ff000u
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
#define __HYPERVISOR_grant_table_op 20
#define __HYPERVISOR_sched_op 29
#define __HYPERVISOR_event_channel_op 32
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
#define XENMEM_increase_reservation 0
#define XENMEM_decrease_reservation 1
#define XENMEM_current_reservation 3 /* arg: gpa of a domid_t; returns pages */
#define XENMEM_maximum_reservation 4
#define XENMEM_populate_physmap 6
/*
 * Reservation ops return the number of extents done, as Xen does: a gfn
 * not populated (decrease), already populated or outside the physmap
 * (populate), or the domain's maximum reached stops the batch there.
 * Ferry takes extent_order 0 only (anything else: 0 done).
 */
struct xen_memory_reservation {
	uint64_t extent_start; /* gpa of xen_pfn_t[nr_extents] (gfns) */
	uint64_t nr_extents;
	uint32_t extent_order;
	uint32_t mem_flags;
	uint16_t domid;
	uint16_t pad[3];
};
#define XENMEM_add_to_physmap 7
#define XENMAPSPACE_shared_info 0
#define XENMAPSPACE_grant_table 1 /* idx = grant frame number */
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
/*
 * The PV console and xenstore rings (read-only for the guest: HVMOP_get_param
 * only). ferryd fills them at domain create: the pfns are
 * FERRY_XENSTORE_GPA >> 12 and FERRY_CONSOLE_GPA >> 12; each event channel
 * is a port ferryd allocated in the guest's own table, interdomain with
 * domain 0 (ferryd) from the start: the guest sends on it and receives on
 * it without binding anything.
 */
#define HVM_PARAM_STORE_PFN 1
#define HVM_PARAM_STORE_EVTCHN 2
#define HVM_PARAM_CONSOLE_PFN 17
#define HVM_PARAM_CONSOLE_EVTCHN 18
#define HVM_PARAM_CALLBACK_TYPE_VECTOR 2
#define HVM_PARAM_CALLBACK_TYPE_SHIFT 56

#define DOMID_SELF 0x7ff0u

/* Xen error numbers returned in rax (negated). */
#define XEN_EPERM 1
#define XEN_ENOENT 2
#define XEN_ESRCH 3
#define XEN_ENOMEM 12
#define XEN_EFAULT 14
#define XEN_EBUSY 16
#define XEN_EEXIST 17
#define XEN_EINVAL 22
#define XEN_ENOSPC 28
#define XEN_ENOSYS 38

/* ---- Xen: event channels (xen/include/public/event_channel.h) ----------
 * event_channel_op(cmd, arg): rdi = EVTCHNOP_*, rsi = gpa of the struct.
 * 2-level ABI: ports 1 .. 4095 (port 0 is never allocated); the pending and
 * mask bitmaps live in shared_info, one selector bit per 64-port word. */

typedef uint32_t evtchn_port_t;

#define EVTCHNOP_bind_interdomain 0
#define EVTCHNOP_bind_virq 1
#define EVTCHNOP_bind_pirq 2
#define EVTCHNOP_close 3
#define EVTCHNOP_send 4
#define EVTCHNOP_status 5
#define EVTCHNOP_alloc_unbound 6
#define EVTCHNOP_bind_ipi 7
#define EVTCHNOP_bind_vcpu 8
#define EVTCHNOP_unmask 9

#define EVTCHN_2L_NR_CHANNELS 4096

struct evtchn_alloc_unbound {
	uint16_t dom, remote_dom; /* IN */
	evtchn_port_t port;	  /* OUT */
};

struct evtchn_bind_interdomain {
	uint16_t remote_dom;	   /* IN */
	uint16_t pad;
	evtchn_port_t remote_port; /* IN */
	evtchn_port_t local_port;  /* OUT */
};

#define VIRQ_TIMER 0   /* per vCPU: the set_timer_op deadline passed */
#define VIRQ_DEBUG 1   /* per vCPU */
#define VIRQ_CONSOLE 2 /* global */
#define VIRQ_DOM_EXC 3 /* global */
#define NR_VIRQS 24
struct evtchn_bind_virq {
	uint32_t virq;	    /* IN */
	uint32_t vcpu;	    /* IN */
	evtchn_port_t port; /* OUT */
};

struct evtchn_bind_ipi {
	uint32_t vcpu;	    /* IN */
	evtchn_port_t port; /* OUT */
};

struct evtchn_close {
	evtchn_port_t port;
};

struct evtchn_send {
	evtchn_port_t port;
};

#define EVTCHNSTAT_closed 0
#define EVTCHNSTAT_unbound 1
#define EVTCHNSTAT_interdomain 2
#define EVTCHNSTAT_pirq 3
#define EVTCHNSTAT_virq 4
#define EVTCHNSTAT_ipi 5
struct evtchn_status {
	uint16_t dom;	    /* IN */
	uint16_t pad;
	evtchn_port_t port; /* IN */
	uint32_t status;    /* OUT: EVTCHNSTAT_* */
	uint32_t vcpu;	    /* OUT: the vCPU notified */
	union {
		struct {
			uint16_t dom;
		} unbound; /* EVTCHNSTAT_unbound */
		struct {
			uint16_t dom;
			uint16_t pad;
			evtchn_port_t port;
		} interdomain; /* EVTCHNSTAT_interdomain */
		uint32_t pirq;
		uint32_t virq;
	} u;
};

struct evtchn_bind_vcpu {
	evtchn_port_t port;
	uint32_t vcpu;
};

struct evtchn_unmask {
	evtchn_port_t port;
};

/* ---- Xen: grant tables v1 (xen/include/public/grant_table.h) -----------
 * grant_table_op(cmd, uop, count): rdi = GNTTABOP_*, rsi = gpa of an array
 * of count structs, rdx = count. Each op reports its own GNTST_* status.
 * Ferry keeps a domain's v1 table in its own RAM: the guest names the page
 * for grant frame i with XENMEM_add_to_physmap(XENMAPSPACE_grant_table,
 * idx = i, gpfn), as Xen HVM guests do; setup_table reports those gfns. */

typedef uint32_t grant_ref_t;

struct grant_entry_v1 {
	uint16_t flags; /* GTF_* */
	uint16_t domid; /* the domain allowed to access the frame */
	uint32_t frame; /* gfn of the granted page (in the granter) */
};
#define GNTTAB_ENTRIES_PER_FRAME (4096 / sizeof(struct grant_entry_v1))

#define GTF_invalid (0U << 0)
#define GTF_permit_access (1U << 0)
#define GTF_accept_transfer (2U << 0)
#define GTF_transitive (3U << 0)
#define GTF_type_mask (3U << 0)
#define GTF_readonly (1U << 2)
#define GTF_reading (1U << 3)
#define GTF_writing (1U << 4)
#define GTF_PWT (1U << 5)
#define GTF_PCD (1U << 6)
#define GTF_PAT (1U << 7)
#define GTF_sub_page (1U << 8)

#define GNTTABOP_map_grant_ref 0
#define GNTTABOP_unmap_grant_ref 1
#define GNTTABOP_setup_table 2
#define GNTTABOP_dump_table 3
#define GNTTABOP_transfer 4
#define GNTTABOP_copy 5
#define GNTTABOP_query_size 6

#define GNTST_okay 0
#define GNTST_general_error (-1)
#define GNTST_bad_domain (-2)
#define GNTST_bad_gntref (-3)
#define GNTST_bad_handle (-4)
#define GNTST_bad_virt_addr (-5)
#define GNTST_bad_dev_addr (-6)
#define GNTST_no_device_space (-7)
#define GNTST_permission_denied (-8)
#define GNTST_bad_page (-9)
#define GNTST_bad_copy_arg (-10)
#define GNTST_address_too_big (-11)
#define GNTST_eagain (-12)

struct gnttab_setup_table {
	uint16_t dom;	     /* IN */
	uint16_t pad0;
	uint32_t nr_frames;  /* IN */
	int16_t status;	     /* OUT: GNTST_* */
	uint16_t pad1[3];
	uint64_t frame_list; /* IN: gpa of nr_frames uint64_t (OUT: gfns) */
};

struct gnttab_query_size {
	uint16_t dom;		/* IN */
	uint16_t pad;
	uint32_t nr_frames;	/* OUT */
	uint32_t max_nr_frames; /* OUT */
	int16_t status;		/* OUT */
	uint16_t pad1;
};

#define GNTCOPY_source_gref (1U << 0)
#define GNTCOPY_dest_gref (1U << 1)
struct gnttab_copy_ptr {
	union {
		grant_ref_t ref; /* with GNTCOPY_*_gref */
		uint64_t gmfn;	 /* otherwise: the caller's own gfn */
	} u;
	uint16_t domid;
	uint16_t offset;
	uint32_t pad;
};
struct gnttab_copy {
	struct gnttab_copy_ptr source, dest;
	uint16_t len;
	uint16_t flags; /* GNTCOPY_* */
	int16_t status; /* OUT */
	uint16_t pad;
};

/* Layout only: Ferry answers GNTTABOP_map_grant_ref with -XEN_ENOSYS (a
 * guest cannot map another guest's page; ferryd's backends can). */
#define GNTMAP_host_map (1U << 1)
#define GNTMAP_readonly (1U << 2)
struct gnttab_map_grant_ref {
	uint64_t host_addr;
	uint32_t flags;
	grant_ref_t ref;
	uint16_t dom;
	int16_t status;
	uint32_t handle;
	uint64_t dev_bus_addr;
};

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

/* ---- Xen: PV console ring (xen/include/public/io/console.h) -------------
 * One page at FERRY_CONSOLE_GPA. Indices run free (uint32, wrap at 2^32);
 * a byte's slot is idx & (size - 1). The guest produces out[] (out_prod)
 * and consumes in[] (in_cons); ferryd the reverse. Whoever produces sends
 * on HVM_PARAM_CONSOLE_EVTCHN after updating the index. */

typedef uint32_t XENCONS_RING_IDX;
#define MASK_XENCONS_IDX(idx, ring) ((idx) & (sizeof(ring) - 1))
struct xencons_interface {
	char in[1024];
	char out[2048];
	XENCONS_RING_IDX in_cons, in_prod;
	XENCONS_RING_IDX out_cons, out_prod;
};

/* ---- Xen: xenstore ring (xen/include/public/io/xs_wire.h) --------------
 * One page at FERRY_XENSTORE_GPA: the guest writes xsd_sockmsg requests into
 * req[] (req_prod), ferryd answers and sends watch events in rsp[]
 * (rsp_prod); either sends on HVM_PARAM_STORE_EVTCHN after moving an index.
 * ferryd sets server_features (XENSTORE_SERVER_FEATURE_ERROR) and reports a
 * broken ring in error. */

typedef uint32_t XENSTORE_RING_IDX;
#define MASK_XENSTORE_IDX(idx) ((idx) & (XENSTORE_RING_SIZE - 1))
#define XENSTORE_RING_SIZE 1024
struct xenstore_domain_interface {
	char req[XENSTORE_RING_SIZE]; /* requests to the xenstore daemon */
	char rsp[XENSTORE_RING_SIZE]; /* replies and async watch events */
	XENSTORE_RING_IDX req_cons, req_prod;
	XENSTORE_RING_IDX rsp_cons, rsp_prod;
	uint32_t server_features; /* XENSTORE_SERVER_FEATURE_* */
	uint32_t connection;	  /* XENSTORE_CONNECTED, XENSTORE_RECONNECT */
	uint32_t error;		  /* XENSTORE_ERROR_* */
};
#define XENSTORE_PAYLOAD_MAX 4096
#define XENSTORE_SERVER_FEATURE_RECONNECTION 1
#define XENSTORE_SERVER_FEATURE_ERROR 2
#define XENSTORE_CONNECTED 0
#define XENSTORE_RECONNECT 1
#define XENSTORE_ERROR_NONE 0
#define XENSTORE_ERROR_COMM 1
#define XENSTORE_ERROR_RINGIDX 2
#define XENSTORE_ERROR_PROTO 3

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
_Static_assert(sizeof(struct shared_info) == 3344, "shared_info");
_Static_assert(sizeof(struct evtchn_alloc_unbound) == 8, "evtchn_alloc_unbound");
_Static_assert(sizeof(struct evtchn_bind_interdomain) == 12, "evtchn_bind_interdomain");
_Static_assert(sizeof(struct evtchn_bind_virq) == 12, "evtchn_bind_virq");
_Static_assert(sizeof(struct evtchn_bind_ipi) == 8, "evtchn_bind_ipi");
_Static_assert(sizeof(struct evtchn_close) == 4, "evtchn_close");
_Static_assert(sizeof(struct evtchn_send) == 4, "evtchn_send");
_Static_assert(sizeof(struct evtchn_status) == 24, "evtchn_status");
_Static_assert(sizeof(struct evtchn_bind_vcpu) == 8, "evtchn_bind_vcpu");
_Static_assert(sizeof(struct evtchn_unmask) == 4, "evtchn_unmask");
_Static_assert(sizeof(struct grant_entry_v1) == 8, "grant_entry_v1");
_Static_assert(sizeof(struct gnttab_setup_table) == 24, "gnttab_setup_table");
_Static_assert(sizeof(struct gnttab_query_size) == 16, "gnttab_query_size");
_Static_assert(sizeof(struct gnttab_copy_ptr) == 16, "gnttab_copy_ptr");
_Static_assert(sizeof(struct gnttab_copy) == 40, "gnttab_copy");
_Static_assert(sizeof(struct gnttab_map_grant_ref) == 32, "gnttab_map_grant_ref");
_Static_assert(sizeof(struct xencons_interface) == 3088, "xencons_interface");
_Static_assert(sizeof(struct xenstore_domain_interface) == 2076,
	       "xenstore_domain_interface");
_Static_assert(FERRY_XENSTORE_GPA % 4096 == 0 && FERRY_CONSOLE_GPA % 4096 == 0 &&
		       FERRY_CONSOLE_GPA + 4096 <= FERRY_ARENA_GPA,
	       "ring pages");

#endif
