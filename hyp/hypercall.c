// SPDX-License-Identifier: MIT
/*
 * Hypercall dispatch, with Xen's numbers and argument layouts. Pointer
 * arguments are guest-physical addresses (Ferry guests identity-map), and
 * every access is bounds-checked against guest RAM.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "common/log.h"
#include "internal.h"

#define CONSOLE_WRITE_MAX 4096

static int64_t hc_console_io(struct hyp_vcpu *v, const uint64_t *a)
{
	char buf[CONSOLE_WRITE_MAX];
	uint64_t len = a[1];

	if (a[0] != CONSOLEIO_write)
		return -XEN_ENOSYS;
	if (len > sizeof(buf))
		len = sizeof(buf);
	if (hyp_gmem_read(v->d, a[2], buf, len))
		return -XEN_EFAULT;
	hyp__console_put(v->d, buf, len);
	return (int64_t)len;
}

static int64_t hc_sched_op(struct hyp_vcpu *v, const uint64_t *a)
{
	struct sched_shutdown sd;

	switch (a[0]) {
	case SCHEDOP_yield:
		sched_yield();
		return 0;
	case SCHEDOP_block:
		evtchn_block(v);
		return 0;
	case SCHEDOP_shutdown:
		if (hyp_gmem_read(v->d, a[1], &sd, sizeof(sd)))
			return -XEN_EFAULT;
		hyp__dom_guest_shutdown(v->d, sd.reason);
		return 0;
	default:
		return -XEN_ENOSYS;
	}
}

static int64_t hc_xen_version(struct hyp_vcpu *v, const uint64_t *a)
{
	static const xen_extraversion_t extra = ".0-ferry";

	switch (a[0]) {
	case XENVER_version:
		/* The Xen ABI level we implement. */
		return (4 << 16) | 19;
	case XENVER_extraversion:
		return hyp_gmem_write(v->d, a[1], extra, sizeof(extra)) ? -XEN_EFAULT : 0;
	default:
		return -XEN_ENOSYS;
	}
}

static int64_t hc_memory_op(struct hyp_vcpu *v, const uint64_t *a)
{
	struct xen_add_to_physmap x;
	struct hyp_domain *d = v->d;

	if (a[0] != XENMEM_add_to_physmap)
		return hyp__balloon_memory_op(d, a[0], a[1]);
	if (hyp_gmem_read(d, a[1], &x, sizeof(x)))
		return -XEN_EFAULT;
	if (x.domid != DOMID_SELF && x.domid != d->domid)
		return -XEN_EPERM;
	if (x.space == XENMAPSPACE_grant_table)
		return gnttab_add_to_physmap(d, x.idx, x.gpfn);
	if (x.space != XENMAPSPACE_shared_info || x.idx != 0)
		return -XEN_EINVAL;
	if (x.gpfn >= d->mem_bytes >> 12) /* (gpfn << 12) + 4096 could wrap */
		return -XEN_EINVAL;
	d->shared_info_gpa = x.gpfn << 12;
	d->ops->shared_info_mapped(d, d->shared_info_gpa);
	return 0;
}

static int64_t hc_hvm_op(struct hyp_vcpu *v, const uint64_t *a)
{
	struct xen_hvm_param p;

	if (a[0] != HVMOP_set_param && a[0] != HVMOP_get_param)
		return -XEN_ENOSYS;
	if (hyp_gmem_read(v->d, a[1], &p, sizeof(p)))
		return -XEN_EFAULT;
	switch (p.index) {
	case HVM_PARAM_STORE_PFN:
	case HVM_PARAM_STORE_EVTCHN:
	case HVM_PARAM_CONSOLE_PFN:
	case HVM_PARAM_CONSOLE_EVTCHN: {
		int64_t err;

		/* ferryd's to set (at create), the guest's to read. */
		if (a[0] == HVMOP_set_param)
			return -XEN_EPERM;
		err = hyp__pv_hvm_param(v->d, p.index, &p.value);
		if (err)
			return err;
		return hyp_gmem_write(v->d, a[1], &p, sizeof(p)) ? -XEN_EFAULT : 0;
	}
	case HVM_PARAM_CALLBACK_IRQ:
		break;
	default:
		return -XEN_EINVAL;
	}
	if (a[0] == HVMOP_get_param) {
		p.value = v->d->callback_vector;
		return hyp_gmem_write(v->d, a[1], &p, sizeof(p)) ? -XEN_EFAULT : 0;
	}
	if (p.value >> HVM_PARAM_CALLBACK_TYPE_SHIFT != HVM_PARAM_CALLBACK_TYPE_VECTOR &&
	    p.value != 0)
		return -XEN_EINVAL;
	v->d->callback_vector = p.value;
	return 0;
}

int64_t hyp_hypercall(struct hyp_vcpu *v, uint64_t nr, const uint64_t *a)
{
	log_debug("d%u v%u: hypercall %llu (0x%llx, 0x%llx, 0x%llx)", v->d->domid, v->id,
		  (unsigned long long)nr, (unsigned long long)a[0],
		  (unsigned long long)a[1], (unsigned long long)a[2]);
	switch (nr) {
	case __HYPERVISOR_console_io:
		return hc_console_io(v, a);
	case __HYPERVISOR_sched_op:
		return hc_sched_op(v, a);
	case __HYPERVISOR_xen_version:
		return hc_xen_version(v, a);
	case __HYPERVISOR_set_timer_op:
		v->timer_ns = a[0];
		evtchn_timer_poll(v);
		return 0;
	case __HYPERVISOR_memory_op:
		return hc_memory_op(v, a);
	case __HYPERVISOR_hvm_op:
		return hc_hvm_op(v, a);
	case __HYPERVISOR_event_channel_op:
		return hyp__hc_event_channel_op(v, a);
	case __HYPERVISOR_grant_table_op:
		return hyp__hc_grant_table_op(v, a);
	default:
		return -XEN_ENOSYS;
	}
}
