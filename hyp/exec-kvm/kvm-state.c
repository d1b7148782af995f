/* SPDX-License-Identifier: MIT */
#include "common/err.h"
#include "kvm-state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/log.h"

static const char *const vcpu_piece_names[KVM_VCPU_NR_PIECES] = {
	[KVM_VCPU_REGS] = "regs",	   [KVM_VCPU_XSAVE] = "xsave",
	[KVM_VCPU_XCRS] = "xcrs",	   [KVM_VCPU_SREGS] = "sregs",
	[KVM_VCPU_MSRS] = "msrs",	   [KVM_VCPU_MP_STATE] = "mp_state",
	[KVM_VCPU_LAPIC] = "lapic",	   [KVM_VCPU_EVENTS] = "events",
	[KVM_VCPU_DEBUGREGS] = "debugregs",
};

static const char *const vm_piece_names[KVM_VM_NR_PIECES] = {
	[KVM_VM_PIC_MASTER] = "pic_master", [KVM_VM_PIC_SLAVE] = "pic_slave",
	[KVM_VM_IOAPIC] = "ioapic",	    [KVM_VM_PIT] = "pit",
	[KVM_VM_CLOCK] = "clock",
};

const char *hyp__kvm_vcpu_piece_name(enum kvm_vcpu_piece p)
{
	return (unsigned int)p < KVM_VCPU_NR_PIECES ? vcpu_piece_names[p] :
						      "?";
}

const char *hyp__kvm_vm_piece_name(enum kvm_vm_piece p)
{
	return (unsigned int)p < KVM_VM_NR_PIECES ? vm_piece_names[p] : "?";
}

/* ioctl on a vCPU fd; logs once and returns -errno on failure. */
static int vcpu_ioctl(int fd, unsigned long req, const char *name, void *arg)
{
	if (ioctl(fd, req, arg) < 0) {
		int err = errno;

		log_err("kvm: %s on vCPU fd %d: %s", name, fd, ferry_strerror(err));
		return -err;
	}
	return 0;
}

static int vm_ioctl(int fd, unsigned long req, const char *name, void *arg)
{
	if (ioctl(fd, req, arg) < 0) {
		int err = errno;

		log_err("kvm: %s on VM fd %d: %s", name, fd, ferry_strerror(err));
		return -err;
	}
	return 0;
}

#define VCPU_IOCTL(fd, req, arg) vcpu_ioctl(fd, req, #req, arg)
#define VM_IOCTL(fd, req, arg) vm_ioctl(fd, req, #req, arg)

static struct kvm_msrs *msrs_alloc(uint32_t n)
{
	struct kvm_msrs *m;

	m = calloc(1, sizeof(*m) + (n ? n : 1) * sizeof(m->entries[0]));
	if (m)
		m->nmsrs = n;
	return m;
}

int hyp__kvm_vcpu_state_init(const struct kvm_caps *caps,
			     struct kvm_vcpu_state *st)
{
	uint32_t i;

	memset(st, 0, sizeof(*st));
	st->xsave_size = caps->xsave_size;
	if (st->xsave_size < sizeof(struct kvm_xsave))
		st->xsave_size = sizeof(struct kvm_xsave);
	st->xsave = calloc(1, st->xsave_size);
	st->msrs = msrs_alloc(caps->nmsrs);
	if (!st->xsave || !st->msrs) {
		hyp__kvm_vcpu_state_free(st);
		return -ENOMEM;
	}
	for (i = 0; i < caps->nmsrs; i++)
		st->msrs->entries[i].index = caps->msrs[i];
	return 0;
}

void hyp__kvm_vcpu_state_free(struct kvm_vcpu_state *st)
{
	if (!st)
		return;
	free(st->xsave);
	free(st->msrs);
	memset(st, 0, sizeof(*st));
}

