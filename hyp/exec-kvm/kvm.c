// SPDX-License-Identifier: MIT
/*
 * The kvm execution backend: a KVM VM per domain with the in-kernel irqchip
 * and PIT, one thread per vCPU (the generic loop in vcpu.c calls vcpu_run).
 * Hypercalls arrive as port I/O on FERRY_DOORBELL_PORT.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "kvm-internal.h"

#define KVM_TSS_GPA 0xfffbd000ULL
#define KICK_SIGNAL SIGUSR1
#define BOOT_GDT_GPA (FERRY_CTL_GPA + 0x800)
#define DIRTY_RING_ENTRIES 16384

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int probe_result;
static char probe_why[160]; /* why not, when probe_result says no */
static int kvm_fd = -1;
static int run_size;
static struct kvm_caps caps;

static void kick_handler(int sig) { (void)sig; }

static void probe_kvm(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };

	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0) {
		snprintf(probe_why, sizeof(probe_why), "cannot open /dev/kvm: %s", strerror(errno));
		probe_result = -FERRY_ENOKVM;
		return;
	}
	/* A KVM that is there but lacks what Ferry needs is an error on any
	 * backend choice: hyp__kvm_caps_probe logs it as one. */
	probe_result = hyp__kvm_caps_probe(kvm_fd, &caps);
	if (probe_result) {
		snprintf(probe_why, sizeof(probe_why), "/dev/kvm is unusable (%s)",
			 ferry_strerror(probe_result));
		goto err;
	}
	run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0) {
		snprintf(probe_why, sizeof(probe_why), "KVM_GET_VCPU_MMAP_SIZE failed: %s",
			 strerror(errno));
		probe_result = -FERRY_ENOKVM;
		goto err;
	}
	/* No SA_RESTART: the kick must interrupt KVM_RUN. */
	sigemptyset(&sa.sa_mask);
	sigaction(KICK_SIGNAL, &sa, NULL);
	return;
err:
	close(kvm_fd);
	kvm_fd = -1;
}

static int kvm_probe(char *why, size_t len)
{
	pthread_once(&probe_once, probe_kvm);
	if (probe_result)
		snprintf(why, len, "%s", probe_why);
	return probe_result;
}

static struct kvm_dom *kd_of(struct hyp_domain *d) { return d->exec; }

const struct kvm_caps *hyp__kvm_host_caps(void) { return &caps; }

uint64_t hyp__kvm_time_msr_value(uint64_t shared_info_gpa, unsigned id)
{
	return shared_info_gpa + id * sizeof(struct vcpu_info) +
	       offsetof(struct vcpu_info, time) + 1;
}

