/* SPDX-License-Identifier: MIT */
/*
 * libxc migration stream, image version 3 (Xen
 * docs/specs/libxc-migration-stream.pandoc). The image header is
 * big-endian; the domain header and records use the declared endianness
 * (little on x86). Records: u32 type, u32 length, body, zero pad to 8.
 */
#ifndef FORMATS_LIBXC_STREAM_H
#define FORMATS_LIBXC_STREAM_H

#include <stdint.h>

#define IHDR_MARKER UINT64_C(0xffffffffffffffff)
#define IHDR_ID 0x58454e46u /* "XENF" */
#define IHDR_VERSION 3
#define IHDR_OPT_BIG_ENDIAN (1u << 0)

struct xc_sr_ihdr {
	uint64_t marker;  /* big-endian */
	uint32_t id;	  /* big-endian */
	uint32_t version; /* big-endian */
	uint16_t options; /* big-endian */
	uint16_t _res1;
	uint32_t _res2;
};

#define DHDR_TYPE_X86_PV 1
#define DHDR_TYPE_X86_HVM 2

struct xc_sr_dhdr {
	uint32_t type;
	uint16_t page_shift;
	uint16_t _res1;
	uint32_t xen_major;
	uint32_t xen_minor;
};

struct xc_sr_rhdr {
	uint32_t type;
	uint32_t length;
};

#define REC_ALIGN 8
#define REC_LENGTH_MAX (128u << 20)
#define REC_TYPE_OPTIONAL 0x80000000u

#define REC_TYPE_END 0x00000000u
#define REC_TYPE_PAGE_DATA 0x00000001u
#define REC_TYPE_X86_PV_INFO 0x00000002u
#define REC_TYPE_X86_PV_P2M_FRAMES 0x00000003u
#define REC_TYPE_X86_PV_VCPU_BASIC 0x00000004u
#define REC_TYPE_X86_PV_VCPU_EXTENDED 0x00000005u
#define REC_TYPE_X86_PV_VCPU_XSAVE 0x00000006u
#define REC_TYPE_SHARED_INFO 0x00000007u
#define REC_TYPE_X86_TSC_INFO 0x00000008u
#define REC_TYPE_HVM_CONTEXT 0x00000009u
#define REC_TYPE_HVM_PARAMS 0x0000000au
#define REC_TYPE_TOOLSTACK 0x0000000bu
#define REC_TYPE_X86_PV_VCPU_MSRS 0x0000000cu
#define REC_TYPE_VERIFY 0x0000000du
#define REC_TYPE_CHECKPOINT 0x0000000eu
#define REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST 0x0000000fu
#define REC_TYPE_STATIC_DATA_END 0x00000010u
#define REC_TYPE_X86_CPUID_POLICY 0x00000011u
#define REC_TYPE_X86_MSR_POLICY 0x00000012u
/* Ferry's optional records (skipped by Xen's reader): see formats/SPEC.md. */
#define REC_TYPE_FERRY_CONSOLE (REC_TYPE_OPTIONAL | 0x46000001u)
/* Ferry's mandatory record of a migration with page channels (SPEC.md 6.4):
 * a stream that needs its channels must not pass for a whole one. */
#define REC_TYPE_FERRY_CHANNEL_SYNC 0x46000002u

/* FERRY_CHANNEL_SYNC's body: the live round that ended, or
 * FERRY_CHANNEL_KEEPALIVE when it only says the sender is alive. */
struct ferry_channel_sync {
	uint32_t round;
	uint32_t reserved;
};
#define FERRY_CHANNEL_KEEPALIVE 0xffffffffu