bool hyp__kvm_vcpu_state_msr(const struct kvm_vcpu_state *st, uint32_t index,
			     uint64_t *value)
{
	uint32_t i;

	if (!st->msrs)
		return false;
	for (i = 0; i < st->msrs->nmsrs; i++) {
		if (st->msrs->entries[i].index == index) {
			*value = st->msrs->entries[i].data;
			return true;
		}
	}
	return false;
}

bool hyp__kvm_vcpu_state_set_msr(struct kvm_vcpu_state *st, uint32_t index,
				 uint64_t value)
{
	uint32_t i;

	if (!st->msrs)
		return false;
	for (i = 0; i < st->msrs->nmsrs; i++) {
		if (st->msrs->entries[i].index == index) {
			st->msrs->entries[i].data = value;
			return true;
		}
	}
	return false;
}

static int get_msrs(int fd, struct kvm_msrs *m)
{
	int r;

	/* KVM_GET_MSRS returns how many entries it read, in order. */
	r = ioctl(fd, KVM_GET_MSRS, m);
	if (r < 0) {
		int err = errno;

		log_err("kvm: KVM_GET_MSRS on vCPU fd %d: %s", fd,
			ferry_strerror(err));
		return -err;
	}
	if ((uint32_t)r != m->nmsrs) {
		log_err("kvm: KVM_GET_MSRS on vCPU fd %d: read %d of %u, MSR "
			"%#x failed",
			fd, r, m->nmsrs, m->entries[r].index);
		return -EIO;
	}
	return 0;
}

enum msr_group {
	MSR_GROUP_MAIN = 1 << 0,     /* everything but the two below */
	MSR_GROUP_TSC = 1 << 1,	     /* MSR_IA32_TSC */
	MSR_GROUP_DEADLINE = 1 << 2, /* MSR_IA32_TSCDEADLINE */
};

static enum msr_group msr_group_of(uint32_t index)
{
	if (index == KVM_STATE_MSR_IA32_TSC)
		return MSR_GROUP_TSC;
	if (index == KVM_STATE_MSR_IA32_TSCDEADLINE)
		return MSR_GROUP_DEADLINE;
	return MSR_GROUP_MAIN;
}

/* KVM_SET_MSRS of the saved MSRs in group, in one call. */
static int set_msr_group(int fd, const struct kvm_msrs *src,
			 enum msr_group group)
{
	struct kvm_msrs *m;
	uint32_t i, n = 0;
	int r, err = 0;

	if (!src)
		return 0;
	m = msrs_alloc(src->nmsrs);
	if (!m)
		return -ENOMEM;
	for (i = 0; i < src->nmsrs; i++)
		if (msr_group_of(src->entries[i].index) == group)
			m->entries[n++] = src->entries[i];
	m->nmsrs = n;
	if (n) {
		/* KVM_SET_MSRS returns how many it wrote; it stops at the
		 * first one it rejects. */
		r = ioctl(fd, KVM_SET_MSRS, m);
		if (r < 0) {
			err = -errno;
			log_err("kvm: KVM_SET_MSRS on vCPU fd %d: %s", fd,
				ferry_strerror(-err));
		} else if ((uint32_t)r != n) {
			log_err("kvm: KVM_SET_MSRS on vCPU fd %d: wrote %d of "
				"%u, MSR %#x value %#llx rejected",
				fd, r, n, m->entries[r].index,
				(unsigned long long)m->entries[r].data);
			err = -EINVAL;
		}
	}
	free(m);
	return err;
}

static int get_xsave(const struct kvm_caps *caps, int fd,
		     struct kvm_vcpu_state *st)
{
	if (!st->xsave)
		return -EINVAL;
	if (caps->has_xsave2 && st->xsave_size >= caps->xsave_size)
		return VCPU_IOCTL(fd, KVM_GET_XSAVE2, st->xsave);
	/* KVM_GET_XSAVE writes exactly sizeof(struct kvm_xsave). */
	if (st->xsave_size < sizeof(struct kvm_xsave))
		return -EINVAL;
	return VCPU_IOCTL(fd, KVM_GET_XSAVE, st->xsave);
}

