// SPDX-License-Identifier: MIT
/*
 * formats/ against Xen's specs (docs/specs/libxc-migration-stream.pandoc,
 * libxl-migration-stream.pandoc, tools/xl/xl.h, public/hvm/save.h): record
 * type numbers and names, and the size and offset of every field of the
 * headers and record bodies, so a slip in a struct cannot pass unseen.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>

#include "formats/hvm-context.h"
#include "formats/libxc-stream.h"
#include "formats/libxl-stream.h"
#include "formats/xl-header.h"

#define OFF(t, f, o) cr_expect_eq(offsetof(struct t, f), (o), #t "." #f " at %zu, spec %d", \
				  offsetof(struct t, f), (o))
#define SIZE(t, s) cr_expect_eq(sizeof(struct t), (s), #t " is %zu bytes, spec %d", \
				sizeof(struct t), (s))

Test(formats, libxc_record_types_and_names)
{
	/* The spec's table: type, name. */
	static const struct {
		uint32_t type;
		const char *name;
	} t[] = {
		{ REC_TYPE_END, "END" },
		{ REC_TYPE_PAGE_DATA, "PAGE_DATA" },
		{ REC_TYPE_X86_PV_INFO, "X86_PV_INFO" },
		{ REC_TYPE_X86_PV_P2M_FRAMES, "X86_PV_P2M_FRAMES" },
		{ REC_TYPE_X86_PV_VCPU_BASIC, "X86_PV_VCPU_BASIC" },
		{ REC_TYPE_X86_PV_VCPU_EXTENDED, "X86_PV_VCPU_EXTENDED" },
		{ REC_TYPE_X86_PV_VCPU_XSAVE, "X86_PV_VCPU_XSAVE" },
		{ REC_TYPE_SHARED_INFO, "SHARED_INFO" },
		{ REC_TYPE_X86_TSC_INFO, "X86_TSC_INFO" },
		{ REC_TYPE_HVM_CONTEXT, "HVM_CONTEXT" },
		{ REC_TYPE_HVM_PARAMS, "HVM_PARAMS" },
		{ REC_TYPE_TOOLSTACK, "TOOLSTACK" },
		{ REC_TYPE_X86_PV_VCPU_MSRS, "X86_PV_VCPU_MSRS" },
		{ REC_TYPE_VERIFY, "VERIFY" },
		{ REC_TYPE_CHECKPOINT, "CHECKPOINT" },
		{ REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST, "CHECKPOINT_DIRTY_PFN_LIST" },
		{ REC_TYPE_STATIC_DATA_END, "STATIC_DATA_END" },
		{ REC_TYPE_X86_CPUID_POLICY, "X86_CPUID_POLICY" },
		{ REC_TYPE_X86_MSR_POLICY, "X86_MSR_POLICY" },
	};

	for (uint32_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		cr_expect_eq(t[i].type, i, "%s is 0x%x, the spec says 0x%x", t[i].name,
			     t[i].type, i);
		cr_expect_str_eq(fmt_libxc_rec_name(t[i].type), t[i].name);
	}
	/* 0x13-0x7fffffff reserved for mandatory records, bit 31 optional */
	cr_expect_null(fmt_libxc_rec_name(0x13));
	cr_expect_null(fmt_libxc_rec_name(0x7fffffff));
	cr_expect_eq(REC_TYPE_OPTIONAL, 0x80000000u);
	cr_expect(REC_TYPE_FERRY_CONSOLE & REC_TYPE_OPTIONAL, "Ferry's record must be optional");
	cr_expect_eq(REC_ALIGN, 8);
}

Test(formats, libxl_record_types_and_names)
{
	static const char *const names[] = { "END", "LIBXC_CONTEXT", "EMULATOR_XENSTORE_DATA",
					     "EMULATOR_CONTEXT", "CHECKPOINT_END",
					     "CHECKPOINT_STATE" };
	static const uint32_t types[] = { LIBXL_REC_END, LIBXL_REC_LIBXC_CONTEXT,
					  LIBXL_REC_EMULATOR_XENSTORE_DATA,
					  LIBXL_REC_EMULATOR_CONTEXT, LIBXL_REC_CHECKPOINT_END,
					  LIBXL_REC_CHECKPOINT_STATE };

	for (uint32_t i = 0; i < 6; i++) {
		cr_expect_eq(types[i], i);
		cr_expect_str_eq(fmt_libxl_rec_name(i), names[i]);
	}
	cr_expect_null(fmt_libxl_rec_name(6));
	cr_expect_eq(LIBXL_EMULATOR_QEMU_TRADITIONAL, 1);
	cr_expect_eq(LIBXL_EMULATOR_QEMU_UPSTREAM, 2);
	cr_expect_eq(LIBXL_CHECKPOINT_SVM_RESUMED, 3);
}

