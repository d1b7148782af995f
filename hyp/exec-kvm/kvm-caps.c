/* SPDX-License-Identifier: MIT */
#include "kvm-caps.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"

struct kvm_cap_req {
	int cap;
	const char *name;
};

#define CAP(x) { KVM_CAP_##x, "KVM_CAP_" #x }

/* Everything the kvm backend and vCPU/VM state save/restore rely on. */
static const struct kvm_cap_req kvm_required_caps[] = {
	CAP(USER_MEMORY),  CAP(SET_TSS_ADDR), CAP(EXT_CPUID),
	CAP(IRQCHIP),	   CAP(PIT2),	      CAP(PIT_STATE2),
	CAP(XSAVE),	   CAP(XCRS),	      CAP(VCPU_EVENTS),
	CAP(DEBUGREGS),	   CAP(ADJUST_CLOCK), CAP(MP_STATE),
	CAP(IMMEDIATE_EXIT), CAP(GET_TSC_KHZ),
};

#undef CAP

static int check_ext(int fd, int cap)
{
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

int hyp__kvm_caps_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
	uint32_t nent = 64;

	*out = NULL;
	for (;;) {
		struct kvm_cpuid2 *c;

		c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*out = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG || nent >= 4096) {
			int err = errno;

			log_err("kvm: KVM_GET_SUPPORTED_CPUID (nent %u): %s",
				nent, ferry_strerror(err));
			return -err;
		}
		nent *= 2;
	}
}

static int get_msr_index_list(int kvm_fd, struct kvm_msr_list **out)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	struct kvm_msr_list *l;
	uint32_t n;

	*out = NULL;
	/* First call with nmsrs 0 fails with E2BIG and reports the count. */
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 &&
	    errno != E2BIG) {
		int err = errno;

		log_err("kvm: KVM_GET_MSR_INDEX_LIST: %s", ferry_strerror(err));
		return -err;
	}
	n = probe.nmsrs;
	l = calloc(1, sizeof(*l) + (n ? n : 1) * sizeof(l->indices[0]));
	if (!l)
		return -ENOMEM;
	l->nmsrs = n;
	if (n && ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int err = errno;

		log_err("kvm: KVM_GET_MSR_INDEX_LIST (%u entries): %s", n,
			ferry_strerror(err));
		free(l);
		return -err;
	}
	*out = l;
	return 0;
}

/*
 * One MSR at a time on the scratch vCPU: keep it if KVM_GET_MSRS reads it
 * and KVM_SET_MSRS accepts the value back (both return the number of MSRs
 * processed, so 1 means success).
 */
static bool msr_round_trips(int vcpu_fd, uint32_t index)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e.index = index;
	if (ioctl(vcpu_fd, KVM_GET_MSRS, &m) != 1)
		return false;
	return ioctl(vcpu_fd, KVM_SET_MSRS, &m) == 1;
}

static int msr_rw(int vcpu_fd, unsigned long req, uint32_t index,
		  uint64_t *value)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e.index = index;
	m.e.data = *value;
	if (ioctl(vcpu_fd, req, &m) != 1)
		return -1;
	*value = m.e.data;
	return 0;
}

/* Does writing MSR_IA32_TSC (0x10) move this vCPU's TSC? Try +2^40. */
static bool tsc_is_settable(int vcpu_fd)
{
	const uint64_t jump = 1ULL << 40;
	uint64_t t0 = 0, t1, now = 0;

	if (msr_rw(vcpu_fd, KVM_GET_MSRS, 0x10, &t0))
		return false;
	t1 = t0 + jump;
	if (msr_rw(vcpu_fd, KVM_SET_MSRS, 0x10, &t1) ||
	    msr_rw(vcpu_fd, KVM_GET_MSRS, 0x10, &now))
		return false;
	return now >= t0 + jump && now - (t0 + jump) < jump / 2;
}

/* Scratch VM + vCPU: MSR filtering, TSC frequency, XSAVE2 size. */
/* VM-fd answers can be narrower than /dev/kvm ones. */
static void probe_vm_caps(int vm, struct kvm_caps *c)
{
	int r;

	if (check_ext(vm, KVM_CAP_XSAVE2) > 0) {
		r = check_ext(vm, KVM_CAP_XSAVE2);
		c->has_xsave2 = true;
		c->xsave_size = (uint32_t)r;
	}
	if (c->xsave_size < sizeof(struct kvm_xsave))
		c->xsave_size = sizeof(struct kvm_xsave);
	if (check_ext(vm, KVM_CAP_DIRTY_LOG_RING) > 0)
		c->dirty_ring_max = (uint32_t)check_ext(vm, KVM_CAP_DIRTY_LOG_RING);
	c->dirty_ring_acq_rel = c->dirty_ring_max &&
				check_ext(vm, KVM_CAP_DIRTY_LOG_RING_ACQ_REL) > 0;
}

/* The MSRs KVM lists that round-trip on the scratch vCPU (the ones vCPU
 * state carries), and whether the TSC can be set. */