static int set_xsave(const struct kvm_caps *caps, int fd,
		     const struct kvm_vcpu_state *st)
{
	struct kvm_xsave *buf;
	size_t need = caps->xsave_size;
	int err;

	if (!st->xsave)
		return -EINVAL;
	if (need < sizeof(struct kvm_xsave))
		need = sizeof(struct kvm_xsave);
	/* KVM_SET_XSAVE reads as many bytes as this VM's XSAVE2 size; a
	 * smaller saved image (plain KVM_GET_XSAVE, or another host) is
	 * padded with zeroes, i.e. the extra components' init state. */
	if (st->xsave_size >= need)
		return VCPU_IOCTL(fd, KVM_SET_XSAVE, st->xsave);
	buf = calloc(1, need);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, st->xsave, st->xsave_size);
	err = VCPU_IOCTL(fd, KVM_SET_XSAVE, buf);
	free(buf);
	return err;
}

int hyp__kvm_vcpu_piece_get(const struct kvm_caps *caps, int vcpu_fd,
			    enum kvm_vcpu_piece p, struct kvm_vcpu_state *st)
{
	switch (p) {
	case KVM_VCPU_REGS:
		return VCPU_IOCTL(vcpu_fd, KVM_GET_REGS, &st->regs);
	case KVM_VCPU_XSAVE:
		return get_xsave(caps, vcpu_fd, st);
	case KVM_VCPU_XCRS:
		return VCPU_IOCTL(vcpu_fd, KVM_GET_XCRS, &st->xcrs);
	case KVM_VCPU_SREGS:
		return VCPU_IOCTL(vcpu_fd, KVM_GET_SREGS, &st->sregs);
	case KVM_VCPU_MSRS:
		if (!st->msrs)
			return -EINVAL;
		return get_msrs(vcpu_fd, st->msrs);
	case KVM_VCPU_MP_STATE:
		return VCPU_IOCTL(vcpu_fd, KVM_GET_MP_STATE, &st->mp_state);
	case KVM_VCPU_LAPIC:
		return VCPU_IOCTL(vcpu_fd, KVM_GET_LAPIC, &st->lapic);
	case KVM_VCPU_EVENTS:
		return VCPU_IOCTL(vcpu_fd, KVM_GET_VCPU_EVENTS, &st->events);
	case KVM_VCPU_DEBUGREGS:
		return VCPU_IOCTL(vcpu_fd, KVM_GET_DEBUGREGS, &st->debugregs);
	case KVM_VCPU_NR_PIECES:
		break;
	}
	return -EINVAL;
}

static int set_events(int fd, const struct kvm_vcpu_state *st)
{
	struct kvm_vcpu_events ev = st->events;

	/* KVM_GET_VCPU_EVENTS always fills nmi.pending but does not flag
	 * it; KVM_SET_VCPU_EVENTS only applies it when flagged. sipi_vector
	 * is always reported as 0, so (as QEMU does) it is only written
	 * when the vCPU waits for a SIPI. */
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING;
	if (st->mp_state.mp_state == KVM_MP_STATE_SIPI_RECEIVED)
		ev.flags |= KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	return VCPU_IOCTL(fd, KVM_SET_VCPU_EVENTS, &ev);
}

int hyp__kvm_vcpu_piece_set(const struct kvm_caps *caps, int vcpu_fd,
			    enum kvm_vcpu_piece p, const struct kvm_vcpu_state *st)
{
	/* The ioctl argument is not modified by the set ioctls, but the
	 * ioctl prototype takes a non-const pointer. */
	struct kvm_vcpu_state *w = (struct kvm_vcpu_state *)st;
	int err;

