// SPDX-License-Identifier: MIT
/*
 * The kvm backend's part of save and restore: every vCPU's KVM state and
 * the VM's PIC, IOAPIC, PIT and kvmclock as HVM context entries
 * (formats/hvm-context.h), read and written with kvm-state.c.
 *
 * Save runs on the caller's thread while every vCPU thread is parked
 * outside KVM_RUN, each having completed its last exit on its own thread
 * first (hyp__kvm_vcpu_quiesce_hook, called as it parks).
 *
 * Load buffers the entries and writes them at load_done: the VM's irqchips
 * and PIT, then each vCPU (hyp__kvm_vcpu_state_set's order), then the clock
 * last, so kvmclock resumes at the saved system time and KVM's clock
 * update reaches every vCPU after its kvmclock MSR is in place.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "kvm-internal.h"
#include "kvm-state.h"

/* At most this many MSRs in one entry (KVM lists a few hundred). */
#define MAX_LOAD_MSRS 4096

struct kvm_load {
	struct kvm_vm_state vm;
	uint32_t vm_have;	      /* bit per enum kvm_vm_piece */
	unsigned nvcpus;
	struct kvm_vcpu_state *vcpu;  /* [nvcpus] */
	uint32_t *vcpu_have;	      /* [nvcpus], bit per enum kvm_vcpu_piece */
};

/* Per-vCPU entries in the order save emits them (typecode order). */
static const struct {
	uint16_t code;
	enum kvm_vcpu_piece piece;
} vcpu_codes[] = {
	{ FERRY_HVM_KVM_REGS, KVM_VCPU_REGS },
	{ FERRY_HVM_KVM_SREGS, KVM_VCPU_SREGS },
	{ FERRY_HVM_KVM_XSAVE, KVM_VCPU_XSAVE },
	{ FERRY_HVM_KVM_XCRS, KVM_VCPU_XCRS },
	{ FERRY_HVM_KVM_MSRS, KVM_VCPU_MSRS },
	{ FERRY_HVM_KVM_LAPIC, KVM_VCPU_LAPIC },
	{ FERRY_HVM_KVM_EVENTS, KVM_VCPU_EVENTS },
	{ FERRY_HVM_KVM_MP_STATE, KVM_VCPU_MP_STATE },
	{ FERRY_HVM_KVM_DEBUGREGS, KVM_VCPU_DEBUGREGS },
};

static const struct {
	uint16_t code;
	enum kvm_vm_piece piece;
} vm_codes[] = {
	{ FERRY_HVM_KVM_PIC_MASTER, KVM_VM_PIC_MASTER },
	{ FERRY_HVM_KVM_PIC_SLAVE, KVM_VM_PIC_SLAVE },
	{ FERRY_HVM_KVM_IOAPIC, KVM_VM_IOAPIC },
	{ FERRY_HVM_KVM_PIT, KVM_VM_PIT },
	{ FERRY_HVM_KVM_CLOCK, KVM_VM_CLOCK },
};

#define NR(a) (sizeof(a) / sizeof((a)[0]))

static struct kvm_dom *kd_of(struct hyp_domain *d) { return d->exec; }

/* Where a fixed-size vCPU piece lives in st and its size; NULL for XSAVE
 * and MSRS, whose sizes vary. */
static void *vcpu_piece_at(struct kvm_vcpu_state *st, enum kvm_vcpu_piece p,
			   uint32_t *len)
{
#define AT(field) (*len = sizeof(st->field), (void *)&st->field)
	switch (p) {
	case KVM_VCPU_REGS: return AT(regs);
	case KVM_VCPU_SREGS: return AT(sregs);
	case KVM_VCPU_XCRS: return AT(xcrs);
	case KVM_VCPU_LAPIC: return AT(lapic);
	case KVM_VCPU_EVENTS: return AT(events);
	case KVM_VCPU_MP_STATE: return AT(mp_state);
	case KVM_VCPU_DEBUGREGS: return AT(debugregs);
	default: return NULL;
	}
}

/* The entry payload of a VM piece: the chip's union member for the
 * irqchips (struct kvm_pic_state, struct kvm_ioapic_state). */