static int set_memslot(struct hyp_domain *d, bool log)
{
	struct kvm_userspace_memory_region r = {
		.slot = 0,
		.flags = log ? KVM_MEM_LOG_DIRTY_PAGES : 0,
		.guest_phys_addr = 0,
		.memory_size = d->mem_bytes,
		.userspace_addr = (uintptr_t)d->hva,
	};

	if (ioctl(kd_of(d)->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		int err = -errno;

		log_err("d%u: KVM_SET_USER_MEMORY_REGION (log %d): %s", d->domid, log,
			strerror(errno));
		return err;
	}
	return 0;
}

/* Ferry's CPUID: KVM's supported table with KVM's own 0x400000xx leaves
 * replaced by Ferry's signature, version and doorbell. */
static struct kvm_cpuid2 *build_cpuid(void)
{
	const struct kvm_cpuid2 *src = caps.cpuid;
	struct kvm_cpuid2 *c;
	uint32_t n = 0;

	c = calloc(1, sizeof(*c) + (src->nent + 3) * sizeof(c->entries[0]));
	if (!c)
		return NULL;
	for (uint32_t i = 0; i < src->nent; i++) {
		uint32_t f = src->entries[i].function;

		if (f >= 0x40000000 && f < 0x40000100)
			continue;
		c->entries[n++] = src->entries[i];
	}
	c->entries[n++] = (struct kvm_cpuid_entry2){
		.function = FERRY_CPUID_BASE, .eax = FERRY_CPUID_MAX,
		.ebx = FERRY_CPUID_SIG_EBX, .ecx = FERRY_CPUID_SIG_ECX,
		.edx = FERRY_CPUID_SIG_EDX,
	};
	c->entries[n++] = (struct kvm_cpuid_entry2){
		.function = FERRY_CPUID_BASE + 1,
		.eax = FERRY_VERSION_MAJOR << 16 | FERRY_VERSION_MINOR,
	};
	c->entries[n++] = (struct kvm_cpuid_entry2){
		.function = FERRY_CPUID_BASE + 2, .eax = FERRY_DOORBELL_PORT,
		.ebx = caps.tsc_khz,
	};
	c->nent = n;
	return c;
}

static int kvm_dom_init(struct hyp_domain *d)
{
	/* Flat 64-bit boot GDT: null, kernel code, kernel data. */
	static const uint64_t gdt[3] = { 0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL };
	struct kvm_pit_config pit = { 0 };
	struct kvm_dom *kd;
	int err;

	kd = calloc(1, sizeof(*kd));
	if (!kd)
		return -ENOMEM;
	d->exec = kd;
	kd->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (kd->vm_fd < 0) {
		err = -errno;
		log_err("d%u: KVM_CREATE_VM: %s", d->domid, strerror(errno));
		return err;
	}
	if (ioctl(kd->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_GPA) < 0 ||
	    ioctl(kd->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(kd->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		err = -errno;
		log_err("d%u: setting up the VM's irqchip and PIT: %s", d->domid,
			strerror(errno));
		return err;
	}
	if (!strcmp(d->cfg.logdirty, "ring")) {
		struct kvm_enable_cap cap = {
			.cap = caps.dirty_ring_acq_rel ? KVM_CAP_DIRTY_LOG_RING_ACQ_REL
						       : KVM_CAP_DIRTY_LOG_RING,
		};
		uint32_t bytes = DIRTY_RING_ENTRIES * sizeof(struct kvm_dirty_gfn);

		if (!caps.dirty_ring_max) {
			log_err("d%u: logdirty \"ring\" needs KVM_CAP_DIRTY_LOG_RING", d->domid);
			return -FERRY_ENOKVM;
		}
		if (bytes > caps.dirty_ring_max)
			bytes = caps.dirty_ring_max;
		cap.args[0] = bytes;
		if (ioctl(kd->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
			err = -errno;
			log_err("d%u: enabling the KVM dirty ring: %s", d->domid, strerror(errno));
			return err;
		}
		kd->ring = true;
		kd->ring_entries = bytes / sizeof(struct kvm_dirty_gfn);
	}
	err = set_memslot(d, false);
	if (err)
		return err;
	kd->cpuid = build_cpuid();
	if (!kd->cpuid)
		return -ENOMEM;
	if (d->restoring)
		return 0; /* the saved memory has the guest's own GDT */
	return hyp_gmem_write(d, BOOT_GDT_GPA, gdt, sizeof(gdt));
}

static void kvm_dom_fini(struct hyp_domain *d)
{
	struct kvm_dom *kd = kd_of(d);

	hyp__kvm_load_free(d);
	if (kd->vm_fd >= 0)
		close(kd->vm_fd);
	free(kd->cpuid);
	free(kd);
	d->exec = NULL;
}

static int set_boot_state(struct hyp_vcpu *v, struct kvm_vcpu *kv)
{
	struct kvm_segment cs = { .selector = 8, .type = 11, .present = 1, .s = 1,
				  .l = 1, .g = 1, .limit = 0xffffffff };
	struct kvm_segment ds = { .selector = 16, .type = 3, .present = 1, .s = 1,
				  .db = 1, .g = 1, .limit = 0xffffffff };
	struct kvm_sregs s;
	struct kvm_regs r = { 0 };

	if (ioctl(kv->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.gdt.base = BOOT_GDT_GPA;
	s.gdt.limit = 3 * 8 - 1;
	s.cr0 = 0x80000033; /* PG NE ET MP PE */
	s.cr3 = FERRY_PGTABLE_GPA;
	s.cr4 = 0x620;	    /* OSXMMEXCPT OSFXSR PAE */
	s.efer = 0x500;	    /* LMA LME */
	if (ioctl(kv->fd, KVM_SET_SREGS, &s) < 0)
		return -errno;
	r.rip = v->d->entry;
	r.rbx = FERRY_START_INFO_GPA;
	r.rsi = v->id;
	r.rflags = 2;
	if (ioctl(kv->fd, KVM_SET_REGS, &r) < 0)
		return -errno;
	/* With the in-kernel LAPIC, APs would wait for INIT/SIPI: every vCPU
	 * enters directly, as Xen's PVH vCPUs do. */
	if (v->id && ioctl(kv->fd, KVM_SET_MP_STATE,
			   &(struct kvm_mp_state){ .mp_state = KVM_MP_STATE_RUNNABLE }) < 0)
		return -errno;
	return 0;
}

static int kvm_vcpu_init(struct hyp_vcpu *v)
{
	struct hyp_domain *d = v->d;
	struct kvm_dom *kd = kd_of(d);
	struct kvm_vcpu *kv;
	int err;

	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return -ENOMEM;
	v->exec = kv;
	kv->fd = ioctl(kd->vm_fd, KVM_CREATE_VCPU, v->id);
	if (kv->fd < 0) {
		err = -errno;
		log_err("d%u: KVM_CREATE_VCPU %u: %s", d->domid, v->id, strerror(errno));
		return err;
	}
	kv->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       kv->fd, 0);
	if (kv->run == MAP_FAILED) {
		kv->run = NULL;
		err = -errno;
		log_err("d%u v%u: mapping kvm_run: %s", d->domid, v->id, strerror(errno));
		return err;
	}
	if (kd->ring) {
		kv->ring = mmap(NULL, kd->ring_entries * sizeof(struct kvm_dirty_gfn),
				PROT_READ | PROT_WRITE, MAP_SHARED, kv->fd,
				KVM_DIRTY_LOG_PAGE_OFFSET * PAGE_SIZE);
		if (kv->ring == MAP_FAILED) {
			kv->ring = NULL;
			err = -errno;
			log_err("d%u v%u: mapping the dirty ring: %s", d->domid, v->id,
				strerror(errno));
			return err;
		}
	}
	if (ioctl(kv->fd, KVM_SET_CPUID2, kd->cpuid) < 0) {
		err = -errno;
		log_err("d%u v%u: KVM_SET_CPUID2: %s", d->domid, v->id, strerror(errno));
		return err;
	}
	/* Restoring: the loaded context sets the registers and kvmclock. */
	if (d->restoring)
		return 0;
	err = set_boot_state(v, kv);
	if (err) {
		log_err("d%u v%u: setting the boot registers: %s", d->domid, v->id,
			ferry_strerror(-err));
		return err;
	}
	/* kvmclock writes Xen's vcpu_time_info layout (they are the same
	 * pvclock record) into the shared_info page the guest will map. */
	kv->time_msr = hyp__kvm_time_msr_value(FERRY_SHARED_INFO_GPA, v->id);
	return 0;
}

static void kvm_vcpu_fini(struct hyp_vcpu *v)
{
	struct kvm_vcpu *kv = v->exec;

	if (kv->ring)
		munmap(kv->ring, kd_of(v->d)->ring_entries * sizeof(struct kvm_dirty_gfn));
	if (kv->run)
		munmap(kv->run, (size_t)run_size);
	if (kv->fd >= 0)
		close(kv->fd);
	free(kv);
	v->exec = NULL;
}

static int write_time_msr(struct hyp_vcpu *v, struct kvm_vcpu *kv)
{
	uint64_t buf[(sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)) / 8] = { 0 };
	struct kvm_msrs *m = (struct kvm_msrs *)buf;

	m->nmsrs = 1;
	m->entries[0].index = MSR_KVM_SYSTEM_TIME_NEW;
	m->entries[0].data = kv->time_msr;
	if (ioctl(kv->fd, KVM_SET_MSRS, m) != 1) {
		log_err("d%u v%u: cannot enable kvmclock at 0x%llx", v->d->domid, v->id,
			(unsigned long long)kv->time_msr);
		return -EIO;
	}
	kv->time_msr = 0;
	return 0;
}

static int handle_io(struct hyp_vcpu *v, struct kvm_vcpu *kv, struct hyp_exit *ex)
{
	struct kvm_run *run = kv->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	if (run->io.port == FERRY_DOORBELL_PORT &&
	    run->io.direction == KVM_EXIT_IO_OUT) {
		if (ioctl(kv->fd, KVM_GET_REGS, &kv->regs) < 0) {
			log_err("d%u v%u: KVM_GET_REGS: %s", v->d->domid, v->id,
				strerror(errno));
			return -errno;
		}
		ex->kind = HYP_EXIT_HCALL;
		ex->nr = kv->regs.rax;
		ex->arg[0] = kv->regs.rdi;
		ex->arg[1] = kv->regs.rsi;
		ex->arg[2] = kv->regs.rdx;
		ex->arg[3] = kv->regs.r10;
		ex->arg[4] = kv->regs.r8;
		return 0;
	}
	/* No device behind other ports: reads float high, writes vanish. */
	if (run->io.direction == KVM_EXIT_IO_IN)
		memset(data, 0xff, (size_t)run->io.size * run->io.count);
	return 0;
}

static int kvm_vcpu_run(struct hyp_vcpu *v, struct hyp_exit *ex)
{
	struct kvm_vcpu *kv = v->exec;
	struct kvm_run *run = kv->run;
	struct hyp_domain *d = v->d;

	if (kv->time_msr && write_time_msr(v, kv))
		return -EIO;
	if (ioctl(kv->fd, KVM_RUN, 0) < 0) {
		/* KVM completed the previous exit before returning. */
		kv->exit_pending = false;
		if (errno == EINTR || errno == EAGAIN) {
			run->immediate_exit = 0;
			ex->kind = HYP_EXIT_NONE;
			return 0;
		}
		log_err("d%u v%u: KVM_RUN: %s", d->domid, v->id, strerror(errno));
		return -errno;
	}
	/* Port I/O and MMIO finish on the next KVM_RUN (hyp__kvm_vcpu_quiesce). */
	kv->exit_pending = true;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return handle_io(v, kv, ex);
	case KVM_EXIT_HLT:
		hyp__vcpu_block(v);
		return 0;
	case KVM_EXIT_MMIO:
		if (!kv->mmio_warned)
			log_warn("d%u v%u: MMIO %s at gpa 0x%llx has no device", d->domid,
				 v->id, run->mmio.is_write ? "write" : "read",
				 (unsigned long long)run->mmio.phys_addr);
		kv->mmio_warned = true;
		if (!run->mmio.is_write)
			memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
		return 0;
	case KVM_EXIT_DIRTY_RING_FULL: {
		hyp_ring_full_fn fn;
		void *opaque;

		pthread_mutex_lock(&d->lock);
		fn = d->ring_full;
		opaque = d->ring_full_opaque;
		if (fn)
			d->ring_full_busy++;
		pthread_mutex_unlock(&d->lock);
		if (!fn) {
			usleep(1000);
			return 0;
		}
		fn(opaque, v->id);
		pthread_mutex_lock(&d->lock);
		d->ring_full_busy--;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		return 0;
	}
	case KVM_EXIT_INTR:
		return 0;
	case KVM_EXIT_SHUTDOWN:
		log_err("d%u v%u: triple fault", d->domid, v->id);
		ex->kind = HYP_EXIT_CRASH;
		return 0;
	case KVM_EXIT_INTERNAL_ERROR:
		log_err("d%u v%u: KVM internal error, suberror %u", d->domid, v->id,
			run->internal.suberror);
		ex->kind = HYP_EXIT_CRASH;
		return 0;
	case KVM_EXIT_FAIL_ENTRY:
		log_err("d%u v%u: VM entry failed, reason 0x%llx", d->domid, v->id,
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		ex->kind = HYP_EXIT_CRASH;
		return 0;
	default:
		log_err("d%u v%u: unhandled KVM exit %u", d->domid, v->id, run->exit_reason);
		ex->kind = HYP_EXIT_CRASH;
		return 0;
	}
}

static void kvm_vcpu_hcall_done(struct hyp_vcpu *v, int64_t ret)
{
	struct kvm_vcpu *kv = v->exec;

	kv->regs.rax = (uint64_t)ret;
	if (ioctl(kv->fd, KVM_SET_REGS, &kv->regs) < 0)
		log_err("d%u v%u: KVM_SET_REGS after a hypercall: %s", v->d->domid, v->id,
			strerror(errno));
}

static void kvm_vcpu_kick(struct hyp_vcpu *v)
{
	struct kvm_vcpu *kv = v->exec;

	if (kv && kv->run)
		__atomic_store_n(&kv->run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_kill(v->thread, KICK_SIGNAL);
}

static uint64_t kvm_now_ns(struct hyp_domain *d)
{
	struct kvm_clock_data c = { 0 };

	if (ioctl(kd_of(d)->vm_fd, KVM_GET_CLOCK, &c) < 0)
		return 0;
	return c.clock;
}

static void kvm_shared_info_mapped(struct hyp_domain *d, uint64_t gpa)
{
	for (unsigned i = 0; i < d->nvcpus; i++) {
		struct kvm_vcpu *kv = d->vcpus[i].exec;

		kv->time_msr = hyp__kvm_time_msr_value(gpa, i);
	}
}

/*
 * Event-channel upcall: a fixed, edge-triggered MSI to the vCPU's LAPIC
 * (APIC id = vCPU id) through the in-kernel irqchip, which KVM delivers
 * like any interrupt: held in the IRR while the guest has interrupts off,
 * dropped by KVM when the guest's LAPIC is disabled. A VM ioctl, safe from
 * any thread while the vCPU runs.
 */
static void kvm_inject_vector(struct hyp_vcpu *v, uint8_t vector)
{
	struct kvm_msi msi = {
		.address_lo = 0xfee00000u | (v->id << 12),
		.data = vector,
	};
	struct kvm_dom *kd = kd_of(v->d);
	static bool warned;

	if (!kd || kd->vm_fd < 0 || vector < 0x10)
		return;
	if (ioctl(kd->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 &&
	    !__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
		log_warn("d%u v%u: KVM_SIGNAL_MSI vector 0x%x: %s (further failures not logged)",
			 v->d->domid, v->id, vector, strerror(errno));
}

/* ---- gmem.h KVM specifics ---------------------------------------------- */

int hyp_kvm_vm_fd(struct hyp_domain *d)
{
	return d->ops == &hyp_exec_ops_kvm ? kd_of(d)->vm_fd : -1;
}

int hyp_kvm_set_dirty_logging(struct hyp_domain *d, bool on)
{
	if (d->ops != &hyp_exec_ops_kvm)
		return -EOPNOTSUPP;
	return set_memslot(d, on);
}

unsigned hyp_kvm_nslots(struct hyp_domain *d)
{
	return d->ops == &hyp_exec_ops_kvm ? 1 : 0;
}

void hyp_kvm_slot(struct hyp_domain *d, unsigned i, uint32_t *slot, uint64_t *gpa,
		  uint64_t *size)
{
	(void)i;
	*slot = 0;
	*gpa = 0;
	*size = d->mem_bytes;
}

struct kvm_dirty_gfn *hyp_kvm_vcpu_ring(struct hyp_domain *d, unsigned i,
					uint32_t *entries)
{
	struct kvm_vcpu *kv;

	if (d->ops != &hyp_exec_ops_kvm || i >= d->nvcpus || !kd_of(d)->ring)
		return NULL;
	kv = d->vcpus[i].exec;
	*entries = kd_of(d)->ring_entries;
	return kv->ring;
}

const struct hyp_exec_ops hyp_exec_ops_kvm = {
	.name               = "kvm",
	.probe              = kvm_probe,
	.dom_init           = kvm_dom_init,
	.dom_fini           = kvm_dom_fini,
	.vcpu_init          = kvm_vcpu_init,
	.vcpu_fini          = kvm_vcpu_fini,
	.vcpu_run           = kvm_vcpu_run,
	.vcpu_hcall_done    = kvm_vcpu_hcall_done,
	.vcpu_kick          = kvm_vcpu_kick,
	.now_ns             = kvm_now_ns,
	.shared_info_mapped = kvm_shared_info_mapped,
	.loads_kernel       = true,
	.vcpu_quiesce       = hyp__kvm_vcpu_quiesce_hook,
	.save_context       = hyp__kvm_save_context,
	.load_entry         = hyp__kvm_load_entry,
	.load_done          = hyp__kvm_load_done,
	.tsc_khz            = hyp__kvm_tsc_khz,
	.inject_vector      = kvm_inject_vector,
};
