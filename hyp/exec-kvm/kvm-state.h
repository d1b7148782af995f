/* SPDX-License-Identifier: MIT */
/*
 * Architectural state of one KVM vCPU and of a KVM VM (its in-kernel PIC,
 * IOAPIC, PIT and kvmclock), as plain structs that migration serialises.
 * Every field is exactly what the named KVM ioctl returns; the structs add
 * no interpretation, so a later stream format can carry them verbatim.
 *
 * Preconditions for a consistent snapshot: the vCPU thread is not inside
 * KVM_RUN, and any I/O or MMIO exit it last returned has been completed by
 * re-entering with immediate_exit set (hyp__kvm_vcpu_quiesce()). Without that,
 * rip still points at the exiting instruction and the pending I/O is lost.
 *
 * Restore order (hyp__kvm_vcpu_state_set) follows QEMU's kvm_arch_put_registers:
 * regs, xsave, xcrs, sregs, msrs, mp_state, lapic, vcpu events, debugregs.
 * Two MSRs are handled deliberately:
 *  - MSR_IA32_TSC is written last among the MSRs, alone, so that the
 *    guest's TSC resumes at the saved value (time stands still for the
 *    guest across the pause; KVM's host-initiated TSC write resets the
 *    offset of this vCPU only). Where caps->tsc_settable is false
 *    (kvm_pvm: the guest reads the host TSC) KVM accepts the write and
 *    ignores it; the guest TSC then jumps by the host's TSC difference,
 *    which on one host is forward-only.
 *  - MSR_IA32_TSCDEADLINE is written after the LAPIC: KVM ignores it while
 *    the LAPIC timer is not in TSC-deadline mode.
 * VM state: the PIT is set after the irqchips, and KVM_SET_CLOCK gets only
 * the flags it accepts (KVM_CLOCK_REALTIME, and only when asked for).
 */
#ifndef HYP_EXEC_KVM_KVM_STATE_H
#define HYP_EXEC_KVM_KVM_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "kvm-caps.h"

/* x86 MSR numbers the state code treats specially. */
#define KVM_STATE_MSR_IA32_TSC 0x00000010u
#define KVM_STATE_MSR_IA32_TSCDEADLINE 0x000006e0u

struct kvm_vcpu_state {
	struct kvm_regs regs;	    /* KVM_GET_REGS */
	struct kvm_sregs sregs;	    /* KVM_GET_SREGS */
	uint32_t xsave_size;	    /* bytes at *xsave */
	struct kvm_xsave *xsave;    /* heap: KVM_GET_XSAVE2 (caps->xsave_size
				     * bytes) or KVM_GET_XSAVE (4096) */
	struct kvm_xcrs xcrs;	    /* KVM_GET_XCRS */
	struct kvm_msrs *msrs;	    /* heap: KVM_GET_MSRS of every MSR in
				     * caps->msrs, msrs->nmsrs entries */
	struct kvm_lapic_state lapic; /* KVM_GET_LAPIC */
	struct kvm_vcpu_events events; /* KVM_GET_VCPU_EVENTS */
	struct kvm_mp_state mp_state;  /* KVM_GET_MP_STATE */
	struct kvm_debugregs debugregs; /* KVM_GET_DEBUGREGS */
};

struct kvm_vm_state {
	struct kvm_irqchip pic_master; /* KVM_GET_IRQCHIP, KVM_IRQCHIP_PIC_MASTER */
	struct kvm_irqchip pic_slave;  /* KVM_GET_IRQCHIP, KVM_IRQCHIP_PIC_SLAVE */
	struct kvm_irqchip ioapic;     /* KVM_GET_IRQCHIP, KVM_IRQCHIP_IOAPIC */
	struct kvm_pit_state2 pit;     /* KVM_GET_PIT2 */
	struct kvm_clock_data clock;   /* KVM_GET_CLOCK */
};

/* The pieces, in restore order; usable one at a time. */
enum kvm_vcpu_piece {
	KVM_VCPU_REGS,
	KVM_VCPU_XSAVE,
	KVM_VCPU_XCRS,
	KVM_VCPU_SREGS,
	KVM_VCPU_MSRS,
	KVM_VCPU_MP_STATE,
	KVM_VCPU_LAPIC,
	KVM_VCPU_EVENTS,
	KVM_VCPU_DEBUGREGS,
	KVM_VCPU_NR_PIECES,
};

