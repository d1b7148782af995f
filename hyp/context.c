// SPDX-License-Identifier: MIT
/*
 * Domain state for save and restore (hyp/context.h), the generic part: the
 * FERRY_HVM_DOMAIN entry every backend carries, the domain's services
 * (event channels, grant frames, scheduling: evtchn.c, gnttab.c,
 * cpupool.c), ferryd's console history (console.c), routing the other
 * entries to the domain's backend (refusing those of another backend), and
 * finishing a load (resume counter). The backends' own entries are in
 * exec-kvm/ and exec-soft/.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "internal.h"

/* Name of a typecode for messages; never NULL. */
static const char *code_name(uint16_t code)
{
	const char *n = fmt_hvm_code_name(code);

	return n ? n : "unknown";
}

/* Which backend a Ferry typecode belongs to; NULL if none (or generic). */
static const char *code_backend(uint16_t code)
{
	if (code >= FERRY_HVM_KVM_REGS && code <= FERRY_HVM_KVM_CLOCK &&
	    fmt_hvm_code_name(code))
		return "kvm";
	if (code == FERRY_HVM_SOFT_VCPU)
		return "soft";
	return NULL;
}

int hyp_domain_save_context(struct hyp *h, uint32_t domid, hyp_ctx_emit_fn emit,
			    void *opaque)
{
	struct ferry_hvm_domain dom;
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	/* Paused: wait until every vCPU has quiesced and parked, so no vCPU
	 * is inside the backend and the fields below are stable. */
	if (!hyp__dom_wait_parked(d)) {
		log_err("d%u: cannot save the context of a running domain: pause it first",
			domid);
		hyp_domain_put(d);
		return -EBUSY;
	}
	memset(&dom, 0, sizeof(dom));
	dom.version = 1;
	dom.nr_vcpus = d->nvcpus;
	dom.shared_info_gpa = d->shared_info_gpa;
	dom.callback_vector = d->callback_vector;
	dom.system_time_ns = d->ops->now_ns(d);
	dom.entry = d->entry;
	err = emit(opaque, FERRY_HVM_DOMAIN, 0, &dom, sizeof(dom));
	if (!err)
		err = d->ops->save_context(d, emit, opaque);
	/* The pending set_timer_op deadline: a guest paused between arming it
	 * and SCHEDOP_block would otherwise never wake on the other side. */
	for (unsigned i = 0; !err && i < d->nvcpus; i++) {
		struct ferry_hvm_vcpu vc = { .version = 1 };

		pthread_mutex_lock(&d->lock);
		vc.timer_ns = d->vcpus[i].timer_ns;
		pthread_mutex_unlock(&d->lock);
		err = emit(opaque, FERRY_HVM_VCPU, (uint16_t)i, &vc, sizeof(vc));
	}
	/* The domain's services: ports, grant frames, scheduling. */
	if (!err)
		err = evtchn_ctx_save(d, emit, opaque);
	if (!err)
		err = gnttab_ctx_save(d, emit, opaque);
	if (!err)
		err = sched_ctx_save(d, emit, opaque);
	/* ferryd's record of the console, for xl console on the other side */
	if (!err)
		err = hyp__console_ctx_save(d, emit, opaque);
	hyp_domain_put(d);
	return err;
}

int hyp_domain_tsc_info(struct hyp *h, uint32_t domid, struct hyp_tsc_info *out)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	memset(out, 0, sizeof(*out));
	out->mode = 0;
	out->khz = d->ops->tsc_khz(d);
	out->nsec = d->ops->now_ns(d);
	out->incarnation = 0;
	hyp_domain_put(d);
	return 0;
}

static int load_domain_entry(struct hyp_domain *d, uint16_t instance, const void *data,
			     uint32_t len)
{
	struct ferry_hvm_domain dom;

	if (instance != 0 || len != sizeof(dom)) {
		log_err("d%u: HVM context entry DOMAIN/%u: instance must be 0 and length %zu, "
			"got length %u", d->domid, instance, sizeof(dom), len);
		return -EINVAL;
	}
	memcpy(&dom, data, sizeof(dom));
	if (dom.version != 1) {
		log_err("d%u: HVM context entry DOMAIN: version %u, expected 1", d->domid,
			dom.version);
		return -EINVAL;
	}
	if (dom.nr_vcpus != d->nvcpus) {
		log_err("d%u: HVM context entry DOMAIN: saved with %u vCPUs, this domain has %u",
			d->domid, dom.nr_vcpus, d->nvcpus);
		return -EINVAL;
	}
	if ((dom.shared_info_gpa & (PAGE_SIZE - 1)) ||
	    dom.shared_info_gpa >= d->mem_bytes || dom.entry >= d->mem_bytes) {
		log_err("d%u: HVM context entry DOMAIN: shared_info at 0x%llx or entry 0x%llx "
			"outside the domain's %llu MiB", d->domid,
			(unsigned long long)dom.shared_info_gpa, (unsigned long long)dom.entry,
			(unsigned long long)(d->mem_bytes >> 20));
		return -EINVAL;
	}
	d->ctx_dom = dom;
	d->ctx_have_dom = true;
	return 0;
}

