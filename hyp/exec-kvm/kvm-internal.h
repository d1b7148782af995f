/* SPDX-License-Identifier: MIT */
/* Private to the kvm backend: shared by kvm.c and kvm-context.c. */
#ifndef HYP_EXEC_KVM_KVM_INTERNAL_H
#define HYP_EXEC_KVM_KVM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "../internal.h"
#include "kvm-caps.h"

#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01

struct kvm_load;

struct kvm_dom {
	int vm_fd;
	bool ring;
	uint32_t ring_entries;
	bool logging;
	struct kvm_cpuid2 *cpuid; /* Ferry's CPUID table for every vCPU */
	struct kvm_load *load;	  /* entries of a context load in progress */
};

struct kvm_vcpu {
	int fd;
	struct kvm_run *run;
	struct kvm_dirty_gfn *ring;
	struct kvm_regs regs; /* of the pending hypercall */
	uint64_t time_msr;    /* to write before the next run; 0 = none */
	bool mmio_warned;
	bool exit_pending;    /* KVM_RUN returned an exit not yet completed */
};

/* What probe found on this host (valid once kvm_probe succeeded). */
const struct kvm_caps *hyp__kvm_host_caps(void);

/* gpa + 1 (enable bit) of vCPU id's kvmclock record in shared_info. */
uint64_t hyp__kvm_time_msr_value(uint64_t shared_info_gpa, unsigned id);

/* kvm-context.c */
void hyp__kvm_vcpu_quiesce_hook(struct hyp_vcpu *v);
int hyp__kvm_save_context(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque);
int hyp__kvm_load_entry(struct hyp_domain *d, uint16_t typecode, uint16_t instance,
			const void *data, uint32_t len);
int hyp__kvm_load_done(struct hyp_domain *d, const struct ferry_hvm_domain *dom);
/* Frees a load in progress (domain destroyed before load_done). */
void hyp__kvm_load_free(struct hyp_domain *d);
uint32_t hyp__kvm_tsc_khz(struct hyp_domain *d);

#endif
