/* SPDX-License-Identifier: MIT */
/*
 * KVM capability probe for the kvm execution backend.
 *
 * hyp__kvm_caps_probe() is called once per ferryd (or per test) on the /dev/kvm
 * fd. It checks everything Ferry cannot work without, records the optional
 * features, and builds the list of MSRs that save/restore carries: the list
 * KVM reports (KVM_GET_MSR_INDEX_LIST), filtered to those a scratch vCPU
 * (created with the full supported CPUID and an in-kernel irqchip) can both
 * read with KVM_GET_MSRS and write back with KVM_SET_MSRS. Some listed MSRs
 * fail either way depending on the host CPU and the KVM flavour; keeping them
 * would make every full-state get or set fail.
 *
 * VMs whose vCPU state is saved with this list must give their vCPUs the
 * CPUID in caps->cpuid (or a subset that still enables the same MSRs).
 */
#ifndef HYP_EXEC_KVM_KVM_CAPS_H
#define HYP_EXEC_KVM_KVM_CAPS_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#define KVM_CAPS_API_VERSION 12

struct kvm_caps {
	int api_version;	  /* KVM_GET_API_VERSION, always 12 */
	int max_vcpus;		  /* KVM_CAP_MAX_VCPUS (or NR_VCPUS) */
	bool has_xsave2;	  /* KVM_CAP_XSAVE2: KVM_GET_XSAVE2 usable */
	uint32_t xsave_size;	  /* bytes of a kvm_xsave buffer for GET_XSAVE2/
				   * SET_XSAVE; >= sizeof(struct kvm_xsave) */
	bool has_irq_routing;	  /* KVM_CAP_IRQ_ROUTING (optional) */
	uint32_t manual_protect;  /* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 flags
				   * (KVM_DIRTY_LOG_MANUAL_*), 0 = absent */
	uint32_t dirty_ring_max;  /* KVM_CAP_DIRTY_LOG_RING max ring bytes,
				   * 0 = absent */
	bool dirty_ring_acq_rel;  /* KVM_CAP_DIRTY_LOG_RING_ACQ_REL */
	uint32_t clock_flags;	  /* KVM_CAP_ADJUST_CLOCK: KVM_CLOCK_* flags
				   * KVM_GET_CLOCK can report */
	uint32_t tsc_khz;	  /* KVM_GET_TSC_KHZ on the scratch vCPU */
	bool tsc_settable;	  /* a host-initiated MSR_IA32_TSC write moves
				   * the guest TSC (false on kvm_pvm: the guest
				   * sees the host TSC and the write is
				   * accepted but ignored) */
	uint32_t nmsrs_listed;	  /* entries KVM_GET_MSR_INDEX_LIST returned */
	uint32_t nmsrs;		  /* entries in msrs[] */
	uint32_t *msrs;		  /* heap: MSR indices save/restore carry, in
				   * KVM's order; owned by the caps */
	struct kvm_cpuid2 *cpuid; /* heap: KVM_GET_SUPPORTED_CPUID result, fit
				   * for KVM_SET_CPUID2; owned by the caps */
};

/*
 * Probes kvm_fd (an open /dev/kvm). On success fills *out (which the caller
 * releases with hyp__kvm_caps_free()) and returns 0. A missing required
 * capability logs one line naming it and returns -FERRY_ENOKVM; ioctl
 * failures return -errno. On failure *out holds nothing to free.
 */
int hyp__kvm_caps_probe(int kvm_fd, struct kvm_caps *out);

/* Frees what hyp__kvm_caps_probe() allocated and zeroes *caps. NULL-safe. */
void hyp__kvm_caps_free(struct kvm_caps *caps);

/*
 * KVM_GET_SUPPORTED_CPUID with a growing buffer. On success *out is a heap
 * kvm_cpuid2 the caller frees with free().
 */
int hyp__kvm_caps_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out);

/* True if caps->msrs contains index. */
bool hyp__kvm_caps_has_msr(const struct kvm_caps *caps, uint32_t index);

#endif
