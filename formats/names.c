// SPDX-License-Identifier: MIT
/* Name tables for the record and entry types of formats/. */
#include <stddef.h>

#include "formats/hvm-context.h"
#include "formats/libxc-stream.h"
#include "formats/libxl-stream.h"

const char *fmt_libxl_rec_name(uint32_t type)
{
	static const char *const names[] = {
		"END", "LIBXC_CONTEXT", "EMULATOR_XENSTORE_DATA", "EMULATOR_CONTEXT",
		"CHECKPOINT_END", "CHECKPOINT_STATE",
	};

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : NULL;
}

const char *fmt_libxc_rec_name(uint32_t type)
{
	static const char *const names[] = {
		"END", "PAGE_DATA", "X86_PV_INFO", "X86_PV_P2M_FRAMES",
		"X86_PV_VCPU_BASIC", "X86_PV_VCPU_EXTENDED", "X86_PV_VCPU_XSAVE",
		"SHARED_INFO", "X86_TSC_INFO", "HVM_CONTEXT", "HVM_PARAMS", "TOOLSTACK",
		"X86_PV_VCPU_MSRS", "VERIFY", "CHECKPOINT", "CHECKPOINT_DIRTY_PFN_LIST",
		"STATIC_DATA_END", "X86_CPUID_POLICY", "X86_MSR_POLICY",
	};

	if (type == REC_TYPE_FERRY_CONSOLE)
		return "FERRY_CONSOLE";
	if (type == REC_TYPE_FERRY_CHANNEL_SYNC)
		return "FERRY_CHANNEL_SYNC";
	return type < sizeof(names) / sizeof(names[0]) ? names[type] : NULL;
}

const char *fmt_hvm_code_name(uint16_t code)
{
	switch (code) {
	case HVM_SAVE_CODE_END: return "END";
	case HVM_SAVE_CODE_HEADER: return "HEADER";
	case FERRY_HVM_KVM_REGS: return "KVM_REGS";
	case FERRY_HVM_KVM_SREGS: return "KVM_SREGS";
	case FERRY_HVM_KVM_XSAVE: return "KVM_XSAVE";
	case FERRY_HVM_KVM_XCRS: return "KVM_XCRS";
	case FERRY_HVM_KVM_MSRS: return "KVM_MSRS";
	case FERRY_HVM_KVM_LAPIC: return "KVM_LAPIC";
	case FERRY_HVM_KVM_EVENTS: return "KVM_EVENTS";
	case FERRY_HVM_KVM_MP_STATE: return "KVM_MP_STATE";
	case FERRY_HVM_KVM_DEBUGREGS: return "KVM_DEBUGREGS";
	case FERRY_HVM_KVM_PIC_MASTER: return "KVM_PIC_MASTER";
	case FERRY_HVM_KVM_PIC_SLAVE: return "KVM_PIC_SLAVE";
	case FERRY_HVM_KVM_IOAPIC: return "KVM_IOAPIC";
	case FERRY_HVM_KVM_PIT: return "KVM_PIT";
	case FERRY_HVM_KVM_CLOCK: return "KVM_CLOCK";
	case FERRY_HVM_SOFT_VCPU: return "SOFT_VCPU";
	case FERRY_HVM_DOMAIN: return "DOMAIN";
	case FERRY_HVM_VCPU: return "VCPU";
	case FERRY_HVM_EVTCHN: return "EVTCHN";
	case FERRY_HVM_GNTTAB: return "GNTTAB";
	case FERRY_HVM_SCHED: return "SCHED";
	case FERRY_HVM_SCHED_VCPU: return "SCHED_VCPU";
	case FERRY_HVM_CONSOLE: return "CONSOLE";
	default: return NULL;
	}
}