	switch (p) {
	case KVM_VCPU_REGS:
		return VCPU_IOCTL(vcpu_fd, KVM_SET_REGS, &w->regs);
	case KVM_VCPU_XSAVE:
		return set_xsave(caps, vcpu_fd, st);
	case KVM_VCPU_XCRS:
		return VCPU_IOCTL(vcpu_fd, KVM_SET_XCRS, &w->xcrs);
	case KVM_VCPU_SREGS:
		return VCPU_IOCTL(vcpu_fd, KVM_SET_SREGS, &w->sregs);
	case KVM_VCPU_MSRS:
		err = set_msr_group(vcpu_fd, st->msrs, MSR_GROUP_MAIN);
		if (!err)
			err = set_msr_group(vcpu_fd, st->msrs, MSR_GROUP_TSC);
		if (!err)
			err = set_msr_group(vcpu_fd, st->msrs,
					    MSR_GROUP_DEADLINE);
		return err;
	case KVM_VCPU_MP_STATE:
		return VCPU_IOCTL(vcpu_fd, KVM_SET_MP_STATE, &w->mp_state);
	case KVM_VCPU_LAPIC:
		return VCPU_IOCTL(vcpu_fd, KVM_SET_LAPIC, &w->lapic);
	case KVM_VCPU_EVENTS:
		return set_events(vcpu_fd, st);
	case KVM_VCPU_DEBUGREGS:
		return VCPU_IOCTL(vcpu_fd, KVM_SET_DEBUGREGS, &w->debugregs);
	case KVM_VCPU_NR_PIECES:
		break;
	}
	return -EINVAL;
}

int hyp__kvm_vcpu_state_get(const struct kvm_caps *caps, int vcpu_fd,
			    struct kvm_vcpu_state *out)
{
	int p, err;

	err = hyp__kvm_vcpu_state_init(caps, out);
	if (err)
		return err;
	for (p = 0; p < KVM_VCPU_NR_PIECES; p++) {
		err = hyp__kvm_vcpu_piece_get(caps, vcpu_fd, (enum kvm_vcpu_piece)p,
					      out);
		if (err)
			return err;
	}
	return 0;
}

int hyp__kvm_vcpu_state_set(const struct kvm_caps *caps, int vcpu_fd,
			    const struct kvm_vcpu_state *st)
{
	int err;

	err = hyp__kvm_vcpu_piece_set(caps, vcpu_fd, KVM_VCPU_REGS, st);
	if (!err)
		err = hyp__kvm_vcpu_piece_set(caps, vcpu_fd, KVM_VCPU_XSAVE, st);
	if (!err)
		err = hyp__kvm_vcpu_piece_set(caps, vcpu_fd, KVM_VCPU_XCRS, st);
	if (!err)
		err = hyp__kvm_vcpu_piece_set(caps, vcpu_fd, KVM_VCPU_SREGS, st);
	if (!err)
		err = set_msr_group(vcpu_fd, st->msrs, MSR_GROUP_MAIN);
	if (!err)
		err = set_msr_group(vcpu_fd, st->msrs, MSR_GROUP_TSC);
	if (!err)
		err = hyp__kvm_vcpu_piece_set(caps, vcpu_fd, KVM_VCPU_MP_STATE, st);
	if (!err)
		err = hyp__kvm_vcpu_piece_set(caps, vcpu_fd, KVM_VCPU_LAPIC, st);
	/* After the LAPIC: KVM drops deadline writes unless the LVT timer
	 * is in TSC-deadline mode. */
	if (!err)
		err = set_msr_group(vcpu_fd, st->msrs, MSR_GROUP_DEADLINE);
	if (!err)
		err = hyp__kvm_vcpu_piece_set(caps, vcpu_fd, KVM_VCPU_EVENTS, st);
	if (!err)
		err = hyp__kvm_vcpu_piece_set(caps, vcpu_fd, KVM_VCPU_DEBUGREGS,
					      st);
	return err;
}

int hyp__kvm_vcpu_quiesce(int vcpu_fd, struct kvm_run *run)
{
	int r, err = 0;

	run->immediate_exit = 1;
	r = ioctl(vcpu_fd, KVM_RUN, 0);
	if (r < 0 && errno != EINTR) {
		err = -errno;
		log_err("kvm: KVM_RUN (immediate exit) on vCPU fd %d: %s",
			vcpu_fd, ferry_strerror(-err));
	}
	run->immediate_exit = 0;
	return err;
}