enum kvm_vm_piece {
	KVM_VM_PIC_MASTER,
	KVM_VM_PIC_SLAVE,
	KVM_VM_IOAPIC,
	KVM_VM_PIT,
	KVM_VM_CLOCK,
	KVM_VM_NR_PIECES,
};

/* hyp__kvm_vm_state_set() / hyp__kvm_vm_piece_set() flags. */
enum {
	/*
	 * Pass KVM_CLOCK_REALTIME to KVM_SET_CLOCK when the saved clock has
	 * it, so kvmclock advances by the wall time elapsed since the save.
	 * Without it the guest clock resumes where it was saved.
	 */
	KVM_VM_SET_CLOCK_REALTIME = 1u << 0,
};

/* Name of a piece for messages ("regs", "pit", ...). */
const char *hyp__kvm_vcpu_piece_name(enum kvm_vcpu_piece p);
const char *hyp__kvm_vm_piece_name(enum kvm_vm_piece p);

/*
 * Allocates st's buffers (xsave of caps->xsave_size bytes, msrs with
 * caps->nmsrs entries whose indices are filled in) after zeroing *st.
 * Release with hyp__kvm_vcpu_state_free(). Returns 0 or -ENOMEM.
 */
int hyp__kvm_vcpu_state_init(const struct kvm_caps *caps,
			     struct kvm_vcpu_state *st);

/* Frees st's buffers and zeroes *st. NULL-safe; safe on a zeroed struct. */
void hyp__kvm_vcpu_state_free(struct kvm_vcpu_state *st);

/*
 * Reads every piece of vcpu_fd into *out, which this initialises (any
 * previous contents are not freed); the caller owns the result and frees it
 * with hyp__kvm_vcpu_state_free(), also on failure. Returns 0 or -errno (logged
 * once, naming the ioctl and the vCPU fd).
 */
int hyp__kvm_vcpu_state_get(const struct kvm_caps *caps, int vcpu_fd,
			    struct kvm_vcpu_state *out);

/*
 * Writes every piece of *st into vcpu_fd in restore order (see above).
 * The vCPU must have its CPUID set already. Borrows st. Returns 0 or
 * -errno (logged once).
 */
int hyp__kvm_vcpu_state_set(const struct kvm_caps *caps, int vcpu_fd,
			    const struct kvm_vcpu_state *st);

/*
 * One piece. get needs st initialised by hyp__kvm_vcpu_state_init() (or a
 * previous hyp__kvm_vcpu_state_get()) for XSAVE and MSRS; it fills only that
 * piece. set writes only that piece (MSRS includes the TSC and deadline
 * handling described above). Return 0 or -errno (logged once).
 */
int hyp__kvm_vcpu_piece_get(const struct kvm_caps *caps, int vcpu_fd,
			    enum kvm_vcpu_piece p, struct kvm_vcpu_state *st);
int hyp__kvm_vcpu_piece_set(const struct kvm_caps *caps, int vcpu_fd,
			    enum kvm_vcpu_piece p, const struct kvm_vcpu_state *st);

/*
 * Looks up an MSR value in a saved state. Returns true and sets *value if
 * index is present.
 */
bool hyp__kvm_vcpu_state_msr(const struct kvm_vcpu_state *st, uint32_t index,
			     uint64_t *value);

/* Sets an MSR value in a saved state; returns false if index is absent. */
bool hyp__kvm_vcpu_state_set_msr(struct kvm_vcpu_state *st, uint32_t index,
				 uint64_t value);

/*
 * Completes a pending I/O/MMIO exit without running guest code: sets
 * run->immediate_exit, calls KVM_RUN (which returns -EINTR after
 * completing the operation), clears immediate_exit. Call on a stopped vCPU
 * before hyp__kvm_vcpu_state_get(). Returns 0 or -errno.
 */
int hyp__kvm_vcpu_quiesce(int vcpu_fd, struct kvm_run *run);

/* VM pieces: plain structs, nothing to allocate. Returns 0 or -errno. */
int hyp__kvm_vm_state_get(int vm_fd, struct kvm_vm_state *out);
int hyp__kvm_vm_state_set(int vm_fd, const struct kvm_vm_state *st,
			  unsigned int flags);
int hyp__kvm_vm_piece_get(int vm_fd, enum kvm_vm_piece p, struct kvm_vm_state *st);
int hyp__kvm_vm_piece_set(int vm_fd, enum kvm_vm_piece p,
			  const struct kvm_vm_state *st, unsigned int flags);

#endif