Test(formats, magic_numbers)
{
	uint64_t ident = __builtin_bswap64(LIBXL_STREAM_IDENT);
	uint32_t id = __builtin_bswap32(IHDR_ID);

	cr_expect_eq(memcmp(&ident, "LibxlFmt", 8), 0, "libxl ident");
	cr_expect_eq(memcmp(&id, "XENF", 4), 0, "libxc image id");
	cr_expect_eq(IHDR_MARKER, ~0ull);
	cr_expect_eq(IHDR_VERSION, 3);
	cr_expect_eq(LIBXL_STREAM_VERSION, 2);
	cr_expect_eq(memcmp(XL_SAVE_MAGIC, "Xen saved domain, xl format\n \0 \r", 32), 0);
	cr_expect_eq(XL_SAVE_BYTEORDER, 0x01020304u);
	cr_expect_eq(XL_MANDATORY_FLAG_JSON, 1u);
	cr_expect_eq(XL_MANDATORY_FLAG_STREAMV2, 2u);
	cr_expect_eq(HVM_FILE_MAGIC, 0x54381286u);
	cr_expect_eq(DHDR_TYPE_X86_PV, 1);
	cr_expect_eq(DHDR_TYPE_X86_HVM, 2);
	/* PAGE_DATA: pfn in bits 0-51, reserved 52-59, type 60-63 */
	cr_expect_eq(PAGE_DATA_PFN_MASK, (1ull << 52) - 1);
	cr_expect_eq(PAGE_DATA_TYPE_MASK, 0xfull << 60);
	cr_expect_eq(PAGE_TYPE_XTAB, 0xf);
	cr_expect_eq(PAGE_TYPE_XALLOC, 0xe);
	cr_expect_eq(PAGE_TYPE_BROKEN, 0xd);
	cr_expect_eq(PAGE_DATA_BATCH_MAX, 1024);
}

Test(formats, header_layouts)
{
	SIZE(xl_save_header, 48);
	OFF(xl_save_header, byteorder, 32);
	OFF(xl_save_header, mandatory_flags, 36);
	OFF(xl_save_header, optional_flags, 40);
	OFF(xl_save_header, optional_data_len, 44);
	SIZE(libxl_sr_hdr, 16);
	OFF(libxl_sr_hdr, version, 8);
	OFF(libxl_sr_hdr, options, 12);
	SIZE(libxl_sr_rec_hdr, 8);
	OFF(libxl_sr_rec_hdr, length, 4);
	SIZE(xc_sr_ihdr, 24);
	OFF(xc_sr_ihdr, id, 8);
	OFF(xc_sr_ihdr, version, 12);
	OFF(xc_sr_ihdr, options, 16);
	SIZE(xc_sr_dhdr, 16);
	OFF(xc_sr_dhdr, page_shift, 4);
	OFF(xc_sr_dhdr, xen_major, 8);
	OFF(xc_sr_dhdr, xen_minor, 12);
	SIZE(xc_sr_rhdr, 8);
	OFF(xc_sr_rhdr, length, 4);
}

Test(formats, record_body_layouts)
{
	SIZE(xc_sr_rec_page_data_header, 8);
	SIZE(xc_sr_rec_x86_tsc_info, 24);
	OFF(xc_sr_rec_x86_tsc_info, khz, 4);
	OFF(xc_sr_rec_x86_tsc_info, nsec, 8);
	OFF(xc_sr_rec_x86_tsc_info, incarnation, 16);
	SIZE(xc_sr_rec_hvm_params, 8);
	SIZE(xc_sr_rec_hvm_params_entry, 16);
	OFF(xc_sr_rec_hvm_params_entry, value, 8);
	SIZE(xc_sr_cpuid_leaf, 24);
	OFF(xc_sr_cpuid_leaf, subleaf, 4);
	OFF(xc_sr_cpuid_leaf, d, 20);
	SIZE(xc_sr_msr_entry, 16);
	OFF(xc_sr_msr_entry, flags, 4);
	OFF(xc_sr_msr_entry, val, 8);
	SIZE(xc_sr_rec_x86_pv_p2m_frames, 8);
	OFF(xc_sr_rec_x86_pv_p2m_frames, end_pfn, 4);
	SIZE(libxl_sr_emulator_hdr, 8);
	OFF(libxl_sr_emulator_hdr, index, 4);
	SIZE(libxl_sr_checkpoint_state, 4);
	/* public/hvm/save.h */
	SIZE(hvm_save_descriptor, 8);
	OFF(hvm_save_descriptor, instance, 2);
	OFF(hvm_save_descriptor, length, 4);
	SIZE(hvm_save_header, 24);
	OFF(hvm_save_header, version, 4);
	OFF(hvm_save_header, changeset, 8);
	OFF(hvm_save_header, cpuid, 16);
	OFF(hvm_save_header, gtsc_khz, 20);
}

/* Ferry's HVM_CONTEXT typecodes: named, in Ferry's range, END and HEADER
 * Xen's. */
Test(formats, hvm_codes)
{
	cr_expect_str_eq(fmt_hvm_code_name(HVM_SAVE_CODE_END), "END");
	cr_expect_str_eq(fmt_hvm_code_name(HVM_SAVE_CODE_HEADER), "HEADER");
	for (unsigned c = FERRY_HVM_CODE_BASE; c < FERRY_HVM_CODE_BASE + 0x100; c++)
		if (fmt_hvm_code_name((uint16_t)c))
			cr_expect_gt(c, FERRY_HVM_CODE_BASE);
	cr_expect_str_eq(fmt_hvm_code_name(FERRY_HVM_DOMAIN), "DOMAIN");
	cr_expect_str_eq(fmt_hvm_code_name(FERRY_HVM_SOFT_VCPU), "SOFT_VCPU");
	cr_expect_null(fmt_hvm_code_name(2));
}