/* PAGE_DATA: u32 count, u32 reserved, count x u64 pfn|type, then data. */
struct xc_sr_rec_page_data_header {
	uint32_t count;
	uint32_t _res1;
	/* uint64_t pfn[count]; */
};
#define PAGE_DATA_PFN_MASK UINT64_C(0x000fffffffffffff)
#define PAGE_DATA_TYPE_MASK UINT64_C(0xf000000000000000)
#define PAGE_DATA_TYPE_SHIFT 60
#define PAGE_DATA_BATCH_MAX 1024
/* The 4-bit page types (XEN_DOMCTL_PFINFO_* >> 28). */
#define PAGE_TYPE_NOTAB 0x0
#define PAGE_TYPE_L1TAB 0x1
#define PAGE_TYPE_L2TAB 0x2
#define PAGE_TYPE_L3TAB 0x3
#define PAGE_TYPE_L4TAB 0x4
#define PAGE_TYPE_LPINTAB 0x8 /* pinned bit, with L1-L4 */
#define PAGE_TYPE_BROKEN 0xd
#define PAGE_TYPE_XALLOC 0xe
#define PAGE_TYPE_XTAB 0xf

struct xc_sr_rec_x86_pv_info {
	uint8_t guest_width;
	uint8_t pt_levels;
	uint8_t _res[6];
};

struct xc_sr_rec_x86_pv_p2m_frames {
	uint32_t start_pfn;
	uint32_t end_pfn;
	/* uint64_t p2m_pfns[]; */
};

struct xc_sr_rec_x86_pv_vcpu_hdr {
	uint32_t vcpu_id;
	uint32_t _res1;
	/* uint8_t context[]; */
};

struct xc_sr_rec_x86_tsc_info {
	uint32_t mode;
	uint32_t khz;
	uint64_t nsec;
	uint32_t incarnation;
	uint32_t _res1;
};

struct xc_sr_rec_hvm_params_entry {
	uint64_t index;
	uint64_t value;
};

struct xc_sr_rec_hvm_params {
	uint32_t count;
	uint32_t _res1;
	/* struct xc_sr_rec_hvm_params_entry param[count]; */
};

struct xc_sr_cpuid_leaf {
	uint32_t leaf, subleaf, a, b, c, d;
};

struct xc_sr_msr_entry {
	uint32_t idx;
	uint32_t flags; /* must be 0 */
	uint64_t val;
};

/* FERRY_CONSOLE body (version 1): struct ferry_hvm_console
 * (formats/hvm-context.h, the CONSOLE entry's layout), then length bytes:
 * the newest bytes of the console ring, oldest first (formats/SPEC.md).
 * Read only: saves written before the history moved into HVM_CONTEXT (the
 * CONSOLE entry) carry it; the type is in the range Xen keeps for its own
 * optional records, so Xen's verifier refuses it. */
#define FERRY_CONSOLE_VERSION 1

_Static_assert(sizeof(struct xc_sr_ihdr) == 24, "ihdr");
_Static_assert(sizeof(struct xc_sr_dhdr) == 16, "dhdr");
_Static_assert(sizeof(struct xc_sr_rhdr) == 8, "rhdr");
_Static_assert(sizeof(struct xc_sr_rec_page_data_header) == 8, "page_data_header");
_Static_assert(sizeof(struct xc_sr_rec_x86_pv_info) == 8, "x86_pv_info");
_Static_assert(sizeof(struct xc_sr_rec_x86_pv_p2m_frames) == 8, "p2m_frames");
_Static_assert(sizeof(struct xc_sr_rec_x86_pv_vcpu_hdr) == 8, "pv_vcpu_hdr");
_Static_assert(sizeof(struct xc_sr_rec_x86_tsc_info) == 24, "tsc_info");
_Static_assert(sizeof(struct xc_sr_rec_hvm_params_entry) == 16, "hvm_params_entry");
_Static_assert(sizeof(struct xc_sr_rec_hvm_params) == 8, "hvm_params");
_Static_assert(sizeof(struct xc_sr_cpuid_leaf) == 24, "cpuid_leaf");
_Static_assert(sizeof(struct xc_sr_msr_entry) == 16, "msr_entry");

/* Name of a libxc record type ("PAGE_DATA", ...), or NULL if unknown. */
const char *fmt_libxc_rec_name(uint32_t type);

#endif
