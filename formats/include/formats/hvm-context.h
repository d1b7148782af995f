/* SPDX-License-Identifier: MIT */
/*
 * The body of an HVM_CONTEXT record: Xen's save-record framing
 * (xen/include/public/hvm/save.h): a list of descriptors {u16 typecode,
 * u16 instance, u32 length} each followed by length bytes, starting with a
 * HEADER entry and ending with an END entry. Ferry carries its vCPU and
 * platform state as entries with its own typecodes (formats/SPEC.md).
 * Entries are not padded (as in Xen).
 */
#ifndef FORMATS_HVM_CONTEXT_H
#define FORMATS_HVM_CONTEXT_H

#include <stdint.h>

struct hvm_save_descriptor {
	uint16_t typecode;
	uint16_t instance;
	uint32_t length;
};

#define HVM_SAVE_CODE_END 0
#define HVM_SAVE_CODE_HEADER 1

#define HVM_FILE_MAGIC 0x54381286u
#define HVM_FILE_VERSION 0x00000001u

struct hvm_save_header {
	uint32_t magic;
	uint32_t version;
	uint64_t changeset;
	uint32_t cpuid;
	uint32_t gtsc_khz;
};

/*
 * Ferry typecodes, version 1. Xen's own run from 2 to about 30; ours start
 * at 0x4600 ('F') so the two never collide. instance = vCPU id for per-vCPU
 * entries, 0 for per-VM entries. Payloads are the KVM structures named
 * (little-endian, as KVM's uapi lays them out) unless said otherwise.
 */
#define FERRY_HVM_CODE_BASE 0x4600
#define FERRY_HVM_KVM_REGS 0x4601	 /* struct kvm_regs */
#define FERRY_HVM_KVM_SREGS 0x4602	 /* struct kvm_sregs */
#define FERRY_HVM_KVM_XSAVE 0x4603	 /* XSAVE area, KVM_GET_XSAVE2 size */
#define FERRY_HVM_KVM_XCRS 0x4604	 /* struct kvm_xcrs */
#define FERRY_HVM_KVM_MSRS 0x4605	 /* n x struct kvm_msr_entry */
#define FERRY_HVM_KVM_LAPIC 0x4606	 /* struct kvm_lapic_state */
#define FERRY_HVM_KVM_EVENTS 0x4607	 /* struct kvm_vcpu_events */
#define FERRY_HVM_KVM_MP_STATE 0x4608	 /* struct kvm_mp_state */
#define FERRY_HVM_KVM_DEBUGREGS 0x4609	 /* struct kvm_debugregs */
#define FERRY_HVM_KVM_PIC_MASTER 0x4620 /* struct kvm_pic_state */
#define FERRY_HVM_KVM_PIC_SLAVE 0x4621	 /* struct kvm_pic_state */
#define FERRY_HVM_KVM_IOAPIC 0x4622	 /* struct kvm_ioapic_state */
#define FERRY_HVM_KVM_PIT 0x4623	 /* struct kvm_pit_state2 */
#define FERRY_HVM_KVM_CLOCK 0x4624	 /* struct kvm_clock_data */
#define FERRY_HVM_SOFT_VCPU 0x4640	 /* struct ferry_soft_vcpu (below) */
#define FERRY_HVM_DOMAIN 0x4660	 /* struct ferry_hvm_domain (below) */
#define FERRY_HVM_VCPU 0x4661	 /* struct ferry_hvm_vcpu (below) */
#define FERRY_HVM_EVTCHN 0x4662	 /* struct ferry_hvm_evtchn, instance = port */
#define FERRY_HVM_GNTTAB 0x4663	 /* struct ferry_hvm_gnttab + frame gfns */
#define FERRY_HVM_SCHED 0x4664	 /* struct ferry_hvm_sched */
#define FERRY_HVM_SCHED_VCPU 0x4665 /* struct ferry_hvm_sched_vcpu */
#define FERRY_HVM_CONSOLE	 0x4666 /* struct ferry_hvm_console + the bytes */

/* Per-domain state every backend carries. */
struct ferry_hvm_domain {
	uint32_t version;	   /* 1 */
	uint32_t nr_vcpus;
	uint64_t shared_info_gpa;  /* 0 = not mapped */
	uint64_t callback_vector;  /* HVM_PARAM_CALLBACK_IRQ value */
	uint64_t system_time_ns;   /* guest system time when saved */
	uint64_t entry;		   /* kernel entry point */
};

/* Per-vCPU state every backend carries: ferryd's side of the vCPU. */
struct ferry_hvm_vcpu {
	uint32_t version;  /* 1 */
	uint32_t reserved; /* 0 */
	uint64_t timer_ns; /* set_timer_op deadline in system time, 0 = none */
};