static void *vm_piece_at(struct kvm_vm_state *st, enum kvm_vm_piece p, uint32_t *len)
{
	switch (p) {
	case KVM_VM_PIC_MASTER: return AT(pic_master.chip.pic);
	case KVM_VM_PIC_SLAVE: return AT(pic_slave.chip.pic);
	case KVM_VM_IOAPIC: return AT(ioapic.chip.ioapic);
	case KVM_VM_PIT: return AT(pit);
	case KVM_VM_CLOCK: return AT(clock);
	default: return NULL;
	}
#undef AT
}

/* ---- save ---------------------------------------------------------------- */

void hyp__kvm_vcpu_quiesce_hook(struct hyp_vcpu *v)
{
	struct kvm_vcpu *kv = v->exec;

	if (!kv || !kv->exit_pending)
		return;
	/* Completes the port I/O (the doorbell's rip advance) or MMIO read
	 * the last exit left pending, without running guest code. */
	if (!hyp__kvm_vcpu_quiesce(kv->fd, kv->run))
		kv->exit_pending = false;
}

static int save_vcpu(struct hyp_vcpu *v, hyp_ctx_emit_fn emit, void *opaque)
{
	const struct kvm_caps *caps = hyp__kvm_host_caps();
	struct kvm_vcpu *kv = v->exec;
	struct kvm_vcpu_state st;
	int err;

	if (kv->exit_pending) {
		log_err("d%u v%u: cannot save: the vCPU's last exit is not completed",
			v->d->domid, v->id);
		return -EIO;
	}
	err = hyp__kvm_vcpu_state_get(caps, kv->fd, &st);
	if (err) {
		log_err("d%u v%u: cannot read the vCPU's KVM state", v->d->domid, v->id);
		goto out;
	}
	/* Never ran: kvmclock is not enabled yet, only due on the first run.
	 * Carry the value it will have. */
	if (kv->time_msr)
		hyp__kvm_vcpu_state_set_msr(&st, MSR_KVM_SYSTEM_TIME_NEW, kv->time_msr);
	for (size_t i = 0; i < NR(vcpu_codes) && !err; i++) {
		enum kvm_vcpu_piece p = vcpu_codes[i].piece;
		uint32_t len = 0;
		const void *data = vcpu_piece_at(&st, p, &len);

		if (p == KVM_VCPU_XSAVE) {
			data = st.xsave;
			len = st.xsave_size;
		} else if (p == KVM_VCPU_MSRS) {
			data = st.msrs->entries;
			len = st.msrs->nmsrs * (uint32_t)sizeof(st.msrs->entries[0]);
		}
		err = emit(opaque, vcpu_codes[i].code, (uint16_t)v->id, data, len);
	}
out:
	hyp__kvm_vcpu_state_free(&st);
	return err;
}

int hyp__kvm_save_context(struct hyp_domain *d, hyp_ctx_emit_fn emit, void *opaque)
{
	struct kvm_vm_state vm;
	int err;

	for (unsigned i = 0; i < d->nvcpus; i++) {
		err = save_vcpu(&d->vcpus[i], emit, opaque);
		if (err)
			return err;
	}
	err = hyp__kvm_vm_state_get(kd_of(d)->vm_fd, &vm);
	if (err) {
		log_err("d%u: cannot read the VM's KVM state", d->domid);
		return err;
	}
	for (size_t i = 0; i < NR(vm_codes); i++) {
		uint32_t len = 0;
		const void *data = vm_piece_at(&vm, vm_codes[i].piece, &len);

		err = emit(opaque, vm_codes[i].code, 0, data, len);
		if (err)
			return err;
	}
	return 0;
}

uint32_t hyp__kvm_tsc_khz(struct hyp_domain *d)
{
	(void)d;
	return hyp__kvm_host_caps()->tsc_khz;
}

/* ---- load ---------------------------------------------------------------- */

void hyp__kvm_load_free(struct hyp_domain *d)
{
	struct kvm_load *l = kd_of(d)->load;

	if (!l)
		return;
	for (unsigned i = 0; l->vcpu && i < l->nvcpus; i++)
		hyp__kvm_vcpu_state_free(&l->vcpu[i]);
	free(l->vcpu);
	free(l->vcpu_have);
	free(l);
	kd_of(d)->load = NULL;
}