static int probe_msrs(int kvm_fd, int vcpu, struct kvm_caps *c)
{
	struct kvm_msr_list *list = NULL;
	int err = get_msr_index_list(kvm_fd, &list);

	if (err)
		return err;
	c->nmsrs_listed = list->nmsrs;
	c->msrs = calloc(list->nmsrs ? list->nmsrs : 1, sizeof(c->msrs[0]));
	if (!c->msrs) {
		free(list);
		return -ENOMEM;
	}
	c->tsc_settable = tsc_is_settable(vcpu);
	for (uint32_t i = 0; i < list->nmsrs; i++) {
		if (msr_round_trips(vcpu, list->indices[i]))
			c->msrs[c->nmsrs++] = list->indices[i];
		else
			log_debug("kvm: MSR %#x listed but not readable and "
				  "writable; left out of vCPU state",
				  list->indices[i]);
	}
	free(list);
	return 0;
}

static int probe_scratch(int kvm_fd, struct kvm_caps *c)
{
	int vm = -1, vcpu = -1, r, err = 0;

	vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm < 0) {
		err = -errno;
		log_err("kvm: KVM_CREATE_VM (scratch): %s", ferry_strerror(-err));
		return err;
	}

	probe_vm_caps(vm, c);
	if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0) {
		err = -errno;
		log_err("kvm: KVM_SET_TSS_ADDR (scratch VM): %s",
			ferry_strerror(-err));
		goto out;
	}
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		err = -errno;
		log_err("kvm: KVM_CREATE_IRQCHIP (scratch VM): %s",
			ferry_strerror(-err));
		goto out;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		err = -errno;
		log_err("kvm: KVM_CREATE_VCPU (scratch VM): %s",
			ferry_strerror(-err));
		goto out;
	}
	if (ioctl(vcpu, KVM_SET_CPUID2, c->cpuid) < 0) {
		err = -errno;
		log_err("kvm: KVM_SET_CPUID2 (scratch vCPU fd %d): %s", vcpu,
			ferry_strerror(-err));
		goto out;
	}
	r = ioctl(vcpu, KVM_GET_TSC_KHZ, 0);
	if (r < 0) {
		err = -errno;
		log_err("kvm: KVM_GET_TSC_KHZ (scratch vCPU fd %d): %s", vcpu,
			ferry_strerror(-err));
		goto out;
	}
	c->tsc_khz = (uint32_t)r;

	err = probe_msrs(kvm_fd, vcpu, c);
out:
	if (vcpu >= 0)
		close(vcpu);
	close(vm);
	return err;
}

int hyp__kvm_caps_probe(int kvm_fd, struct kvm_caps *out)
{
	struct kvm_caps c;
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));

	r = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
	if (r != KVM_CAPS_API_VERSION) {
		if (r < 0)
			log_err("kvm: KVM_GET_API_VERSION: %s",
				strerror(errno));
		else
			log_err("kvm: KVM API version %d, Ferry needs %d", r,
				KVM_CAPS_API_VERSION);
		return -FERRY_ENOKVM;
	}
	c.api_version = r;

	for (i = 0; i < sizeof(kvm_required_caps) / sizeof(kvm_required_caps[0]);
	     i++) {
		if (check_ext(kvm_fd, kvm_required_caps[i].cap) <= 0) {
			log_err("kvm: required capability %s missing",
				kvm_required_caps[i].name);
			return -FERRY_ENOKVM;
		}
	}

	c.max_vcpus = check_ext(kvm_fd, KVM_CAP_MAX_VCPUS);
	if (c.max_vcpus <= 0)
		c.max_vcpus = check_ext(kvm_fd, KVM_CAP_NR_VCPUS);
	if (c.max_vcpus <= 0)
		c.max_vcpus = 4; /* KVM's documented default */
	c.has_irq_routing = check_ext(kvm_fd, KVM_CAP_IRQ_ROUTING) > 0;
	c.manual_protect =
		(uint32_t)check_ext(kvm_fd, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	c.clock_flags = (uint32_t)check_ext(kvm_fd, KVM_CAP_ADJUST_CLOCK);

	r = hyp__kvm_caps_supported_cpuid(kvm_fd, &c.cpuid);
	if (r)
		return r;
	r = probe_scratch(kvm_fd, &c);
	if (r) {
		hyp__kvm_caps_free(&c);
		return r;
	}

	log_info("kvm: API %d, xsave %u bytes%s, tsc %u kHz%s, %u/%u MSRs "
		 "saved, dirty ring %u bytes%s, manual protect %#x",
		 c.api_version, c.xsave_size, c.has_xsave2 ? " (xsave2)" : "",
		 c.tsc_khz, c.tsc_settable ? "" : " (not settable)", c.nmsrs,
		 c.nmsrs_listed, c.dirty_ring_max,
		 c.dirty_ring_acq_rel ? " acq/rel" : "", c.manual_protect);
	*out = c;
	return 0;
}

void hyp__kvm_caps_free(struct kvm_caps *caps)
{
	if (!caps)
		return;
	free(caps->msrs);
	free(caps->cpuid);
	memset(caps, 0, sizeof(*caps));
}

bool hyp__kvm_caps_has_msr(const struct kvm_caps *caps, uint32_t index)
{
	uint32_t i;

	for (i = 0; i < caps->nmsrs; i++)
		if (caps->msrs[i] == index)
			return true;
	return false;
}
