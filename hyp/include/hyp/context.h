/* SPDX-License-Identifier: MIT */
/*
 * Domain state for save, restore and migration: a domain's vCPU and
 * platform state as typed entries (formats/hvm-context.h typecodes; each
 * backend writes and reads its own), and building a domain to restore into.
 */
#ifndef HYP_CONTEXT_H
#define HYP_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "hyp/hyp.h"

struct hyp_tsc_info {
	uint32_t mode;	/* 0: default (Xen's TSC_MODE_DEFAULT) */
	uint32_t khz;
	uint64_t nsec;	/* guest system time when saved */
	uint32_t incarnation;
};

/* Called once per entry; return 0 or -errno to stop. data is borrowed. */
typedef int (*hyp_ctx_emit_fn)(void *opaque, uint16_t typecode, uint16_t instance,
			       const void *data, uint32_t len);

/*
 * Emits the domain's state: one FERRY_HVM_DOMAIN entry, then the backend's
 * per-vCPU and per-VM entries. The domain must be paused (hyp_domain_pause)
 * so no vCPU is inside the backend. Returns 0 or -errno (-EBUSY if not
 * paused).
 */
int hyp_domain_save_context(struct hyp *h, uint32_t domid, hyp_ctx_emit_fn emit,
			    void *opaque);
int hyp_domain_tsc_info(struct hyp *h, uint32_t domid, struct hyp_tsc_info *out);

/*
 * Creates a domain to restore into: cfg as for hyp_domain_create (memory
 * populated and zero, no kernel loaded, no boot state), left paused, in
 * state "paused". The caller fills guest memory through hyp_gmem_write or
 * the hyp_gmem mapping plus hyp_gmem_mark_dirty, then loads the context.
 * On any failure, hyp_domain_destroy it: nothing else stays behind.
 */
int hyp_domain_create_restore(struct hyp *h, const struct hyp_dom_config *cfg,
			      uint32_t *domid);
/*
 * The same for a lazy restore (restore/lazy.h), whose pages arrive while
 * the guest runs: the frames are not scrubbed (a warm frame may hold
 * another domain's data), every gfn is HYP_P2M_PENDING, and nothing may
 * map a page before hyp_gmem_fill_pending wrote it: the caller registers
 * the guest mapping for missing and minor faults (hyp/uffd.h) before
 * anything reads it. -ENOTSUP where the kernel lacks either kind.
 */
int hyp_domain_create_lazy(struct hyp *h, const struct hyp_dom_config *cfg, uint32_t *domid);
/*
 * Applies one entry of a saved context. Unknown typecodes, a wrong
 * instance, a bad length, or an entry of the other backend give -EINVAL
 * with a log line naming the entry.
 */
int hyp_domain_load_entry(struct hyp *h, uint32_t domid, uint16_t typecode,
			  uint16_t instance, const void *data, uint32_t len);
/*
 * Commits a load: checks every required entry arrived (-EINVAL naming the
 * missing one) and writes what must be written in order. Repeatable: a
 * restore of a checkpointed stream loads and commits once per epoch, each
 * commit replacing the previous one's state. The domain stays paused and
 * still restoring (hyp_domain_unpause refuses it) until
 * hyp_domain_resume_restored. -EINVAL if the domain is not a restore's.
 */
int hyp_domain_load_commit(struct hyp *h, uint32_t domid);
/*
 * Ends a restore, once, after at least one commit (-EINVAL otherwise):
 * bumps the guest's resume counter (struct ferry_ctl) so it knows it was
 * restored, and lets hyp_domain_unpause run it. Entries loaded since the
 * last commit are dropped: the last committed state stands.
 */
int hyp_domain_resume_restored(struct hyp *h, uint32_t domid);

#endif