static int load_get(struct hyp_domain *d, struct kvm_load **out)
{
	struct kvm_dom *kd = kd_of(d);
	struct kvm_load *l = kd->load;

	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l)
			return -ENOMEM;
		kd->load = l;
		l->vcpu = calloc(d->nvcpus, sizeof(*l->vcpu));
		l->vcpu_have = calloc(d->nvcpus, sizeof(*l->vcpu_have));
		if (!l->vcpu || !l->vcpu_have) {
			hyp__kvm_load_free(d);
			return -ENOMEM;
		}
		l->nvcpus = d->nvcpus;
		for (unsigned i = 0; i < d->nvcpus; i++) {
			if (hyp__kvm_vcpu_state_init(hyp__kvm_host_caps(), &l->vcpu[i])) {
				hyp__kvm_load_free(d);
				return -ENOMEM;
			}
		}
	}
	*out = l;
	return 0;
}

static int load_msrs(struct hyp_domain *d, const char *name, uint16_t instance,
		     struct kvm_vcpu_state *st, const void *data, uint32_t len)
{
	const struct kvm_caps *caps = hyp__kvm_host_caps();
	struct kvm_msr_entry e;
	struct kvm_msrs *m;
	uint32_t n = len / (uint32_t)sizeof(e);

	if (!len || len % sizeof(e) || n > MAX_LOAD_MSRS) {
		log_err("d%u: HVM context entry %s/%u: length %u is not 1..%u MSR entries of "
			"%zu bytes", d->domid, name, instance, len, MAX_LOAD_MSRS, sizeof(e));
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m) + n * sizeof(e));
	if (!m)
		return -ENOMEM;
	m->nmsrs = n;
	for (uint32_t i = 0; i < n; i++) {
		memcpy(&e, (const uint8_t *)data + i * sizeof(e), sizeof(e));
		if (!hyp__kvm_caps_has_msr(caps, e.index)) {
			log_err("d%u: HVM context entry %s/%u: MSR 0x%x is not one this host's "
				"KVM can restore", d->domid, name, instance, e.index);
			free(m);
			return -EINVAL;
		}
		m->entries[i] = e;
	}
	free(st->msrs);
	st->msrs = m;
	return 0;
}

int hyp__kvm_load_entry(struct hyp_domain *d, uint16_t typecode, uint16_t instance,
			const void *data, uint32_t len)
{
	const char *name = fmt_hvm_code_name(typecode);
	struct kvm_load *l;
	void *dst;
	uint32_t want = 0;
	int err;

	if (!name)
		name = "unknown";
	for (size_t i = 0; i < NR(vcpu_codes); i++) {
		enum kvm_vcpu_piece p = vcpu_codes[i].piece;
		struct kvm_vcpu_state *st;

		if (vcpu_codes[i].code != typecode)
			continue;
		if (instance >= d->nvcpus) {
			log_err("d%u: HVM context entry %s/%u: no such vCPU (the domain has %u)",
				d->domid, name, instance, d->nvcpus);
			return -EINVAL;
		}
		err = load_get(d, &l);
		if (err)
			return err;
		st = &l->vcpu[instance];
		if (p == KVM_VCPU_MSRS) {
			err = load_msrs(d, name, instance, st, data, len);
			if (err)
				return err;
		} else {
			if (p == KVM_VCPU_XSAVE) {
				dst = st->xsave;
				want = st->xsave_size;
			} else {
				dst = vcpu_piece_at(st, p, &want);
			}
			if (len != want) {
				log_err("d%u: HVM context entry %s/%u: length %u, this host's KVM "
					"needs %u", d->domid, name, instance, len, want);
				return -EINVAL;
			}
			memcpy(dst, data, len);
		}
		l->vcpu_have[instance] |= 1u << p;
		return 0;
	}
	for (size_t i = 0; i < NR(vm_codes); i++) {
		enum kvm_vm_piece p = vm_codes[i].piece;

		if (vm_codes[i].code != typecode)
			continue;
		if (instance != 0) {
			log_err("d%u: HVM context entry %s/%u: a VM entry has instance 0",
				d->domid, name, instance);
			return -EINVAL;
		}
		err = load_get(d, &l);
		if (err)
			return err;
		dst = vm_piece_at(&l->vm, p, &want);
		if (len != want) {
			log_err("d%u: HVM context entry %s/0: length %u, expected %u", d->domid,
				name, len, want);
			return -EINVAL;
		}
		memcpy(dst, data, len);
		l->vm_have |= 1u << p;
		return 0;
	}
	log_err("d%u: HVM context entry 0x%04x/%u (%s): not a kvm entry", d->domid, typecode,
		instance, name);
	return -EINVAL;
}