/* Who the far end of an unbound or interdomain port is. */
#define FERRY_EVTCHN_REMOTE_FERRYD 0 /* domain 0: ferryd's backends */
#define FERRY_EVTCHN_REMOTE_GUEST 1  /* another guest (or the domain itself) */

/* One bound event channel port (instance = the port); free ports are not
 * sent. Pending and mask bits are in shared_info, i.e. guest memory. */
struct ferry_hvm_evtchn {
	uint8_t version;      /* 1 */
	uint8_t state;	      /* EVTCHNSTAT_unbound, _interdomain, _virq, _ipi */
	uint8_t virq;	      /* VIRQ_* for virq ports, else 0 */
	uint8_t remote;	      /* FERRY_EVTCHN_REMOTE_* (unbound, interdomain) */
	uint32_t vcpu;	      /* the vCPU notified */
	uint32_t remote_port; /* interdomain with a guest: its port, else 0 */
	uint16_t remote_dom;  /* unbound/interdomain with a guest: its domid
			       * on the saving host, else 0 */
	uint16_t reserved;    /* 0 */
};

/* The grant table's placement (the entries are guest memory). */
#define FERRY_GNTTAB_NO_GFN UINT64_MAX /* a frame not placed yet */
struct ferry_hvm_gnttab {
	uint32_t version;	 /* 1 */
	uint32_t gnttab_version; /* the guest's table format: 1 */
	uint32_t nr_frames;	 /* frames set up, followed by that many u64 */
	uint32_t reserved;	 /* 0 */
	/* uint64_t frame_gfn[nr_frames]: FERRY_GNTTAB_NO_GFN or a gfn */
};

/* Scheduler parameters of the domain (instance 0). */
#define FERRY_SCHED_POOL_NAME 64
struct ferry_hvm_sched {
	uint32_t version;		  /* 1 */
	uint32_t weight;		  /* 1 .. 65535 */
	uint32_t cap;			  /* % of one pCPU, 0 = none */
	uint32_t reserved;		  /* 0 */
	char pool[FERRY_SCHED_POOL_NAME]; /* cpupool name, NUL-padded */
};

/* One vCPU's affinity (instance = vCPU): bit i = pCPU i. */
struct ferry_hvm_sched_vcpu {
	uint32_t version;  /* 1 */
	uint32_t reserved; /* 0 */
	uint64_t hard;	   /* 0 or all bits: any pCPU */
	uint64_t soft;	   /* 0 or all bits: no preference */
};

/* The newest console output ferryd holds for the domain (instance 0), so
 * that xl console on the other side shows the history; then length bytes,
 * oldest first. Also the body of the older FERRY_CONSOLE record. */
struct ferry_hvm_console {
	uint32_t version;	/* 1 */
	uint32_t reserved;	/* 0 */
	uint64_t total_written; /* bytes the guest ever wrote */
	uint32_t length;	/* bytes that follow; <= total_written */
	uint32_t reserved2;	/* 0 */
	/* uint8_t data[length]; */
};

/* The soft backend's register block: everything else is guest memory. */
struct ferry_soft_vcpu {
	uint32_t version;  /* 1 */
	uint32_t attached; /* the workload has attached to guest memory */
	uint64_t timer_ns; /* set_timer_op deadline */
};

_Static_assert(sizeof(struct hvm_save_descriptor) == 8, "hvm_save_descriptor");
_Static_assert(sizeof(struct hvm_save_header) == 24, "hvm_save_header");
_Static_assert(sizeof(struct ferry_hvm_domain) == 40, "ferry_hvm_domain");
_Static_assert(sizeof(struct ferry_soft_vcpu) == 16, "ferry_soft_vcpu");
_Static_assert(sizeof(struct ferry_hvm_vcpu) == 16, "ferry_hvm_vcpu");
_Static_assert(sizeof(struct ferry_hvm_evtchn) == 16, "ferry_hvm_evtchn");
_Static_assert(sizeof(struct ferry_hvm_gnttab) == 16, "ferry_hvm_gnttab");
_Static_assert(sizeof(struct ferry_hvm_console) == 24, "ferry_hvm_console");
_Static_assert(sizeof(struct ferry_hvm_sched) == 80, "ferry_hvm_sched");
_Static_assert(sizeof(struct ferry_hvm_sched_vcpu) == 24, "ferry_hvm_sched_vcpu");

/* Name of a typecode ("KVM_REGS", "HEADER", ...), or NULL if unknown. */
const char *fmt_hvm_code_name(uint16_t code);

#endif