static int load_vcpu_entry(struct hyp_domain *d, uint16_t instance, const void *data,
			   uint32_t len)
{
	struct ferry_hvm_vcpu vc;

	if (instance >= d->nvcpus || len != sizeof(vc)) {
		log_err("d%u: HVM context entry VCPU/%u: the domain has %u vCPUs and the length "
			"must be %zu, got %u", d->domid, instance, d->nvcpus, sizeof(vc), len);
		return -EINVAL;
	}
	memcpy(&vc, data, sizeof(vc));
	if (vc.version != 1 || vc.reserved) {
		log_err("d%u: HVM context entry VCPU/%u: version %u reserved %u, expected 1 and 0",
			d->domid, instance, vc.version, vc.reserved);
		return -EINVAL;
	}
	pthread_mutex_lock(&d->lock);
	d->vcpus[instance].timer_ns = vc.timer_ns;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static int load_entry(struct hyp_domain *d, uint16_t typecode, uint16_t instance,
		      const void *data, uint32_t len)
{
	const char *owner;

	if (len && !data)
		return -EINVAL;
	switch (typecode) {
	case HVM_SAVE_CODE_HEADER: {
		struct hvm_save_header hdr;

		/* The stream layer normally consumes it; accept a valid one. */
		if (len != sizeof(hdr)) {
			log_err("d%u: HVM context entry HEADER: length %u, expected %zu",
				d->domid, len, sizeof(hdr));
			return -EINVAL;
		}
		memcpy(&hdr, data, sizeof(hdr));
		if (hdr.magic != HVM_FILE_MAGIC || hdr.version != HVM_FILE_VERSION) {
			log_err("d%u: HVM context entry HEADER: magic 0x%x version %u, "
				"expected 0x%x version %u", d->domid, hdr.magic, hdr.version,
				HVM_FILE_MAGIC, HVM_FILE_VERSION);
			return -EINVAL;
		}
		return 0;
	}
	case HVM_SAVE_CODE_END:
		if (len) {
			log_err("d%u: HVM context entry END: length %u, expected 0", d->domid,
				len);
			return -EINVAL;
		}
		return 0;
	case FERRY_HVM_DOMAIN:
		return load_domain_entry(d, instance, data, len);
	case FERRY_HVM_VCPU:
		return load_vcpu_entry(d, instance, data, len);
	case FERRY_HVM_EVTCHN:
		return evtchn_ctx_load(d, instance, data, len);
	case FERRY_HVM_GNTTAB:
		return gnttab_ctx_load(d, instance, data, len);
	case FERRY_HVM_SCHED:
	case FERRY_HVM_SCHED_VCPU:
		return sched_ctx_load(d, typecode, instance, data, len);
	case FERRY_HVM_CONSOLE:
		return hyp__console_ctx_load(d, instance, data, len);
	default:
		break;
	}
	owner = code_backend(typecode);
	if (!owner) {
		log_err("d%u: HVM context entry 0x%04x/%u (%s): unknown typecode", d->domid,
			typecode, instance, code_name(typecode));
		return -EINVAL;
	}
	if (strcmp(owner, d->ops->name)) {
		log_err("d%u: HVM context entry %s/%u is %s backend state; this domain runs on "
			"%s: a context moves only between domains of the same backend",
			d->domid, code_name(typecode), instance, owner, d->ops->name);
		return -EINVAL;
	}
	return d->ops->load_entry(d, typecode, instance, data, len);
}

/* The domain, once every vCPU has parked; -EBUSY (logged) if it runs. */
static int get_parked(struct hyp *h, uint32_t domid, const char *what,
		      struct hyp_domain **out)
{
	struct hyp_domain *d;
	int err = hyp_domain_get(h, domid, &d);

	if (err)
		return err;
	if (!hyp__dom_wait_parked(d)) {
		log_err("d%u: cannot %s a running domain", domid, what);
		hyp_domain_put(d);
		return -EBUSY;
	}
	*out = d;
	return 0;
}

/*
 * A restore's domain that has loaded at least one epoch: the first commit
 * freed the bitmap of gfns the stream had not written yet (no more warm
 * frame swaps once the domain's pages are its own).
 */
static bool load_committed(const struct hyp_domain *d)
{
	return d->restoring && !d->unwritten;
}

/*
 * The next epoch's CONSOLE entry carries the whole history again: the
 * guest never ran since the last one was seeded, so it replaces it rather
 * than following it.
 */
static void console_rewind(struct hyp_domain *d)
{
	pthread_mutex_lock(&d->con_lock);
	d->con_head = 0;
	pthread_mutex_unlock(&d->con_lock);
}

int hyp_domain_load_entry(struct hyp *h, uint32_t domid, uint16_t typecode,
			  uint16_t instance, const void *data, uint32_t len)
{
	struct hyp_domain *d;
	int err = get_parked(h, domid, "load a context into", &d);

	if (err)
		return err;
	if (typecode == FERRY_HVM_CONSOLE && load_committed(d))
		console_rewind(d);
	err = load_entry(d, typecode, instance, data, len);
	hyp_domain_put(d);
	return err;
}

/* Tells the guest it was restored: its verify workload then checks every
 * page. Through hyp_gmem_write, so the page is marked dirty. */
static int bump_resume_count(struct hyp_domain *d)
{
	struct ferry_ctl ctl;
	int err = hyp_gmem_read(d, FERRY_CTL_GPA, &ctl, sizeof(ctl));

	if (!err) {
		ctl.resume_count++;
		err = hyp_gmem_write(d, FERRY_CTL_GPA, &ctl, sizeof(ctl));
	}
	if (err)
		log_err("d%u: cannot bump the resume counter at 0x%x", d->domid,
			FERRY_CTL_GPA);
	return err;
}

int hyp_domain_load_commit(struct hyp *h, uint32_t domid)
{
	struct hyp_domain *d;
	int err = get_parked(h, domid, "commit a context into", &d);

	if (err)
		return err;
	if (!d->restoring) {
		log_err("d%u: cannot commit a context: the domain is not being restored", domid);
		err = -EINVAL;
		goto out;
	}
	if (!d->ctx_have_dom) {
		log_err("d%u: HVM context has no DOMAIN entry", domid);
		err = -EINVAL;
		goto out;
	}
	/* Generic fields first: the backend may use them (kvm: kvmclock's
	 * record lives in shared_info). */
	d->shared_info_gpa = d->ctx_dom.shared_info_gpa;
	d->callback_vector = d->ctx_dom.callback_vector;
	d->entry = d->ctx_dom.entry;
	err = d->ops->load_done(d, &d->ctx_dom);
	if (!err)
		err = evtchn_ctx_apply(d);
	if (err)
		goto out;
	gnttab_ctx_apply(d);
	sched_ctx_apply(d);
	/* From here on the domain's pages are its own: no more swaps. This
	 * also marks the load committed (load_committed). */
	free(d->unwritten);
	d->unwritten = NULL;
	pthread_mutex_lock(&d->lock);
	d->ctx_have_dom = false;
	d->ctx_have_console = false;
	pthread_mutex_unlock(&d->lock);
	log_debug("d%u: context committed (%s, system time %llu ms)", domid, d->ops->name,
		  (unsigned long long)(d->ctx_dom.system_time_ns / 1000000));
out:
	hyp_domain_put(d);
	return err;
}

int hyp_domain_resume_restored(struct hyp *h, uint32_t domid)
{
	struct hyp_domain *d;
	int err = get_parked(h, domid, "resume the restore of", &d);

	if (err)
		return err;
	if (!load_committed(d)) {
		log_err("d%u: cannot resume: %s", domid,
			d->restoring ? "no context was committed" : "not a restore in progress");
		err = -EINVAL;
		goto out;
	}
	if (d->ctx_have_dom || d->ctx_have_console)
		log_warn("d%u: a context loaded but not committed is dropped: the last "
			 "committed one stands", domid);
	/* Last: with the state in place the guest may look at it. */
	err = bump_resume_count(d);
	if (err)
		goto out;
	pthread_mutex_lock(&d->lock);
	d->restoring = false;
	d->ctx_have_dom = false;
	d->ctx_have_console = false;
	pthread_mutex_unlock(&d->lock);
	log_info("d%u: context loaded (%s, system time %llu ms)", domid, d->ops->name,
		 (unsigned long long)(d->ctx_dom.system_time_ns / 1000000));
out:
	hyp_domain_put(d);
	return err;
}