/* -EINVAL naming the first entry missing from l (which may be NULL). */
static int load_check(struct hyp_domain *d, const struct kvm_load *l)
{
	if (!l) {
		log_err("d%u: HVM context has no kvm entries (KVM_REGS for vCPU 0 first)",
			d->domid);
		return -EINVAL;
	}
	for (unsigned v = 0; v < d->nvcpus; v++)
		for (size_t i = 0; i < NR(vcpu_codes); i++)
			if (!(l->vcpu_have[v] & (1u << vcpu_codes[i].piece))) {
				log_err("d%u: HVM context has no %s entry for vCPU %u", d->domid,
					fmt_hvm_code_name(vcpu_codes[i].code), v);
				return -EINVAL;
			}
	for (size_t i = 0; i < NR(vm_codes); i++)
		if (!(l->vm_have & (1u << vm_codes[i].piece))) {
			log_err("d%u: HVM context has no %s entry", d->domid,
				fmt_hvm_code_name(vm_codes[i].code));
			return -EINVAL;
		}
	return 0;
}

int hyp__kvm_load_done(struct hyp_domain *d, const struct ferry_hvm_domain *dom)
{
	const struct kvm_caps *caps = hyp__kvm_host_caps();
	struct kvm_dom *kd = kd_of(d);
	struct kvm_load *l = kd->load;
	int err;

	(void)dom; /* the system time travels in the CLOCK entry */
	err = load_check(d, l);
	if (err)
		return err;
	/* Interrupt controllers and PIT before the vCPUs (as QEMU: devices
	 * are loaded before the CPUs are put), the PIT after the irqchips
	 * it raises IRQ0 on. */
	for (int p = KVM_VM_PIC_MASTER; p <= KVM_VM_PIT; p++) {
		err = hyp__kvm_vm_piece_set(kd->vm_fd, (enum kvm_vm_piece)p, &l->vm, 0);
		if (err) {
			log_err("d%u: cannot write the saved %s", d->domid,
				hyp__kvm_vm_piece_name((enum kvm_vm_piece)p));
			return err;
		}
	}
	for (unsigned i = 0; i < d->nvcpus; i++) {
		struct kvm_vcpu *kv = d->vcpus[i].exec;
		uint64_t msr;

		err = hyp__kvm_vcpu_state_set(caps, kv->fd, &l->vcpu[i]);
		if (err) {
			log_err("d%u v%u: cannot write the saved vCPU state", d->domid, i);
			return err;
		}
		/* kvmclock's MSR normally travels with the others; if it did
		 * not, point it at the guest's vcpu_info before the first run. */
		kv->time_msr = 0;
		if (!hyp__kvm_vcpu_state_msr(&l->vcpu[i], MSR_KVM_SYSTEM_TIME_NEW, &msr))
			kv->time_msr = hyp__kvm_time_msr_value(
				d->shared_info_gpa ? d->shared_info_gpa : FERRY_SHARED_INFO_GPA, i);
		kv->exit_pending = false;
	}
	/* Last: kvmclock resumes at the saved system time (no
	 * KVM_CLOCK_REALTIME: the pause does not count as guest time), and
	 * KVM refreshes every vCPU's pvclock record on its next entry. */
	err = hyp__kvm_vm_piece_set(kd->vm_fd, KVM_VM_CLOCK, &l->vm, 0);
	if (err) {
		log_err("d%u: cannot write the saved kvmclock", d->domid);
		return err;
	}
	hyp__kvm_load_free(d);
	return 0;
}