static int irqchip_get(int fd, uint32_t chip_id, struct kvm_irqchip *chip)
{
	memset(chip, 0, sizeof(*chip));
	chip->chip_id = chip_id;
	return VM_IOCTL(fd, KVM_GET_IRQCHIP, chip);
}

static int irqchip_set(int fd, uint32_t chip_id,
		       const struct kvm_irqchip *saved)
{
	struct kvm_irqchip chip = *saved;

	chip.chip_id = chip_id;
	return VM_IOCTL(fd, KVM_SET_IRQCHIP, &chip);
}

int hyp__kvm_vm_piece_get(int vm_fd, enum kvm_vm_piece p, struct kvm_vm_state *st)
{
	switch (p) {
	case KVM_VM_PIC_MASTER:
		return irqchip_get(vm_fd, KVM_IRQCHIP_PIC_MASTER,
				   &st->pic_master);
	case KVM_VM_PIC_SLAVE:
		return irqchip_get(vm_fd, KVM_IRQCHIP_PIC_SLAVE,
				   &st->pic_slave);
	case KVM_VM_IOAPIC:
		return irqchip_get(vm_fd, KVM_IRQCHIP_IOAPIC, &st->ioapic);
	case KVM_VM_PIT:
		return VM_IOCTL(vm_fd, KVM_GET_PIT2, &st->pit);
	case KVM_VM_CLOCK:
		memset(&st->clock, 0, sizeof(st->clock));
		return VM_IOCTL(vm_fd, KVM_GET_CLOCK, &st->clock);
	case KVM_VM_NR_PIECES:
		break;
	}
	return -EINVAL;
}

int hyp__kvm_vm_piece_set(int vm_fd, enum kvm_vm_piece p,
			  const struct kvm_vm_state *st, unsigned int flags)
{
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;

	switch (p) {
	case KVM_VM_PIC_MASTER:
		return irqchip_set(vm_fd, KVM_IRQCHIP_PIC_MASTER,
				   &st->pic_master);
	case KVM_VM_PIC_SLAVE:
		return irqchip_set(vm_fd, KVM_IRQCHIP_PIC_SLAVE,
				   &st->pic_slave);
	case KVM_VM_IOAPIC:
		return irqchip_set(vm_fd, KVM_IRQCHIP_IOAPIC, &st->ioapic);
	case KVM_VM_PIT:
		pit = st->pit;
		return VM_IOCTL(vm_fd, KVM_SET_PIT2, &pit);
	case KVM_VM_CLOCK:
		/* KVM_SET_CLOCK rejects flags it does not accept
		 * (TSC_STABLE, HOST_TSC are get-only); REALTIME only when
		 * the caller wants wall time to count. */
		clock = st->clock;
		clock.flags &= (flags & KVM_VM_SET_CLOCK_REALTIME) ?
				       KVM_CLOCK_REALTIME :
				       0;
		return VM_IOCTL(vm_fd, KVM_SET_CLOCK, &clock);
	case KVM_VM_NR_PIECES:
		break;
	}
	return -EINVAL;
}

int hyp__kvm_vm_state_get(int vm_fd, struct kvm_vm_state *out)
{
	int p, err;

	memset(out, 0, sizeof(*out));
	for (p = 0; p < KVM_VM_NR_PIECES; p++) {
		err = hyp__kvm_vm_piece_get(vm_fd, (enum kvm_vm_piece)p, out);
		if (err)
			return err;
	}
	return 0;
}

int hyp__kvm_vm_state_set(int vm_fd, const struct kvm_vm_state *st,
			  unsigned int flags)
{
	int p, err;

	/* Irqchips before the PIT (the PIT raises IRQ0 on them), clock
	 * last. */
	for (p = 0; p < KVM_VM_NR_PIECES; p++) {
		err = hyp__kvm_vm_piece_set(vm_fd, (enum kvm_vm_piece)p, st, flags);
		if (err)
			return err;
	}
	return 0;
}
